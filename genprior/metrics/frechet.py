"""A pixel-space Fréchet distance between two image sets (an offline proxy, NOT FID)."""

from __future__ import annotations

import torch
from torch import Tensor

from genprior._checks import check_shape
from genprior.metrics.fid import frechet_distance

__all__ = ["pixel_frechet_distance"]


def pixel_frechet_distance(a: Tensor, b: Tensor, *, size: int = 8) -> float:
    r"""Fréchet distance between Gaussians fitted to two image sets after average pooling.

    .. math:: \|\mu_a - \mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b
              - 2 (\Sigma_a \Sigma_b)^{1/2})

    on the pixels of each image pooled to ``size x size`` per channel (which keeps the covariance
    well conditioned with ~1,000 images). FID (:func:`genprior.metrics.fid`) computes the same
    distance on Inception features; this is a cheap distribution-level proxy that needs no
    network weights, and its values are **not** comparable to FID.

    Args:
        a: first image set.
        b: second image set (same ``(C, H, W)``).
        size: side of the pooled images; ``H`` and ``W`` must be multiples of it.

    Returns:
        the distance (0 for identical sets).

    Shape:
        - a: ``(N, C, H, W)``, b: ``(M, C, H, W)``
    """
    check_shape(a, "a", "N C H W")
    check_shape(b, "b", "M C H W")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"a and b must share (C, H, W), got {tuple(a.shape[1:])} and "
                         f"{tuple(b.shape[1:])}")
    if a.shape[-1] % size or a.shape[-2] % size:
        raise ValueError(f"image size {tuple(a.shape[-2:])} is not a multiple of size={size}")
    fa, fb = (torch.nn.functional.adaptive_avg_pool2d(t.double(), size).flatten(1) for t in (a, b))
    return frechet_distance(fa, fb)
