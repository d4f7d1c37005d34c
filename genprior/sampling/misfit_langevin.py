r"""Posterior sampling under the misfit model: samples that leave the generator's range.

The model is :math:`z \sim p(z)`, :math:`x = G(z) + d` with :math:`d \sim \mathcal N(0, \Sigma_d)`
(:class:`~genprior.sampling.misfit.MisfitCovariance`) and :math:`y = A x + \sigma e`. Its posterior
factorises as :math:`p(z, x \mid y) = p(z \mid y)\, p(x \mid z, y)`:

- :math:`p(z \mid y) \propto p(z)\,\mathcal N(y;\, A G(z),\, \sigma^2 I + A\Sigma_d A^\top)`,
  sampled by the batched latent MALA of :func:`~genprior.sampling.langevin.langevin` on the
  whitened problem (:class:`~genprior.sampling.marginal.WhitenedOperator`, unit noise);
- :math:`p(x \mid z, y)`, Gaussian, drawn exactly for every latent sample by Matheron's rule
  (:func:`~genprior.sampling.marginal.matheron`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from genprior.priors.base import _reference_tensor
from genprior.reconstruct._problem import check_latent_prior, check_measurements, fit_prior_to
from genprior.sampling.langevin import langevin
from genprior.sampling.marginal import (
    MarginalCovariance,
    WhitenedOperator,
    marginal_covariance,
    matheron,
)
from genprior.sampling.misfit import MisfitCovariance
from genprior.sampling.result import SampleResult, summarize

__all__ = ["misfit_posterior"]


def _check_covariance(covariance: MarginalCovariance, misfit: MisfitCovariance,
                      sigma: float | None, img_size: tuple[int, ...]) -> None:
    if not isinstance(covariance, MarginalCovariance):
        raise TypeError(f"covariance must be a MarginalCovariance (from marginal_covariance), "
                        f"got {type(covariance).__name__}")
    if tuple(covariance.img_size) != tuple(img_size):
        raise ValueError(f"covariance was built for images {tuple(covariance.img_size)}, "
                         f"not {tuple(img_size)}")
    if sigma is not None and float(sigma) != covariance.sigma:
        raise ValueError(f"covariance was built for sigma = {covariance.sigma}, not {sigma}")
    mine = misfit.variance.to(covariance.variance)
    if mine.shape != covariance.variance.shape or not torch.equal(mine, covariance.variance):
        raise ValueError("covariance was built for another misfit variance")


@torch.no_grad()
def misfit_posterior(
    y: Tensor,
    A,
    prior,
    misfit: MisfitCovariance,
    *,
    sigma: float | None = None,
    covariance: MarginalCovariance | None = None,
    n_samples: int = 100,
    n_chains: int = 4,
    method: str = "mala",
    generator: torch.Generator | None = None,
    **options,
) -> SampleResult:
    r"""Sample :math:`p(z, x \mid y)` of the misfit model :math:`x = G(z) + d`.

    The latent chains run :func:`~genprior.sampling.langevin.langevin` on the marginal likelihood
    :math:`\mathcal N(y; A G(z), C)`, :math:`C = \sigma^2 I + A \Sigma_d A^\top`, as the
    unit-noise likelihood of the whitened operator :math:`L^{-1} A` and data :math:`L^{-1} y`
    (:math:`C = LL^\top`, factorised once by
    :func:`~genprior.sampling.marginal.marginal_covariance`; pass ``covariance`` to reuse a
    factor across calls with the same operator, misfit and noise). Then for every latent sample
    one image is drawn exactly from :math:`p(x \mid z, y)` by
    :func:`~genprior.sampling.marginal.matheron`. The images are **not** restricted to the
    generator's range (nor to [0, 1]): where the data ask for it they follow :math:`y`; where
    :math:`A` sees nothing they spread by :math:`\Sigma_d` around :math:`G(z)`.

    With :math:`\Sigma_d = 0` this is :func:`~genprior.sampling.langevin.langevin` itself
    (up to rounding), with ``samples`` equal to :math:`G(z)`.

    Args:
        y: measurements of ``B`` images.
        A: the linear operator (genprior or deepinv ``LinearPhysics``) with ``img_size``.
        prior: a latent :class:`~genprior.priors.Prior` (fitted to ``A.img_size`` as in
            :func:`~genprior.sampling.langevin.langevin`; a per-pixel misfit must have that size).
        misfit: :math:`\Sigma_d` of this prior (:func:`~genprior.sampling.misfit.fit_misfit`).
        sigma: noise standard deviation :math:`\sigma \ge 0`; default ``A.noise_std``.
        covariance: a prebuilt factor of :math:`C` for this operator, misfit and ``sigma``.
        n_samples: samples kept per chain.
        n_chains: chains per image.
        method: ``"mala"`` (exact) or ``"ula"``.
        generator: source of all random draws (chains, then the Matheron perturbations).
        **options: further keyword arguments of :func:`~genprior.sampling.langevin.langevin`
            (``step_size``, ``burn_in``, ``thin``, ``init``, ``precondition``, ...); ``anneal``
            levels are in whitened units (the likelihood noise is 1).

    Returns:
        :class:`~genprior.sampling.result.SampleResult`: ``samples`` are the images :math:`x`,
        ``z_samples`` the latents; ``acceptance_rate``, ``ess`` (of the latents) and
        ``step_size`` are those of the latent chains.

    Shape:
        - y: ``(B, *meas_shape)``
        - samples: ``(S, B, C, H, W)``, ``S = n_chains * n_samples``;
          z_samples: ``(S, B, *latent_shape)``

    Raises:
        ValueError: as :func:`~genprior.sampling.langevin.langevin` and
            :func:`~genprior.sampling.marginal.marginal_covariance`, or a ``covariance`` built
            for another setting.
        TypeError: ``misfit`` or ``covariance`` of the wrong type.

    Example:
        >>> from genprior.operators import GaussianCS
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> prior = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4))
        >>> A = GaussianCS(6, (1, 4, 4), seed=0)
        >>> y = A.A(prior.decode(torch.randn(3, 2, generator=g)))
        >>> res = misfit_posterior(y, A, prior, MisfitCovariance(0.01), sigma=0.1,
        ...                        n_samples=10, n_chains=2, burn_in=20, generator=g)
        >>> res.samples.shape  # (S, B, C, H, W)
        torch.Size([20, 3, 1, 4, 4])
        >>> bool((res.samples - prior.decode(res.z_samples.flatten(0, 1)).reshape(
        ...     20, 3, 1, 4, 4)).abs().max() > 0)  # off the generator's range
        True
    """
    check_latent_prior(prior)
    if not isinstance(misfit, MisfitCovariance):
        raise TypeError(f"misfit must be a MisfitCovariance, got {type(misfit).__name__}")
    prior = fit_prior_to(prior, A)
    img_size = tuple(int(s) for s in prior.img_shape)
    misfit.check_img_size(img_size)
    ref = _reference_tensor(prior)
    if covariance is None:
        covariance = marginal_covariance(A, misfit, sigma=sigma, device=ref.device,
                                         dtype=ref.dtype)
    else:
        _check_covariance(covariance, misfit, sigma, img_size)
    y = check_measurements(y, A, img_size, device=ref.device, dtype=ref.dtype)
    whitened = WhitenedOperator(A, covariance)
    res = langevin(covariance.whiten(y), whitened, prior, sigma=1.0, n_samples=n_samples,
                   n_chains=n_chains, method=method, generator=generator, **options)
    s, b = res.samples.shape[:2]
    x_range = res.samples.reshape(s * b, *img_size)
    y_rep = y.unsqueeze(0).expand(s, *y.shape).reshape(s * b, *y.shape[1:])
    samples = matheron(x_range, y_rep, A, covariance, generator=generator)
    samples = samples.reshape(s, b, *img_size)
    mean, std = summarize(samples)
    return SampleResult(samples=samples, z_samples=res.z_samples, mean=mean, std=std,
                        acceptance_rate=res.acceptance_rate, ess=res.ess,
                        step_size=res.step_size, n_chains=res.n_chains)
