"""The one batched descent loop of every latent method."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genprior.optim.latent_problem import LatentProblem
from genprior.optim.steps import LatentStep, ProblemStep, ProxGrad

__all__ = ["DescentRun", "Halving", "descend"]

# how often (in steps) stopped rows are dropped from the active batch
_COMPACT_EVERY = 10


@dataclass
class DescentRun:
    """Where :func:`descend` left every row.

    Attributes:
        z: the latents.
        c: the deviation coefficients (``None`` without a deviation).
        history: the objective of every row before each step (a stopped row repeats its last).
        n_steps: steps each row took.
        evaluations: generator evaluations each row used (a gradient step counts one; see
            :class:`~genprior.optim.steps.StepOutcome` for the other steps).

    Shape:
        - z: ``(N, *latent_shape)``; c: ``(N, C, H, W)``; history: ``(T, N)``;
          n_steps, evaluations: ``(N,)``
    """

    z: Tensor
    c: Tensor | None
    history: Tensor
    n_steps: Tensor
    evaluations: Tensor


@dataclass(frozen=True)
class Halving:
    r"""Successive halving of restarts: every ``every`` steps, each group of ``group``
    consecutive rows (the restarts of one image) keeps the better half of its running rows
    (lowest objective, ties to the lower row; at least ``min_keep``) and stops the others.

    After :math:`k` rounds an image has :math:`\max(\lceil R / 2^k \rceil, \text{min\_keep})`
    running restarts; the decision uses only the image's own rows, so images stay independent
    of each other.

    Args:
        group: rows per image ``R`` (the number of rows must be a multiple of it).
        every: steps between halvings.
        min_keep: restarts that always keep running.
    """

    group: int
    every: int
    min_keep: int = 1

    def __post_init__(self) -> None:
        for name in ("group", "every", "min_keep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Halving.{name} must be an int >= 1, got {value!r}")

    def stop(self, value: Tensor, stopped: Tensor) -> Tensor:
        """The rows to stop now: per group, the running rows outside the better half.

        Shape:
            - value, stopped: ``(N,)`` (all rows); output: ``(N,)`` bool
        """
        v = torch.where(stopped, torch.inf, value).view(-1, self.group)
        running = (~stopped).view(-1, self.group).sum(1, keepdim=True)
        keep = torch.maximum((running + 1) // 2, torch.full_like(running, self.min_keep))
        rank = v.argsort(dim=1, stable=True).argsort(dim=1, stable=True)
        return ((rank >= keep) & ~stopped.view(-1, self.group)).view(-1)


def descend(
    problem: LatentProblem,
    z: Tensor,
    step: LatentStep,
    *,
    steps: int,
    early_stop_tol: float | None = None,
    patience: int = 50,
    halving: Halving | None = None,
) -> DescentRun:
    r"""Minimise ``problem`` from ``z`` independently for each of its ``N`` rows, all rows in
    one batched forward/backward per iteration.

    ``z`` moves by ``step``: a gradient rule (:class:`~genprior.optim.steps.LatentStep`) given
    one batched value-and-gradient per iteration, or a
    :class:`~genprior.optim.steps.ProblemStep` that evaluates the problem itself (L-BFGS,
    Gauss-Newton; not with a deviation). With a deviation, its coefficients ``c`` (starting at
    0) move at the same point by a proximal-gradient step
    (:class:`~genprior.optim.steps.ProxGrad` with the deviation's step and prox). A row whose
    objective has not improved by a relative ``early_stop_tol`` for ``patience`` steps stops,
    and with ``halving`` the worse half of each image's restarts stops every ``halving.every``
    steps: a stopped row's variables are frozen at once and it leaves the batch at the next
    compaction (every 10 steps, and right after each halving).

    Args:
        problem: the objective.
        z: starting latents.
        step: the update rule for ``z``.
        steps: the maximum number of iterations.
        early_stop_tol: ``None`` (run ``steps`` steps) or the relative tolerance.
        patience: steps without sufficient improvement before a row stops.
        halving: successive halving of each image's restarts (:class:`Halving`), or ``None``.

    Shape:
        - z: ``(N, *latent_shape)``

    Raises:
        ValueError: a :class:`~genprior.optim.steps.ProblemStep` on a problem with a
            deviation, or ``halving.group`` that does not divide ``N``.
    """
    n_rows = z.shape[0]
    z = z.detach().clone()
    dev = problem.deviation
    problem_step = isinstance(step, ProblemStep)
    if problem_step and dev is not None:
        raise ValueError(f"{type(step).__name__} does not handle a sparse deviation: use a "
                         f"gradient step (adam, sgd)")
    if halving is not None and n_rows % halving.group:
        raise ValueError(f"Halving.group={halving.group} does not divide the {n_rows} rows")
    c: Tensor | None = None  # allocated at the first step, in the image's shape
    c_step = None if dev is None else ProxGrad(dev.step, dev.prox)
    z_state = step.init_state(z)
    n_steps = torch.zeros(n_rows, dtype=torch.long, device=z.device)
    evaluations = torch.zeros(n_rows, dtype=torch.long, device=z.device)
    stopped = torch.zeros(n_rows, dtype=torch.bool, device=z.device)
    best = torch.full((n_rows,), float("inf"), dtype=z.dtype, device=z.device)
    stall = torch.zeros(n_rows, dtype=torch.long, device=z.device)
    last = torch.zeros(n_rows, dtype=z.dtype, device=z.device)
    history = torch.empty(steps, n_rows, dtype=z.dtype, device=z.device)
    rows: Tensor | slice = slice(None)
    t = 0
    for t in range(steps):
        if dev is not None and c is None:
            with torch.no_grad():
                shape = problem.decode(z[:1]).shape[1:]
            c = torch.zeros(n_rows, *shape, device=z.device, dtype=z.dtype)
        zs = z[rows]
        cs = None if c is None else c[rows]
        move = ~stopped[rows]
        if problem_step:
            outcome = step.advance(problem, zs, z_state, rows, move)
            loss = outcome.value.detach()
            with torch.no_grad():
                z[rows] = torch.where(move.view(-1, *([1] * (zs.ndim - 1))), outcome.z, zs)
                evaluations[rows] += torch.where(move, outcome.evaluations, 0)
        else:
            loss, gz, gc, _ = problem.value_and_grad(zs, cs, rows)
            with torch.no_grad():
                z[rows] = step.update(zs, gz, z_state, rows, move)
                if c_step is not None:
                    loss = loss + problem.nonsmooth(cs)
                    c[rows] = c_step.update(cs, gc, {}, rows, move)
                evaluations[rows] += move.long()
        with torch.no_grad():
            n_steps[rows] = n_steps[rows] + move.long()
            last[rows] = torch.where(move, loss, last[rows])
            history[t] = last
            compact = False
            if early_stop_tol is not None:
                improved = loss < best[rows] * (1 - early_stop_tol)
                best[rows] = torch.where(improved, loss, best[rows])
                stall[rows] = torch.where(improved, 0, stall[rows] + 1)
                stopped[rows] = stopped[rows] | (stall[rows] >= patience)
                compact = (t + 1) % _COMPACT_EVERY == 0
            if halving is not None and (t + 1) % halving.every == 0:
                stopped |= halving.stop(last, stopped)
                compact = True
            if compact:
                active = (~stopped).nonzero().squeeze(1)
                if active.numel() == 0:
                    break
                rows = active if active.numel() < n_rows else slice(None)
    return DescentRun(z=z, c=c, history=history[: t + 1], n_steps=n_steps,
                      evaluations=evaluations)
