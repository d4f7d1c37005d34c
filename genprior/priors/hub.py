"""Resolve prior names to loaded priors: a :class:`Prior` or a
:class:`~genprior.priors.conditional_base.ConditionalPrior`, as the folder holds.

A name is one of

- a folder holding ``config.json`` + ``model.safetensors`` (what ``save_pretrained`` writes;
  ``config.json`` alone for a :class:`~genprior.priors.blend.ConditionalBlend` that references
  its members by name);
- a shipped prior (``"mnist-vae"``), read from :func:`pretrained_dir`: the wheel carries the
  priors as package data in ``genprior/pretrained/<name>/``, a source checkout reads the
  repository's ``pretrained/<name>/``;
- a Hugging Face Hub model repository, ``"hf://owner/repo"`` or ``"hf://owner/repo@revision"``,
  in the same layout, downloaded once by ``huggingface_hub`` into its cache and read from there
  afterwards. With ``HF_HUB_OFFLINE=1`` only the cache is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genprior._serialization import CONFIG_NAME, MISFIT_NAME, WEIGHTS_NAME, load_config
from genprior.priors.base import PRIORS, Prior
from genprior.priors.conditional_base import CONDITIONAL_PRIORS, ConditionalPrior

__all__ = [
    "HUB_PREFIX",
    "available_priors",
    "hub_cache_dir",
    "hub_offline",
    "load_prior",
    "pretrained_dir",
    "prior_folder",
]

#: prefix of a Hugging Face Hub prior name: ``"hf://owner/repo[@revision]"``
HUB_PREFIX = "hf://"
#: files fetched from a hub repository (the model card and the misfit covariance are optional)
_HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, MISFIT_NAME, "MODEL_CARD.md", "README.md")
_TRUE = {"1", "on", "yes", "true"}


def pretrained_dir() -> Path:
    """Folder of shipped priors, the first that exists of: ``$GENPRIOR_PRETRAINED``; the
    package data of an installed wheel (``genprior/pretrained/``); the repository's
    ``pretrained/`` (source checkout or editable install).

    Example:
        >>> (pretrained_dir() / "mnist-vae" / "config.json").is_file()
        True
    """
    env = os.environ.get("GENPRIOR_PRETRAINED")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1] / "pretrained"
    checkout = package.parents[1] / "pretrained"
    return checkout if not package.is_dir() and checkout.is_dir() else package


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set to a true value (read at each call)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face cache folder: ``cache_dir`` if given, else ``huggingface_hub``'s
    (``$HF_HUB_CACHE``, or ``$HF_HOME/hub``, default ``~/.cache/huggingface/hub``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _needs_weights(meta: Mapping[str, Any]) -> bool:
    """Whether a prior folder whose ``config.json`` holds ``meta`` must hold
    ``model.safetensors``: yes, unless its class keeps the weights elsewhere (a blend that
    references its members by name)."""
    name, config = meta.get("_class"), meta.get("config", {})
    if not isinstance(name, str) or not isinstance(config, Mapping):
        return True
    for registry in (PRIORS, CONDITIONAL_PRIORS):
        if name in registry:
            return registry[name]._weights_in_folder(config)
    return True


def _is_prior_folder(folder: Path) -> bool:
    if not (folder / CONFIG_NAME).is_file():
        return False
    try:
        meta = load_config(folder / CONFIG_NAME)
    except (OSError, ValueError):
        return False
    name = meta.get("_class")
    if not isinstance(name, str) or not (name in PRIORS or name in CONDITIONAL_PRIORS):
        return False
    return (folder / WEIGHTS_NAME).is_file() or not _needs_weights(meta)


def _cached_hub_priors(cache: Path) -> dict[str, Path]:
    """``hf://owner/repo`` -> snapshot folder of the ``main`` revision, for every model
    repository in the cache whose snapshot holds a genprior prior."""
    found: dict[str, Path] = {}
    if not cache.is_dir():
        return found
    for repo in sorted(cache.glob("models--*")):
        ref = repo / "refs" / "main"
        if not ref.is_file():
            continue
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if _is_prior_folder(snapshot):
            found[HUB_PREFIX + repo.name[len("models--"):].replace("--", "/")] = snapshot
    return found


def available_priors(*, cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """What :func:`load_prior` can load without a download, and from where.

    Args:
        cache_dir: Hugging Face cache to list (default: :func:`hub_cache_dir`).

    Returns:
        name -> folder, sorted: the shipped priors (``"mnist-vae"`` -> its folder under
        :func:`pretrained_dir`), then the ``"hf://owner/repo"`` priors already in the Hugging
        Face cache (-> their snapshot of the ``main`` revision).

    Example:
        >>> priors = available_priors()
        >>> "mnist-vae" in priors, priors["mnist-vae"].name
        (True, 'mnist-vae')
    """
    root = pretrained_dir()
    shipped = {}
    if root.is_dir():
        shipped = {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG_NAME).is_file()}
    return {**shipped, **_cached_hub_priors(hub_cache_dir(cache_dir))}


def _hub_folder(name: str, cache_dir: str | os.PathLike | None) -> Path:
    """Snapshot folder of ``hf://owner/repo[@revision]``: from the cache, downloading it first
    unless ``HF_HUB_OFFLINE`` is set."""
    repo_id, _, revision = name[len(HUB_PREFIX):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"a hub prior is named {HUB_PREFIX}owner/repo[@revision], got {name!r}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = hub_offline()
    try:
        folder = snapshot_download(repo_id, revision=revision or None, cache_dir=cache_dir,
                                   allow_patterns=list(_HUB_FILES), local_files_only=offline)
    except LocalEntryNotFoundError as e:
        how = ("HF_HUB_OFFLINE is set, so nothing is downloaded" if offline
               else "and it could not be downloaded")
        raise FileNotFoundError(
            f"prior {name!r} is not in the Hugging Face cache {hub_cache_dir(cache_dir)} "
            f"({how}); fetch it once online, e.g. `huggingface-cli download {repo_id}`"
        ) from e
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file():
        missing = CONFIG_NAME
    elif not (folder / WEIGHTS_NAME).is_file() and _needs_weights(load_config(folder / CONFIG_NAME)):
        missing = WEIGHTS_NAME
    else:
        return folder
    raise FileNotFoundError(f"hub prior {name!r} has no {missing} (looked in {folder}); a "
                            f"prior repository holds {CONFIG_NAME} + {WEIGHTS_NAME}")


def _load(directory: Path, device: torch.device | str) -> Prior | ConditionalPrior:
    name = load_config(directory / CONFIG_NAME).get("_class")
    family = ConditionalPrior if name in CONDITIONAL_PRIORS else Prior
    return family.from_pretrained(directory, device=device)


def load_prior(
    name_or_path: str | os.PathLike,
    *,
    device: torch.device | str = "cpu",
    cache_dir: str | os.PathLike | None = None,
) -> Prior | ConditionalPrior:
    """Load a prior from a folder, by shipped name, or from the Hugging Face Hub. No pickle.

    Args:
        name_or_path: a folder holding ``config.json`` + ``model.safetensors`` (or only
            ``config.json``, for a blend that references its members by name); a shipped
            name (``"mnist-vae"``, see :func:`available_priors`); or ``"hf://owner/repo"``
            (optionally ``@revision``), fetched into the Hugging Face cache by
            ``huggingface_hub`` unless ``HF_HUB_OFFLINE`` is set, when the cache must hold it.
        device: where to put the model.
        cache_dir: Hugging Face cache for ``hf://`` names (default: :func:`hub_cache_dir`).

    Returns:
        a :class:`Prior`, or a :class:`~genprior.priors.conditional_base.ConditionalPrior`
        for a conditional model (``"celeba-sr4-affgan"``).

    Raises:
        FileNotFoundError: neither a folder nor a shipped name (lists the shipped names), or a
            hub prior that is not cached while offline.

    Example:
        >>> prior = load_prior("mnist-vae")
        >>> prior.img_shape
        (1, 28, 28)
        >>> load_prior("hf://owner/repo")  # downloaded once, then from the cache  # doctest: +SKIP
    """
    return _load(prior_folder(name_or_path, cache_dir=cache_dir), device)


def prior_folder(
    name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None
) -> Path:
    """The folder :func:`load_prior` loads ``name_or_path`` from (a ``hf://`` name is
    downloaded into the cache first, unless ``HF_HUB_OFFLINE`` is set).

    Raises:
        FileNotFoundError: as :func:`load_prior`.

    Example:
        >>> prior_folder("mnist-vae") == pretrained_dir() / "mnist-vae"
        True
    """
    text = os.fspath(name_or_path)
    if isinstance(text, str) and text.startswith(HUB_PREFIX):
        return _hub_folder(text, cache_dir)
    path = Path(name_or_path)
    if path.is_dir():
        return path
    candidate = pretrained_dir() / str(name_or_path)
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError(
        f"no prior folder or shipped prior named {str(name_or_path)!r} "
        f"(looked in {path.resolve()} and {candidate}); shipped: "
        f"{[n for n in available_priors(cache_dir=cache_dir) if not n.startswith(HUB_PREFIX)]}"
    )
