"""Linear measurement operators (deepinv ``LinearPhysics`` subclasses) with exact pseudo-inverses."""

from genprior.operators.base import (
    OPERATORS,
    Operator,
    OrthonormalRows,
    SeededDraws,
    load_operator,
    register_operator,
)
from genprior.operators.block_cs import BlockCS
from genprior.operators.downsample import Downsample
from genprior.operators.factory import SPEC_FORMS, make_operator
from genprior.operators.gaussian_cs import GaussianCS
from genprior.operators.inpaint import Inpaint
from genprior.operators.projection import RangeConstrained, affine_projection
from genprior.operators.structured_cs import StructuredCS

__all__ = [
    "OPERATORS",
    "SPEC_FORMS",
    "BlockCS",
    "Downsample",
    "GaussianCS",
    "Inpaint",
    "Operator",
    "OrthonormalRows",
    "RangeConstrained",
    "SeededDraws",
    "StructuredCS",
    "affine_projection",
    "load_operator",
    "make_operator",
    "register_operator",
]
