r"""DCGAN (Radford et al. 2016): transposed-convolution generator and convolutional critic.

The generator maps :math:`z \in \mathbb R^{n_z}` to a ``base x base`` feature map with one
transposed convolution, then doubles the resolution ``n_up`` times
(ConvTranspose(4, 2, 1)-BatchNorm-ReLU, ``tanh`` at the end). ``img_size = base * 2**n_up``
with ``n_up`` found by halving ``img_size`` while it is even and larger than 7:
64 -> 4x4 and 4 stages (the original DCGAN), 32 -> 4x4 and 3 stages, 28 -> 7x7 and 2 stages
(a small MNIST DCGAN). Channel widths are ``ngf * 2**(n_up - 1), ..., ngf``.
The discriminator mirrors it with stride-2 convolutions and LeakyReLU(0.2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genprior._checks import check_shape
from genprior._config import ConfigMixin
from genprior.priors._layers import normal_init_
from genprior.priors.base import Prior, register_prior

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "dcgan_decoder",
    "dcgan_init_",
    "dcgan_layout",
]


def dcgan_layout(img_size: int) -> tuple[int, int]:
    """Split ``img_size`` into ``(base, n_up)`` with ``img_size = base * 2**n_up``.

    Halves ``img_size`` while it is even and larger than 7.

    Raises:
        ValueError: if ``img_size`` allows no doubling stage (odd, or at most 7).
    """
    base, n_up = int(img_size), 0
    while base % 2 == 0 and base > 7:
        base //= 2
        n_up += 1
    if n_up == 0:
        raise ValueError(
            f"img_size must be base * 2**k with k >= 1 and base <= 7 or odd (e.g. 28, 32, 64), "
            f"got {img_size}"
        )
    return base, n_up


def dcgan_init_(module: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    r"""DCGAN initialisation in place: (transposed) convolution and linear weights
    :math:`\mathcal N(0, 0.02^2)`, BatchNorm weights :math:`\mathcal N(1, 0.02^2)`, biases 0.

    Spectrally normalised layers have their unnormalised weight initialised.

    Args:
        module: the network (all submodules are visited).
        generator: source of the random weights.

    Returns:
        ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            normal_init_(m, 0.02, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)
    return module


def dcgan_decoder(
    nz: int, ngf: int, nc: int, img_size: int, *,
    norm: Callable[[int], nn.Module] = nn.BatchNorm2d, bias: bool = False, inplace: bool = True,
) -> list[nn.Module]:
    """The layers of the DCGAN generator, without its output activation.

    ``ConvTranspose(nz, w, base)``-norm-ReLU from 1x1 to ``base x base``, ``n_up - 1``
    ConvTranspose(4, 2, 1)-norm-ReLU doublings halving the width ``w = ngf * 2**(n_up - 1)``,
    then ``ConvTranspose(ngf, nc, 4, 2, 1)`` to ``img_size`` (see :func:`dcgan_layout`).

    Args:
        nz: input channels (the latent dimension, as a 1x1 map).
        ngf: width of the last hidden layer.
        nc: output channels.
        img_size: output height and width.
        norm: normalisation layer built from a channel count.
        bias: whether the transposed convolutions have a bias.
        inplace: whether the ReLUs work in place.

    Returns:
        the layers, for ``nn.Sequential``.
    """
    base, n_up = dcgan_layout(img_size)
    width = ngf * 2 ** (n_up - 1)
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, base, 1, 0, bias=bias), norm(width),
                               nn.ReLU(inplace)]
    for _ in range(n_up - 1):
        layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=bias), norm(width // 2),
                   nn.ReLU(inplace)]
        width //= 2
    layers.append(nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=bias))
    return layers


@register_prior
class DCGANGenerator(Prior):
    r"""DCGAN generator :math:`G(z) = (\tanh(\mathrm{net}(z)) + 1) / 2`, :math:`z \sim \mathcal N(0, I)`.

    Args:
        nz: latent dimension.
        ngf: width of the last hidden layer (earlier layers are wider by powers of 2).
        nc: number of image channels.
        img_size: image height and width (see :func:`dcgan_layout`).

    Shape:
        - z: ``(B, nz)``
        - x: ``(B, nc, img_size, img_size)`` in [0, 1]

    Example:
        >>> G = DCGANGenerator(nz=8, ngf=4, nc=1, img_size=28)
        >>> G.sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, img_size: int = 64) -> None:
        super().__init__()
        self.latent_shape = (int(nz),)
        self.img_shape = (int(nc), int(img_size), int(img_size))
        self.net = nn.Sequential(*dcgan_decoder(nz, ngf, nc, img_size), nn.Tanh())

    def decode_tanh(self, z: Tensor) -> Tensor:
        """Raw ``tanh`` output in [-1, 1] (what the GAN loss sees during training).

        Shape:
            - z: ``(B, nz)``
            - output: ``(B, nc, img_size, img_size)``
        """
        check_shape(z, "z", f"B {self.latent_shape[0]}")
        return self.net(z[:, :, None, None])

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1]: ``(tanh + 1) / 2``.

        Shape:
            - z: ``(B, nz)``
            - output: ``(B, nc, img_size, img_size)``
        """
        return (self.decode_tanh(z) + 1) / 2


class DCGANDiscriminator(ConfigMixin, nn.Module):
    r"""DCGAN discriminator returning one logit per image (or ``out_features`` numbers: the
    same network as an encoder).

    Stride-2 Conv(4, 2, 1)-[BatchNorm]-LeakyReLU(0.2) stages down to ``base x base``, then a
    ``base x base`` convolution to one logit (``out_features`` outputs). Images in [0, 1] are mapped to [-1, 1] inside.
    Not a :class:`Prior`; its constructor arguments are captured in ``self.config`` for
    checkpoints (see :class:`~genprior._config.ConfigMixin`).

    Args:
        ndf: width of the first layer (later layers are wider by powers of 2).
        nc: number of image channels.
        img_size: image height and width (see :func:`dcgan_layout`).
        spectral_norm: wrap every convolution in spectral normalisation (Miyato et al. 2018).
        batch_norm: BatchNorm after the inner convolutions; ``None`` means
            ``not spectral_norm`` (the usual choice for each variant).
        out_features: outputs per image; 1 (a discriminator) returns them as ``(B,)``.

    Shape:
        - x: ``(B, nc, img_size, img_size)`` in [0, 1]
        - output: ``(B,)`` logits, or ``(B, out_features)`` when ``out_features > 1``

    Example:
        >>> D = DCGANDiscriminator(ndf=4, nc=1, img_size=28)
        >>> D.config
        {'ndf': 4, 'nc': 1, 'img_size': 28, 'spectral_norm': False, 'batch_norm': True}
        >>> D(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2])
        >>> DCGANDiscriminator(ndf=4, nc=1, img_size=28, out_features=6)(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 6])
    """

    config_ignore = ("out_features",)

    def __init__(
        self,
        ndf: int = 64,
        nc: int = 3,
        img_size: int = 64,
        *,
        spectral_norm: bool = False,
        batch_norm: bool | None = None,
        out_features: int = 1,
    ) -> None:
        super().__init__()
        if out_features < 1:
            raise ValueError(f"out_features must be at least 1, got {out_features}")
        if out_features != 1:  # recorded only when used, so that older configs stay equal
            self.register_to_config(out_features=int(out_features))
        if batch_norm is None:
            batch_norm = not spectral_norm
        self.register_to_config(spectral_norm=bool(spectral_norm), batch_norm=bool(batch_norm))
        self.img_shape = (int(nc), int(img_size), int(img_size))
        base, n_down = dcgan_layout(img_size)

        def conv(c_in: int, c_out: int, k: int, s: int, p: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, k, s, p, bias=False)
            return _spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = [conv(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(n_down - 1):
            layers.append(conv(width, width * 2, 4, 2, 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width * 2))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width *= 2
        layers.append(conv(width, out_features, base, 1, 0))
        self.net = nn.Sequential(*layers)
        self.out_features = int(out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Logits :math:`D(x)` (real > 0 after training).

        Shape:
            - x: ``(B, nc, img_size, img_size)`` in [0, 1]
            - output: ``(B,)``, or ``(B, out_features)`` when ``out_features > 1``
        """
        check_shape(x, "x", "B {} {} {}".format(*self.img_shape))
        out = self.net(2 * x - 1).reshape(x.shape[0], self.out_features)
        return out[:, 0] if self.out_features == 1 else out
