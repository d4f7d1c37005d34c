"""Posterior sampling: latent Langevin (ULA, MALA), other sources of diverse reconstructions
(CSGM restarts, noise inputs of conditional generators), and sample summaries."""

from genprior.sampling.langevin import langevin, laplace_preconditioner, log_target
from genprior.sampling.result import SampleResult, summarize
from genprior.sampling.sources import METHODS, csgm_restarts, noise_draws, sample
from genprior.sampling.summary import coverage, credible_interval, ess, std_error_correlation

__all__ = [
    "METHODS",
    "SampleResult",
    "coverage",
    "credible_interval",
    "csgm_restarts",
    "ess",
    "langevin",
    "laplace_preconditioner",
    "log_target",
    "noise_draws",
    "sample",
    "std_error_correlation",
    "summarize",
]
