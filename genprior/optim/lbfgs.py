r"""Batched, per-row L-BFGS: one quasi-Newton iteration of every active row per call.

Each row keeps its own history of the last :math:`M` pairs
:math:`(s_j, y_j) = (z_{j+1} - z_j,\ \nabla f(z_{j+1}) - \nabla f(z_j))`, its own initial
Hessian scaling and its own step length, so a row's trajectory never depends on the other rows;
all rows share one batched value-and-gradient per iteration (and one batched objective per
line-search trial).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from genprior._checks import check_positive
from genprior.optim.steps import ProblemStep, StepOutcome

if TYPE_CHECKING:
    from genprior.optim.latent_problem import LatentProblem

__all__ = ["LBFGS", "LINE_SEARCHES", "lbfgs_direction"]

#: line searches accepted by :class:`LBFGS`
LINE_SEARCHES = (None, "armijo")

# torch.optim.LBFGS's curvature test: a pair is stored only where y's > this
_CURVATURE_EPS = 1e-10


def lbfgs_direction(g: Tensor, s: Tensor, y: Tensor, rho: Tensor, count: Tensor) -> Tensor:
    r"""The L-BFGS direction :math:`d = -H g` of every row by the two-loop recursion.

    Row :math:`i` uses its first ``count[i]`` pairs (oldest first) and the initial inverse
    Hessian :math:`H_0 = \gamma I`, :math:`\gamma = s^\top y / y^\top y` of its newest pair
    (:math:`\gamma = 1` without pairs, so then :math:`d = -g`). The operations are those of
    ``torch.optim.LBFGS``.

    Args:
        g: gradients.
        s: steps :math:`s_j`, the row's pairs at positions ``0 .. count - 1``.
        y: gradient differences :math:`y_j`.
        rho: :math:`\rho_j = 1 / y_j^\top s_j`.
        count: pairs stored per row.

    Returns:
        The directions :math:`d`.

    Shape:
        - g: ``(n, d)``; s, y: ``(n, M, d)``; rho: ``(n, M)``; count: ``(n,)``; output:
          ``(n, d)``

    Example:
        >>> g = torch.tensor([[2.0, -4.0]])
        >>> s, y = torch.tensor([[[1.0, 1.0]]]), torch.tensor([[[2.0, 2.0]]])  # f = |z|^2
        >>> lbfgs_direction(g, s, y, 1 / (s * y).sum(-1), torch.tensor([1]))
        tensor([[-1.,  2.]])
    """
    n, n_pairs, _ = s.shape
    valid = torch.arange(n_pairs, device=g.device) < count[:, None]  # (n, M)
    rows = torch.arange(n, device=g.device)
    newest = (count - 1).clamp(min=0)
    s_new, y_new = s[rows, newest], y[rows, newest]
    ys = (y_new * s_new).sum(1)
    gamma = torch.where(count > 0, ys / (y_new * y_new).sum(1), torch.ones_like(ys))
    q = g.neg()
    alpha = [torch.zeros_like(ys)] * n_pairs
    for j in range(n_pairs - 1, -1, -1):
        alpha[j] = torch.where(valid[:, j], (s[:, j] * q).sum(1) * rho[:, j], 0.0)
        q = torch.where(valid[:, j, None], q - alpha[j][:, None] * y[:, j], q)
    r = q * gamma[:, None]
    for j in range(n_pairs):
        beta = (y[:, j] * r).sum(1) * rho[:, j]
        r = torch.where(valid[:, j, None], r + s[:, j] * (alpha[j] - beta)[:, None], r)
    return r


def _full_index(rows: Tensor | slice, n_rows: int, device: torch.device) -> Tensor:
    """The full-batch indices (a LongTensor) of the active rows ``rows``."""
    if isinstance(rows, slice):
        return torch.arange(n_rows, device=device)[rows]
    rows = torch.as_tensor(rows, device=device)
    if rows.dtype == torch.bool:
        return rows.nonzero().squeeze(1)
    return rows.long()


class LBFGS(ProblemStep):
    r"""Limited-memory BFGS on every row independently, one iteration per call.

    At the incoming latent :math:`z_k` (flattened to a vector of :math:`d` entries) with
    gradient :math:`g_k`, a row

    1. stores the pair :math:`s = t_{k-1} d_{k-1}` (the step it actually took),
       :math:`y = g_k - g_{k-1}` where :math:`y^\top s > 10^{-10}`, dropping its oldest pair
       beyond ``history_size``;
    2. takes the direction :math:`d_k = -H_k g_k` of the two-loop recursion
       (:func:`lbfgs_direction`); where :math:`d_k^\top g_k \ge 0` it forgets its pairs and
       takes :math:`d_k = -g_k`;
    3. moves to :math:`z_k + t_k d_k`, from the initial step
       :math:`t = \eta\,\min(1, 1/\|g_k\|_1)` on a fresh start (its first step, or right after
       it forgot its pairs) and :math:`t = \eta` otherwise.

    Without a line search this is ``torch.optim.LBFGS(lr=lr, max_iter=1,
    line_search_fn=None)`` stepped once per call (torch, instead of falling back to
    :math:`-g_k`, skips a non-descent step; the curvature test rules one out up to rounding),
    one evaluation a step. With ``line_search="armijo"``, :math:`t` is multiplied by ``shrink``
    until :math:`f(z_k + t d_k) \le f(z_k) + c_1 t\, g_k^\top d_k` (and is finite), all rows
    still searching evaluated in one batch; a row that finds no such :math:`t` within
    ``max_ls`` trials stays where it is (:math:`t = 0`) and forgets its pairs. A step costs one
    value-and-gradient plus one evaluation per trial. The test compares objective values, so a
    row stops improving once their differences are rounding (in float64 near
    :math:`|z - z^\star| \approx 10^{-8}`); from then on each of its steps fails after
    ``max_ls`` trials: stop it by ``descend``'s ``early_stop_tol``.

    The state of the ``N`` rows (from :meth:`init_state`), with :math:`M` = ``history_size``:

    - ``s``, ``y``: ``(N, M, d)``, the pairs, oldest first at positions ``0 .. count - 1``
      (a full history shifts left by one to take a new pair at ``M - 1``);
    - ``rho``: ``(N, M)``, :math:`1 / y_j^\top s_j`;
    - ``count``: ``(N,)`` long, pairs stored; ``k``: ``(N,)`` long, steps taken;
    - ``prev_g``, ``prev_d``: ``(N, d)``, the gradient and direction of the previous step;
    - ``prev_t``: ``(N,)``, its step length (0 before the first step and after a failed line
      search: the next step then starts fresh).

    Args:
        lr: the step :math:`\eta > 0` (the initial trial of the line search).
        history_size: pairs :math:`M` each row keeps.
        line_search: ``None`` (fixed step) or ``"armijo"`` (backtracking).
        max_ls: the most trials of the line search.
        c1: the sufficient-decrease constant :math:`c_1 \in (0, 1)`.
        shrink: the backtracking factor in :math:`(0, 1)`.

    Raises:
        ValueError: an argument out of its range, or an unknown ``line_search``.

    Example:
        >>> import deepinv
        >>> from genprior.optim import GaussianLatent, LatentProblem, descend
        >>> from genprior.priors.linear import LinearGenerator
        >>> G = LinearGenerator(torch.eye(4), None, (1, 2, 2))
        >>> A = deepinv.physics.Inpainting(img_size=(1, 2, 2), mask=torch.ones(1, 2, 2))
        >>> problem = LatentProblem(torch.ones(2, 1, 2, 2), A, G.decode,
        ...                         latent=GaussianLatent(1.0))
        >>> run = descend(problem, torch.zeros(2, 4), LBFGS(), steps=3)
        >>> run.z  # the minimiser of ||z - 1||^2 + ||z||^2
        tensor([[0.5000, 0.5000, 0.5000, 0.5000],
                [0.5000, 0.5000, 0.5000, 0.5000]])
        >>> run.evaluations  # per step: a value-and-gradient and one line-search trial
        tensor([6, 6])
    """

    def __init__(self, lr: float = 1.0, *, history_size: int = 10,
                 line_search: str | None = "armijo", max_ls: int = 10, c1: float = 1e-4,
                 shrink: float = 0.5) -> None:
        check_positive(lr, "lr")
        for name, value in (("history_size", history_size), ("max_ls", max_ls)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search must be one of {LINE_SEARCHES}, got {line_search!r}")
        for name, value in (("c1", c1), ("shrink", shrink)):
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        self.lr = float(lr)
        self.history_size = history_size
        self.line_search = line_search
        self.max_ls = max_ls
        self.c1 = float(c1)
        self.shrink = float(shrink)

    def init_state(self, z: Tensor) -> dict[str, Tensor]:
        n, d, M = z.shape[0], z[0].numel(), self.history_size
        like = {"device": z.device, "dtype": z.dtype}
        long = {"device": z.device, "dtype": torch.long}
        return {"s": torch.zeros(n, M, d, **like), "y": torch.zeros(n, M, d, **like),
                "rho": torch.zeros(n, M, **like), "count": torch.zeros(n, **long),
                "k": torch.zeros(n, **long), "prev_g": torch.zeros(n, d, **like),
                "prev_d": torch.zeros(n, d, **like), "prev_t": torch.zeros(n, **like)}

    @torch.no_grad()
    def advance(self, problem: LatentProblem, z: Tensor, state: dict[str, Tensor],
                rows: Tensor | slice, move: Tensor) -> StepOutcome:
        n, M = z.shape[0], self.history_size
        idx = _full_index(rows, state["k"].shape[0], z.device)
        value, g = problem.value_and_grad(z, None, rows)[:2]
        x, g = z.detach().reshape(n, -1), g.reshape(n, -1)
        s, y, rho = state["s"][idx], state["y"][idx], state["rho"][idx]
        count, k = state["count"][idx], state["k"][idx]
        prev_g, prev_d, prev_t = state["prev_g"][idx], state["prev_d"][idx], state["prev_t"][idx]
        ar = torch.arange(n, device=z.device)

        # 1. the pair of the previous step, where it satisfies the curvature condition
        s_new, y_new = prev_d * prev_t[:, None], g - prev_g
        ys = (y_new * s_new).sum(1)
        store = (k > 0) & (ys > _CURVATURE_EPS)
        shift = (store & (count == M))[:, None, None]
        s, y = torch.where(shift, s.roll(-1, 1), s), torch.where(shift, y.roll(-1, 1), y)
        rho = torch.where(shift[:, :, 0], rho.roll(-1, 1), rho)
        pos = count.clamp(max=M - 1)
        s[ar, pos] = torch.where(store[:, None], s_new, s[ar, pos])
        y[ar, pos] = torch.where(store[:, None], y_new, y[ar, pos])
        rho[ar, pos] = torch.where(store, 1.0 / ys, rho[ar, pos])
        count = torch.where(store, (count + 1).clamp(max=M), count)

        # 2. the direction; rows without descent forget their pairs and go down the gradient
        d = lbfgs_direction(g, s, y, rho, count)
        gtd = (g * d).sum(1)
        reset = ~(gtd < 0)
        d = torch.where(reset[:, None], g.neg(), d)
        gtd = torch.where(reset, (g * d).sum(1), gtd)

        # 3. the step length
        fresh = reset | (prev_t == 0)
        t = torch.where(fresh, (1.0 / g.abs().sum(1)).clamp(max=1.0) * self.lr,
                        torch.full_like(gtd, self.lr))
        evaluations = torch.ones(n, device=z.device, dtype=torch.long)
        if self.line_search == "armijo":
            t, failed, evaluations = self._armijo(problem, z, x, d, value, gtd, t, idx, move)
            reset = reset | failed

        # 4. forget the pairs of the rows that reset; write the state of the moving rows
        forget = reset[:, None]
        s = torch.where(forget[:, :, None], 0.0, s)
        y = torch.where(forget[:, :, None], 0.0, y)
        rho = torch.where(forget, 0.0, rho)
        count = torch.where(reset, 0, count)
        new = {"s": s, "y": y, "rho": rho, "count": count, "k": k + 1, "prev_g": g,
               "prev_d": d, "prev_t": t}
        for key, val in new.items():
            old = state[key][idx]
            state[key][idx] = torch.where(move.view(-1, *([1] * (old.ndim - 1))), val, old)
        x_new = torch.where((move & (t != 0))[:, None], x + t[:, None] * d, x)
        return StepOutcome(value=value, z=x_new.reshape(z.shape),
                           evaluations=torch.where(move, evaluations, 0))

    def _armijo(self, problem: LatentProblem, z: Tensor, x: Tensor, d: Tensor, value: Tensor, gtd: Tensor,
                t: Tensor, idx: Tensor, move: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Backtracking from ``t`` on the moving rows; returns the accepted steps (0 where
        none), the rows that found none and the evaluations of each row."""
        t = t.clone()
        evaluations = torch.ones(x.shape[0], device=x.device, dtype=torch.long)
        pending = move.clone()
        for _ in range(self.max_ls):
            sub = pending.nonzero().squeeze(1)
            if sub.numel() == 0:
                break
            x_try = x[sub] + t[sub, None] * d[sub]
            f = problem.objective(x_try.reshape(-1, *z.shape[1:]), None, idx[sub])
            ok = torch.isfinite(f) & (f <= value[sub] + self.c1 * t[sub] * gtd[sub])
            evaluations[sub] += 1
            pending[sub[ok]] = False
            t[sub[~ok]] *= self.shrink
        return torch.where(pending, 0.0, t), pending, evaluations
