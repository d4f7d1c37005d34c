r"""Lasso in an orthonormal basis, solved for a whole batch at once by FISTA in torch.

.. math::
    \hat c = \arg\min_c\; \frac{1}{2m}\|A\Psi^\top c - y\|_2^2 + \alpha\|c\|_1,
    \qquad \hat x = \Psi^\top \hat c,

with :math:`\Psi` the pixel, DCT or Haar-wavelet basis (:mod:`genprior.reconstruct.bases`).

Scaling (``loss_reduction="reference"``, the default): this objective is *exactly*
scikit-learn's ``Lasso`` objective :math:`\frac{1}{2 n_{\rm samples}}\|y - Xw\|^2 + \alpha\|w\|_1`
with :math:`X = A\Psi^\top` (``n_samples = m``), so ``alpha`` is sklearn's ``alpha`` and the
CSGM reference code's ``--lmbd`` (it calls ``sklearn.linear_model.Lasso(alpha=lmbd)`` on
:math:`A` for MNIST and on the DCT/wavelet-transformed :math:`A` for CelebA). FISTA's textbook
form :math:`\frac12\|A\Psi^\top c - y\|^2 + \alpha'\|c\|_1` has the same minimiser when
:math:`\alpha' = m\,\alpha`; ``loss_reduction="sum"`` takes ``alpha`` in those units.

Differences from the reference: no intercept (sklearn's default ``fit_intercept=True`` would fit
one; the reference keeps it), and the output is clamped to [0, 1] (the reference clamps MNIST to
[0, 1], CelebA-DCT to [-1, 1] and divides CelebA-wavelet by its largest magnitude).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from genprior._checks import check_positive
from genprior.reconstruct._problem import (
    check_measurements,
    measurement_error,
    operator_img_size,
    operator_norm_sq,
    soft_threshold,
    sum_sq,
)
from genprior.reconstruct.bases import Basis, get_basis
from genprior.reconstruct.csgm import LOSS_REDUCTIONS
from genprior.reconstruct.result import ReconstructionResult

__all__ = ["lasso"]


def _l1(c: Tensor) -> Tensor:
    return c.abs().reshape(c.shape[0], -1).sum(1)


def lasso(
    y: Tensor,
    A,
    *,
    basis: str | Basis = "dct",
    alpha: float = 0.1,
    steps: int = 1000,
    tol: float = 1e-6,
    clip: bool = True,
    img_size: Sequence[int] | None = None,
    loss_reduction: str = "reference",
    generator: torch.Generator | None = None,
) -> ReconstructionResult:
    r"""Sparse recovery :math:`\hat x = \Psi^\top \hat c` by batched FISTA.

    Matrix-free: only ``A.A`` and ``A.A_adjoint`` are used, one of each per iteration; the step
    is :math:`1/L` with :math:`L = \|A\|_2^2 / m` (``"reference"``) or :math:`\|A\|_2^2`
    (``"sum"``) estimated by power iteration (1% margin). Stops when every image's relative
    change :math:`\|c_{k+1} - c_k\| / \|c_{k+1}\|` is below ``tol``, or after ``steps``.

    Args:
        y: measurements.
        A: any ``deepinv.physics.LinearPhysics``.
        basis: ``"dct"``, ``"wavelet"`` or ``"pixel"``.
        alpha: :math:`\alpha \ge 0` (sklearn's / the reference's ``lmbd`` with ``"reference"``).
        steps: maximum FISTA iterations.
        tol: relative-change stopping tolerance.
        clip: clamp ``x_hat`` to [0, 1].
        img_size: ``(C, H, W)``; default ``A.img_size``.
        loss_reduction: ``"reference"`` (:math:`\frac{1}{2m}\|\cdot\|^2`) or ``"sum"``
            (:math:`\frac12\|\cdot\|^2`).
        generator: source of the power iteration's random start.

    Returns:
        :class:`~genprior.reconstruct.result.ReconstructionResult` with ``z_hat`` the
        coefficients :math:`\hat c`, ``loss`` the objective at :math:`\hat c` and ``history``
        the objective after every iteration, ``(T, B)``. ``measurement_error`` is computed on
        the returned (clamped) ``x_hat``.

    Shape:
        - y: ``(B, *meas_shape)``
        - x_hat, z_hat: ``(B, C, H, W)``

    Example:
        >>> import deepinv
        >>> A = deepinv.physics.CompressedSensing(m=12, img_size=(1, 4, 4),
        ...                                       rng=torch.Generator().manual_seed(0))
        >>> x = torch.zeros(1, 1, 4, 4); x[0, 0, 1, 2] = 1.0
        >>> out = lasso(A.A(x), A, basis="pixel", alpha=1e-4, steps=5000)
        >>> bool((out.x_hat - x).abs().max() < 0.05)
        True
    """
    check_positive(alpha, "alpha", allow_zero=True)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}")
    basis = get_basis(basis)
    img_size = operator_img_size(A, img_size)
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    dtype = y.dtype if y.is_floating_point() else torch.float32
    y = check_measurements(y, A, img_size, device=y.device, dtype=dtype)
    m = y[0].numel()
    scale = 1.0 / m if loss_reduction == "reference" else 1.0
    lipschitz = 1.01 * scale * operator_norm_sq(A, img_size, device=y.device, dtype=dtype,
                                                generator=generator)
    if lipschitz <= 0:
        raise ValueError(f"{type(A).__name__} is the zero operator; nothing to reconstruct")
    batch = y.shape[0]
    history = torch.empty(steps, batch, dtype=dtype, device=y.device)
    with torch.no_grad():
        c = torch.zeros(batch, *img_size, dtype=dtype, device=y.device)
        w, Ac, Aw = c, torch.zeros_like(y), torch.zeros_like(y)
        t_k = 1.0
        k = 0
        for k in range(steps):
            grad = scale * basis.analysis(A.A_adjoint(Aw - y))
            c_new = soft_threshold(w - grad / lipschitz, alpha / lipschitz)
            Ac_new = A.A(basis.synthesis(c_new))
            history[k] = 0.5 * scale * sum_sq(Ac_new - y) + alpha * _l1(c_new)
            t_next = (1 + math.sqrt(1 + 4 * t_k * t_k)) / 2
            beta = (t_k - 1) / t_next
            w, Aw = c_new + beta * (c_new - c), Ac_new + beta * (Ac_new - Ac)
            change = sum_sq(c_new - c).sqrt() / sum_sq(c_new).sqrt().clamp(min=1e-30)
            c, Ac, t_k = c_new, Ac_new, t_next
            if float(change.max()) < tol:
                break
        x_hat = basis.synthesis(c)
        if clip:
            x_hat = x_hat.clamp(0, 1)
    return ReconstructionResult(
        x_hat=x_hat,
        z_hat=c,
        measurement_error=measurement_error(x_hat, y, A),
        loss=history[k].clone(),
        history=history[: k + 1],
    )
