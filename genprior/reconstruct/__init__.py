"""Reconstruction solvers: CSGM latent optimisation, Sparse-Gen, image-adaptive IAGAN with
back-projection, and the Lasso, total-variation, pseudo-inverse and bicubic baselines, all
returning :class:`ReconstructionResult` dataclasses."""

from genprior.reconstruct._problem import fit_prior
from genprior.reconstruct.adaptive import AdaptiveResult, adapt_weights, adaptive
from genprior.reconstruct.back_projection import back_project
from genprior.reconstruct.baselines import bicubic, pinv
from genprior.reconstruct.bases import BASES, Basis, get_basis
from genprior.reconstruct.csgm import csgm, encoder_latent
from genprior.reconstruct.lasso import lasso
from genprior.reconstruct.methods import METHODS, PRIOR_METHODS, reconstruct
from genprior.reconstruct.result import CSGMResult, ReconstructionResult, SparseGenResult
from genprior.reconstruct.sparse_gen import sparse_gen
from genprior.reconstruct.tv import tv

__all__ = [
    "BASES",
    "METHODS",
    "PRIOR_METHODS",
    "AdaptiveResult",
    "Basis",
    "CSGMResult",
    "ReconstructionResult",
    "SparseGenResult",
    "adapt_weights",
    "adaptive",
    "back_project",
    "bicubic",
    "csgm",
    "encoder_latent",
    "fit_prior",
    "get_basis",
    "lasso",
    "pinv",
    "reconstruct",
    "sparse_gen",
    "tv",
]
