r"""Langevin sampling of the latent posterior :math:`p(z \mid y)` of a generative prior.

The target is

.. math::
    \log \pi(z) = -\frac{\lVert y - A\,G(z) \rVert^2}{2\sigma^2} + \log p(z) + \text{const},

with :math:`G` = ``prior.decode`` and :math:`p(z)` = ``prior.log_prior``. All ``K`` chains of all
``B`` images are advanced together: one decoder forward/backward per iteration on a batch of
``K * B`` latents.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genprior._checks import check_finite, check_positive
from genprior._physics import forward
from genprior._random import rand, randn
from genprior.optim import LatentProblem, NegLogPrior, WeightedL2
from genprior.priors.base import Prior
from genprior.reconstruct._problem import check_latent_prior, check_measurements, fit_prior_to
from genprior.reconstruct.csgm import csgm
from genprior.sampling.result import SampleResult, summarize
from genprior.sampling.summary import ess

__all__ = ["DualAveraging", "langevin", "laplace_preconditioner", "log_target"]

_METHODS = ("ula", "mala")
_ULA_MAX_ANNEAL_STEP = 0.5  # prior curvature is 1: larger ULA steps are inaccurate


def _problem(y: Tensor, A, prior: Prior, sigma: float) -> LatentProblem:
    r"""The negative log posterior :math:`\|y - A G(z)\|^2/(2\sigma^2) - \log p(z)` as the
    shared :class:`~genprior.optim.LatentProblem`."""
    return LatentProblem(y, A, prior.decode, data=WeightedL2(sigma=sigma),
                         latent=NegLogPrior(prior))


def log_target(z: Tensor, y: Tensor, A, prior: Prior, *, sigma: float) -> tuple[Tensor, Tensor]:
    r"""Unnormalised log posterior :math:`\log \pi(z)` and the decoded images :math:`G(z)`.

    Args:
        z: latents.
        y: measurements, one per latent.
        A: linear operator (anything with ``A(x)``, e.g. a deepinv ``LinearPhysics``).
        prior: the generative prior.
        sigma: noise standard deviation of the likelihood.

    Returns:
        ``(log_pi, x)``.

    Shape:
        - z: ``(N, *latent_shape)``
        - y: ``(N, *meas_shape)``
        - log_pi: ``(N,)``
        - x: ``(N, C, H, W)``
    """
    value, x = _problem(y, A, prior, sigma).smooth(z)
    return -value, x


def _evaluate(z: Tensor, y: Tensor, A, prior: Prior, sigma: float):
    """``(log_pi, grad log_pi, x)`` at ``z``, all detached."""
    value, grad, _, x = _problem(y, A, prior, sigma).value_and_grad(z)
    return -value, -grad, x


@dataclass
class DualAveraging:
    r"""Nesterov dual averaging of :math:`\log h` towards a target acceptance probability,
    one independent scheme per image (Hoffman & Gelman 2014, Algorithm 5).

    Args:
        step_size: initial step per image, ``(B,)``.
        target: target mean acceptance probability.
        gamma, t0, kappa: the usual constants (0.05, 10, 0.75).
    """

    step_size: Tensor
    target: float
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def __post_init__(self) -> None:
        self.mu = torch.log(10.0 * self.step_size)
        self.h_bar = torch.zeros_like(self.step_size)
        self.log_step_bar = torch.log(self.step_size)
        self.t = 0

    def update(self, accept_prob: Tensor) -> Tensor:
        """Feed the mean acceptance probability per image ``(B,)``; return the next step."""
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1 - w) * self.h_bar + w * (self.target - accept_prob)
        log_step = self.mu - math.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** (-self.kappa)
        self.log_step_bar = eta * log_step + (1 - eta) * self.log_step_bar
        return torch.exp(log_step)

    @property
    def final_step_size(self) -> Tensor:
        """The averaged step to use once adaptation stops."""
        return torch.exp(self.log_step_bar)


def _check_inputs(y, A, prior, sigma, n_samples, n_chains, step_size, burn_in, thin, method,
                  target_accept, anneal) -> float:
    check_latent_prior(prior)
    if not isinstance(prior, Prior):
        raise TypeError(f"prior must be a genprior Prior, got {type(prior).__name__}")
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    with torch.no_grad():  # the images the prior really draws (one latent)
        x0 = prior.decode(torch.zeros((1, *prior.latent_shape), device=y.device, dtype=y.dtype))
    check_measurements(y, A, tuple(x0.shape[1:]), device=y.device, dtype=x0.dtype)
    if sigma is None:
        sigma = float(getattr(A, "noise_std", 0.0))
        if sigma <= 0:
            raise ValueError("sigma must be given (> 0) when the operator has no noise_std > 0")
    sigma = float(sigma)
    if not math.isfinite(sigma):
        raise ValueError(f"sigma must be finite, got {sigma}")
    check_positive(sigma, "sigma")
    check_positive(step_size, "step_size")
    for value, name in ((n_samples, "n_samples"), (n_chains, "n_chains"), (thin, "thin")):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}")
    if int(burn_in) != burn_in or burn_in < 0:
        raise ValueError(f"burn_in must be an integer >= 0, got {burn_in}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    if anneal:
        levels = [float(a) for a in anneal]
        if any(a <= 0 or not math.isfinite(a) for a in levels) or any(
            b >= a for a, b in itertools.pairwise(levels)
        ):
            raise ValueError(f"anneal must be strictly decreasing positive levels, got {levels}")
        if burn_in < len(levels) + 1:
            raise ValueError(f"burn_in must be >= len(anneal) + 1 = {len(levels) + 1} so that "
                             f"every noise level gets a step, got {burn_in}")
    return sigma


def _initial_latents(init, y, A, prior, n_chains, generator, csgm_options) -> Tensor:
    b = y.shape[0]
    latent = tuple(prior.latent_shape)
    if isinstance(init, Tensor):
        check_finite(init, "init")
        if tuple(init.shape) == (b, *latent):
            return init.detach().repeat(n_chains, *([1] * len(latent)))
        if tuple(init.shape) == (n_chains, b, *latent):
            return init.detach().reshape(n_chains * b, *latent)
        raise ValueError(f"init must have shape ({b}, {', '.join(map(str, latent))}) or "
                         f"({n_chains}, {b}, {', '.join(map(str, latent))}), "
                         f"got {tuple(init.shape)}")
    if init == "random":
        return prior.sample_latent(n_chains * b, generator=generator)
    if init == "csgm":
        z_hat = csgm(y, A, prior, generator=generator, **(csgm_options or {})).z_hat.detach()
        return z_hat.repeat(n_chains, *([1] * len(latent)))
    raise ValueError(f"init must be 'random', 'csgm' or a tensor, got {init!r}")


def laplace_preconditioner(y: Tensor, A, prior: Prior, z: Tensor, *, sigma: float) -> Tensor:
    r"""Cholesky factor ``L`` of the Gauss-Newton Laplace covariance of :math:`p(z \mid y)` at
    ``z``: :math:`LL^\top = (J^\top A^\top A J / \sigma^2 + I)^{-1}`, :math:`J = \partial G/\partial z`.

    The Jacobian columns come from one batched forward-mode pass (``torch.func.jvp``).

    Args:
        y: measurements (only its batch size is used).
        A: linear operator.
        prior: generative prior with a standard normal latent.
        z: the point of the expansion, usually the MAP estimate.
        sigma: likelihood noise standard deviation.

    Shape:
        - z: ``(B, *latent_shape)``
        - output: ``(B, d, d)``, lower triangular, ``d = prior.latent_dim``
    """
    b, d = z.shape[0], prior.latent_dim
    if y.shape[0] != b:
        raise ValueError(f"z must have {y.shape[0]} rows (one per image), got {z.shape[0]}")
    eye = torch.eye(d, device=z.device, dtype=z.dtype)
    z_rep = z.detach().reshape(b, 1, d).expand(b, d, d).reshape(b * d, *prior.latent_shape)
    tangents = eye.repeat(b, 1).reshape(b * d, *prior.latent_shape)
    with torch.no_grad():
        _, jac = torch.func.jvp(prior.decode, (z_rep,), (tangents,))
        aj = forward(A, jac).reshape(b, d, -1)
    precision = aj @ aj.transpose(1, 2) / sigma**2 + eye
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(precision)))


def _preconditioner(precondition, y, A, prior, z0, sigma) -> Tensor | None:
    if precondition is None:
        return None
    d = prior.latent_dim
    if isinstance(precondition, Tensor):
        if tuple(precondition.shape) != (y.shape[0], d, d):
            raise ValueError(f"precondition must have shape ({y.shape[0]}, {d}, {d}), "
                             f"got {tuple(precondition.shape)}")
        check_finite(precondition, "precondition")
        return precondition.to(device=z0.device, dtype=z0.dtype)
    if precondition == "laplace":
        return laplace_preconditioner(y, A, prior, z0, sigma=sigma)
    raise ValueError(f"precondition must be None, 'laplace' or a tensor, got {precondition!r}")


def _stages(burn_in: int, sigma: float, anneal: Sequence[float] | None) -> list[tuple[int, float]]:
    """``(n_steps, sigma_k)`` for every burn-in stage; the last stage uses ``sigma`` itself."""
    levels = [math.sqrt(sigma**2 + float(a) ** 2) for a in (anneal or [])] + [sigma]
    base = burn_in // len(levels)
    lengths = [base] * (len(levels) - 1) + [burn_in - base * (len(levels) - 1)]
    return list(zip(lengths, levels))


@torch.no_grad()
def langevin(
    y: Tensor,
    A,
    prior: Prior,
    *,
    sigma: float | None = None,
    n_samples: int = 100,
    n_chains: int = 4,
    step_size: float = 1e-3,
    burn_in: int = 200,
    thin: int = 1,
    method: str = "ula",
    target_accept: float = 0.574,
    adapt: bool = True,
    anneal: Sequence[float] | None = None,
    init: str | Tensor = "random",
    csgm_options: dict | None = None,
    precondition: str | Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SampleResult:
    r"""Sample the latent posterior :math:`p(z \mid y)` with ULA or MALA, many chains at once.

    ULA iterates :math:`z \leftarrow z + h \nabla \log\pi(z) + \sqrt{2h}\,\xi`. Its stationary
    law is biased by :math:`O(h)` (for a Gaussian target with precision :math:`P` the stationary
    covariance is :math:`(P - \tfrac h2 P^2)^{-1}`, the mean is exact). MALA adds a
    Metropolis-Hastings accept/reject step and is exact for any :math:`h`.

    With ``method="mala"`` and ``adapt=True`` the step is tuned during burn-in only, per image
    (shared by that image's chains), by dual averaging of :math:`\log h` on the chain-averaged
    acceptance probability, then frozen at the averaged value. ULA uses ``step_size`` as given.

    A prior with ``resized`` (:class:`~genprior.priors.spatial_vae.SpatialVAE`) is fitted to
    ``A.img_size`` first (:func:`~genprior.reconstruct.fit_prior`), so the latents
    and images have the operator's size; a prior whose size matches is used as it is.

    With ``anneal = [a_1 > ... > a_L]`` (Jalal et al. 2021), burn-in is split into ``L + 1``
    equal stages; stage ``k`` targets the tempered likelihood with variance
    :math:`\sigma^2 + a_k^2` and step :math:`h\,(\sigma^2 + a_k^2)/\sigma^2` (for ULA capped at
    0.5), the last stage and all sampling use :math:`\sigma` itself.

    Args:
        y: measurements of ``B`` images.
        A: linear operator with ``A.A(x)`` (any deepinv ``LinearPhysics``) or a callable.
        prior: generative prior with ``decode`` and ``log_prior``.
        sigma: noise standard deviation :math:`\sigma` of ``y``; default ``A.noise_std``.
        n_samples: samples kept per chain (after burn-in and thinning).
        n_chains: chains per image ``K``.
        step_size: (initial) step :math:`h`.
        burn_in: iterations discarded before keeping samples.
        thin: keep one iteration in ``thin``.
        method: ``"ula"`` or ``"mala"``.
        target_accept: MALA target acceptance probability (0.574 is optimal for smooth
            targets in high dimension).
        adapt: tune the MALA step during burn-in.
        anneal: optional strictly decreasing extra noise levels for burn-in.
        init: ``"random"`` (draws from :math:`p(z)`), ``"csgm"`` (every chain starts at the
            CSGM estimate, computed with ``csgm_options``), or latents ``(B, *latent_shape)``
            / ``(K, B, *latent_shape)``.
        csgm_options: keyword arguments of :func:`genprior.reconstruct.csgm.csgm` for
            ``init="csgm"``.
        precondition: ``None``; a matrix ``L`` per image, ``(B, d, d)`` with
            ``d = prior.latent_dim``, so that the chains run ULA/MALA on ``u`` with
            ``z = L u`` (metric :math:`LL^\top`; exact for MALA, any invertible ``L``); or
            ``"laplace"``: ``L`` = Cholesky factor of the Gauss-Newton Laplace covariance at
            the initial latents of the first chain (:func:`laplace_preconditioner`; use with
            ``init="csgm"`` or a MAP tensor).
        generator: source of all random draws.

    Returns:
        :class:`SampleResult` with ``S = n_chains * n_samples`` samples per image (chain-major);
        ``ess`` is the minimum over latent coordinates of the multi-chain ESS
        (:func:`genprior.sampling.summary.ess`).

    Shape:
        - y: ``(B, *meas_shape)``
        - samples: ``(S, B, C, H, W)``; z_samples: ``(S, B, *latent_shape)``

    Raises:
        ValueError: non-positive ``sigma``/``step_size``, ``y`` of the wrong shape or with
            NaN/inf, unknown ``method`` or ``init``, bad ``anneal`` levels.
        TypeError: ``prior`` is not a :class:`Prior` or ``y`` not a tensor.

    Example:
        >>> from genprior.operators import GaussianCS
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> prior = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4))
        >>> A = GaussianCS(6, (1, 4, 4), seed=0)
        >>> y = A.A(prior.decode(torch.randn(3, 2, generator=g)))
        >>> res = langevin(y, A, prior, sigma=0.1, n_samples=10, n_chains=2, burn_in=20,
        ...                method="mala", generator=g)
        >>> res.samples.shape, res.mean.shape  # (S, B, C, H, W) with S = 2 * 10, and (B, C, H, W)
        (torch.Size([20, 3, 1, 4, 4]), torch.Size([3, 1, 4, 4]))
    """
    check_latent_prior(prior)
    prior = fit_prior_to(prior, A)
    sigma = _check_inputs(y, A, prior, sigma, n_samples, n_chains, step_size, burn_in, thin,
                          method, target_accept, anneal)
    b, k = y.shape[0], n_chains
    latent = tuple(prior.latent_shape)
    z = _initial_latents(init, y, A, prior, k, generator, csgm_options).to(y.device)
    y_rep = y.repeat(k, *([1] * (y.ndim - 1)))  # chain-major: index = chain * B + image

    def expand(h: Tensor) -> Tensor:  # per-image step (B,) -> (K*B, 1)
        return h.expand(k, b).reshape(k * b, 1)

    L = _preconditioner(precondition, y, A, prior, z[:b], sigma)
    L_rep = None if L is None else L.repeat(k, 1, 1)

    def to_u(g: Tensor) -> Tensor:  # gradient in whitened coordinates u (z = L u): L^T g
        g = g.flatten(1)
        return g if L_rep is None else torch.einsum("nij,ni->nj", L_rep, g)

    def to_z(v: Tensor) -> Tensor:  # a move in u to a move in z: L v
        v = v if L_rep is None else torch.einsum("nij,nj->ni", L_rep, v)
        return v.reshape(k * b, *latent)

    step = torch.full((b,), float(step_size), device=z.device, dtype=z.dtype)
    mala = method == "mala"
    n_keep = n_samples * thin
    z_buf = torch.empty((k, n_samples, b, *latent), device=z.device, dtype=z.dtype)
    x_buf: Tensor | None = None
    accepted = torch.zeros(k * b, device=z.device, dtype=z.dtype)

    schedule = [(n, s, True) for n, s in _stages(burn_in, sigma, anneal)] + [(n_keep, sigma, False)]
    t_keep = 0
    for n_steps, sigma_k, burning in schedule:
        if n_steps == 0:
            continue
        scale = sigma_k**2 / sigma**2
        if burning and scale > 1:
            stage_step = step * scale
            if not mala:
                stage_step = stage_step.clamp(max=max(_ULA_MAX_ANNEAL_STEP, float(step_size)))
        else:
            stage_step = step
        tuner = DualAveraging(stage_step, target_accept) if (mala and adapt and burning) else None
        logp, grad, x = _evaluate(z, y_rep, A, prior, sigma_k)
        grad = to_u(grad)
        h = stage_step
        for _ in range(n_steps):
            hh = expand(h)
            noise = randn(grad.shape, generator=generator, device=z.device, dtype=z.dtype)
            move = hh * grad + torch.sqrt(2 * hh) * noise  # in u
            z_new = z + to_z(move)
            logp_new, grad_new, x_new = _evaluate(z_new, y_rep, A, prior, sigma_k)
            grad_new = to_u(grad_new)
            if mala:
                # proposal densities in u: q(u'|u) = N(u + h g_u, 2h I); |det L| cancels
                diff_fwd = move - hh * grad
                diff_bwd = -move - hh * grad_new
                h_flat = hh.flatten()
                log_alpha = (logp_new - logp - diff_bwd.pow(2).sum(1) / (4 * h_flat)
                             + diff_fwd.pow(2).sum(1) / (4 * h_flat))
                log_alpha = torch.nan_to_num(log_alpha, nan=-math.inf)
                u = rand((k * b,), generator=generator, device=z.device, dtype=z.dtype)
                accept = torch.log(u) < log_alpha
                z = torch.where(accept.reshape(k * b, *([1] * len(latent))), z_new, z)
                grad = torch.where(accept[:, None], grad_new, grad)
                x = torch.where(accept.reshape(-1, *([1] * (x.ndim - 1))), x_new, x)
                logp = torch.where(accept, logp_new, logp)
                if tuner is not None:
                    prob = torch.exp(log_alpha.clamp(max=0)).reshape(k, b).mean(0)
                    h = tuner.update(prob)
                if not burning:
                    accepted += accept.to(z.dtype)
            else:
                z, logp, grad, x = z_new, logp_new, grad_new, x_new
            if not burning:
                if (t_keep + 1) % thin == 0:
                    j = t_keep // thin
                    if x_buf is None:
                        x_buf = torch.empty((k, n_samples, b, *x.shape[1:]), device=x.device,
                                            dtype=x.dtype)
                    z_buf[:, j] = z.reshape(k, b, *latent)
                    x_buf[:, j] = x.reshape(k, b, *x.shape[1:])
                t_keep += 1
        if tuner is not None:
            step = tuner.final_step_size / scale if scale > 1 else tuner.final_step_size

    if not (torch.isfinite(z_buf).all() and torch.isfinite(x_buf).all()):
        raise ValueError("the chains diverged (non-finite latents or images): lower step_size, "
                         "or use method='mala'")
    samples = x_buf.reshape(k * n_samples, b, *x_buf.shape[3:])
    z_samples = z_buf.reshape(k * n_samples, b, *latent)
    mean, std = summarize(samples)
    ess_img = ess(z_buf.reshape(k, n_samples, b, -1)).amin(-1)
    acc = (accepted.reshape(k, b).mean(0) / n_keep if mala
           else torch.full((b,), math.nan, device=z.device, dtype=z.dtype))
    return SampleResult(samples=samples, z_samples=z_samples, mean=mean, std=std,
                        acceptance_rate=acc, ess=ess_img, step_size=step, n_chains=k)
