r"""A fully convolutional VAE with a spatial latent: a natural-image prior for images of any size.

The latent is a feature map :math:`z \in \mathbb R^{k \times H/f \times W/f}` (``f = 2**n_down``),
so one trained model decodes any :math:`H \times W`: :meth:`SpatialVAE.resized` gives the same
weights for another image size (padding to a multiple of ``f`` and cropping back, so no size is
refused). Because the decoder is convolutional and acts on the whole latent map, a
reconstruction has no block seams even when the operator is block-wise.

Likelihood: Gaussian with one learned scalar :math:`\sigma` (the :math:`\sigma`-VAE, as
:class:`~genprior.priors.conv_vae.ConvVAE`), so the ELBO is an honest bound in nats and the KL
weight needs no tuning. Normalisation is GroupNorm: :meth:`decode` is the same function in
train and eval mode and never mixes the samples of a batch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genprior._checks import check_shape
from genprior.priors._spatial import (
    ResBlock,
    SpatialSizeMixin,
    check_spatial_args,
    group_norm,
    spatial_decoder,
    spatial_widths,
)
from genprior.priors.base import register_prior
from genprior.priors.conv_vae import gaussian_log_likelihood
from genprior.priors.vae_mlp import VAEPrior

__all__ = ["SpatialVAE"]

_MIN_LOG_SIGMA = math.log(1e-3)


@register_prior
class SpatialVAE(SpatialSizeMixin, VAEPrior):
    r"""Fully convolutional :math:`\sigma`-VAE with a spatial latent.

    Encoder: 3x3 conv, then ``n_down`` times (residual block, stride-2 4x4 conv doubling the
    width), a residual block and a 3x3 conv to :math:`(\mu, \log\sigma_q^2)` with
    ``latent_channels`` channels each. Decoder: the mirror image, with nearest-neighbour
    upsampling and 3x3 convs, logits at the end, :math:`G(z) = \mathrm{sigmoid}(\cdot)`.

    Args:
        img_shape: ``(C, H, W)`` the model is built for (any size works through
            :meth:`resized`).
        latent_channels: :math:`k`, channels of the latent map.
        base_channels: width of the full-resolution stage.
        n_down: number of halvings :math:`\log_2 f`.

    Shape:
        - z: ``(B, k, ceil(H / f), ceil(W / f))``
        - x: ``(B, C, H, W)`` in [0, 1]

    Example:
        >>> vae = SpatialVAE(img_shape=(1, 16, 16), latent_channels=2, base_channels=8)
        >>> vae.latent_shape
        (2, 4, 4)
        >>> vae.resized((1, 37, 31)).sample(1, generator=torch.Generator()).shape
        torch.Size([1, 1, 37, 31])
    """

    def __init__(self, img_shape: Sequence[int] = (1, 64, 64), latent_channels: int = 4,
                 base_channels: int = 32, n_down: int = 2) -> None:
        check_spatial_args(img_shape, latent_channels, base_channels, n_down)
        super().__init__()
        c = int(img_shape[0])
        self.factor = 2 ** int(n_down)
        widths = spatial_widths(base_channels, n_down)
        enc: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, 1, 1)]
        for w_in, w_out in itertools.pairwise(widths):
            enc += [ResBlock(w_in), nn.Conv2d(w_in, w_out, 4, 2, 1)]
        enc += [ResBlock(widths[-1]), group_norm(widths[-1]), nn.SiLU(),
                nn.Conv2d(widths[-1], 2 * latent_channels, 3, 1, 1)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*spatial_decoder(latent_channels, widths, c))
        self.log_sigma = nn.Parameter(torch.zeros(()))
        self._set_size(tuple(int(s) for s in img_shape))

    @property
    def sigma(self) -> Tensor:
        r"""Output scale :math:`\sigma` of the Gaussian likelihood (at least 1e-3)."""
        return self.log_sigma.clamp(min=_MIN_LOG_SIGMA).exp()

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Parameters ``(mu, logvar)`` of :math:`q(z \mid x)` for images of this model's size.

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]
            - mu, logvar: ``(B, *latent_shape)``
        """
        check_shape(x, "x", "B {} {} {}".format(*self.img_shape))
        return self._encode(x)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, w = self.img_shape[1:]
        ph, pw = self.latent_shape[1] * self.factor - h, self.latent_shape[2] * self.factor - w
        x = F.pad(2 * x - 1, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw)
                  else "replicate")
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def _decode_logits(self, z: Tensor) -> Tensor:
        return self._crop(self.decoder(z))

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""Gaussian :math:`\log \mathcal N(x;\, G(z),\, \sigma^2 I)` per image.

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]; z: ``(B, *latent_shape)``; output: ``(B,)``
        """
        log_sigma = self.log_sigma.clamp(min=_MIN_LOG_SIGMA)
        return gaussian_log_likelihood(x, self.decode(z), log_sigma)
