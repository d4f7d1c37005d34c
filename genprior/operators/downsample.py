r"""Super-resolution operators: box average or periodic bicubic filter, then decimation by ``f``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from deepinv.physics.functional import bicubic_filter
from torch import Tensor

from genprior.operators.base import Operator, register_operator

__all__ = ["Downsample", "periodic_kernel"]

KERNELS = ("box", "bicubic")


def periodic_kernel(taps: Tensor, size: tuple[int, int], factor: int) -> Tensor:
    r"""Wrap a ``(4f, 4f)`` filter onto the periodic ``(H, W)`` grid as a correlation kernel.

    Tap ``(t, u)`` weighs the pixel at offset ``(t - 2f + f // 2, u - 2f + f // 2)`` from
    ``(f i, f j)``, so output pixel ``(i, j)`` is centred at ``(f i + (f - 1) / 2, f j + (f - 1) / 2)``
    for even ``f`` (the centre of its ``f x f`` block, as in ``imresize``). Taps that wrap around
    an image smaller than the filter add up.

    Args:
        taps: filter of shape ``(k, k)``.
        size: periodic grid ``(H, W)``.
        factor: downsampling factor ``f`` (sets the offset).

    Returns:
        the kernel ``k`` on the grid such that ``(h \star x)[p] = \sum_s k[s]\, x[p + s]``.

    Shape:
        - taps: ``(k, k)``
        - output: ``(H, W)``
    """
    h, w = size
    shift = -2 * factor + factor // 2
    offsets = torch.arange(taps.shape[-1], device=taps.device) + shift
    rows = (offsets % h)[:, None].expand(taps.shape)
    cols = (offsets % w)[None, :].expand(taps.shape)
    kernel = taps.new_zeros(h, w)
    return kernel.index_put((rows, cols), taps, accumulate=True)


def _fourier_multiply(x: Tensor, spectrum: Tensor) -> Tensor:
    """Periodic filtering of the last two dims: ``irfft2(rfft2(x) * spectrum)``.

    Shape:
        - x: ``(..., H, W)``
        - spectrum: broadcastable to ``(..., H, W // 2 + 1)``
        - output: ``(..., H, W)``
    """
    return torch.fft.irfft2(torch.fft.rfft2(x) * spectrum, s=x.shape[-2:])


@register_operator
class Downsample(Operator):
    r"""Super-resolution operator :math:`y = S(h \star x)`: filter, then keep every ``f``-th pixel.

    ``kernel="box"``: :math:`A` averages each ``f x f`` block (``avg_pool2d``). Blocks are
    disjoint, so

    .. math::
        A A^\top = \tfrac{1}{f^2} I, \qquad A^\dagger = f^2 A^\top

    (nearest-neighbour upsampling).

    ``kernel="bicubic"``: :math:`h` is deepinv's ``(4f, 4f)`` bicubic filter
    (``deepinv.physics.functional.bicubic_filter``, :math:`a=-1/2`, sum 1), applied with periodic
    boundaries, so :math:`A = S C` with :math:`C` circulant, :math:`\hat C = \hat k` on the
    ``(H, W)`` DFT grid. :math:`A A^\top = S C C^\top S^\top` is then circulant on the low-res
    ``(H/f, W/f)`` grid, diagonalised by its DFT with eigenvalues the aliased power spectrum

    .. math::
        \lambda(u, v) = \frac{1}{f^2} \sum_{a, b = 0}^{f - 1}
            \big|\hat k\big(u + a H/f,\ v + b W/f\big)\big|^2,
        \qquad
        A^\dagger y = A^\top\, \mathcal F^{-1}\!\big[\lambda^{+}\, \mathcal F y\big],

    with :math:`\lambda^+ = 1/\lambda` (and 0 where :math:`\lambda \le n\,\varepsilon \max\lambda`,
    which keeps it the exact Moore-Penrose inverse even if :math:`A` were rank deficient).

    Args:
        img_size: image shape ``(C, H, W)``; ``factor`` must divide ``H`` and ``W``.
        factor: integer downsampling factor ``f >= 2``.
        kernel: ``"box"`` or ``"bicubic"``.
        noise_std: standard deviation of the additive Gaussian noise.

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, C, H / f, W / f)``

    Example:
        >>> import torch
        >>> op = Downsample((3, 12, 8), 4, kernel="bicubic")
        >>> y = torch.rand(2, 3, 3, 2, dtype=torch.float64)
        >>> op = op.to(torch.float64)
        >>> bool(torch.allclose(op.A(op.A_dagger(y)), y))
        True
    """

    name = "downsample"
    exact_dagger = True

    def __init__(
        self,
        img_size: tuple[int, int, int],
        factor: int,
        *,
        kernel: str = "box",
        noise_std: float = 0.0,
    ) -> None:
        super().__init__(img_size, noise_std=noise_std)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor must be an int >= 2, got {factor!r}")
        _, h, w = self.img_size
        if h % factor or w % factor:
            raise ValueError(
                f"factor {factor} must divide the image height and width, got (H, W) = ({h}, {w})"
            )
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.factor = factor
        self.kernel = kernel
        if kernel == "bicubic":
            self.register_buffer("filter", bicubic_filter(factor)[0, 0])
        self._spectra_cache: tuple[tuple, Tensor, Tensor] | None = None

    @property
    def meas_shape(self) -> tuple[int, ...]:
        c, h, w = self.img_size
        return (c, h // self.factor, w // self.factor)

    # ------------------------------------------------------------------ operator
    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`S(h \star x)` (``kwargs`` are ignored, for deepinv)."""
        self.check_x(x)
        self.check_like(x, "x")
        f = self.factor
        if self.kernel == "box":
            return F.avg_pool2d(x, f)
        k_hat, _ = self._spectra()
        return _fourier_multiply(x, k_hat.conj())[..., ::f, ::f]

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`C^\top S^\top y` (zero-filling, then the flipped filter) or box upsampling."""
        self.check_y(y)
        self.check_like(y, "y")
        f = self.factor
        if self.kernel == "box":
            return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2
        b, c, h, w = y.shape
        up = y.new_zeros(b, c, h, f, w, f)
        up[:, :, :, 0, :, 0] = y
        k_hat, _ = self._spectra()
        return _fourier_multiply(up.reshape(b, c, h * f, w * f), k_hat)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""Exact pseudo-inverse: :math:`f^2 A^\top y` (box) or :math:`A^\top \mathcal F^{-1}[\lambda^+ \mathcal F y]`."""
        self.check_y(y, finite=True)
        self.check_like(y, "y")
        if self.kernel == "box":
            return self.A_adjoint(y) * self.factor**2
        _, lam_inv = self._spectra()
        return self.A_adjoint(_fourier_multiply(y, lam_inv))

    def _spectra(self) -> tuple[Tensor, Tensor]:
        r"""Cached :math:`\hat k` (rfft2 of the periodic kernel) and :math:`\lambda^+` (half-spectrum)."""
        taps = self.filter
        key = (taps.device, taps.dtype, taps.data_ptr(), taps._version)
        if self._spectra_cache is None or self._spectra_cache[0] != key:
            with torch.no_grad():
                self._spectra_cache = (key, *self._compute_spectra(taps))
        return self._spectra_cache[1], self._spectra_cache[2]

    def _compute_spectra(self, taps: Tensor) -> tuple[Tensor, Tensor]:
        _, h, w = self.img_size
        f = self.factor
        kernel = periodic_kernel(taps, (h, w), f)
        power = torch.fft.fft2(kernel).abs().square()
        lam = power.reshape(f, h // f, f, w // f).sum(dim=(0, 2)) / f**2
        tol = max(h * w, 1) * torch.finfo(lam.dtype).eps * lam.max()
        lam_inv = torch.where(lam > tol, 1.0 / lam, torch.zeros_like(lam))
        return torch.fft.rfft2(kernel), lam_inv[:, : (w // f) // 2 + 1]
