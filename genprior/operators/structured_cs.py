r"""Fast structured compressed sensing :math:`A = S F D` (random signs, orthonormal DCT, subsampling)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from genprior._random import rand
from genprior.operators.base import (
    Operator,
    OrthonormalRows,
    SeededDraws,
    register_operator,
)
from genprior.operators.gaussian_cs import check_num_measurements

__all__ = ["StructuredCS", "dct3", "dct_ortho", "idct3", "idct_ortho"]


def _twiddle(size: int, sign: float, like: Tensor) -> Tensor:
    """:math:`e^{\\mathrm{sign}\\, i\\pi k / (2N)}` for ``k = 0..N-1`` in the dtype of ``like``."""
    angle = sign * math.pi * torch.arange(size, device=like.device, dtype=like.dtype) / (2 * size)
    return torch.complex(torch.cos(angle), torch.sin(angle))


def _ortho_scale(size: int, like: Tensor) -> Tensor:
    r"""Orthonormal DCT-II scaling :math:`\sqrt{1/N}` for ``k=0``, :math:`\sqrt{2/N}` otherwise."""
    scale = torch.full((size,), math.sqrt(2.0 / size), device=like.device, dtype=like.dtype)
    scale[0] = math.sqrt(1.0 / size)
    return scale


def dct_ortho(x: Tensor, dim: int = -1) -> Tensor:
    r"""Orthonormal DCT-II along ``dim`` via one FFT of the same length (Makhoul's algorithm).

    :math:`X_k = s_k \sum_{j} x_j \cos\big(\pi k (2j+1) / (2N)\big)` with
    :math:`s_0 = \sqrt{1/N}`, :math:`s_k = \sqrt{2/N}`; the transform matrix is orthogonal, so
    :func:`idct_ortho` is both its inverse and its transpose. All constants are built in the
    dtype of ``x`` (exact to float64 round-off in float64).

    Shape:
        - x: any, transformed along ``dim``
        - output: same as ``x``
    """
    x = x.movedim(dim, -1)
    size = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spectrum = torch.fft.fft(v, dim=-1) * _twiddle(size, -1.0, x)
    out = spectrum.real * _ortho_scale(size, x)
    return out.movedim(-1, dim)


def idct_ortho(x: Tensor, dim: int = -1) -> Tensor:
    r"""Inverse (= transpose) of :func:`dct_ortho` along ``dim`` (an orthonormal DCT-III).

    Shape:
        - x: any, transformed along ``dim``
        - output: same as ``x``
    """
    x = x.movedim(dim, -1)
    size = x.shape[-1]
    c = x / _ortho_scale(size, x)  # c_k = Re(e^{-i pi k / 2N} V_k)
    c_rev = torch.cat([torch.zeros_like(c[..., :1]), c[..., 1:].flip(-1)], dim=-1)  # c_{N-k}
    spectrum = torch.complex(c, -c_rev) * _twiddle(size, 1.0, x)
    v = torch.fft.ifft(spectrum, dim=-1).real
    half = (size + 1) // 2
    out = torch.empty_like(v)
    out[..., ::2] = v[..., :half]
    out[..., 1::2] = v[..., half:].flip(-1)
    return out.movedim(-1, dim)


def dct3(x: Tensor) -> Tensor:
    """Orthonormal separable DCT-II over the last three dims ``(C, H, W)``.

    Shape:
        - x: ``(B, C, H, W)``
        - output: ``(B, C, H, W)``
    """
    return dct_ortho(dct_ortho(dct_ortho(x, -1), -2), -3)


def idct3(x: Tensor) -> Tensor:
    """Inverse (= transpose) of :func:`dct3`.

    Shape:
        - x: ``(B, C, H, W)``
        - output: ``(B, C, H, W)``
    """
    return idct_ortho(idct_ortho(idct_ortho(x, -3), -2), -1)


@register_operator
class StructuredCS(OrthonormalRows, SeededDraws, Operator):
    r"""Subsampled randomised DCT: :math:`A = S F D`, an :math:`O(n \log n)` compressed sensing matrix.

    :math:`D = \mathrm{diag}(\pm 1)` flips the sign of each of the :math:`n = CHW` entries at
    random, :math:`F` is the orthonormal 3-D DCT-II over ``(C, H, W)`` and :math:`S` keeps
    :math:`m` random rows of the identity. :math:`F D` is orthogonal, so the rows of :math:`A` are
    orthonormal:

    .. math::
        A A^\top = S F D D^\top F^\top S^\top = S S^\top = I_m,
        \qquad A^\dagger = A^\top (A A^\top)^{-1} = A^\top = D F^\top S^\top.

    No dense matrix is ever formed: the buffers are the ``n`` signs and the ``m`` kept indices.

    Args:
        m: number of measurements, ``1 <= m <= n``.
        img_size: image shape ``(C, H, W)``.
        noise_std: standard deviation of the additive Gaussian noise.
        seed: seed of the random signs and rows (recorded in the config); a fresh one if both
            ``seed`` and ``generator`` are None.
        generator: source of the draws instead of ``seed``.

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, m)``

    Example:
        >>> import torch
        >>> op = StructuredCS(100, (3, 16, 16), seed=0)
        >>> y = torch.randn(2, 100)
        >>> bool(torch.allclose(op.A(op.A_adjoint(y)), y, atol=1e-5))
        True
    """

    name = "structured_cs"

    def __init__(
        self,
        m: int,
        img_size: tuple[int, int, int],
        *,
        noise_std: float = 0.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(img_size, noise_std=noise_std)
        generator = self._generator(seed, generator)
        check_num_measurements(m, self.n)
        signs = (rand((self.n,), generator=generator, device=generator.device) < 0.5).float()
        rows = torch.randperm(self.n, generator=generator, device=generator.device)[:m]
        self.register_buffer("signs", 2.0 * signs - 1.0)
        self.register_buffer("rows", rows.sort().values)

    @property
    def meas_shape(self) -> tuple[int, ...]:
        return (self.rows.shape[0],)

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`S F D\,x` (``kwargs`` are ignored, for deepinv)."""
        self.check_x(x)
        self.check_like(x, "x")
        signed = x * self.signs.reshape(self.img_size)
        return dct3(signed).flatten(1).index_select(1, self.rows)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`D F^\top S^\top y` (``kwargs`` are ignored, for deepinv)."""
        self.check_y(y)
        self.check_like(y, "y")
        full = y.new_zeros(y.shape[0], self.n).index_copy(1, self.rows, y)
        return idct3(full.reshape(y.shape[0], *self.img_size)) * self.signs.reshape(self.img_size)
