r"""Update rules over batched, independent rows: one small class per rule.

Every step keeps its state per row, so a row's trajectory never depends on the other rows. A
step is called on the *active* rows only (``rows``, an index into the full batch) with a mask
``move`` of the rows that still move; frozen rows keep their variable and state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from genprior._checks import check_positive

__all__ = ["SGD", "Adam", "LatentStep", "ProblemStep", "ProxGrad", "StepOutcome"]


def _rows_mask(move: Tensor, like: Tensor) -> Tensor:
    return move.view(-1, *([1] * (like.ndim - 1)))


class LatentStep:
    """One update rule on a batch of rows.

    Subclasses implement :meth:`update`; :meth:`init_state` allocates per-row state.
    """

    def init_state(self, v: Tensor) -> dict[str, Tensor]:
        """Per-row state for the full batch ``v`` (``(N, ...)``)."""
        return {}

    def update(self, v: Tensor, g: Tensor, state: dict[str, Tensor], rows: Tensor | slice,
               move: Tensor) -> Tensor:
        """The new values of the active rows ``v = full[rows]`` given their gradient ``g``;
        rows where ``move`` is False keep their value and state.

        Shape:
            - v, g: ``(n, ...)``; move: ``(n,)``; output: ``(n, ...)``
        """
        raise NotImplementedError


@dataclass
class StepOutcome:
    """What a :class:`ProblemStep` returns for the active rows.

    Attributes:
        value: the objective at the rows' *incoming* latents (what the history records).
        z: the new latents (rows where ``move`` is False: their incoming latents).
        evaluations: generator evaluations each row used in this step (a forward pass, a
            forward + backward pass and one Jacobian-vector product each count as one).

    Shape:
        - value, evaluations: ``(n,)``; z: ``(n, *latent_shape)``
    """

    value: Tensor
    z: Tensor
    evaluations: Tensor


class ProblemStep:
    """An update rule that evaluates the problem itself: second-order and quasi-Newton steps
    (line searches, Jacobians) on problems without a sparse deviation.

    Like :class:`LatentStep` it keeps its state per row (full-batch tensors indexed by
    ``rows``), so a row's trajectory never depends on the other rows.
    """

    def init_state(self, z: Tensor) -> dict[str, Tensor]:
        """Per-row state for the full batch ``z`` (``(N, *latent_shape)``)."""
        return {}

    def advance(self, problem, z: Tensor, state: dict[str, Tensor], rows: Tensor | slice,
                move: Tensor) -> StepOutcome:
        """One step of the active rows ``z = full[rows]`` of ``problem`` (a
        :class:`~genprior.optim.latent_problem.LatentProblem`; pass ``rows`` to its methods);
        rows where ``move`` is False keep their latent and state.

        Shape:
            - z: ``(n, *latent_shape)``; move: ``(n,)``
        """
        raise NotImplementedError


class SGD(LatentStep):
    r"""Plain gradient step :math:`v \leftarrow v - \eta\, g`.

    Args:
        lr: the step :math:`\eta > 0`.
    """

    def __init__(self, lr: float) -> None:
        check_positive(lr, "lr")
        self.lr = float(lr)

    def update(self, v, g, state, rows, move):
        return torch.where(_rows_mask(move, v), v - self.lr * g, v)


class Adam(LatentStep):
    r"""``torch.optim.Adam``'s update (no weight decay, no amsgrad), one state per row.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad s \leftarrow \beta_2 s + (1-\beta_2) g^2,
        \quad v \leftarrow v - \eta\,\frac{m/(1-\beta_1^k)}{\sqrt{s/(1-\beta_2^k)} + \epsilon},

    with :math:`k` the row's own step count.

    With ``fused=True``, a step on which every row moves and all rows share one step count (no
    row has stopped yet) runs torch's fused Adam kernel (``torch._fused_adam_``, one pass over
    memory, in place): the same update up to rounding, and far cheaper for large variables such
    as IAGAN's per-image generator weights; other steps use the masked per-row update.

    Args:
        lr: learning rate :math:`\eta > 0`.
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon`.
        fused: use the fused kernel where it applies.

    Example:
        >>> step = Adam(0.1)
        >>> v = torch.zeros(2, 3); state = step.init_state(v)
        >>> step.update(v, torch.ones(2, 3), state, slice(None), torch.tensor([True, False]))
        tensor([[-0.1000, -0.1000, -0.1000],
                [ 0.0000,  0.0000,  0.0000]])
    """

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, *, fused: bool = False) -> None:
        check_positive(lr, "lr")
        self.lr = float(lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.fused = bool(fused)

    def init_state(self, v: Tensor) -> dict[str, Tensor]:
        return {"m1": torch.zeros_like(v), "m2": torch.zeros_like(v),
                "k": torch.zeros(v.shape[0], dtype=torch.long, device=v.device)}

    def update(self, v, g, state, rows, move):
        if self.fused and isinstance(rows, slice) and rows == slice(None) and bool(move.all()):
            return self._fused_update(v, g, state)
        mask = _rows_mask(move, v)
        k_now = state["k"][rows] + move.long()
        m1 = self.beta1 * state["m1"][rows] + (1 - self.beta1) * g
        m2 = self.beta2 * state["m2"][rows] + (1 - self.beta2) * g * g
        k = _rows_mask(k_now.clamp(min=1).to(v.dtype), v)
        bc1, bc2 = 1 - self.beta1**k, 1 - self.beta2**k
        update = self.lr * (m1 / bc1) / ((m2 / bc2).sqrt() + self.eps)
        state["m1"][rows] = torch.where(mask, m1, state["m1"][rows])
        state["m2"][rows] = torch.where(mask, m2, state["m2"][rows])
        state["k"][rows] = k_now
        return torch.where(mask, v - update, v)


    def _fused_update(self, v: Tensor, g: Tensor, state: dict[str, Tensor]) -> Tensor:
        state["k"] += 1  # every row moves and none has stopped: one shared step count
        step = state["k"][:1].to(torch.float32).reshape(())
        v = v.contiguous()
        torch._fused_adam_([v], [g.contiguous()], [state["m1"]], [state["m2"]], [], [step],
                           lr=self.lr, beta1=self.beta1, beta2=self.beta2, weight_decay=0.0,
                           eps=self.eps, amsgrad=False, maximize=False)
        return v


class ProxGrad(LatentStep):
    r"""Proximal-gradient (ISTA) step :math:`v \leftarrow \mathrm{prox}(v - t\,g)`.

    Args:
        step: the step :math:`t > 0` (``1/L`` for an ``L``-smooth term).
        prox: the proximal map of :math:`t` times the non-smooth term.
    """

    def __init__(self, step: float, prox: Callable[[Tensor], Tensor]) -> None:
        check_positive(step, "step")
        self.step = float(step)
        self.prox = prox

    def update(self, v, g, state, rows, move):
        return torch.where(_rows_mask(move, v), self.prox(v - self.step * g), v)
