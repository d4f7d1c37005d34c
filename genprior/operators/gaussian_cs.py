r"""Dense Gaussian compressed sensing :math:`y = A\,\mathrm{vec}(x) + e`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genprior._random import randn
from genprior.operators.base import Operator, SeededDraws, register_operator

__all__ = ["GaussianCS"]


def check_num_measurements(m: int, n: int) -> None:
    """Raise unless ``1 <= m <= n`` (an int): under-determined compressed sensing."""
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError(f"m must be an int, got {type(m).__name__}")
    if not 1 <= m <= n:
        raise ValueError(
            f"m (number of measurements) must satisfy 1 <= m <= n = C*H*W = {n}, got m={m}"
        )


@register_operator
class GaussianCS(SeededDraws, Operator):
    r"""Compressed sensing with one dense i.i.d. Gaussian matrix :math:`A \in \mathbb R^{m\times n}`.

    :math:`y = A\,\mathrm{vec}(x) + \sigma\epsilon` with :math:`n = CHW` and the same :math:`A` for
    every image of the batch. Entries are :math:`\mathcal N(0, 1/m)` when ``normalize=True``
    (then :math:`\mathbb E\|Ax\|^2 = \|x\|^2`), or :math:`\mathcal N(0, 1)` when
    ``normalize=False``, as in the CSGM reference code (which writes ``y = x A + noise`` with the
    transposed, :math:`n\times m` matrix; here ``matrix`` is :math:`m \times n`).

    :meth:`A_dagger` is the exact Moore-Penrose pseudo-inverse. A Gaussian :math:`A` with
    :math:`m \le n` has full row rank (almost surely), so with the thin QR factorisation
    :math:`A^\top = QR`,

    .. math::
        A^\dagger = A^\top (A A^\top)^{-1} = Q R^{-\top}.

    :math:`Q` (:math:`n\times m`) and :math:`R` are computed on first use and cached per device
    and dtype (recomputed if the matrix changes), so an operator that is only applied costs just
    the :math:`m n` entries of ``matrix``.

    Args:
        m: number of measurements, ``1 <= m <= n``.
        img_size: image shape ``(C, H, W)``.
        normalize: entries of variance ``1/m`` (True) or ``1`` (False).
        noise_std: standard deviation of the additive Gaussian noise.
        seed: seed of the matrix draw (recorded in the config); a fresh one if both ``seed`` and
            ``generator`` are None.
        generator: source of the matrix draw instead of ``seed``.

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, m)``

    Example:
        >>> import torch
        >>> op = GaussianCS(20, (1, 8, 8), seed=0)
        >>> x = torch.rand(2, 1, 8, 8)
        >>> y = op.A(x)
        >>> bool(torch.allclose(op.A(op.A_dagger(y)), y, atol=1e-4))
        True
    """

    name = "gaussian_cs"
    exact_dagger = True

    def __init__(
        self,
        m: int,
        img_size: tuple[int, int, int],
        *,
        normalize: bool = True,
        noise_std: float = 0.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(img_size, noise_std=noise_std)
        generator = self._generator(seed, generator)
        self.register_to_config(normalize=bool(normalize))
        check_num_measurements(m, self.n)
        scale = 1.0 / math.sqrt(m) if normalize else 1.0
        matrix = scale * randn((m, self.n), generator=generator, device=generator.device)
        self.register_buffer("matrix", matrix)
        self._dagger_cache: tuple[tuple, Tensor, Tensor] | None = None

    @property
    def meas_shape(self) -> tuple[int, ...]:
        return (self.matrix.shape[0],)

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""Measurements :math:`A\,\mathrm{vec}(x)` (``kwargs`` are ignored, for deepinv)."""
        self.check_x(x)
        self.check_like(x, "x")
        return x.flatten(1) @ self.matrix.T

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A^\top y`, reshaped to images (``kwargs`` are ignored, for deepinv)."""
        self.check_y(y)
        self.check_like(y, "y")
        return (y @ self.matrix).reshape(y.shape[0], *self.img_size)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""Exact pseudo-inverse :math:`Q R^{-\top} y` (``kwargs`` are ignored, for deepinv)."""
        self.check_y(y, finite=True)
        self.check_like(y, "y")
        q, r = self._qr()
        t = torch.linalg.solve_triangular(r.T, y.T, upper=False)  # (m, B)
        return (q @ t).T.reshape(y.shape[0], *self.img_size)

    def _qr(self) -> tuple[Tensor, Tensor]:
        """Cached thin QR of ``matrix.T``; recomputed when the matrix, device or dtype change."""
        a = self.matrix
        key = (a.device, a.dtype, a.data_ptr(), a._version)
        if self._dagger_cache is None or self._dagger_cache[0] != key:
            with torch.no_grad():
                q, r = torch.linalg.qr(a.T, mode="reduced")
            if not bool((r.diagonal().abs() > 0).all()):
                raise ValueError("GaussianCS matrix is rank deficient; A_dagger is undefined")
            self._dagger_cache = (key, q, r)
        return self._dagger_cache[1], self._dagger_cache[2]
