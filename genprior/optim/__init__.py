"""The shared optimisation layer of every latent method: objectives as objects, steps as small
classes, one batched descent loop.

- :mod:`~genprior.optim.data_fidelity`: the data term (a deepinv ``DataFidelity``) and the
  per-row helpers ``sum_sq`` and ``soft_threshold``.
- :mod:`~genprior.optim.latent_problem`: :class:`LatentProblem`, the objective
  :math:`f(z, c) = D(A(G(z) + \\Psi^\\top c), y) + R(z) + \\lambda_\\nu\\|c\\|_1` that CSGM,
  Sparse-Gen and the Langevin sampler share, with its latent terms and the sparse deviation.
- :mod:`~genprior.optim.steps`: one class per update rule (:class:`Adam`, :class:`SGD`,
  :class:`ProxGrad`) over batched, independent rows.
- :mod:`~genprior.optim.descent`: :func:`descend`, the loop that runs a problem with a step on
  all rows at once, with per-row early stopping.
"""

from genprior.optim.data_fidelity import WeightedL2, soft_threshold, sum_sq
from genprior.optim.descent import DescentRun, descend
from genprior.optim.latent_problem import (
    GaussianLatent,
    LatentProblem,
    LatentTerm,
    NegLogPrior,
    SparseDeviation,
)
from genprior.optim.steps import SGD, Adam, LatentStep, ProxGrad, make_step

__all__ = [
    "SGD",
    "Adam",
    "DescentRun",
    "GaussianLatent",
    "LatentProblem",
    "LatentStep",
    "LatentTerm",
    "NegLogPrior",
    "ProxGrad",
    "SparseDeviation",
    "WeightedL2",
    "descend",
    "make_step",
    "soft_threshold",
    "sum_sq",
]
