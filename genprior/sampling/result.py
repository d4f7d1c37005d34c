"""The result every sampler returns, and how per-image summaries are built from samples."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SampleResult", "summarize"]


@dataclass
class SampleResult:
    r"""Samples of plausible reconstructions for a batch of ``B`` measurements.

    Samples are ordered chain-major: ``samples.reshape(n_chains, S // n_chains, B, C, H, W)``
    recovers the per-chain sequences (for sources of independent samples such as CSGM restarts
    or noise draws, ``n_chains == S`` and every "chain" holds one sample).

    Attributes:
        samples: images :math:`x^{(s)} = G(z^{(s)})` (or the source's output).
        z_samples: the latents (or noise inputs) that produced ``samples``.
        mean: per-pixel posterior mean estimate over the ``S`` samples.
        std: per-pixel standard deviation over the ``S`` samples (unbiased, ``correction=1``).
        acceptance_rate: fraction of accepted proposals after burn-in, averaged over chains
            (MALA); NaN for sources without an accept/reject step.
        ess: effective sample size per image (see :func:`genprior.sampling.summary.ess`); equal
            to ``S`` for independent samples.
        step_size: final Langevin step size per image (NaN for other sources).
        n_chains: number of chains the ``S`` samples come from.

    Shape:
        - samples: ``(S, B, C, H, W)``
        - z_samples: ``(S, B, *latent_shape)``
        - mean, std: ``(B, C, H, W)``
        - acceptance_rate, ess, step_size: ``(B,)``
    """

    samples: Tensor
    z_samples: Tensor
    mean: Tensor
    std: Tensor
    acceptance_rate: Tensor
    ess: Tensor
    step_size: Tensor
    n_chains: int

    @property
    def n_samples(self) -> int:
        """Total number of samples ``S`` per image."""
        return int(self.samples.shape[0])


def summarize(samples: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel mean and unbiased standard deviation over the sample axis.

    Args:
        samples: sampled images.

    Returns:
        ``(mean, std)``; ``std`` is zero when there is a single sample.

    Shape:
        - samples: ``(S, B, C, H, W)``
        - outputs: ``(B, C, H, W)`` each
    """
    mean = samples.mean(0)
    if samples.shape[0] < 2:
        return mean, torch.zeros_like(mean)
    return mean, samples.std(0, correction=1)
