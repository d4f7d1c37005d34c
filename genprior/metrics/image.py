"""Full-reference image metrics, one value per image: MSE per pixel, PSNR, SSIM."""

from __future__ import annotations

import torch
from torch import Tensor

from genprior._checks import check_finite, check_positive, check_shape

__all__ = ["check_pair", "mse_per_pixel", "psnr", "ssim", "to_minus1_1"]


def check_pair(x_hat: Tensor, x: Tensor, *, data_range: float | None = None) -> None:
    """Raise unless ``x_hat`` and ``x`` are finite real float ``(B, C, H, W)`` tensors of one
    shape, and the truth ``x`` fits its value convention.

    With ``data_range`` the values of ``x`` must span at most ``data_range``; without it they
    must lie in [-1, 1] (the [0, 1] and [-1, 1] conventions), which catches 0–255 images.

    Raises:
        TypeError: complex or integer tensors.
        ValueError: shapes, non-finite values, or ``x`` outside its range.
    """
    check_shape(x_hat, "x_hat", "B C H W")
    check_shape(x, "x", "B C H W")
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat and x must have the same shape, got x_hat {tuple(x_hat.shape)} "
                         f"and x {tuple(x.shape)}")
    for t, name in ((x_hat, "x_hat"), (x, "x")):
        if t.is_complex():
            raise TypeError(f"{name} is complex: metrics take real images (pass .abs() or "
                            f".real explicitly)")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
        check_finite(t, name)
    if x.numel() == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    tol = 1e-3
    if data_range is None and (lo < -1 - tol or hi > 1 + tol):
        raise ValueError(f"x has values in [{lo:.4g}, {hi:.4g}], outside [-1, 1]: images at "
                         f"public boundaries are in [0, 1] (0-255 floats? divide by 255)")
    if data_range is not None and hi - lo > data_range * (1 + tol):
        raise ValueError(f"x has values in [{lo:.4g}, {hi:.4g}], wider than data_range "
                         f"{data_range:g} (0-255 floats? divide by 255, or pass "
                         f"data_range=255)")


def _mse(x_hat: Tensor, x: Tensor) -> Tensor:
    return (x_hat - x).pow(2).flatten(1).mean(dim=1)


def to_minus1_1(x: Tensor) -> Tensor:
    r"""Map images from [0, 1] to the [-1, 1] convention of the CSGM reference code: :math:`2x-1`.

    Metrics on [-1, 1] images take ``data_range=2``; the MSE per pixel grows by a factor of 4 and
    PSNR is unchanged. SSIM is *not* shift-invariant (its luminance term uses the absolute means),
    so compute SSIM on [0, 1] images.

    Shape:
        x, output: any, elementwise.
    """
    return 2 * x - 1


@torch.no_grad()
def mse_per_pixel(x_hat: Tensor, x: Tensor) -> Tensor:
    r"""Reconstruction error per pixel :math:`\|\hat x - x\|_2^2 / n`, with :math:`n = CHW`.

    This is the "reconstruction error (per pixel)" of Bora et al. (2017), CSGM. It depends on the
    value scale: compute it on :func:`to_minus1_1` images to compare with numbers reported in
    the [-1, 1] convention.

    Args:
        x_hat: reconstructions.
        x: ground truth.

    Returns:
        One value per image.

    Shape:
        - x_hat, x: ``(B, C, H, W)``
        - output: ``(B,)``

    Example:
        >>> mse_per_pixel(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
        tensor([0.2500])
    """
    check_pair(x_hat, x)
    return _mse(x_hat, x)


@torch.no_grad()
def psnr(x_hat: Tensor, x: Tensor, *, data_range: float) -> Tensor:
    r"""Peak signal-to-noise ratio :math:`10 \log_{10}(\text{data\_range}^2 / \mathrm{MSE})` in dB.

    Args:
        x_hat: reconstructions.
        x: ground truth.
        data_range: the value range of the images: 1 for [0, 1], 2 for [-1, 1], 255 for 0..255.

    Returns:
        One value per image; ``inf`` where ``x_hat == x`` exactly.

    Shape:
        - x_hat, x: ``(B, C, H, W)``
        - output: ``(B,)``

    Example:
        >>> psnr(torch.full((1, 1, 2, 2), 0.1), torch.zeros(1, 1, 2, 2), data_range=1.0)
        tensor([20.])
    """
    check_positive(data_range, "data_range")
    check_pair(x_hat, x, data_range=data_range)
    return 10 * torch.log10(data_range**2 / _mse(x_hat, x))


@torch.no_grad()
def ssim(x_hat: Tensor, x: Tensor, *, data_range: float) -> Tensor:
    r"""Structural similarity (Wang et al. 2004), Gaussian window 11 x 11, :math:`\sigma = 1.5`,
    averaged over channels and pixels (torchmetrics' implementation).

    Args:
        x_hat: reconstructions.
        x: ground truth.
        data_range: the value range of the images (1 for [0, 1], 2 for [-1, 1]).

    Returns:
        One value per image, 1 for identical images.

    Shape:
        - x_hat, x: ``(B, C, H, W)`` with ``H, W >= 11``
        - output: ``(B,)``
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    check_positive(data_range, "data_range")
    check_pair(x_hat, x, data_range=data_range)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"ssim needs images of at least 11 x 11 pixels (its Gaussian window), "
                         f"got {tuple(x.shape[-2:])}")
    return structural_similarity_index_measure(
        x_hat, x, data_range=float(data_range), reduction="none"
    )
