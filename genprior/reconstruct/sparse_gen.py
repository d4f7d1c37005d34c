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

from torch import Tensor
from typing_extensions import Unpack

from genprior._checks import check_positive
from genprior.reconstruct.bases import Basis, get_basis
from genprior.reconstruct.csgm import CSGMOptions, solve_latent
from genprior.reconstruct.result import SparseGenResult

__all__ = ["sparse_gen"]


def sparse_gen(
    y: Tensor,
    A,
    prior,
    *,
    lam_nu: float = 0.1,
    basis: str | Basis = "pixel",
    **options: Unpack[CSGMOptions],
) -> SparseGenResult:
    r"""Reconstruct :math:`\hat x = G(\hat z) + \hat\nu` with a sparse deviation :math:`\nu`.

    Arguments and batching are those of :func:`~genprior.reconstruct.csgm.csgm`, whose keyword
    arguments (:class:`~genprior.reconstruct.csgm.CSGMOptions`: ``lam``, ``restarts``,
    ``steps``, ``lr``, ``optimizer``, ``select``, ``early_stop_tol``, ``patience``,
    ``generator``, ``z_init``, ``loss_reduction``, ``init``, ``x_init``, with the same defaults)
    it takes, except that ``optimizer`` defaults to ``"adam"`` (Adam or SGD: the steps on
    :math:`z` and :math:`\nu` are taken together, which L-BFGS and Gauss-Newton do not do);
    ``lr`` and ``optimizer`` act on :math:`z` (the step on :math:`\nu` is always
    :math:`1/L`), every restart starts with :math:`\nu = 0`, and ``generator`` also seeds the
    power iteration estimating :math:`L`. As there, a prior with ``resized`` is fitted to the
    operator's image size. In addition:

    Args:
        y: measurements.
        A: any ``deepinv.physics.LinearPhysics`` (``A.A`` and ``A.A_adjoint`` are used).
        prior: a :class:`genprior.priors.Prior`.
        lam_nu: sparsity weight :math:`\lambda_\nu` (the reference's ``sparse_gen_weight``).
        basis: ``"pixel"``, ``"dct"`` or ``"wavelet"`` (see :mod:`genprior.reconstruct.bases`).
        **options: :class:`~genprior.reconstruct.csgm.CSGMOptions`.

    Returns:
        :class:`~genprior.reconstruct.result.SparseGenResult`: ``x_hat = x_gen + nu_hat``
        (not clamped), ``loss`` the full objective including :math:`\lambda_\nu\|\Psi\nu\|_1`.

    Shape:
        - y: ``(B, *meas_shape)``
        - x_hat, x_gen, nu_hat: ``(B, C, H, W)``; z_hat: ``(B, *latent_shape)``

    Example:
        >>> import deepinv, torch
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> G = LinearGenerator(torch.zeros(16, 2), None, (1, 4, 4))
        >>> A = deepinv.physics.CompressedSensing(m=8, img_size=(1, 4, 4), rng=g)
        >>> out = sparse_gen(A.A(torch.eye(16)[:1].view(1, 1, 4, 4)), A, G, lam_nu=1e-3,
        ...                  restarts=1, steps=500, generator=g)
        >>> out.nu_hat.shape
        torch.Size([1, 1, 4, 4])
    """
    check_positive(lam_nu, "lam_nu", allow_zero=True)
    options = {"optimizer": "adam", **options}
    return solve_latent(y, A, prior, options, lam_nu=lam_nu, basis=get_basis(basis))
