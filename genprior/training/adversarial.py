r"""What the adversarial trainers (:mod:`~genprior.training.gan`,
:mod:`~genprior.training.affgan`) share: the non-saturating and the hinge GAN losses, the R1
gradient penalty and annealed instance noise.

Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises
:math:`\mathbb E[\max(0, 1 - D(x))] + \mathbb E[\max(0, 1 + D(G(z)))]`, G minimises
:math:`-\mathbb E[D(G(z))]`.

R1 (Mescheder et al. 2018): :math:`\frac{\gamma}{2} \mathbb E_x \|\nabla_x D(x)\|^2` on real
images, added to D's loss; :func:`r1_penalty` is the expectation without :math:`\gamma / 2`.

Instance noise (Sønderby et al. 2017): Gaussian noise of std :math:`\sigma_t` is added to the
real and the generated images before the discriminator sees them, with :math:`\sigma_t` annealed
linearly from its start value to 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._random import randn

__all__ = ["add_instance_noise", "discriminator_loss", "generator_loss",
           "hinge_discriminator_loss", "hinge_generator_loss", "instance_noise_std",
           "r1_penalty"]


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


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    r"""Hinge loss of D: :math:`\mathrm{mean}(\max(0, 1 - D(x))) +
    \mathrm{mean}(\max(0, 1 + D(G(z))))`.

    Shape:
        - real_logits, fake_logits: ``(B,)``
        - output: scalar

    Example:
        >>> hinge_discriminator_loss(torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0]))
        tensor(0.7500)
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Hinge loss of G: :math:`-\mathrm{mean}(D(G(z)))`.

    Shape:
        - fake_logits: ``(B,)``
        - output: scalar

    Example:
        >>> hinge_generator_loss(torch.tensor([-3.0, 1.0]))
        tensor(1.)
    """
    return -fake_logits.mean()


def r1_penalty(D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    r"""R1 gradient penalty without its weight: :math:`\mathbb E_x \|\nabla_x D(x)\|^2`, the
    squared norm over all of an image's pixels, averaged over the batch.

    ``D`` is evaluated on a detached copy of ``x`` that requires grad; the gradient is taken
    with ``create_graph=True``, so the result is differentiable in ``D``'s parameters (a double
    backward). Computed in ``D``'s precision; call it outside ``torch.autocast``.

    Args:
        D: the discriminator, one logit per image.
        x: the (real) images D is penalised at.

    Returns:
        the penalty, a scalar (float32 or wider).

    Shape:
        - x: ``(B, C, H, W)`` (any ``(B, ...)``); D(x): ``(B,)``
        - output: scalar

    Example:
        >>> w = torch.tensor([1.0, -2.0, 2.0])
        >>> r1_penalty(lambda x: x @ w + 1.0, torch.randn(4, 3))   # ||w||^2
        tensor(9.)
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    grad = grad.flatten(1).to(torch.promote_types(grad.dtype, torch.float32))
    return grad.pow(2).sum(1).mean()


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
