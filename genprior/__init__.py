"""genprior: image reconstruction from incomplete, noisy measurements with learned generative
priors."""

from genprior.operators import OPERATORS, Operator, load_operator
from genprior.priors import ConditionalPrior, Prior, available_priors, load_prior

__version__ = "0.1.0"

__all__ = [
    "OPERATORS",
    "ConditionalPrior",
    "Operator",
    "Prior",
    "available_priors",
    "load_operator",
    "load_prior",
]
