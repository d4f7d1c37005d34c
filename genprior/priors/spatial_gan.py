r"""A fully convolutional GAN generator with a spatial latent, and a patch discriminator: the
GAN-family natural-image prior for images of any size.

The generator is :class:`~genprior.priors.spatial_vae.SpatialVAE`'s decoder (GroupNorm residual
blocks, nearest-neighbour upsampling) fed with a Gaussian latent map
:math:`z \sim \mathcal N(0, I)` of ``latent_channels`` channels at ``1 / 2**n_down`` of the image
resolution, with a ``tanh`` output; :meth:`SpatialGenerator.resized` gives the same weights for
another image size. GroupNorm makes :meth:`~SpatialGenerator.decode` the same function in train
and eval mode and per sample.

The discriminator is a fully convolutional patch critic (Isola et al. 2017): stride-2 4x4
convolutions with LeakyReLU(0.2) and optional spectral normalisation (Miyato et al. 2018), one
logit per receptive field, averaged into one logit per image. It therefore accepts any image
size too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genprior._checks import check_shape
from genprior._config import ConfigMixin
from genprior.priors._spatial import (
    SpatialSizeMixin,
    check_spatial_args,
    spatial_decoder,
    spatial_widths,
)
from genprior.priors.base import Prior, register_prior

__all__ = ["PatchDiscriminator", "SpatialGenerator"]


@register_prior
class SpatialGenerator(SpatialSizeMixin, Prior):
    r"""GAN generator :math:`G(z) = (\tanh(\mathrm{net}(z)) + 1)/2` on a spatial latent map.

    Args:
        img_shape: ``(C, H, W)`` the model is built for (any size works through
            :meth:`resized`).
        latent_channels: :math:`k`, channels of the latent map.
        base_channels: width of the full-resolution stage.
        n_down: number of upsamplings :math:`\log_2 f`.

    Shape:
        - z: ``(B, k, ceil(H / f), ceil(W / f))``
        - x: ``(B, C, H, W)`` in [0, 1]

    Example:
        >>> G = SpatialGenerator(img_shape=(1, 16, 16), latent_channels=2, base_channels=4)
        >>> G.latent_shape, G.resized((1, 37, 31)).latent_shape
        ((2, 4, 4), (2, 10, 8))
        >>> G.resized((1, 37, 31)).sample(2, generator=torch.Generator()).shape
        torch.Size([2, 1, 37, 31])
    """

    def __init__(self, img_shape: Sequence[int] = (1, 48, 48), latent_channels: int = 4,
                 base_channels: int = 16, n_down: int = 2) -> None:
        check_spatial_args(img_shape, latent_channels, base_channels, n_down)
        super().__init__()
        self.factor = 2 ** int(n_down)
        widths = spatial_widths(base_channels, n_down)
        self.decoder = nn.Sequential(*spatial_decoder(latent_channels, widths, int(img_shape[0])))
        self._set_size(tuple(int(s) for s in img_shape))

    def decode_tanh(self, z: Tensor) -> Tensor:
        """Raw ``tanh`` output in [-1, 1].

        Shape:
            - z: ``(B, *latent_shape)``; output: ``(B, C, H, W)``
        """
        check_shape(z, "z", "B {} {} {}".format(*self.latent_shape))
        return torch.tanh(self._crop(self.decoder(z)))

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1]: ``(tanh + 1) / 2``.

        Shape:
            - z: ``(B, *latent_shape)``; output: ``(B, C, H, W)``
        """
        return (self.decode_tanh(z) + 1) / 2


class PatchDiscriminator(ConfigMixin, nn.Module):
    r"""Fully convolutional patch discriminator: one logit per image, the mean of its patch logits.

    ``n_layers`` stride-2 Conv(4, 2, 1)-LeakyReLU(0.2) stages doubling the width from ``ndf``
    (at most ``8 * ndf``), a stride-1 3x3 stage, and a 3x3 convolution to one channel of
    logits, averaged over positions. Images in [0, 1] are mapped to [-1, 1] inside. Not a
    :class:`Prior`; its constructor arguments are captured in ``self.config``.

    Args:
        nc: image channels.
        ndf: width of the first stage.
        n_layers: stride-2 stages (the receptive field grows with it: 3 gives 46 pixels).
        spectral_norm: spectral normalisation of every convolution.

    Shape:
        - x: ``(B, nc, H, W)`` in [0, 1], any ``H, W >= 2**n_layers``
        - output: ``(B,)`` logits

    Example:
        >>> D = PatchDiscriminator(nc=1, ndf=4)
        >>> D(torch.rand(2, 1, 48, 40)).shape
        torch.Size([2])
    """

    def __init__(self, nc: int = 1, ndf: int = 32, n_layers: int = 3, *,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        if min(nc, ndf, n_layers) < 1:
            raise ValueError("nc, ndf and n_layers must be >= 1")
        self.nc = int(nc)

        def conv(c_in: int, c_out: int, k: int, s: int, p: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, k, s, p)
            return _spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = []
        width_in, width = nc, ndf
        for _ in range(n_layers):
            layers += [conv(width_in, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            width_in, width = width, min(2 * width, 8 * ndf)
        layers += [conv(width_in, width_in, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                   conv(width_in, 1, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Logits :math:`D(x)` (real > 0 after training).

        Shape:
            - x: ``(B, nc, H, W)``; output: ``(B,)``
        """
        check_shape(x, "x", f"B {self.nc} H W")
        return self.net(2 * x - 1).mean(dim=(1, 2, 3))
