"""Resolve shipped prior names (``"mnist-vae"``) or folders to loaded priors: a :class:`Prior`
or a :class:`~genprior.priors.conditional_base.ConditionalPrior`, as the folder holds."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from genprior._serialization import CONFIG_NAME, load_config
from genprior.priors.base import Prior
from genprior.priors.conditional_base import CONDITIONAL_PRIORS, ConditionalPrior

__all__ = ["available_priors", "load_prior", "pretrained_dir"]


def pretrained_dir() -> Path:
    """Folder of shipped priors: ``$GENPRIOR_PRETRAINED`` or the repository's ``pretrained/``."""
    env = os.environ.get("GENPRIOR_PRETRAINED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "pretrained"


def available_priors() -> list[str]:
    """Names of the shipped priors found in :func:`pretrained_dir`."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def _load(directory: Path, device: torch.device | str) -> Prior | ConditionalPrior:
    name = load_config(directory / CONFIG_NAME).get("_class")
    family = ConditionalPrior if name in CONDITIONAL_PRIORS else Prior
    return family.from_pretrained(directory, device=device)


def load_prior(
    name_or_path: str | os.PathLike, *, device: torch.device | str = "cpu"
) -> Prior | ConditionalPrior:
    """Load a prior by shipped name (e.g. ``"mnist-vae"``) or from a folder holding
    ``config.json`` + ``model.safetensors``. Works offline; no pickle.

    Returns:
        a :class:`Prior`, or a :class:`~genprior.priors.conditional_base.ConditionalPrior`
        for a conditional model (``"celeba-sr4-affgan"``).

    Raises:
        FileNotFoundError: neither a folder nor a shipped name; lists the shipped names.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return _load(path, device)
    candidate = pretrained_dir() / str(name_or_path)
    if candidate.is_dir():
        return _load(candidate, device)
    raise FileNotFoundError(
        f"no prior folder or shipped prior named {str(name_or_path)!r} "
        f"(looked in {path.resolve()} and {candidate}); shipped: {available_priors()}"
    )
