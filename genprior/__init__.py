"""genprior: image reconstruction from incomplete, noisy measurements with learned generative
priors."""

from genprior.operators import OPERATORS, Operator, load_operator
from genprior.priors import Prior, available_priors, load_prior

__version__ = "0.1.0"

__all__ = ["Operator", "OPERATORS", "load_operator", "Prior", "load_prior", "available_priors"]
