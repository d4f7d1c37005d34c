"""Exponential moving average of a model's weights (the GAN and AffGAN trainers ship the average)."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA(nn.Module):
    r"""Exponential moving average of a model's weights,
    :math:`\theta_{\mathrm{ema}} \leftarrow d\,\theta_{\mathrm{ema}} + (1-d)\,\theta`
    (buffers such as BatchNorm statistics are copied).

    Args:
        model: the model to track (a deep copy is kept in :attr:`module`).
        decay: :math:`d \in [0, 1)`.

    Example:
        >>> ema = EMA(nn.Linear(3, 2), decay=0.9)
        >>> ema.update(nn.Linear(3, 2))
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)
