"""Averages of a model's weights: the exponential moving average the GAN and AffGAN trainers
ship, and the uniform average of several copies (checkpoint averaging)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EMA", "average_weights"]


class EMA(nn.Module):
    r"""Exponential moving average of a model's weights,
    :math:`\theta_{\mathrm{ema}} \leftarrow d\,\theta_{\mathrm{ema}} + (1-d)\,\theta`
    (buffers such as BatchNorm statistics are copied).

    Args:
        model: the model to track (a deep copy is kept in :attr:`module`).
        decay: :math:`d \in [0, 1)`.

    Example:
        >>> ema = EMA(nn.Linear(3, 2), decay=0.9)
        >>> ema.update(nn.Linear(3, 2))
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


@torch.no_grad()
def average_weights(
    models: Sequence[nn.Module], weights: Sequence[float] | None = None,
) -> nn.Module:
    r"""The average of several copies of one network,
    :math:`\bar\theta = \sum_k w_k \theta_k`, uniform (:math:`w_k = 1/K`) by default
    (checkpoint averaging; for GAN generators, Yazıcı et al. 2019, "The unusual effectiveness of
    averaging in GAN training"). Two models with weights :math:`(1-t, t)` give the
    interpolation of a fine-tuned network with its initialisation (weight-space ensembles,
    "WiSE-FT", Wortsman et al. 2022).

    Floating-point parameters and buffers are averaged (summed in float64); other buffers
    (BatchNorm's ``num_batches_tracked``) are the first model's. Averaged BatchNorm statistics
    are not the statistics of the averaged network: recompute them
    (:func:`genprior.priors.standing_stats.recalibrate_batchnorm`).

    Args:
        models: one or more networks with the same state-dict keys and shapes.
        weights: one non-negative weight per model, summing to 1 (within 1e-9); default
            uniform.

    Returns:
        a new network (a deep copy of the first, in eval mode) holding the average.

    Raises:
        ValueError: no models; weights of another count, negative, or not summing to 1; or a
            model whose state dict has other keys or another shape (naming the first
            difference).

    Example:
        >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
        >>> m = average_weights([a, b])
        >>> torch.allclose(m.weight, (a.weight + b.weight) / 2)
        True
        >>> m = average_weights([a, b], weights=[0.75, 0.25])
        >>> torch.allclose(m.weight, 0.75 * a.weight + 0.25 * b.weight)
        True
    """
    if not models:
        raise ValueError("average_weights needs at least one model")
    if weights is None:
        weights = [1.0 / len(models)] * len(models)
    weights = [float(w) for w in weights]
    if len(weights) != len(models):
        raise ValueError(f"average_weights got {len(weights)} weights for {len(models)} models")
    if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-9:
        raise ValueError(f"average_weights needs non-negative weights summing to 1, got "
                         f"{weights}")
    states = [m.state_dict() for m in models]
    first = states[0]
    for i, state in enumerate(states[1:], start=1):
        if state.keys() != first.keys():
            missing = min(set(first) ^ set(state))
            raise ValueError(f"model {i} does not have the keys of model 0 (first difference: "
                             f"{missing})")
        for k, v in first.items():
            if state[k].shape != v.shape:
                raise ValueError(f"model {i}'s {k} has shape {tuple(state[k].shape)}, model "
                                 f"0's {tuple(v.shape)}")
    w = torch.tensor(weights, dtype=torch.float64)
    mean = {k: (torch.einsum("k,k...->...", w, torch.stack([s[k].double() for s in states]))
                .to(v.dtype) if v.is_floating_point() else v.clone())
            for k, v in first.items()}
    out = copy.deepcopy(models[0]).eval()
    out.load_state_dict(mean)
    return out
