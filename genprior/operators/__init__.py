"""Linear measurement operators (deepinv ``LinearPhysics`` subclasses) with exact pseudo-inverses."""

from genprior.operators import downsample, gaussian_cs, inpaint, projection, structured_cs  # noqa: F401
from genprior.operators.base import OPERATORS, Operator, load_operator, register_operator

__all__ = ["Operator", "OPERATORS", "register_operator", "load_operator"]
