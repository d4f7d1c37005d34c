"""The one batched descent loop of every latent method."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genprior.optim.latent_problem import LatentProblem
from genprior.optim.steps import LatentStep, ProxGrad

__all__ = ["DescentRun", "descend"]

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

    Shape:
        - z: ``(N, *latent_shape)``; c: ``(N, C, H, W)``; history: ``(T, N)``; n_steps: ``(N,)``
    """

    z: Tensor
    c: Tensor | None
    history: Tensor
    n_steps: Tensor


def descend(
    problem: LatentProblem,
    z: Tensor,
    step: LatentStep,
    *,
    steps: int,
    early_stop_tol: float | None = None,
    patience: int = 50,
) -> DescentRun:
    r"""Minimise ``problem`` from ``z`` independently for each of its ``N`` rows, all rows in
    one batched forward/backward per iteration.

    ``z`` moves by ``step``; with a deviation, its coefficients ``c`` (starting at 0) move at the
    same point by a proximal-gradient step (:class:`~genprior.optim.steps.ProxGrad` with the
    deviation's step and prox). A row whose objective has not improved by a relative
    ``early_stop_tol`` for ``patience`` steps stops: its variables are frozen at once and it
    leaves the batch at the next compaction (every 10 steps).

    Args:
        problem: the objective.
        z: starting latents.
        step: the update rule for ``z``.
        steps: the maximum number of iterations.
        early_stop_tol: ``None`` (run ``steps`` steps) or the relative tolerance.
        patience: steps without sufficient improvement before a row stops.

    Shape:
        - z: ``(N, *latent_shape)``
    """
    n_rows = z.shape[0]
    z = z.detach().clone()
    dev = problem.deviation
    c: Tensor | None = None  # allocated at the first step, in the image's shape
    c_step = None if dev is None else ProxGrad(dev.step, dev.prox)
    z_state = step.init_state(z)
    n_steps = torch.zeros(n_rows, dtype=torch.long, device=z.device)
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
        loss, gz, gc, _ = problem.value_and_grad(zs, cs, rows)
        with torch.no_grad():
            move = ~stopped[rows]
            z[rows] = step.update(zs, gz, z_state, rows, move)
            if c_step is not None:
                loss = loss + problem.nonsmooth(cs)
                c[rows] = c_step.update(cs, gc, {}, rows, move)
            n_steps[rows] = n_steps[rows] + move.long()
            last[rows] = torch.where(move, loss, last[rows])
            history[t] = last
            if early_stop_tol is not None:
                improved = loss < best[rows] * (1 - early_stop_tol)
                best[rows] = torch.where(improved, loss, best[rows])
                stall[rows] = torch.where(improved, 0, stall[rows] + 1)
                stopped[rows] = stopped[rows] | (stall[rows] >= patience)
                if (t + 1) % _COMPACT_EVERY == 0:
                    active = (~stopped).nonzero().squeeze(1)
                    if active.numel() == 0:
                        break
                    rows = active if active.numel() < n_rows else slice(None)
    return DescentRun(z=z, c=c, history=history[: t + 1], n_steps=n_steps)
