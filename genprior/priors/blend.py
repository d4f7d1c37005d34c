r"""Affine blends of range-constrained conditional generators.

Every output of a range-constrained model lies on the affine subspace
:math:`\{x : A x = y\}` (:class:`~genprior.priors.conditional.ConditionalSR`). An affine
combination of such outputs, weights summing to 1, lies on it too:

.. math::
    x = \sum_i w_i\, f_i(y, \epsilon_i), \qquad \sum_i w_i = 1
    \;\Rightarrow\; A x = \sum_i w_i\, y = y.

:class:`ConditionalBlend` is that combination as one conditional prior: a distortion-oriented
model (the MSE twin) blended with a perception-oriented one (an AffGAN) moves along the
perception-distortion trade-off at sampling time, as ESRGAN's network interpolation does
(Wang et al. 2018), but on outputs, so the members may have different widths. Each member gets
its own noise: the blend's :math:`\epsilon` is the members' noises concatenated along the first
(channel) axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genprior.operators.base import operator_signature
from genprior.priors.conditional_base import (
    CONDITIONAL_PRIORS,
    ConditionalPrior,
    register_conditional_prior,
)

__all__ = ["ConditionalBlend"]


def _member_spec(member: Any) -> dict[str, Any]:
    """``{"_class": ..., "config": ...}`` of a member given as a spec or as a model."""
    if isinstance(member, ConditionalPrior):
        return {"_class": CONDITIONAL_PRIORS.key(type(member)), "config": member.config}
    if isinstance(member, Mapping) and set(member) == {"_class", "config"}:
        return {"_class": member["_class"], "config": dict(member["config"])}
    raise TypeError("each member must be a conditional prior or a mapping with keys _class "
                    f"and config, got {type(member).__name__}")


@register_conditional_prior
class ConditionalBlend(ConditionalPrior):
    r"""The conditional prior :math:`x = \sum_i w_i f_i(y, \epsilon_i)` of range-constrained
    members :math:`f_i` sharing one operator, weights summing to 1.

    Build it from trained models with :meth:`from_models` (which copies their weights);
    ``save_pretrained`` writes every member's weights into one file, so a saved blend loads on
    its own (``genprior.load_prior``).

    Args:
        members: each member as ``{"_class": name, "config": config}`` (a conditional prior's
            registry name and constructor arguments), or as a model (its weights are *not*
            copied; use :meth:`from_models`).
        weights: one weight per member; they must sum to 1 (to within 1e-6) so that every
            output stays consistent with ``y``. Weights outside [0, 1] extrapolate.

    Shape:
        - y: ``(B, *meas_shape)``
        - eps: ``(B, *latent_shape)``, the members' noises concatenated along the first axis
          (``latent_shape[0]`` is the sum of theirs)
        - output of ``forward``: ``(B, C, H, W)``; of ``sample``: ``(n, B, C, H, W)``

    Raises:
        ValueError: fewer than two members, one weight per member missing, weights not summing
            to 1 or not finite, members with different image, measurement or noise shapes
            (beyond the first axis), or with different operators.
        TypeError: a member that is neither a conditional prior nor a spec.

    Example:
        >>> import torch
        >>> from genprior.priors.conditional import ConditionalSR
        >>> from genprior.priors.blend import ConditionalBlend
        >>> a = ConditionalSR(img_size=(3, 16, 16), width=8, n_blocks=1)
        >>> b = ConditionalSR(img_size=(3, 16, 16), width=4, n_blocks=1)
        >>> blend = ConditionalBlend.from_models([a, b], [0.7, 0.3])
        >>> y = torch.rand(2, 3, 4, 4)
        >>> x = blend.sample(y, 3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, blend.latent_shape
        (torch.Size([3, 2, 3, 16, 16]), (16, 4, 4))
        >>> bool((blend.operator.A(x[0]) - y).abs().max() < 1e-5)
        True
    """

    def __init__(self, *, members: Sequence[Any], weights: Sequence[float]) -> None:
        specs = [_member_spec(m) for m in members]
        weights = [float(w) for w in weights]
        if len(specs) < 2:
            raise ValueError(f"a blend needs at least two members, got {len(specs)}")
        if len(weights) != len(specs):
            raise ValueError(f"need one weight per member: {len(specs)} members, "
                             f"{len(weights)} weights")
        if not all(math.isfinite(w) for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(f"weights must be finite and sum to 1 (so that A x = y), got "
                             f"{weights} (sum {sum(weights):g})")
        super().__init__()
        self.members = nn.ModuleList(CONDITIONAL_PRIORS[s["_class"]].from_config(s["config"])
                                     for s in specs)
        first = self.members[0]
        for i, m in enumerate(self.members[1:], 1):
            for name in ("img_shape", "meas_shape"):
                if tuple(getattr(m, name)) != tuple(getattr(first, name)):
                    raise ValueError(f"member {i} has {name} {tuple(getattr(m, name))}, member "
                                     f"0 has {tuple(getattr(first, name))}")
            if tuple(m.latent_shape[1:]) != tuple(first.latent_shape[1:]):
                raise ValueError(f"member {i} has noise shape {tuple(m.latent_shape)}, member 0 "
                                 f"has {tuple(first.latent_shape)}: they must agree beyond the "
                                 "first axis")
            ops = [operator_signature(getattr(x, "operator", None)) for x in (m, first)]
            if ops[0] != ops[1]:
                raise ValueError(f"member {i} has operator {ops[0]}, member 0 has {ops[1]}")
        self.img_shape = tuple(first.img_shape)
        self.meas_shape = tuple(first.meas_shape)
        self.split = [int(m.latent_shape[0]) for m in self.members]
        self.latent_shape = (sum(self.split), *first.latent_shape[1:])
        self.weights = tuple(weights)
        self.register_to_config(members=specs, weights=weights)

    @classmethod
    def from_models(cls, models: Sequence[ConditionalPrior],
                    weights: Sequence[float]) -> ConditionalBlend:
        """The blend of trained ``models`` with ``weights``, holding copies of their weights
        (on the first model's device and in its dtype, in eval mode)."""
        blend = cls(members=list(models), weights=weights)
        first = next(iter(models[0].parameters()), torch.empty(0))
        blend.to(device=first.device, dtype=first.dtype)
        for mine, theirs in zip(blend.members, models, strict=True):
            mine.load_state_dict(theirs.state_dict())
        return blend.eval()

    @property
    def operator(self) -> nn.Module:
        """The members' common operator :math:`A`."""
        return self.members[0].operator

    def generate(self, y: Tensor, eps: Tensor) -> Tensor:
        r""":math:`\sum_i w_i f_i(y, \epsilon_i)`, ``eps`` split along its first axis into the
        members' noises."""
        parts = torch.split(eps, self.split, dim=1)
        return sum(w * member.generate(y, e)
                   for w, member, e in zip(self.weights, self.members, parts, strict=True))

