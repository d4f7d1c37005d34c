"""Pickle-free persistence: JSON config + safetensors, written atomically.

A temporary file is named ``.{name}.tmp-{pid}-{random}.tmp`` beside its target, so that a run
killed mid-write leaves a file that the next run can recognise (by the dead ``pid``) and remove
(``genprior.cli._output.remove_stale``).
"""

from __future__ import annotations

import hashlib
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
    "MISFIT_NAME",
    "WEIGHTS_NAME",
    "atomic_write_bytes",
    "load_config",
    "load_tensors",
    "save_config",
    "save_tensors",
    "tensors_sha256",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: the fitted model-misfit covariance a prior folder may hold (:mod:`genprior.sampling.misfit`)
MISFIT_NAME = "misfit.safetensors"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; move it into place only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-",
                               suffix=".tmp")
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
    """Load a safetensors file.

    Raises:
        FileNotFoundError: naming the file when it is missing.
        ValueError: naming the file when it is not a readable safetensors file (truncated,
            corrupt or of another format).
    """
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): "
                         f"{e}") from e


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes, in sorted name order.

    Equal for equal tensors on any device; a fingerprint for "is this the same matrix".

    Example:
        >>> a = tensors_sha256({"w": torch.ones(2, 3)})
        >>> a == tensors_sha256({"w": torch.ones(2, 3)})
        True
        >>> a == tensors_sha256({"w": torch.ones(3, 2)})
        False
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_config(path: str | os.PathLike, config: dict[str, Any]) -> None:
    """Write a JSON config atomically."""
    atomic_write_bytes(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config (a JSON object).

    Raises:
        FileNotFoundError: naming the file when it is missing.
        ValueError: naming the file when it is not UTF-8 JSON or holds no JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} is not valid JSON: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(  # noqa: TRY004 (a file's content, not an argument's type)
            f"config file {path} must hold a JSON object, got a JSON {type(config).__name__}")
    return config
