r"""Sparse-Gen: a generative prior plus a sparse deviation (Dhar, Grover and Ermon 2018).

.. math::
    (\hat z, \hat\nu) = \arg\min_{z,\nu}\; \frac{1}{m}\|A(G(z) + \nu) - y\|_2^2
    + \lambda\|z\|_2^2 + \lambda_\nu \|\Psi\nu\|_1,
    \qquad \hat x = G(\hat z) + \hat\nu,

with :math:`\Psi` an orthonormal basis (pixel, DCT or Haar wavelet). Because :math:`\nu` can
leave the range of :math:`G`, the error keeps falling as :math:`m` grows instead of flattening
at the generator's representation error, as plain CSGM does.

Units follow the Sparse-Gen reference code (``ermongroup/sparse_gen``,
``src/mnistomni_estimators.py``, ``vae_l1_estimator``), itself built on the CSGM code: per image,
``mloss2_weight * reduce_mean((y - y_hat)**2, 1) + zprior_weight * reduce_sum(z**2, 1) +
sparse_gen_weight * reduce_sum(abs(nu), 1)``; hence with ``mloss2_weight = 1``, ``lam =
zprior_weight`` and ``lam_nu = sparse_gen_weight``. (With ``loss_reduction="sum"`` the data term
is :math:`\|A(G(z)+\nu) - y\|^2`; multiply both weights by :math:`m` to keep the minimiser.)

Solver: joint descent on all images and restarts in one batch (as :func:`~genprior.reconstruct.
csgm.csgm`): each step takes one Adam step on :math:`z` and one proximal-gradient (ISTA) step on
the coefficients :math:`c = \Psi\nu` at the same point, with step :math:`1/L`,
:math:`L = 2\,\mathrm{scale}\,\|A\|_2^2` and soft thresholding at :math:`\lambda_\nu / L`. The
reference instead runs Adam on :math:`\nu` with a subgradient of the :math:`\ell_1` term; the
proximal step gives exact zeros and, with :math:`G \equiv 0`, reduces to ISTA for the Lasso.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genprior._checks import check_positive
from genprior.reconstruct._problem import check_measurements
from genprior.reconstruct.bases import Basis, get_basis
from genprior.reconstruct.csgm import (
    _check_options,
    _check_prior,
    _initial_latents,
    _reference_tensor,
    _solve,
    _Sparse,
    lipschitz_step,
)
from genprior.reconstruct.result import SparseGenResult

__all__ = ["sparse_gen"]


def sparse_gen(
    y: Tensor,
    A,
    prior,
    *,
    lam: float = 0.0,
    lam_nu: float = 0.1,
    basis: str | Basis = "pixel",
    restarts: int = 10,
    steps: int = 1000,
    lr: float = 0.01,
    optimizer: str = "adam",
    select: str = "measurement",
    early_stop_tol: float | None = None,
    patience: int = 50,
    generator: torch.Generator | None = None,
    z_init: Tensor | None = None,
    loss_reduction: str = "reference",
) -> SparseGenResult:
    r"""Reconstruct :math:`\hat x = G(\hat z) + \hat\nu` with a sparse deviation :math:`\nu`.

    Arguments and batching are those of :func:`~genprior.reconstruct.csgm.csgm`; in addition:

    Args:
        y: measurements.
        A: any ``deepinv.physics.LinearPhysics`` (``A.A`` and ``A.A_adjoint`` are used).
        prior: a :class:`genprior.priors.Prior`.
        lam: latent weight :math:`\lambda` (the reference's ``zprior_weight``).
        lam_nu: sparsity weight :math:`\lambda_\nu` (the reference's ``sparse_gen_weight``).
        basis: ``"pixel"``, ``"dct"`` or ``"wavelet"`` (see :mod:`genprior.reconstruct.bases`).
        restarts: random starts per image; :math:`\nu` starts at 0 for every restart.
        steps: optimiser steps.
        lr: Adam learning rate for :math:`z` (the step on :math:`\nu` is always :math:`1/L`).
        optimizer: ``"adam"`` or ``"sgd"`` for :math:`z`.
        select: keep the restart with the lowest ``"measurement"`` error or ``"loss"``.
        early_stop_tol: relative tolerance of per-restart early stopping (``None``: off).
        patience: steps without improvement before a restart stops.
        generator: source of the random starts and of the power iteration estimating :math:`L`.
        z_init: starting latents.
        loss_reduction: ``"reference"`` (mean over measurements) or ``"sum"``.

    Returns:
        :class:`~genprior.reconstruct.result.SparseGenResult`: ``x_hat = x_gen + nu_hat``
        (not clamped), ``loss`` the full objective including :math:`\lambda_\nu\|\Psi\nu\|_1`.

    Shape:
        - y: ``(B, *meas_shape)``
        - x_hat, x_gen, nu_hat: ``(B, C, H, W)``; z_hat: ``(B, *latent_shape)``

    Example:
        >>> import deepinv
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> G = LinearGenerator(torch.zeros(16, 2), None, (1, 4, 4))
        >>> A = deepinv.physics.CompressedSensing(m=8, img_size=(1, 4, 4), rng=g)
        >>> out = sparse_gen(A.A(torch.eye(16)[:1].view(1, 1, 4, 4)), A, G, lam_nu=1e-3,
        ...                  restarts=1, steps=500, generator=g)
        >>> out.nu_hat.shape
        torch.Size([1, 1, 4, 4])
    """
    _check_prior(prior)
    _check_options(lam=lam, restarts=restarts, steps=steps, lr=lr, optimizer=optimizer,
                   select=select, early_stop_tol=early_stop_tol, patience=patience,
                   loss_reduction=loss_reduction)
    check_positive(lam_nu, "lam_nu", allow_zero=True)
    basis = get_basis(basis)
    img_size = tuple(int(s) for s in prior.img_shape)
    own = getattr(A, "img_size", None)
    if own is not None and tuple(own) != img_size:
        raise ValueError(f"the prior generates images of shape {img_size} but "
                         f"{type(A).__name__} expects img_size {tuple(own)}")
    ref = _reference_tensor(prior)
    y = check_measurements(y, A, img_size, device=ref.device, dtype=ref.dtype)
    batch, m = y.shape[0], y[0].numel()
    scale = 1.0 / m if loss_reduction == "reference" else 1.0
    z0 = _initial_latents(prior, z_init, batch, restarts, generator, ref)
    step = lipschitz_step(A, img_size, scale=scale, ref=ref, generator=generator)
    sparse = _Sparse(basis=basis, lam_nu=float(lam_nu), step=step)
    return _solve(y, A, prior, z0, lam=lam, scale=scale, restarts=restarts, steps=steps, lr=lr,
                  optimizer=optimizer, select=select, early_stop_tol=early_stop_tol,
                  patience=patience, sparse=sparse)
