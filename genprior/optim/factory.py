"""Steps by name: the optimizer names of the latent solvers and the step each one builds."""

from __future__ import annotations

from genprior.optim.gauss_newton import GaussNewton
from genprior.optim.lbfgs import LBFGS
from genprior.optim.steps import SGD, Adam, LatentStep, ProblemStep

__all__ = ["OPTIMIZERS", "make_step"]

#: optimizer names accepted by :func:`make_step`
OPTIMIZERS = ("adam", "sgd", "lbfgs", "gauss-newton")


def make_step(optimizer: str | LatentStep | ProblemStep, lr: float,
              ) -> LatentStep | ProblemStep:
    """The step for an optimizer name at learning rate ``lr``, or the given step itself:
    ``"adam"`` (:class:`Adam`), ``"sgd"`` (:class:`SGD`), ``"lbfgs"``
    (:class:`~genprior.optim.lbfgs.LBFGS` with an Armijo line search from step ``lr``) or
    ``"gauss-newton"`` (:class:`~genprior.optim.gauss_newton.GaussNewton`, Levenberg-Marquardt
    with its default damping; ``lr`` is not used).

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(optimizer, LatentStep | ProblemStep):
        return optimizer
    if optimizer == "adam":
        return Adam(lr)
    if optimizer == "sgd":
        return SGD(lr)
    if optimizer == "lbfgs":
        return LBFGS(lr)
    if optimizer == "gauss-newton":
        return GaussNewton()
    raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a LatentStep, got {optimizer!r}")
