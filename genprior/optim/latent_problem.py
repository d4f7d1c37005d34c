r"""The latent problem that every latent method shares.

.. math::
    f(z, c) = \underbrace{D\big(A\,(G(z) + \Psi^\top c),\; y\big)}_{\text{data}}
    + \underbrace{R(z)}_{\text{latent term}}
    + \underbrace{\lambda_\nu \|c\|_1}_{\text{sparse deviation}},

one independent problem per row (image × restart, or image × chain). The deviation
:math:`\Psi^\top c` is optional (Sparse-Gen); without it :math:`f(z) = D(A G(z), y) + R(z)`,
CSGM's objective with :math:`R(z) = \lambda\|z\|^2`, and the negative log posterior of the
Langevin sampler with :math:`D = \|\cdot - y\|^2/(2\sigma^2)` and :math:`R = -\log p(z)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from genprior._physics import forward
from genprior.optim.data_fidelity import WeightedL2, soft_threshold, sum_sq

__all__ = ["GaussianLatent", "LatentProblem", "LatentTerm", "NegLogPrior", "SparseDeviation",
           "autocast_decode"]


def autocast_decode(decode: Callable[[Tensor], Tensor], dtype: torch.dtype | None,
                    ) -> Callable[[Tensor], Tensor]:
    r"""``decode`` run under ``torch.autocast`` in ``dtype`` (e.g. ``torch.bfloat16``) on the
    latent's device, its output cast back to the latent's dtype; ``decode`` itself when ``dtype``
    is ``None``.

    Only the generator runs in low precision: the data term and the latent term are then
    computed in the latent's (and the measurements') precision, so float32 operators accept
    the output.

    Example:
        >>> lin = torch.nn.Linear(2, 4)
        >>> f = autocast_decode(lin, torch.bfloat16)
        >>> f(torch.ones(3, 2)).dtype
        torch.float32
    """
    if dtype is None:
        return decode

    def decode_low(z: Tensor) -> Tensor:
        with torch.autocast(device_type=z.device.type, dtype=dtype):
            x = decode(z)
        return x.to(z.dtype)

    return decode_low


class LatentTerm(Protocol):
    """A term :math:`R(z)` on the latent, one value per row."""

    def fn(self, z: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class GaussianLatent:
    r""":math:`R(z) = \lambda\|z\|_2^2` (CSGM's ``zprior_weight`` term; :math:`\lambda \ge 0`).

    Shape:
        - z: ``(N, *latent_shape)``; output: ``(N,)``
    """

    weight: float = 0.0

    def fn(self, z: Tensor) -> Tensor:
        return self.weight * sum_sq(z)


@dataclass(frozen=True)
class NegLogPrior:
    r""":math:`R(z) = -\log p(z)` with the prior's own (normalised) latent density.

    Shape:
        - z: ``(N, *latent_shape)``; output: ``(N,)``
    """

    prior: object

    def fn(self, z: Tensor) -> Tensor:
        return -self.prior.log_prior(z)


@dataclass(frozen=True)
class SparseDeviation:
    r"""Sparse-Gen's extra variable: coefficients :math:`c` of a deviation
    :math:`\nu = \Psi^\top c` in an orthonormal basis, with penalty :math:`\lambda_\nu\|c\|_1`.

    Args:
        basis: an orthonormal basis with ``synthesis(c)`` (see :mod:`genprior.reconstruct.bases`).
        weight: :math:`\lambda_\nu \ge 0`.
        step: the proximal-gradient step on :math:`c` (``1/L`` of the data term in :math:`x`).
    """

    basis: object
    weight: float
    step: float

    def synthesis(self, c: Tensor) -> Tensor:
        """:math:`\\nu = \\Psi^\\top c`."""
        return self.basis.synthesis(c)

    def penalty(self, c: Tensor) -> Tensor:
        r""":math:`\lambda_\nu\|c\|_1` per row."""
        return self.weight * c.abs().reshape(c.shape[0], -1).sum(1)

    def prox(self, v: Tensor) -> Tensor:
        r"""Proximal map of ``step`` times the penalty: soft thresholding at
        :math:`\mathrm{step}\cdot\lambda_\nu`."""
        return soft_threshold(v, self.step * self.weight)


class LatentProblem:
    r"""The objective :math:`f(z, c)` of ``N`` independent rows.

    Args:
        y: measurements, one row per problem.
        A: the operator (any deepinv ``LinearPhysics``, or a callable).
        decode: the generator :math:`G`, ``(n, *latent_shape) -> (n, C, H, W)``.
        data: the data term (default :class:`WeightedL2` with weight 1).
        latent: the latent term :math:`R` (default none: :math:`R = 0`).
        deviation: Sparse-Gen's sparse deviation, or ``None``.

    Every method takes ``rows``: an index (or slice) of the rows its arguments belong to, so a
    solver can work on the rows still active.

    Shape:
        - y: ``(N, *meas_shape)``
        - z: ``(n, *latent_shape)``; c: ``(n, C, H, W)``; outputs per row: ``(n,)``

    Example:
        >>> import torch, deepinv
        >>> from genprior.priors.linear import LinearGenerator
        >>> G = LinearGenerator(torch.eye(4), None, (1, 2, 2))
        >>> A = deepinv.physics.Inpainting(img_size=(1, 2, 2), mask=torch.ones(1, 2, 2))
        >>> problem = LatentProblem(torch.zeros(1, 1, 2, 2), A, G.decode,
        ...                         latent=GaussianLatent(0.5))
        >>> problem.objective(torch.ones(1, 4))  # ||z||^2 + 0.5 ||z||^2
        tensor([6.])
    """

    def __init__(
        self,
        y: Tensor,
        A,
        decode: Callable[[Tensor], Tensor],
        *,
        data: WeightedL2 | None = None,
        latent: LatentTerm | None = None,
        deviation: SparseDeviation | None = None,
    ) -> None:
        self.y = y
        self.A = A
        self.decode = decode
        self.data = data if data is not None else WeightedL2(1.0)
        self.latent = latent
        self.deviation = deviation

    @property
    def n_rows(self) -> int:
        """Number of independent rows ``N``."""
        return self.y.shape[0]

    def image(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        r""":math:`x = G(z) + \Psi^\top c` (just :math:`G(z)` without a deviation), in the
        measurements' dtype (a generator whose output has another dtype, e.g. bfloat16 under
        autocast, is cast, so the data term is computed in ``y``'s precision)."""
        x = self.decode(z)
        if x.dtype != self.y.dtype:
            x = x.to(self.y.dtype)
        if self.deviation is not None and c is not None:
            x = x + self.deviation.synthesis(c)
        return x

    def smooth(self, z: Tensor, c: Tensor | None = None, rows: Tensor | slice = slice(None),
               ) -> tuple[Tensor, Tensor]:
        r"""The differentiable part :math:`D(A x, y) + R(z)` per row, and the image :math:`x`."""
        x = self.image(z, c)
        value = self.data.fn(x, self.y[rows], self.A)
        if self.latent is not None:
            value = value + self.latent.fn(z)
        return value, x

    def nonsmooth(self, c: Tensor | None) -> Tensor | float:
        r"""The non-differentiable part :math:`\lambda_\nu\|c\|_1` per row (0 without one)."""
        if self.deviation is None or c is None:
            return 0.0
        return self.deviation.penalty(c)

    def objective(self, z: Tensor, c: Tensor | None = None,
                  rows: Tensor | slice = slice(None)) -> Tensor:
        """The full objective :math:`f(z, c)` per row."""
        return self.smooth(z, c, rows)[0] + self.nonsmooth(c)

    def measurement_error(self, x: Tensor, rows: Tensor | slice = slice(None)) -> Tensor:
        r""":math:`\|A x - y\|^2 / m` per row."""
        y = self.y[rows]
        return sum_sq(forward(self.A, x) - y) / y[0].numel()

    def value_and_grad(self, z: Tensor, c: Tensor | None = None,
                       rows: Tensor | slice = slice(None),
                       ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        r"""The smooth part per row, its gradients in :math:`z` and :math:`c` (``None`` without a
        deviation), and the image, all detached. Rows are independent, so the gradient of the sum
        is every row's own gradient."""
        with torch.enable_grad():
            zs = z.detach().requires_grad_(True)
            cs = None if c is None else c.detach().requires_grad_(True)
            value, x = self.smooth(zs, cs, rows)
            if cs is None:
                (gz,) = torch.autograd.grad(value.sum(), [zs])
                gc = None
            else:
                gz, gc = torch.autograd.grad(value.sum(), [zs, cs])
        return value.detach(), gz, gc, x.detach()
