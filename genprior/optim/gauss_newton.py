r"""Batched Gauss-Newton / Levenberg-Marquardt steps on the latent.

For the least-squares objective of a row,

.. math::
    f(z) = w\,\|r(z)\|_2^2 + \lambda\|z\|_2^2, \qquad r(z) = A\,G(z) - y,

with the Jacobian :math:`J = \partial (A\,G(z)) / \partial z` (:math:`m \times d`), the
Levenberg-Marquardt step solves

.. math::
    \big(w\,J^\top J + (\lambda + \mu) I\big)\,\delta = -\big(w\,J^\top r + \lambda z\big)

(half the gradient on the right) and proposes :math:`z + \delta`; :math:`\mu = 0` is plain
Gauss-Newton. On a linear generator one Gauss-Newton step lands on the ridge least-squares
minimiser. :math:`J` comes column by column from forward-mode Jacobian-vector products: rows are
independent and :math:`G` acts per row, so one batched JVP with the tangent :math:`e_k` in every
row gives column :math:`k` of every row's Jacobian (:func:`latent_jacobian`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from genprior._checks import check_positive
from genprior._physics import forward
from genprior.optim.data_fidelity import WeightedL2
from genprior.optim.latent_problem import GaussianLatent, LatentProblem
from genprior.optim.steps import ProblemStep, StepOutcome

__all__ = ["GaussNewton", "Linearization", "latent_jacobian"]


@dataclass
class Linearization:
    r"""The measurement map of each row linearised at its latent:
    :math:`A\,G(z + \delta) - y \approx r + J\,\delta`.

    Attributes:
        measured: :math:`A\,G(z)`, in the measurements' shape.
        residual: :math:`r = A\,G(z) - y`, flattened per row.
        jacobian: :math:`J = \partial (A\,G(z)) / \partial z`, with the latent flattened.

    Shape:
        - measured: ``(n, *meas_shape)``; residual: ``(n, m)``; jacobian: ``(n, m, d)``
    """

    measured: Tensor
    residual: Tensor
    jacobian: Tensor


def _identity(x: Tensor) -> Tensor:
    return x


def _check_chunk(chunk: int | None) -> None:
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be None or an int >= 1, got {chunk!r}")


def latent_jacobian(problem: LatentProblem, z: Tensor, rows: Tensor | slice = slice(None), *,
                    chunk: int | None = None) -> Linearization:
    r"""The residual and the Jacobian of :math:`z \mapsto A\,G(z)` for every row, by ``d``
    forward-mode JVPs (:func:`torch.func.jvp`), vectorised over the basis directions with
    :func:`torch.func.vmap`.

    The directions go ``chunk`` at a time (all at once by default), which bounds the memory of
    the vectorised JVP; a generator that ``vmap`` cannot batch falls back to a Python loop over
    the directions (still one batched JVP per direction, so the result is the same). The
    generator must act on each row on its own (no batch statistics). Computed without a graph.

    Args:
        problem: the problem (its ``A``, ``decode`` and measurements ``y[rows]``).
        z: the latents of the rows ``rows``.
        rows: which rows of ``problem`` these are.
        chunk: directions per vectorised JVP (``None``: all ``d``).

    Returns:
        The :class:`Linearization` (``measured``, ``residual``, ``jacobian``).

    Shape:
        - z: ``(n, *latent_shape)``; jacobian: ``(n, m, d)`` with ``d`` the latent size and
          ``m`` the measurement size

    Example:
        >>> import torch, deepinv
        >>> from genprior.priors.linear import LinearGenerator
        >>> G = LinearGenerator(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), None, (1, 1, 2))
        >>> A = deepinv.physics.Inpainting(img_size=(1, 1, 2), mask=torch.ones(1, 1, 2))
        >>> problem = LatentProblem(torch.zeros(1, 1, 1, 2), A, G.decode)
        >>> latent_jacobian(problem, torch.ones(1, 2)).jacobian
        tensor([[[1., 0.],
                 [0., 2.]]])
    """
    _check_chunk(chunk)
    z = z.detach()
    n, latent_shape = z.shape[0], z.shape[1:]
    d = math.prod(latent_shape)

    def measure(u: Tensor) -> Tensor:
        return forward(problem.A, problem.image(u))  # G(u), in the measurements' dtype

    def column(e: Tensor) -> tuple[Tensor, Tensor]:
        # the same direction e_k in every row: column k of every row's Jacobian
        return torch.func.jvp(measure, (z,), (e.reshape(latent_shape).expand(n, *latent_shape),))

    basis = torch.eye(d, dtype=z.dtype, device=z.device)
    step = d if chunk is None else chunk
    measured: Tensor | None = None
    columns = []
    vectorise = True
    with torch.no_grad():  # forward-mode AD ignores grad mode; no graph on G's parameters
        for start in range(0, d, step):
            directions = basis[start:start + step]
            try:
                if not vectorise:
                    raise RuntimeError("vmap failed on an earlier chunk")
                primal, tangents = torch.func.vmap(column)(directions)
                primal = primal[0]
            except (RuntimeError, NotImplementedError):  # a module vmap cannot batch
                vectorise = False
                outputs = [column(e) for e in directions]
                primal = outputs[0][0]
                tangents = torch.stack([t for _, t in outputs])
            if measured is None:
                measured = primal
            columns.append(tangents.reshape(directions.shape[0], n, -1))
        jacobian = torch.cat(columns).permute(1, 2, 0)
        residual = (measured - problem.y[rows]).reshape(n, -1)
    return Linearization(measured=measured, residual=residual, jacobian=jacobian)


class GaussNewton(ProblemStep):
    r"""Levenberg-Marquardt (``damping > 0``) or Gauss-Newton (``damping = 0``) step on the
    latent, one damping :math:`\mu` per row.

    Each call linearises every active row (:func:`latent_jacobian`: ``d`` JVPs, which also give
    :math:`r`), solves

    .. math::
        \big(w\,J^\top J + (\lambda + \mu) I\big)\,\delta = -\big(w\,J^\top r + \lambda z\big)

    by a batched Cholesky factorisation (a row whose matrix is singular or numerically so, e.g.
    :math:`\lambda = \mu = 0` with a rank-deficient :math:`J`, takes the minimum-norm step of its
    pseudo-inverse instead) and evaluates :math:`f(z + \delta)` once. With damping the trial is
    accepted where :math:`f` decreases (then :math:`\mu \leftarrow \max(\mu \cdot
    \text{decrease}, \text{min\_damping})`) and rejected otherwise (the row keeps :math:`z`, and
    :math:`\mu \leftarrow \mu \cdot \text{increase}`); a rejection still counts as a step, so
    every call costs the same ``d + 1`` generator evaluations per row. Without damping every
    trial is accepted. The objective therefore never increases along a damped row's history.

    Rows are independent: a row's trajectory agrees with the one it has alone up to rounding,
    except that once :math:`f(z + \delta)` and :math:`f(z)` agree to rounding (the floor of a
    minimum with a residual, e.g. :math:`\lambda > 0`), accepting depends on that rounding, so
    two such runs may end about :math:`\sqrt{\epsilon}` apart (relative): as far as :math:`f`
    can tell the minimiser there.

    Only for the data term :class:`~genprior.optim.data_fidelity.WeightedL2` (:math:`w`) and
    the latent terms ``None`` or :class:`~genprior.optim.latent_problem.GaussianLatent`
    (:math:`\lambda`), without a sparse deviation; the latent size ``d`` is at most
    ``max_dim``, since each row stores a ``(m, d)`` Jacobian and factorises a ``(d, d)``
    matrix.

    Args:
        damping: the starting :math:`\mu_0 \ge 0` of every row (0: Gauss-Newton).
        increase: the factor :math:`> 1` on :math:`\mu` after a rejected trial.
        decrease: the factor in :math:`(0, 1)` on :math:`\mu` after an accepted trial.
        min_damping: the floor :math:`\ge 0` of :math:`\mu` after a decrease.
        max_dim: the largest latent size ``d`` accepted.
        chunk: basis directions per vectorised JVP (``None``: all ``d`` at once).

    Shape:
        - z: ``(n, *latent_shape)``; state ``mu``: ``(N,)``

    Raises:
        ValueError: (in :meth:`advance`) another data or latent term, a deviation, or
            ``d > max_dim``.

    Example:
        >>> import torch, deepinv
        >>> from genprior.optim import GaussianLatent, LatentProblem, descend
        >>> from genprior.priors.linear import LinearGenerator
        >>> G = LinearGenerator(torch.eye(4), None, (1, 2, 2))
        >>> A = deepinv.physics.Inpainting(img_size=(1, 2, 2), mask=torch.ones(1, 2, 2))
        >>> problem = LatentProblem(torch.ones(1, 1, 2, 2), A, G.decode,
        ...                         latent=GaussianLatent(1.0))
        >>> run = descend(problem, torch.zeros(1, 4), GaussNewton(0.0), steps=2)
        >>> run.z  # argmin ||z - 1||^2 + ||z||^2, reached in one step
        tensor([[0.5000, 0.5000, 0.5000, 0.5000]])
        >>> run.evaluations  # d + 1 = 5 per step
        tensor([10])
    """

    def __init__(self, damping: float = 1e-4, *, increase: float = 10.0, decrease: float = 0.3,
                 min_damping: float = 1e-10, max_dim: int = 4096, chunk: int | None = None,
                 ) -> None:
        check_positive(damping, "damping", allow_zero=True)
        check_positive(min_damping, "min_damping", allow_zero=True)
        if not increase > 1 or not math.isfinite(increase):
            raise ValueError(f"increase must be a finite number > 1, got {increase}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be in (0, 1), got {decrease}")
        if isinstance(max_dim, bool) or not isinstance(max_dim, int) or max_dim < 1:
            raise ValueError(f"max_dim must be an int >= 1, got {max_dim!r}")
        _check_chunk(chunk)
        self.damping = float(damping)
        self.increase = float(increase)
        self.decrease = float(decrease)
        self.min_damping = float(min_damping)
        self.max_dim = max_dim
        self.chunk = chunk

    def init_state(self, z: Tensor) -> dict[str, Tensor]:
        return {"mu": torch.full((z.shape[0],), self.damping, dtype=z.dtype, device=z.device)}

    def _check(self, problem: LatentProblem, d: int) -> float:
        """The latent weight :math:`\\lambda`, after checking that the problem is one this step
        solves."""
        if getattr(problem, "deviation", None) is not None:
            raise ValueError("GaussNewton does not handle a sparse deviation: use a gradient "
                             "step (adam, sgd)")
        if not isinstance(problem.data, WeightedL2):
            raise ValueError(  # noqa: TRY004 (a problem this step does not solve, like below)
                f"GaussNewton needs a WeightedL2 data term, got {type(problem.data).__name__}: "
                f"use L-BFGS or Adam")
        latent = problem.latent
        if latent is not None and not isinstance(latent, GaussianLatent):
            raise ValueError(f"GaussNewton handles the latent terms None and GaussianLatent, got "
                             f"{type(latent).__name__}: use L-BFGS or Adam")
        if d > self.max_dim:
            raise ValueError(f"GaussNewton: latent size d={d} exceeds max_dim={self.max_dim} "
                             f"(a d x d solve per row); use L-BFGS or Adam")
        return 0.0 if latent is None else float(latent.weight)

    def advance(self, problem, z, state, rows, move):
        n = z.shape[0]
        d = math.prod(z.shape[1:])
        lam = self._check(problem, d)
        w = problem.data.weight
        z = z.detach()
        lin = latent_jacobian(problem, z, rows, chunk=self.chunk)
        with torch.no_grad():
            # f(z) from the JVP's A G(z), in the same arithmetic as problem.objective
            value = problem.data.fn(lin.measured, problem.y[rows], _identity)
            if problem.latent is not None:
                value = value + problem.latent.fn(z)
            mu = state["mu"][rows]
            delta = _damped_step(lin.jacobian, lin.residual, z.reshape(n, d), w, lam, mu)
            trial = z + delta.reshape(z.shape).to(z.dtype)
            trial_value = problem.objective(trial, None, rows)
            if self.damping == 0:
                accept = torch.ones_like(move)
                new_mu = mu
            else:
                accept = trial_value < value  # False on NaN
                new_mu = torch.where(accept, (mu * self.decrease).clamp(min=self.min_damping),
                                     mu * self.increase)
            state["mu"][rows] = torch.where(move, new_mu, mu)
            keep = (move & accept).view(-1, *([1] * (z.ndim - 1)))
            z_new = torch.where(keep, trial, z)
            evaluations = torch.where(move, d + 1, 0)
        return StepOutcome(value=value, z=z_new, evaluations=evaluations)


def _damped_step(J: Tensor, r: Tensor, z: Tensor, w: float, lam: float, mu: Tensor) -> Tensor:
    r""":math:`\delta = -(w J^\top J + (\lambda + \mu) I)^{-1}(w J^\top r + \lambda z)` per row,
    by Cholesky; rows whose matrix is (numerically) singular use its pseudo-inverse.

    Shape:
        - J: ``(n, m, d)``; r: ``(n, m)``; z: ``(n, d)``; mu: ``(n,)``; output: ``(n, d)``
    """
    d = J.shape[-1]
    Jh = J.mH  # complex measurements: the real part of J^H J and J^H r
    gram = (Jh @ J).real  # in the measurements' precision, which z follows here
    grad = w * (Jh @ r.unsqueeze(-1)).real.squeeze(-1) + lam * z.to(gram.dtype)
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    H = w * gram + (lam + mu).view(-1, 1, 1) * eye
    L, info = torch.linalg.cholesky_ex(H)
    delta = -torch.cholesky_solve(grad.unsqueeze(-1), L).squeeze(-1)
    # a factorisation that failed, or whose pivots span more than 1/(d eps): singular
    pivots = L.diagonal(dim1=-2, dim2=-1).abs()
    eps = torch.finfo(H.dtype).eps
    singular = (info != 0) | (pivots.amin(-1) ** 2 <= d * eps * pivots.amax(-1) ** 2)
    singular |= ~torch.isfinite(delta).all(-1)
    if bool(singular.any()):
        pinv = torch.linalg.pinv(H[singular], hermitian=True)
        delta[singular] = -(pinv @ grad[singular].unsqueeze(-1)).squeeze(-1)
    return delta
