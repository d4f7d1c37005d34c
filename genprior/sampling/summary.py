r"""Diagnostics and summaries of posterior samples: effective sample size, credible intervals,
coverage and the agreement between predicted uncertainty and actual error."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genprior._checks import check_shape

__all__ = ["coverage", "credible_interval", "ess", "std_error_correlation"]


def _autocovariance(chains: Tensor) -> Tensor:
    """Biased (divide by ``N``) autocovariance along dim 1 of ``(K, N, ...)``, via FFT."""
    n = chains.shape[1]
    centred = chains - chains.mean(1, keepdim=True)
    size = 2 ** math.ceil(math.log2(2 * n))
    f = torch.fft.rfft(centred, n=size, dim=1)
    acov = torch.fft.irfft(f * f.conj(), n=size, dim=1)[:, :n]
    return acov / n


def ess(chains: Tensor) -> Tensor:
    r"""Multi-chain effective sample size of every coordinate, with Geyer's initial monotone
    sequence estimator (the estimator of Stan / Vehtari et al. 2021, without rank normalisation
    or chain splitting).

    The combined autocorrelation at lag :math:`t` is
    :math:`\hat\rho_t = 1 - (W - \overline{\gamma_t}) / \widehat{\mathrm{var}}^+`, with
    :math:`W` the mean within-chain variance, :math:`\overline{\gamma_t}` the mean within-chain
    autocovariance and :math:`\widehat{\mathrm{var}}^+ = \frac{N-1}{N} W + \mathrm{var}(\text{chain
    means})`. Pairs :math:`\hat\rho_{2k} + \hat\rho_{2k+1}` are summed up to the first negative
    pair and forced to be non-increasing; :math:`\mathrm{ESS} = KN / \hat\tau` with
    :math:`\hat\tau = -1 + 2\sum_k (\hat\rho_{2k} + \hat\rho_{2k+1})`, capped at
    :math:`KN \log_{10}(KN)` as in Stan.

    Args:
        chains: ``K`` chains of ``N`` draws of any number of scalar quantities.

    Returns:
        The ESS of every quantity (``K * N`` when ``N < 4``).

    Shape:
        - chains: ``(K, N, *rest)``
        - output: ``rest``
    """
    if chains.ndim < 2:
        raise ValueError(f"chains must have shape (K, N, ...), got {tuple(chains.shape)}")
    k, n = chains.shape[:2]
    total = k * n
    rest = chains.shape[2:]
    if n < 4:
        return torch.full(rest, float(total), device=chains.device, dtype=chains.dtype)
    acov = _autocovariance(chains)  # (K, N, *rest)
    chain_var = acov[:, 0] * n / (n - 1)
    w = chain_var.mean(0)
    between = chains.mean(1).var(0, correction=1) if k > 1 else torch.zeros_like(w)
    var_plus = w * (n - 1) / n + between
    var_plus = torch.where(var_plus > 0, var_plus, torch.ones_like(var_plus))
    rho = 1.0 - (w - acov.mean(0)) / var_plus  # (N, *rest)
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2, *rest).sum(1)  # (n_pairs, *rest)
    positive = torch.cumprod((pairs > 0).to(pairs.dtype), dim=0)
    monotone = torch.cummin(torch.where(positive > 0, pairs, torch.zeros_like(pairs)), dim=0)
    tau = -1.0 + 2.0 * (monotone.values * positive).sum(0)
    tau = torch.clamp(tau, min=1.0 / math.log10(total))
    out = total / tau
    constant = chain_var.amax(0) <= 0  # a constant quantity has no Monte-Carlo error
    return torch.where(constant, torch.full_like(out, float(total)), out)


def credible_interval(samples: Tensor, *, level: float = 0.9) -> tuple[Tensor, Tensor]:
    r"""Equal-tailed per-pixel credible interval from samples.

    Args:
        samples: sampled images.
        level: probability mass inside the interval, in ``(0, 1)``.

    Returns:
        ``(lower, upper)``: the :math:`(1-\text{level})/2` and :math:`(1+\text{level})/2`
        empirical quantiles over the sample axis.

    Shape:
        - samples: ``(S, B, C, H, W)``
        - outputs: ``(B, C, H, W)`` each
    """
    check_shape(samples, "samples", "S B C H W")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], device=samples.device,
                     dtype=samples.dtype)
    lo, hi = torch.quantile(samples, q, dim=0)
    return lo, hi


def coverage(x: Tensor, samples: Tensor, *, level: float = 0.9) -> Tensor:
    """Fraction of the true pixels that fall inside the per-pixel credible interval.

    Args:
        x: ground-truth images.
        samples: sampled images.
        level: credible level of the interval.

    Returns:
        Fraction per image; a calibrated sampler gives ``level`` on average.

    Shape:
        - x: ``(B, C, H, W)``
        - samples: ``(S, B, C, H, W)``
        - output: ``(B,)``
    """
    check_shape(x, "x", "B C H W")
    if tuple(samples.shape[1:]) != tuple(x.shape):
        raise ValueError(f"samples must have shape (S, {', '.join(map(str, x.shape))}), "
                         f"got {tuple(samples.shape)}")
    lo, hi = credible_interval(samples, level=level)
    inside = (x >= lo) & (x <= hi)
    return inside.flatten(1).to(x.dtype).mean(1)


def std_error_correlation(std: Tensor, x_hat: Tensor, x: Tensor) -> Tensor:
    """Pearson correlation, per image, between the per-pixel std and the absolute error.

    Args:
        std: per-pixel posterior standard deviation.
        x_hat: the point estimate (usually the posterior mean).
        x: ground truth.

    Returns:
        Correlation per image (NaN where either map is constant).

    Shape:
        - std, x_hat, x: ``(B, C, H, W)``
        - output: ``(B,)``
    """
    for t, name in ((std, "std"), (x_hat, "x_hat"), (x, "x")):
        check_shape(t, name, "B C H W")
    if not std.shape == x_hat.shape == x.shape:
        raise ValueError(f"std, x_hat and x must have the same shape, got {tuple(std.shape)}, "
                         f"{tuple(x_hat.shape)}, {tuple(x.shape)}")
    a = std.flatten(1)
    e = (x_hat - x).abs().flatten(1)
    a = a - a.mean(1, keepdim=True)
    e = e - e.mean(1, keepdim=True)
    return (a * e).sum(1) / (a.norm(dim=1) * e.norm(dim=1))
