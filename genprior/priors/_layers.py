"""Layer helpers shared by the priors' networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["ResBlock", "conv3x3", "normal_init_"]


def normal_init_(layer: nn.Module, std: float, *, generator: torch.Generator | None = None) -> None:
    r"""Weight :math:`\sim \mathcal N(0, \mathrm{std}^2)` and bias 0, in place.

    A spectrally normalised (parametrised) layer has its unnormalised weight drawn.

    Args:
        layer: a convolution, transposed convolution or linear layer.
        std: standard deviation of the weights.
        generator: source of the random weights.
    """
    if parametrize.is_parametrized(layer, "weight"):
        weight = layer.parametrizations.weight.original
    else:
        weight = layer.weight
    with torch.no_grad():
        nn.init.normal_(weight, 0.0, std, generator=generator)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def conv3x3(c_in: int, c_out: int, *, small: bool = False) -> nn.Conv2d:
    """A 3x3 convolution keeping the size; ``small`` flags it (``_zero_init``) for the 0.1-scaled
    initialisation of :func:`genprior.priors.conditional.init_weights_`."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    conv._zero_init = small
    return conv


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` without normalisation (EDSR-style).

    Shape:
        - x, output: ``(B, width, H, W)``
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(width, width), nn.ReLU(inplace=True),
                                  conv3x3(width, width, small=True))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
