"""The shared optimisation layer of every latent method: objectives as objects, steps as small
classes, one batched descent loop.

- :mod:`~genprior.optim.data_fidelity`: the data term (a deepinv ``DataFidelity``) and the
  per-row helpers ``sum_sq`` and ``soft_threshold``.
- :mod:`~genprior.optim.latent_problem`: :class:`LatentProblem`, the objective
  :math:`f(z, c) = D(A(G(z) + \\Psi^\\top c), y) + R(z) + \\lambda_\\nu\\|c\\|_1` that CSGM,
  Sparse-Gen and the Langevin sampler share, with its latent terms and the sparse deviation.
- :mod:`~genprior.optim.steps`: one class per update rule (:class:`Adam`, :class:`SGD`,
  :class:`ProxGrad`) over batched, independent rows, and the base of the steps that evaluate
  the problem themselves (:class:`ProblemStep`: L-BFGS, Gauss-Newton).
- :mod:`~genprior.optim.lbfgs`, :mod:`~genprior.optim.gauss_newton`: :class:`LBFGS` (batched
  per-row quasi-Newton with an Armijo line search) and :class:`GaussNewton`
  (Levenberg-Marquardt on the latent with forward-mode Jacobians), the second-order steps.
- :mod:`~genprior.optim.factory`: :func:`make_step`, the step of an optimizer name
  (:data:`OPTIMIZERS`).
- :mod:`~genprior.optim.descent`: :func:`descend`, the loop that runs a problem with a step on
  all rows at once, with per-row early stopping and successive halving of restarts
  (:class:`Halving`).
"""

from genprior.optim.data_fidelity import WeightedL2, soft_threshold, sum_sq
from genprior.optim.descent import DescentRun, Halving, descend
from genprior.optim.factory import OPTIMIZERS, make_step
from genprior.optim.gauss_newton import GaussNewton, latent_jacobian
from genprior.optim.latent_problem import (
    GaussianLatent,
    LatentProblem,
    LatentTerm,
    NegLogPrior,
    SparseDeviation,
    autocast_decode,
)
from genprior.optim.lbfgs import LBFGS
from genprior.optim.steps import (
    SGD,
    Adam,
    LatentStep,
    ProblemStep,
    ProxGrad,
    StepOutcome,
)

__all__ = [
    "LBFGS",
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "DescentRun",
    "GaussNewton",
    "GaussianLatent",
    "Halving",
    "LatentProblem",
    "LatentStep",
    "LatentTerm",
    "NegLogPrior",
    "ProblemStep",
    "ProxGrad",
    "SparseDeviation",
    "StepOutcome",
    "WeightedL2",
    "autocast_decode",
    "descend",
    "latent_jacobian",
    "make_step",
    "soft_threshold",
    "sum_sq",
]
