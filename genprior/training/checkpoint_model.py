"""The model a training checkpoint holds, rebuilt from the checkpoint's own record.

A run's ``final/`` folder appears only when it ends; :func:`checkpoint_model` gives the same
model (the EMA weights where the trainer keeps an average) from any ``checkpoint.safetensors``
or a copy of one taken while it trained, so a run can be evaluated part-way.
"""

from __future__ import annotations

import os

from torch import nn

from genprior.priors.base import PRIORS
from genprior.priors.conditional import ConditionalSR
from genprior.priors.dcgan import DCGANGenerator
from genprior.priors.denoiser import Denoiser
from genprior.priors.spatial_gan import SpatialGenerator
from genprior.training.checkpoint import checkpoint_state, load_checkpoint
from genprior.training.ema import EMA

__all__ = ["checkpoint_model"]

_GAN_GENERATORS = {"dcgan": DCGANGenerator, "spatial": SpatialGenerator}


def checkpoint_model(path: str | os.PathLike) -> tuple[nn.Module, int]:
    """The model of a ``genprior train`` checkpoint, as its ``final/`` would hold it, and the
    checkpoint's step.

    What is rebuilt, by the checkpoint's ``kind``: ``gan``, the EMA generator; ``affgan`` and
    ``denoiser``, the EMA of the trained network; ``vae``, the VAE. The model is in eval mode
    and loaded strictly; optimisers and RNG states are not touched (nor is the global RNG).

    Args:
        path: a checkpoint written by a ``genprior train`` run.

    Returns:
        ``(model, step)``.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file when it is not a training checkpoint of a known kind.
    """
    state = checkpoint_state(path)
    config = state.get("config", {})
    kind = config.get("kind")
    if kind == "gan" and config.get("arch") in _GAN_GENERATORS:
        model = _GAN_GENERATORS[config["arch"]](**config["generator"])
        load_checkpoint(path, modules={"G_ema": model})
    elif kind in ("affgan", "denoiser"):
        ema = EMA((ConditionalSR if kind == "affgan" else Denoiser)(**config["model"]))
        load_checkpoint(path, modules={"ema": ema})
        model = ema.module
    elif kind == "vae" and config.get("class") in PRIORS:
        model = PRIORS[config["class"]](**config["model"])
        load_checkpoint(path, modules={"vae": model})
    else:
        raise ValueError(f"{path} is not a checkpoint of genprior train gan, affgan, denoiser "
                         f"or vae (its record says kind {kind!r})")
    return model.eval(), int(state["step"])
