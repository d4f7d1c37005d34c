"""Posterior sampling: latent Langevin (ULA, MALA), the misfit model that lets samples leave the
generator's range, other sources of diverse reconstructions (CSGM restarts, noise inputs of
conditional generators), sample summaries and split-conformal calibration of intervals."""

from genprior.sampling.conformal import (
    SCORES,
    ConformalScale,
    conformal_scores,
    fit_conformal,
    interval_base,
)
from genprior.sampling.langevin import langevin, laplace_preconditioner, log_target
from genprior.sampling.marginal import (
    MAX_DENSE,
    MarginalCovariance,
    WhitenedOperator,
    marginal_covariance,
    matheron,
)
from genprior.sampling.misfit import MISFIT_NAME, MisfitCovariance, fit_misfit
from genprior.sampling.misfit_langevin import misfit_posterior
from genprior.sampling.result import SampleResult, summarize
from genprior.sampling.sources import METHODS, csgm_restarts, noise_draws, sample
from genprior.sampling.summary import coverage, credible_interval, ess, std_error_correlation

__all__ = [
    "MAX_DENSE",
    "METHODS",
    "MISFIT_NAME",
    "SCORES",
    "ConformalScale",
    "MarginalCovariance",
    "MisfitCovariance",
    "SampleResult",
    "WhitenedOperator",
    "conformal_scores",
    "coverage",
    "credible_interval",
    "csgm_restarts",
    "ess",
    "fit_conformal",
    "fit_misfit",
    "interval_base",
    "langevin",
    "laplace_preconditioner",
    "log_target",
    "marginal_covariance",
    "matheron",
    "misfit_posterior",
    "noise_draws",
    "sample",
    "std_error_correlation",
    "summarize",
]
