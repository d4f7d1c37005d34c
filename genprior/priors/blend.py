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

A blend either embeds its members (their weights saved in its own ``model.safetensors``) or
references them by prior name (``"celeba-sr4-mse"``, a folder, ``"hf://owner/repo"``): then its
folder holds ``config.json`` only and loading it loads the members by name, so shipping a blend
of shipped models costs no weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from genprior._serialization import CONFIG_NAME, load_config
from genprior.operators.base import operator_signature
from genprior.priors.conditional_base import (
    CONDITIONAL_PRIORS,
    ConditionalPrior,
    register_conditional_prior,
)

__all__ = ["ConditionalBlend"]


def _is_name(member: Any) -> bool:
    """Whether ``member`` is a prior name (what :func:`genprior.load_prior` takes)."""
    return isinstance(member, str | os.PathLike)


def _by_reference(members: Any) -> bool:
    """Whether a blend config's ``members`` are prior names (not specs)."""
    return isinstance(members, list | tuple) and bool(members) and all(map(_is_name, members))


def _load_member(name: str) -> ConditionalPrior:
    """The conditional prior named ``name``, loaded with :func:`genprior.load_prior`.

    A blend is refused from its ``config.json``, before anything is loaded, so that blends
    naming each other cannot recurse.

    Raises:
        ValueError: ``name`` holds a blend.
        TypeError: ``name`` holds an unconditional prior.
        FileNotFoundError: from :func:`genprior.load_prior`, for an unknown name.
    """
    # imported here, not at the top: genprior.priors imports this module before hub
    from genprior.priors.hub import load_prior, prior_folder

    folder = prior_folder(name)
    stored = load_config(folder / CONFIG_NAME).get("_class")
    if (isinstance(stored, str) and stored in CONDITIONAL_PRIORS
            and issubclass(CONDITIONAL_PRIORS[stored], ConditionalBlend)):
        raise ValueError(f"member {name!r} is itself a ConditionalBlend; nest blends by listing "
                         "their members")
    model = load_prior(folder)
    if not isinstance(model, ConditionalPrior):
        raise TypeError(f"member {name!r} is a {type(model).__name__}, not a conditional prior")
    return model


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

    Two ways to hold the members:

    - **by reference**: ``ConditionalBlend(members=["celeba-sr4-mse", ...], weights=...)``
      loads each named member with :func:`genprior.load_prior` and stores the names as given;
      ``save_pretrained`` writes ``config.json`` only, and loading the folder loads the members
      by name again (names resolve as :func:`~genprior.load_prior` resolves them: a relative
      folder from the working directory; ``hf://`` members from the default Hugging Face
      cache). Changes made to the members' weights after loading are not saved. Built in eval
      mode, like a loaded prior.
    - **embedded**: :meth:`from_models` copies trained models' weights, and ``save_pretrained``
      writes them all into the blend's own ``model.safetensors``; the folder loads on its own.

    Args:
        members: all prior names (``str`` or path: a shipped name, a folder,
            ``"hf://owner/repo[@rev]"``), each a conditional prior that is not itself a blend;
            or all embedded: each as ``{"_class": name, "config": config}`` (a conditional
            prior's registry name and constructor arguments), or as a model (its weights are
            *not* copied; use :meth:`from_models`).
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
            (beyond the first axis), or with different operators; names mixed with embedded
            members; a name holding a blend.
        TypeError: a member that is neither a name, a conditional prior nor a spec; a name
            holding an unconditional prior.
        FileNotFoundError: a name that :func:`genprior.load_prior` cannot find.

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

        By reference to shipped models (as the shipped blends are built):

        >>> ref = ConditionalBlend(members=["celeba-sr4-mse", "celeba-sr4-affgan-w96"],
        ...                        weights=[0.7, 0.3])
        >>> ref.config["members"], ref.latent_shape, ref.training
        (['celeba-sr4-mse', 'celeba-sr4-affgan-w96'], (16, 16, 16), False)
    """

    def __init__(self, *, members: Sequence[Any], weights: Sequence[float]) -> None:
        members = list(members)
        by_reference = _by_reference(members)
        if not by_reference and any(map(_is_name, members)):
            raise ValueError("members must be all prior names (a blend by reference) or all "
                             "models / specs (embedded), not a mix: got "
                             f"{[type(m).__name__ for m in members]}")
        if by_reference:
            stored: list[Any] = [os.fspath(m) for m in members]
        else:
            stored = [_member_spec(m) for m in members]
        weights = [float(w) for w in weights]
        if len(stored) < 2:
            raise ValueError(f"a blend needs at least two members, got {len(stored)}")
        if len(weights) != len(stored):
            raise ValueError(f"need one weight per member: {len(stored)} members, "
                             f"{len(weights)} weights")
        if not all(math.isfinite(w) for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(f"weights must be finite and sum to 1 (so that A x = y), got "
                             f"{weights} (sum {sum(weights):g})")
        super().__init__()
        if by_reference:
            self.members = nn.ModuleList(map(_load_member, stored))
        else:
            self.members = nn.ModuleList(
                CONDITIONAL_PRIORS[s["_class"]].from_config(s["config"]) for s in stored)
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
        self.register_to_config(members=stored, weights=weights)
        if by_reference:
            self.eval()

    @classmethod
    def _weights_in_folder(cls, config: Mapping[str, Any]) -> bool:
        """False for a blend by reference: its members' weights live in their own folders."""
        return not _by_reference(config.get("members"))

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

