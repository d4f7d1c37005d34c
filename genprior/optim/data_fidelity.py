r"""The data term of every latent method, as a deepinv ``DataFidelity``.

:class:`WeightedL2` is deepinv's :class:`~deepinv.optim.data_fidelity.L2` with the weight
written directly, :math:`f(x) = w\,\|A x - y\|_2^2` (deepinv's :math:`\sigma` is
:math:`1/\sqrt{2w}`), evaluated per row. CSGM uses :math:`w = 1/m` (the reference's units) or
:math:`w = 1`; the Langevin sampler :math:`w = 1/(2\sigma^2)`, the Gaussian log-likelihood.
"""

from __future__ import annotations

import math

from deepinv.optim.data_fidelity import L2
from torch import Tensor

from genprior._checks import check_positive
from genprior._physics import forward

__all__ = ["WeightedL2", "soft_threshold", "sum_sq"]


def sum_sq(t: Tensor) -> Tensor:
    """Sum of squares per sample.

    Shape:
        - t: ``(B, *)``
        - output: ``(B,)``
    """
    return t.abs().pow(2).reshape(t.shape[0], -1).sum(1)


def soft_threshold(v: Tensor, threshold: float) -> Tensor:
    r"""Proximal map of :math:`t\|\cdot\|_1`: :math:`\mathrm{sign}(v)\max(|v| - t, 0)`."""
    return v.sign() * (v.abs() - threshold).clamp(min=0)


class WeightedL2(L2):
    r"""Weighted least squares :math:`f(x) = w\,\|A x - y\|_2^2`, one value per row.

    A deepinv ``L2`` with :math:`\sigma = 1/\sqrt{2w}`, so its ``grad`` and ``prox`` apply
    unchanged; :meth:`fn` is computed as ``w * sum_sq(A x - y)`` (or, when built from
    ``sigma``, as the Gaussian negative log-likelihood ``sum_sq(A x - y) / (2 sigma^2)``) and
    also accepts a plain callable ``A``.

    Args:
        weight: :math:`w > 0`.
        sigma: instead of ``weight``, the noise level: :math:`w = 1/(2\sigma^2)`.

    Shape:
        - x: ``(B, C, H, W)``; y: ``(B, *meas_shape)``
        - fn output: ``(B,)``

    Example:
        >>> import torch, deepinv
        >>> A = deepinv.physics.Inpainting(img_size=(1, 2, 2), mask=torch.ones(1, 2, 2))
        >>> WeightedL2(0.5).fn(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), A)
        tensor([2.])
        >>> WeightedL2(sigma=0.5).weight
        2.0
    """

    def __init__(self, weight: float | None = None, *, sigma: float | None = None) -> None:
        if (weight is None) == (sigma is None):
            raise ValueError("give exactly one of weight and sigma")
        if sigma is not None:
            check_positive(sigma, "sigma")
            self._divisor: float | None = 2.0 * float(sigma) ** 2
            weight = 1.0 / self._divisor
        else:
            check_positive(weight, "weight")
            self._divisor = None
        super().__init__(sigma=1.0 / math.sqrt(2.0 * float(weight)))
        self.weight = float(weight)

    def fn(self, x: Tensor, y: Tensor, physics, *args, **kwargs) -> Tensor:
        residual = sum_sq(forward(physics, x) - y)
        if self._divisor is not None:
            return residual / self._divisor
        return self.weight * residual
