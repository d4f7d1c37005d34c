r"""Range-constrained conditional generators for super-resolution (AffGAN, Sønderby et al. 2017).

"Amortised MAP Inference for Image Super-resolution" trains a network :math:`f(y, \epsilon)`
whose output is projected onto the affine subspace of images consistent with the
low-resolution input,

.. math::
    x = A^\dagger y + (I - A^\dagger A)\, f(y, \epsilon),

so that :math:`A x = y` holds for *every* output (``A`` a downsampling operator with
:math:`A A^\dagger = I`). Training then only has to make the outputs look like high-resolution
images (a GAN, AffGAN) or match them (MSE, AffMSE); see :mod:`genprior.training.affgan`.

This module holds

- :class:`ConditionalGenerator`: the unconstrained network :math:`f(y, \epsilon)`: noise
  channels concatenated to ``y`` at low resolution, residual blocks, pixel-shuffle upsampling
  stages, added to a bicubic upsampling of ``y``;
- :class:`SRDiscriminator`: a small strided-convolution critic on high-resolution images;
- :class:`ConditionalSR`: a :class:`~genprior.priors.conditional_base.ConditionalPrior`
  (``f`` + its downsampling operator + the projection), saved/loaded like every prior, so
  ``genprior.load_prior("celeba-sr4-affgan")`` works.

The conditional API (:class:`~genprior.priors.conditional_base.ConditionalPrior`) differs from
an unconditional prior's (``decode(z)``, ``sample(n)``):

- ``model(y, eps=None, *, generator=None)`` / ``model.decode(y, eps)``: one output per input,
  ``(B, C, H, W)``;
- ``model.sample(y, n, *, generator=None)``: ``n`` outputs per input, ``(n, B, C, H, W)``;
- ``model.sample_latent(B, generator=)``: noise :math:`\epsilon \sim \mathcal N(0, I)` of shape
  ``(B, *latent_shape)`` with ``latent_shape = (noise_channels, H / factor, W / factor)``.

Use :func:`is_conditional` to tell the two kinds apart (a reconstruction front end calls
``model.sample(y, 1)[0]`` for conditional priors instead of running a latent-space solver).

Outputs are *not* clipped: clipping would break :math:`A x = y`. They lie in [0, 1] up to small
overshoots near edges; clamp for display only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from genprior._checks import check_shape
from genprior._random import make_generator
from genprior.priors._layers import ResBlock, conv3x3, normal_init_
from genprior.priors.conditional_base import ConditionalPrior, register_conditional_prior

__all__ = [
    "ConditionalGenerator",
    "ConditionalSR",
    "SRDiscriminator",
    "init_weights_",
    "is_conditional",
]


def init_weights_(module: nn.Module, *, generator: torch.Generator | None = None) -> nn.Module:
    r"""Initialise convolution and linear layers in place from ``generator``.

    Weights :math:`\mathcal N(0, 2 / \mathrm{fan\_in})` (He), biases 0; layers flagged with
    ``_zero_init = True`` (the last convolution of each residual branch and the output layer)
    are scaled by 0.1 so that a fresh network starts close to its skip path.

    Args:
        module: the conditional network; its convolutions and linear layers are initialised.
        generator: source of the random weights.

    Returns:
        ``module``, initialised in place.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            std = math.sqrt(2.0 / fan_in) * (0.1 if getattr(m, "_zero_init", False) else 1.0)
            normal_init_(m, std, generator=generator)
    return module


class ConditionalGenerator(nn.Module):
    r"""The unconstrained network :math:`f(y, \epsilon)` mapping low to high resolution.

    ``y`` and ``noise_channels`` channels of noise :math:`\epsilon` are concatenated at low
    resolution, passed through a convolution and ``n_blocks`` residual blocks of ``width``
    channels, then ``log2(factor)`` stages of (convolution, pixel shuffle x2, LeakyReLU) halving
    the width (at least 16) and a final convolution. The result is added to the bicubic
    upsampling of ``y``.

    Args:
        channels: image channels ``C``.
        factor: upsampling factor (a power of 2, at least 2).
        width: channels of the low-resolution body.
        n_blocks: residual blocks in the body.
        noise_channels: channels of :math:`\epsilon` (0: deterministic network).

    Shape:
        - y: ``(B, C, h, w)``
        - eps: ``(B, noise_channels, h, w)``
        - output: ``(B, C, factor * h, factor * w)``
    """

    def __init__(self, *, channels: int = 3, factor: int = 4, width: int = 48, n_blocks: int = 5,
                 noise_channels: int = 8) -> None:
        super().__init__()
        n_up = round(math.log2(factor)) if factor >= 2 else 0
        if factor < 2 or 2**n_up != factor:
            raise ValueError(f"factor must be a power of 2 (>= 2), got {factor}")
        for name, value, low in (("channels", channels, 1), ("width", width, 1),
                                 ("n_blocks", n_blocks, 0), ("noise_channels", noise_channels, 0)):
            if int(value) < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self.factor, self.noise_channels = int(factor), int(noise_channels)
        self.head = conv3x3(channels + noise_channels, width)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(n_blocks)],
                                  conv3x3(width, width))
        stages: list[nn.Module] = []
        c = width
        for _ in range(n_up):
            c_next = max(c // 2, min(16, width))
            stages += [conv3x3(c, 4 * c_next), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True)]
            c = c_next
        self.up = nn.Sequential(*stages)
        self.tail = conv3x3(c, channels, small=True)

    def forward(self, y: Tensor, eps: Tensor | None) -> Tensor:
        inp = y if eps is None or self.noise_channels == 0 else torch.cat([y, eps], dim=1)
        h = self.head(inp)
        h = h + self.body(h)
        base = F.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return base + self.tail(self.up(h))


class SRDiscriminator(nn.Module):
    r"""A small critic :math:`D(x)` returning one logit per high-resolution image.

    Stride-2 4x4 convolutions with LeakyReLU(0.2) (no normalisation, so instance noise and
    per-sample gradients behave simply) halve the resolution down to at most 4x4 (widths
    ``width, 2 width, 4 width, 4 width, ...``), then a linear layer. Inputs in [0, 1] are mapped
    to [-1, 1] inside.

    With ``spectral_norm=True`` every convolution and the linear layer are spectrally
    normalised (Miyato et al. 2018): the weight, reshaped to ``(out, -1)``, is divided by its
    largest singular value, estimated by one power iteration per forward pass in training mode.

    Args:
        channels: image channels ``C``.
        img_size: side ``H = W`` of the images (divisible by 4).
        width: channels of the first layer.
        spectral_norm: spectral normalisation of every layer (off by default).

    Shape:
        - x: ``(B, C, img_size, img_size)``
        - output: ``(B,)``
    """

    def __init__(self, *, channels: int = 3, img_size: int = 64, width: int = 32,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        if img_size < 8 or img_size % 4:
            raise ValueError(f"img_size must be a multiple of 4 and >= 8, got {img_size}")
        self.channels, self.img_size = int(channels), int(img_size)

        def normed(layer: nn.Module) -> nn.Module:
            return _spectral_norm(layer) if spectral_norm else layer

        layers: list[nn.Module] = []
        c_in, c, side = channels, width, img_size
        while side > 4 and side % 2 == 0:
            layers += [normed(nn.Conv2d(c_in, c, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2, inplace=True)]
            c_in, side = c, side // 2
            c = min(c * 2, 4 * width)
        self.features = nn.Sequential(*layers)
        self.head = normed(nn.Linear(c_in * side * side, 1))

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, "x", f"B {self.channels} {self.img_size} {self.img_size}")
        return self.head(self.features(2.0 * x - 1.0).flatten(1)).squeeze(1)


@register_conditional_prior
class ConditionalSR(ConditionalPrior):
    r"""Range-constrained conditional super-resolution model
    :math:`x = A^\dagger y + (I - A^\dagger A) f(y, \epsilon)`, :math:`\epsilon \sim \mathcal N(0, I)`.

    Every output satisfies :math:`A x = y` up to float rounding, whatever the weights.

    Args:
        img_size: high-resolution image shape ``(C, H, W)``.
        factor: downsampling factor of the operator (``H`` and ``W`` divisible by it; a power
            of 2).
        kernel: anti-aliasing kernel of :class:`~genprior.operators.downsample.Downsample`
            (``"box"`` or ``"bicubic"``).
        width, n_blocks, noise_channels: of :class:`ConditionalGenerator`.

    Shape:
        - y: ``(B, C, H / factor, W / factor)``
        - eps: ``(B, *latent_shape)`` with ``latent_shape = (noise_channels, H/factor, W/factor)``
        - output of ``forward``/``decode``: ``(B, C, H, W)``; of ``sample``: ``(n, B, C, H, W)``

    Example:
        >>> import torch
        >>> from genprior.priors.conditional import ConditionalSR
        >>> model = ConditionalSR(img_size=(3, 16, 16), factor=4, width=8, n_blocks=1)
        >>> y = torch.rand(2, 3, 4, 4)
        >>> xs = model.sample(y, 5, generator=torch.Generator().manual_seed(0))
        >>> xs.shape
        torch.Size([5, 2, 3, 16, 16])
        >>> bool((model.operator.A(xs[0]) - y).abs().max() < 1e-5)
        True
    """

    def __init__(self, *, img_size: tuple[int, int, int] | list[int] = (3, 64, 64),
                 factor: int = 4, kernel: str = "box", width: int = 48, n_blocks: int = 5,
                 noise_channels: int = 8) -> None:
        img_size = tuple(int(s) for s in img_size)
        if len(img_size) != 3:
            raise ValueError(f"img_size must be (C, H, W), got {img_size}")
        c, h, w = img_size
        if h % factor or w % factor:
            raise ValueError(f"img_size {img_size} must have H and W divisible by factor {factor}")
        super().__init__()
        self.img_shape = img_size
        self.meas_shape = (c, h // factor, w // factor)
        self.latent_shape = (int(noise_channels), h // factor, w // factor)
        from genprior.operators.downsample import Downsample

        # Not a registered submodule: the operator is rebuilt from the config, so the weights
        # file holds the network only; :meth:`_apply` moves it with the model.
        object.__setattr__(self, "_operator", Downsample(img_size, factor, kernel=kernel))
        self.net = ConditionalGenerator(channels=c, factor=factor, width=width,
                                        n_blocks=n_blocks, noise_channels=noise_channels)
        self.reset_parameters(generator=make_generator(0))

    @property
    def operator(self) -> nn.Module:
        """The downsampling operator :math:`A` (with ``A``, ``A_adjoint``, ``A_dagger``)."""
        return self._operator

    def _apply(self, fn, recurse: bool = True):  # nn.Module hook: also move the operator
        super()._apply(fn, recurse)
        self._operator._apply(fn)
        return self

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw the network's weights from ``generator`` (see :func:`init_weights_`)."""
        init_weights_(self.net, generator=generator)

    def generate(self, y: Tensor, eps: Tensor) -> Tensor:
        r""":math:`A^\dagger y + (I - A^\dagger A) f(y, \epsilon)`: consistent with ``y``
        (noise allowed) exactly, not clipped to [0, 1].

        Shape:
            - y: ``(B, *meas_shape)``
            - eps: ``(B, *latent_shape)``
            - output: ``(B, C, H, W)``
        """
        from genprior.operators.projection import affine_projection

        return affine_projection(self.net(y, eps), y, self.operator)


def is_conditional(prior: nn.Module) -> bool:
    """Whether ``prior`` is a conditional model (``sample(y, n)``) rather than ``decode(z)``:
    a :class:`~genprior.priors.conditional_base.ConditionalPrior`, or any module that sets
    ``conditional = True``."""
    return isinstance(prior, ConditionalPrior) or bool(getattr(prior, "conditional", False))
