r"""What the adversarial trainers (:mod:`~genprior.training.gan`,
:mod:`~genprior.training.affgan`) share: the non-saturating GAN losses and annealed instance noise.

Instance noise (Sønderby et al. 2017): Gaussian noise of std :math:`\sigma_t` is added to the
real and the generated images before the discriminator sees them, with :math:`\sigma_t` annealed
linearly from its start value to 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._random import randn

__all__ = ["add_instance_noise", "discriminator_loss", "generator_loss", "instance_noise_std"]


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *,
                       real_target: float = 1.0) -> Tensor:
    r""":math:`\mathrm{BCE}(D(x), t) + \mathrm{BCE}(D(G(z)), 0)` with real target :math:`t`
    (one-sided label smoothing for :math:`t < 1`), batch means.

    Shape:
        - real_logits, fake_logits: ``(B,)``
        - output: scalar
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits,
                                                                           real_target))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Non-saturating generator loss :math:`-\log \sigma(D(G(z)))`, batch mean.

    Shape:
        - fake_logits: ``(B,)``
        - output: scalar
    """
    return F.softplus(-fake_logits).mean()


def instance_noise_std(step: int, *, start: float, anneal_steps: int) -> float:
    """Linear annealing ``start * max(0, 1 - step / anneal_steps)`` (0 when ``anneal_steps``
    is not positive).

    Example:
        >>> instance_noise_std(1, start=0.2, anneal_steps=4)
        0.15000000000000002
    """
    if anneal_steps <= 0:
        return 0.0
    return float(start) * max(0.0, 1.0 - step / anneal_steps)


def add_instance_noise(x: Tensor, sigma: float, *, generator: torch.Generator | None) -> Tensor:
    r""":math:`x + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)` drawn from
    ``generator``; ``x`` itself when :math:`\sigma = 0` (no draw).

    Shape:
        - x, output: ``(B, C, H, W)``
    """
    if sigma == 0:
        return x
    return x + sigma * randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
