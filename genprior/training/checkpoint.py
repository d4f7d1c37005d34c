"""Training checkpoints without pickle: every tensor in one safetensors file, the rest in JSON.

A checkpoint holds model and optimiser state, RNG states and a JSON ``state`` dict (step, epoch,
config). It is written to a temporary file and moved into place, so an interrupted write never
leaves a half-written checkpoint and never destroys the previous one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from genprior._serialization import load_tensors, save_tensors

__all__ = ["CHECKPOINT_NAME", "checkpoint_state", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.safetensors"
_META = "genprior_checkpoint"


def _optim_to_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            key = f"{prefix}.state.{idx}.{k}"
            if torch.is_tensor(v):
                tensors[key] = v
            else:
                scalars[key] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optim_from_tensors(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + len(".state.")
    for key, v in tensors.items():
        if key.startswith(prefix + ".state."):
            idx, k = key[plen:].split(".", 1)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key[plen:].split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: str | os.PathLike,
    *,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    state: dict[str, Any] | None = None,
) -> None:
    """Atomically write a checkpoint.

    Args:
        path: target file (``.safetensors``).
        modules: named modules whose ``state_dict`` is stored.
        optimizers: named optimisers (Adam etc.); their tensor state and param groups are stored.
        generators: named ``torch.Generator`` objects whose RNG state is stored.
        state: JSON-able training state (step, epoch, config, ...).
    """
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"state": state or {}, "optimizers": {}, "modules": sorted(modules)}
    for name, mod in modules.items():
        for k, v in mod.state_dict().items():
            tensors[f"module.{name}.{k}"] = v
    for name, opt in (optimizers or {}).items():
        t, m = _optim_to_tensors(f"optim.{name}", opt)
        tensors.update(t)
        meta["optimizers"][name] = m
    for name, g in (generators or {}).items():
        tensors[f"rng.{name}"] = g.get_state()
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    save_tensors(path, tensors, metadata={_META: json.dumps(meta)})


def load_checkpoint(
    path: str | os.PathLike,
    *,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    global_rng: bool = False,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` in place; return its ``state``.

    Args:
        path: the checkpoint file.
        modules: named modules to load (strictly) from it.
        optimizers: named optimisers to restore.
        generators: named ``torch.Generator`` objects to restore.
        global_rng: also restore torch's global CPU RNG state (what a resumed training run
            needs for an exact continuation); off by default, so loading weights leaves the
            caller's global RNG as it was.

    Raises:
        FileNotFoundError: naming the missing checkpoint.
        ValueError: naming the file when it is not a genprior checkpoint or holds another
            architecture.
    """
    meta = _read_meta(path)
    tensors = load_tensors(path)
    for name, mod in modules.items():
        prefix = f"module.{name}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            mod.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ValueError(f"checkpoint {path} does not match module {name!r}: {e}") from e
    for name, opt in (optimizers or {}).items():
        _optim_from_tensors(f"optim.{name}", opt, tensors, meta["optimizers"][name])
    for name, g in (generators or {}).items():
        g.set_state(tensors[f"rng.{name}"])
    if global_rng:
        torch.set_rng_state(tensors["rng.torch_cpu"])
    return meta["state"]


def _read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(_META)
    if raw is None:
        raise ValueError(f"{path} is not a genprior checkpoint")
    return json.loads(raw)


def checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON ``state`` of a checkpoint (step, epoch, run config), without loading tensors.

    Raises:
        FileNotFoundError: naming the missing checkpoint.
        ValueError: naming the file when it is not a genprior checkpoint.
    """
    return _read_meta(path)["state"]
