r"""The generator objectives of the amortised-MAP super-resolution variants beyond AffGAN's
adversarial loss (Sønderby et al. 2017), and the diversity-sensitive term that keeps the noise
input meaningful; used by :mod:`genprior.training.affgan`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genprior.priors.vae_mlp import VAEPrior

__all__ = ["affdg_loss", "affll_loss", "diversity_term"]


def diversity_term(x1: Tensor, x2: Tensor, eps1: Tensor, eps2: Tensor, *,
                   tau: float) -> Tensor:
    r"""The diversity-sensitive term (Yang et al. 2019; the ratio is Mao et al. 2019's):
    :math:`\frac1B \sum_b \min\big(\mathrm{mean}|x_{1,b} - x_{2,b}| /
    \mathrm{mean}|\epsilon_{1,b} - \epsilon_{2,b}|,\ \tau\big)`, means over each sample's
    entries, where :math:`x_i = G(y, \epsilon_i)`.

    The generator maximises it (its loss gets ``-weight *`` this); clipped samples pass no
    gradient. Computed in float32 or wider.

    Args:
        x1, x2: the outputs for the same inputs and two noises.
        eps1, eps2: the two noises.
        tau: the bound :math:`\tau > 0`.

    Returns:
        the term, a scalar in :math:`[0, \tau]`.

    Shape:
        - x1, x2: ``(B, C, H, W)``
        - eps1, eps2: ``(B, *latent_shape)``
        - output: scalar

    Raises:
        ValueError: ``x1`` and ``x2`` (or ``eps1`` and ``eps2``) of different shapes, or
            different batch sizes.

    Example:
        >>> x = torch.zeros(2, 1, 2, 2)
        >>> e = torch.zeros(2, 3)
        >>> diversity_term(x, x + 0.5, e, e + 1.0, tau=0.4)   # ratios 0.5, clipped at 0.4
        tensor(0.4000)
    """
    if x1.shape != x2.shape or eps1.shape != eps2.shape or x1.shape[0] != eps1.shape[0]:
        raise ValueError(f"diversity_term needs two outputs and two noises of equal shapes and "
                         f"batch sizes, got {tuple(x1.shape)}, {tuple(x2.shape)}, "
                         f"{tuple(eps1.shape)}, {tuple(eps2.shape)}")
    wide = torch.promote_types(x1.dtype, torch.float32)
    dx = (x1.to(wide) - x2.to(wide)).abs().flatten(1).mean(1)
    de = (eps1.to(wide) - eps2.to(wide)).abs().flatten(1).mean(1)
    return (dx / de).clamp(max=tau).mean()


def affdg_loss(x: Tensor, score: Tensor) -> Tensor:
    r"""AffDG's surrogate loss :math:`-\frac{1}{B n} \sum_b \langle x_b, \mathrm{sg}[s_b]\rangle`
    (:math:`n = CHW`, ``score`` detached): its gradient in :math:`x_b` is :math:`-s_b / (B n)`,
    that of :math:`-\frac{1}{Bn}\sum_b \log p(x_b)` when :math:`s = \nabla_x \log p`. The value
    itself means nothing.

    Args:
        x: the generator's (range-projected) outputs.
        score: :math:`\nabla_x \log p` at ``x`` (e.g.
            :meth:`~genprior.priors.denoiser.Denoiser.score`).

    Shape:
        - x, score: ``(B, C, H, W)``
        - output: scalar

    Example:
        >>> x = torch.zeros(2, 1, 1, 2, requires_grad=True)
        >>> affdg_loss(x, torch.tensor([[[[1.0, -2.0]]], [[[4.0, 0.0]]]])).backward()
        >>> x.grad.flatten().tolist()   # -s / (B n), B = n = 2
        [-0.25, 0.5, -1.0, -0.0]
    """
    if x.shape != score.shape:
        raise ValueError(f"score must have the shape of x {tuple(x.shape)}, "
                         f"got {tuple(score.shape)}")
    return -(x * score.detach()).flatten(1).sum(1).mean() / x[0].numel()


def affll_loss(density: VAEPrior, x: Tensor, *, generator: torch.Generator | None) -> Tensor:
    r"""AffLL's loss :math:`-\frac{1}{B n}\sum_b \mathrm{ELBO}(x_b)` (:math:`n = CHW`; nats per
    image entry): minus the log-density bound of the VAE ``density``
    (:meth:`~genprior.priors.vae_mlp.VAEPrior.elbo`), its encoder's draw from ``generator``.

    Shape:
        - x: ``(B, *density.img_shape)``
        - output: scalar
    """
    return -density.elbo(x, generator=generator).mean() / x[0].numel()
