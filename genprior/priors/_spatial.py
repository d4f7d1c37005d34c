"""What the fully convolutional, spatial-latent priors share: GroupNorm residual blocks, the
decoder from a latent map to an image, and the resizing of one set of weights to any image size.

A spatial latent is a feature map :math:`z \\in \\mathbb R^{k \\times \\lceil H/f \\rceil \\times
\\lceil W/f \\rceil}` (``f = 2**n_down``); the decoder upsamples it ``n_down`` times and the output
is cropped to ``H x W``, so no image size is refused and one model serves every size.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["ResBlock", "SpatialSizeMixin", "check_spatial_args", "group_norm", "spatial_decoder",
           "spatial_widths"]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``min(8, channels)`` groups: per-sample, the same in train and eval."""
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """``x + conv(act(norm(conv(act(norm(x))))))``, 3x3 convolutions, width kept.

    Shape:
        - x: ``(B, width, H, W)``; output: the same
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(group_norm(width), nn.SiLU(), nn.Conv2d(width, width, 3, 1, 1),
                                  group_norm(width), nn.SiLU(), nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def check_spatial_args(img_shape: Sequence[int], latent_channels: int, base_channels: int,
                       n_down: int) -> None:
    """Refuse an ``img_shape`` that is not ``(C, H, W)`` and sizes below 1.

    Raises:
        ValueError: naming the bad argument(s).
    """
    if len(img_shape) != 3 or min(img_shape) < 1:
        raise ValueError(f"img_shape must be (C, H, W), got {tuple(img_shape)}")
    if n_down < 1 or latent_channels < 1 or base_channels < 1:
        raise ValueError("latent_channels, base_channels and n_down must be >= 1")


def spatial_widths(base_channels: int, n_down: int) -> list[int]:
    """Widths of the ``n_down + 1`` resolution stages, full resolution first."""
    return [base_channels * 2**i for i in range(n_down + 1)]


def spatial_decoder(latent_channels: int, widths: Sequence[int], out_channels: int,
                    ) -> list[nn.Module]:
    """Layers from a latent map to output logits: 3x3 conv and a residual block at the coarsest
    width, then per stage nearest-neighbour 2x upsampling, a 3x3 conv to the next width and a
    residual block, and GroupNorm-SiLU-3x3 conv to ``out_channels`` at full resolution.

    Args:
        latent_channels: channels of the latent map.
        widths: stage widths, full resolution first (:func:`spatial_widths`).
        out_channels: image channels.

    Returns:
        the layers, for ``nn.Sequential``.
    """
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, 1, 1),
                               ResBlock(widths[-1])]
    for w_in, w_out in itertools.pairwise(list(widths)[::-1]):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w_in, w_out, 3, 1, 1),
                   ResBlock(w_out)]
    layers += [group_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], out_channels, 3, 1, 1)]
    return layers


class SpatialSizeMixin:
    """Image size, latent size and :meth:`resized` for a prior whose latent is a map at
    ``1 / factor`` of the image resolution.

    The class sets ``self.factor`` and ``self.decoder`` (first layer: a convolution from the
    latent channels) before calling :meth:`_set_size`.
    """

    factor: int
    decoder: nn.Sequential

    def _set_size(self, img_shape: tuple[int, int, int]) -> None:
        c, h, w = img_shape
        f = self.factor
        self.img_shape = (c, h, w)
        self.latent_shape = (self.decoder[0].in_channels, -(-h // f), -(-w // f))

    def resized(self, img_shape: Sequence[int]):
        """The same model (shared weights, no copy of them) for images of ``img_shape``.

        Raises:
            ValueError: another number of channels.
        """
        img_shape = tuple(int(s) for s in img_shape)
        if len(img_shape) != 3 or img_shape[0] != self.img_shape[0] or min(img_shape) < 1:
            raise ValueError(f"img_shape must be ({self.img_shape[0]}, H, W), got {img_shape}")
        view = copy.copy(self)  # shares parameters, buffers and submodules
        view._set_size(img_shape)
        return view

    def _crop(self, x: Tensor) -> Tensor:
        """The decoder's output cropped to this model's ``H x W``."""
        h, w = self.img_shape[1:]
        return x[..., :h, :w]
