"""Measurement consistency of a reconstruction."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from genprior._checks import check_finite
from genprior._physics import forward

__all__ = ["measurement_residual"]


@torch.no_grad()
def measurement_residual(x_hat: Tensor, y: Tensor, A: Callable[[Tensor], Tensor]) -> Tensor:
    r"""Relative measurement residual :math:`\|A \hat x - y\|_2 / \|y\|_2`, per image.

    The noise-free forward map is used: ``A.A(x_hat)`` for a genprior :class:`Operator` or any
    deepinv ``Physics`` (never ``A(x_hat)``, which would add noise), or ``A(x_hat)`` for a plain
    callable. Where :math:`\|y\| = 0` the value is 0 if :math:`A\hat x = 0` too, else ``inf``.

    Args:
        x_hat: reconstructions.
        y: measurements.
        A: the operator.

    Returns:
        One value per image; 0 for an exact, noise-free fit.

    Shape:
        - x_hat: ``(B, C, H, W)``
        - y: ``(B, *meas_shape)``
        - output: ``(B,)``
    """
    y_hat = forward(A, x_hat)
    if y_hat.shape != y.shape:
        raise ValueError(f"A(x_hat) has shape {tuple(y_hat.shape)} but y has shape "
                         f"{tuple(y.shape)}: y was not measured with this operator")
    check_finite(y, "y")
    num = (y_hat - y).flatten(1).norm(dim=1)
    den = y.flatten(1).norm(dim=1)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny),
                       torch.where(num > 0, torch.full_like(num, float("inf")),
                                   torch.zeros_like(num)))
