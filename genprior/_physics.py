"""How genprior applies a forward operator: the one place that accepts a plain callable too."""

from __future__ import annotations

from torch import Tensor

__all__ = ["forward"]


def forward(A, x: Tensor) -> Tensor:
    """The noise-free forward map :math:`A x`.

    ``A.A(x)`` for a genprior :class:`~genprior.operators.Operator` or any deepinv ``Physics``
    (never ``A(x)``, which would add noise), ``A(x)`` for a plain callable.

    Shape:
        - x: ``(B, C, H, W)``
        - output: ``(B, *meas_shape)``
    """
    return A.A(x) if hasattr(A, "A") else A(x)
