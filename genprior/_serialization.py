"""Pickle-free persistence: JSON config + safetensors, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "atomic_write_bytes",
    "load_config",
    "load_tensors",
    "save_config",
    "save_tensors",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; move it into place only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    with _atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    """Save tensors to a safetensors file atomically (tensors are made contiguous, on CPU)."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with _atomic_target(path) as tmp:
        save_file(clean, tmp, metadata=metadata)


def load_tensors(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Load a safetensors file; raise ``FileNotFoundError`` naming the file when missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return load_file(str(path), device=str(device))


def save_config(path: str | os.PathLike, config: dict[str, Any]) -> None:
    """Write a JSON config atomically."""
    atomic_write_bytes(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config; raise ``FileNotFoundError`` naming the file when missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {path} is not valid JSON: {e}") from e
