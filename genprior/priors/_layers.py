"""Layer helpers shared by the priors' networks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["normal_init_"]


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
