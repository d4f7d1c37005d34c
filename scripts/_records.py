"""The provenance shared by the scripts that write a model folder made from other models."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from genprior._random import make_generator
from genprior._serialization import load_config
from genprior.priors.hub import prior_folder
from genprior.priors.standing_stats import recalibrate_batchnorm

__all__ = ["source_records", "standing_stats"]


def source_records(prior: str | os.PathLike) -> dict[str, Any]:
    """A prior's ``config.json`` entries other than its class and constructor arguments (the
    folder :func:`~genprior.priors.load_prior` would load it from)."""
    return {k: v for k, v in load_config(prior_folder(prior) / "config.json").items()
            if k not in ("_class", "config")}


def standing_stats(model: nn.Module, n_batches: int, *, batch_size: int = 64,
                   seed: int = 1) -> dict[str, int] | None:
    """Recompute ``model``'s BatchNorm statistics from its own draws
    (:func:`~genprior.priors.standing_stats.recalibrate_batchnorm`, latents from a generator
    seeded ``seed``); return the record ``config.json`` keeps, or None when it has none."""
    if not recalibrate_batchnorm(model, n_batches=n_batches, batch_size=batch_size,
                                 generator=make_generator(seed)):
        return None
    return {"batches": n_batches, "batch_size": batch_size, "seed": seed}
