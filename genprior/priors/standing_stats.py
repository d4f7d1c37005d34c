r"""BatchNorm statistics of a generator recomputed from its own draws ("standing statistics").

A generator whose weights are an exponential moving average (EMA) of a training run's weights
carries BatchNorm running statistics copied from the *raw* generator
(:class:`~genprior.training.ema.EMA` copies buffers). Its own activations have other
statistics, so in evaluation mode it normalises with the wrong means and variances; for a
DiffAugment face GAN of issue #17 this cost 11 FID points (docs/prior_quality.md).
:func:`recalibrate_batchnorm` replaces the running statistics with the average over batches of
the generator's own draws, as BigGAN's "standing statistics" (Brock et al. 2019).
"""

from __future__ import annotations

import torch
from torch import nn

from genprior._checks import check_positive
from genprior.priors.base import Prior

__all__ = ["recalibrate_batchnorm"]


@torch.no_grad()
def recalibrate_batchnorm(
    prior: Prior, *, n_batches: int = 100, batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> int:
    r"""Set every BatchNorm layer's running statistics to the average of its batch statistics
    over ``n_batches`` batches of the prior's own draws :math:`G(z)`,
    :math:`z \sim p(z)`, in place.

    Each layer's ``running_mean`` / ``running_var`` become the mean over batches of the batch
    means / unbiased batch variances of its input (the layers normalise with their batch
    statistics meanwhile, as in training). Weights are untouched; the prior's training mode and
    the layers' momenta are restored.

    Args:
        prior: a generator prior with ``sample_latent`` and ``decode``.
        n_batches: batches drawn.
        batch_size: draws per batch (at least 2: a batch variance needs two values).
        generator: source of the latents.

    Returns:
        the number of BatchNorm layers recalibrated (0: the prior has none, nothing changed).

    Raises:
        ValueError: ``n_batches < 1`` or ``batch_size < 2``.

    Example:
        >>> from genprior.priors.dcgan import DCGANGenerator
        >>> G = DCGANGenerator(nz=8, ngf=4, img_size=16)
        >>> recalibrate_batchnorm(G, n_batches=2, batch_size=4,
        ...                       generator=torch.Generator().manual_seed(0))
        2
    """
    check_positive(n_batches, "n_batches")
    if int(batch_size) < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    layers = [m for m in prior.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats]
    if not layers:
        return 0
    was_training, momenta = prior.training, [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    prior.train()
    try:
        for _ in range(int(n_batches)):
            prior.decode(prior.sample_latent(int(batch_size), generator=generator))
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        prior.train(was_training)
    return len(layers)
