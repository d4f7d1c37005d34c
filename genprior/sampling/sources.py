r"""Other sources of diverse reconstructions, returned as the same :class:`SampleResult`:

- ``"restarts"``: independent random restarts of the CSGM solver; each restart's
  :math:`\hat x` is one sample (an ensemble of local MAP estimates, not posterior samples).
- ``"eps"``: fresh noise inputs :math:`\varepsilon` of a range-constrained conditional generator
  (:class:`~genprior.priors.conditional.ConditionalSR` or
  :class:`~genprior.operators.projection.RangeConstrained`); every sample satisfies
  :math:`Ax = y`.

and :func:`sample`, one entry point for these and the Langevin samplers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genprior._checks import check_finite, check_positive
from genprior.priors.base import Prior
from genprior.priors.conditional_base import conditional_draws
from genprior.sampling.langevin import langevin
from genprior.sampling.result import SampleResult, summarize

__all__ = ["METHODS", "csgm_restarts", "noise_draws", "sample"]

#: every ``method`` accepted by :func:`sample`
METHODS = ("ula", "mala", "restarts", "eps")


def _check_n(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    return int(n)


def _check_y(y: Tensor) -> None:
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.ndim < 2 or y.shape[0] < 1:
        raise ValueError(f"y must have shape (B, *meas_shape) with B >= 1, got {tuple(y.shape)}")
    check_finite(y, "y")


def _independent(samples: Tensor, z_samples: Tensor) -> SampleResult:
    """Wrap ``n`` independent samples per image: ESS is ``n``, no acceptance or step size."""
    n, b = samples.shape[:2]
    mean, std = summarize(samples)
    nan = torch.full((b,), math.nan, device=samples.device, dtype=samples.dtype)
    return SampleResult(samples=samples, z_samples=z_samples, mean=mean, std=std,
                        acceptance_rate=nan, ess=torch.full_like(nan, float(n)),
                        step_size=nan.clone(), n_chains=n)


def csgm_restarts(
    y: Tensor,
    A,
    prior: Prior,
    *,
    n: int,
    generator: torch.Generator | None = None,
    **csgm_options,
) -> SampleResult:
    r"""``n`` independent CSGM solutions per image, from ``n`` random initialisations.

    All ``n * B`` problems are solved in one batched call of
    :func:`genprior.reconstruct.csgm.csgm` with ``restarts=1`` (``y`` repeated ``n`` times), so
    every restart is kept instead of only the best one.

    Args:
        y: measurements of ``B`` images.
        A: linear operator.
        prior: generative prior.
        n: number of restarts (samples) per image.
        generator: source of the initial latents.
        **csgm_options: other keyword arguments of ``csgm`` (``lam``, ``steps``, ``lr``, ...).

    Returns:
        :class:`SampleResult` with ``samples[r] = x_hat`` of restart ``r`` and ``ess = n``.

    Shape:
        - y: ``(B, *meas_shape)``
        - samples: ``(n, B, C, H, W)``; z_samples: ``(n, B, *latent_shape)``
    """
    from genprior.reconstruct.csgm import csgm

    n = _check_n(n)
    _check_y(y)
    if "restarts" in csgm_options:
        raise ValueError("csgm_restarts runs one restart per sample; pass n, not restarts")
    b = y.shape[0]
    y_rep = y.repeat(n, *([1] * (y.ndim - 1)))
    res = csgm(y_rep, A, prior, restarts=1, generator=generator, **csgm_options)
    x = res.x_hat.detach()
    z = res.z_hat.detach()
    return _independent(x.reshape(n, b, *x.shape[1:]), z.reshape(n, b, *z.shape[1:]))


@torch.no_grad()
def noise_draws(
    y: Tensor,
    model: nn.Module,
    *,
    n: int,
    eps_shape: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> SampleResult:
    r"""``n`` outputs per image of a conditional generator ``model(y, eps)`` with fresh
    :math:`\varepsilon \sim \mathcal N(0, t^2 I)`, computed in one batched call.

    Args:
        y: measurements of ``B`` images.
        model: called as ``model(y, eps)``, e.g. a ``ConditionalSR`` or a ``RangeConstrained``.
        n: samples per image.
        eps_shape: shape of one :math:`\varepsilon`; default ``model.latent_shape``.
        generator: source of :math:`\varepsilon`.
        temperature: :math:`t`, the noise scale (1: the training distribution; larger spreads
            the draws, 0 gives one output); as ``ConditionalSR.sample``.

    Returns:
        :class:`SampleResult` with ``z_samples`` the noise draws and ``ess = n``.

    Shape:
        - y: ``(B, *meas_shape)``
        - samples: ``(n, B, C, H, W)``; z_samples: ``(n, B, *eps_shape)``

    Raises:
        ValueError: ``eps_shape`` neither given nor a ``latent_shape`` of the model; a negative
            or non-finite ``temperature``.
    """
    n = _check_n(n)
    _check_y(y)
    check_positive(temperature, "temperature", allow_zero=True)
    if eps_shape is None:
        eps_shape = getattr(model, "latent_shape", None)
        if eps_shape is None:
            raise ValueError(f"eps_shape must be given: {type(model).__name__} has no "
                             "latent_shape")
    return _independent(*conditional_draws(model, y, n, eps_shape, generator=generator,
                                           temperature=temperature))


def sample(
    method: str,
    y: Tensor,
    A,
    model: nn.Module,
    *,
    n: int,
    generator: torch.Generator | None = None,
    **options,
) -> SampleResult:
    r"""``n`` plausible reconstructions per image from any source of diversity.

    - ``"ula"`` / ``"mala"``: :func:`~genprior.sampling.langevin.langevin` with
      ``n_chains`` chains (option; default ``gcd(n, 4)``) of ``n / n_chains`` samples each.
    - ``"restarts"``: :func:`csgm_restarts`.
    - ``"eps"``: :func:`noise_draws` (``A`` is not used: the model holds its operator; pass
      ``None``).

    Args:
        method: one of :data:`METHODS`.
        y: measurements of ``B`` images.
        A: linear operator (unused for ``"eps"``).
        model: a :class:`Prior` (``"ula"``, ``"mala"``, ``"restarts"``) or a conditional
            generator (``"eps"``).
        n: samples per image.
        generator: source of all random draws.
        **options: keyword arguments of the underlying function.

    Returns:
        :class:`SampleResult` with ``n`` samples per image.

    Shape:
        - samples: ``(n, B, C, H, W)``

    Example:
        >>> from genprior.operators import GaussianCS
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> prior = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4))
        >>> A = GaussianCS(6, (1, 4, 4), seed=0)
        >>> y = A.A(prior.decode(torch.randn(3, 2, generator=g)))
        >>> res = sample("mala", y, A, prior, n=8, sigma=0.1, n_chains=2, burn_in=20,
        ...              generator=g)
        >>> res.samples.shape[:2]  # (n, B)
        torch.Size([8, 3])
    """
    n = _check_n(n)
    if method in ("ula", "mala"):
        n_chains = int(options.pop("n_chains", math.gcd(n, 4)))
        if n_chains < 1 or n % n_chains:
            raise ValueError(f"n = {n} must be a multiple of n_chains = {n_chains}")
        return langevin(y, A, model, n_samples=n // n_chains, n_chains=n_chains, method=method,
                        generator=generator, **options)
    if method == "restarts":
        return csgm_restarts(y, A, model, n=n, generator=generator, **options)
    if method == "eps":
        return noise_draws(y, model, n=n, generator=generator, **options)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
