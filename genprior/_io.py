"""Image batches and measurements on disk: npz (never pickled) and PNG grids, shared by every CLI.

File formats:
    - images ``*.npz``: key ``"x"``, ``(B, C, H, W)``, float in [0, 1] (written as float32) or
      uint8 in 0..255 (read as ``x / 255``).
    - measurements ``*.npz``: key ``"y"`` ``(B, *meas_shape)``, optional key ``"x"`` (the ground
      truth images, as above), optional key ``"meta"`` (a JSON object as a string) and optional
      key ``"operator_record"`` (a JSON object as a string: what the operator that measured
      ``y`` was, written by ``genprior measure`` and checked by the commands that read ``y``).

Every reader names the file in its errors and raises ``ValueError`` for a file that is not what
it should be (truncated, corrupt, another format), never ``BadZipFile`` or ``zlib.error``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from genprior._checks import check_finite, check_image
from genprior._serialization import atomic_write_bytes

__all__ = [
    "Measurements",
    "load_images_npz",
    "load_measurements",
    "load_npz_array",
    "save_grid_png",
    "save_images_npz",
    "save_measurements",
]


@dataclass
class Measurements:
    """Contents of a measurements file.

    Attributes:
        y: the measurements, ``(B, *meas_shape)``.
        x: the ground-truth images ``(B, C, H, W)`` in [0, 1], or ``None`` when not stored.
        meta: JSON-able metadata (operator spec, noise level, seed, ...).
        operator_record: what the operator that measured ``y`` was (``{"spec", "seed",
            "noise_std", "type", "config", "sha256"}``, see ``genprior.cli._inputs``), or
            ``None`` when the file does not say.
    """

    y: Tensor
    x: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    operator_record: dict[str, Any] | None = None


def _write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _open_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an .npz file of {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path} is a .npy file (one unnamed array), not an .npz file of {what}")
    if not magic.startswith(b"PK"):
        raise ValueError(f"{path} is not an .npz file of {what} (it does not start like a zip "
                         f"archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle, which we refuse
        if "pickle" in str(e):
            raise ValueError(
                f"{path} cannot be read without pickle (not a genprior npz file): {e}"
            ) from e
        raise ValueError(f"{path} is not a readable npz file of {what}: {e}") from e
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{path} is not a readable npz file of {what} (truncated or "
                         f"corrupt?): {type(e).__name__}: {e}") from e


def load_npz_array(path: str | os.PathLike, key: str, *, what: str = "data") -> np.ndarray:
    """One array of an ``.npz`` file, read without pickle.

    Args:
        path: the ``.npz`` file.
        key: the array's name in the file.
        what: what the file holds, for the error messages (``"data"``, ``"images"``, ...).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file when it cannot be read or holds no array ``key``.

    Example:
        >>> np.savez("/tmp/shard.npz", x=np.zeros((2, 8, 8), np.uint8))
        >>> load_npz_array("/tmp/shard.npz", "x").shape
        (2, 8, 8)
    """
    arrays = _open_npz(path, what)
    if key not in arrays:
        raise ValueError(f"{path} holds no array {key!r} (keys: {sorted(arrays)})")
    return arrays[key]


def _images_from_array(a: np.ndarray, source: str) -> Tensor:
    """Validate an ``(B, C, H, W)`` uint8 or float array and return float32 in [0, 1]."""
    if a.ndim != 4:
        raise ValueError(
            f"{source} must have shape (B, C, H, W), got {tuple(a.shape)} ({a.ndim} dims)"
        )
    if a.dtype == np.uint8:
        return torch.from_numpy(a.astype(np.float32) / 255.0)
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{source} must be uint8 or floating point, got dtype {a.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    check_image(x, source)
    return x


def save_images_npz(path: str | os.PathLike, x: Tensor) -> None:
    """Save images in [0, 1] as float32 under key ``"x"`` (compressed, written atomically).

    Args:
        path: destination ``.npz`` file; parent folders are created.
        x: images in [0, 1].

    Shape:
        x: ``(B, C, H, W)``

    Example:
        >>> save_images_npz("/tmp/x.npz", torch.rand(2, 1, 28, 28))
        >>> load_images_npz("/tmp/x.npz").shape
        torch.Size([2, 1, 28, 28])
    """
    check_image(x, "x")
    _write_npz(path, {"x": x.detach().to("cpu", torch.float32).numpy()})


def load_images_npz(path: str | os.PathLike) -> Tensor:
    """Load images saved by :func:`save_images_npz` (or any npz with an image key ``"x"``).

    uint8 arrays are scaled by ``1/255``; float arrays must already be in [0, 1].

    Args:
        path: an ``.npz`` file with key ``"x"``.

    Returns:
        float32 images in [0, 1] on the CPU.

    Shape:
        output: ``(B, C, H, W)``

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no key ``"x"``, wrong number of dims, NaN/inf, values outside [0, 1].
        TypeError: an integer dtype other than uint8.
    """
    arrays = _open_npz(path, "images")
    if "x" not in arrays:
        raise ValueError(f"{path} has no key 'x' (images); keys found: {sorted(arrays)}")
    return _images_from_array(arrays["x"], f"images 'x' in {path}")


def _json_object(text: str, path, key: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: key {key!r} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004 (a file's content, not an argument's type)
            f"{path}: key {key!r} must hold a JSON object, got a JSON {type(value).__name__}")
    return value


def save_measurements(
    path: str | os.PathLike,
    y: Tensor,
    *,
    x: Tensor | None = None,
    operator_record: dict[str, Any] | None = None,
    **meta: Any,
) -> None:
    """Save measurements ``y`` (and optionally the ground truth ``x``) to one npz file.

    Args:
        path: destination ``.npz`` file.
        y: measurements (any real or complex dtype).
        x: optional ground-truth images in [0, 1], stored as float32.
        operator_record: optional JSON-able description of the operator that measured ``y``,
            stored under key ``"operator_record"`` (read back as
            :attr:`Measurements.operator_record`).
        **meta: JSON-able metadata stored as a JSON string under key ``"meta"``.

    Shape:
        - y: ``(B, *meas_shape)``
        - x: ``(B, C, H, W)``

    Raises:
        ValueError: non-finite ``y``, invalid ``x``, ``x`` and ``y`` batch sizes differ.
        TypeError: metadata that is not JSON-able.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    check_finite(y, "y")
    arrays = {"y": y.detach().cpu().numpy()}
    if x is not None:
        check_image(x, "x")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must hold the same number of images, got "
                             f"x: {x.shape[0]}, y: {y.shape[0]}")
        arrays["x"] = x.detach().to("cpu", torch.float32).numpy()
    if meta:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    if operator_record is not None:
        arrays["operator_record"] = np.array(json.dumps(operator_record, sort_keys=True))
    _write_npz(path, arrays)


def load_measurements(path: str | os.PathLike) -> Measurements:
    """Load a file written by :func:`save_measurements` (never unpickles).

    Returns:
        :class:`Measurements` with ``y``, ``x`` (or ``None``), ``meta`` and
        ``operator_record`` (or ``None``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a readable npz file, no key ``"y"``, a non-numeric or non-finite ``y``,
            invalid ``x`` or metadata.
    """
    arrays = _open_npz(path, "measurements")
    if "y" not in arrays:
        raise ValueError(f"{path} has no key 'y' (measurements); keys found: {sorted(arrays)}")
    a = arrays["y"]
    if a.dtype.kind not in "biufc" or a.ndim < 1:
        raise ValueError(f"measurements 'y' in {path} must be a numeric array (B, ...), got "
                         f"dtype {a.dtype} and shape {a.shape}")
    y = torch.from_numpy(a if a.dtype.kind in "fc" else a.astype(np.float32))
    check_finite(y, f"measurements 'y' in {path}")
    x = _images_from_array(arrays["x"], f"images 'x' in {path}") if "x" in arrays else None
    meta: dict[str, Any] = {}
    if "meta" in arrays:
        meta = _json_object(str(arrays["meta"]), path, "meta")
    record = None
    if "operator_record" in arrays:
        record = _json_object(str(arrays["operator_record"]), path, "operator_record")
    return Measurements(y=y, x=x, meta=meta, operator_record=record)


def save_grid_png(
    path: str | os.PathLike,
    x: Tensor,
    *,
    nrow: int = 8,
    padding: int = 2,
    pad_value: float = 0.0,
) -> None:
    """Save a batch as one PNG grid (:func:`torchvision.utils.save_image`), written atomically.

    The one image-grid writer of the package: the CLIs' figures and the training runs'
    ``samples.png`` (white padding, ``pad_value=1.0``) both come from here.

    Args:
        path: destination ``.png`` file.
        x: images in [0, 1], one (grayscale) or three (RGB) channels.
        nrow: images per row of the grid.
        padding: pixels between images and around the grid.
        pad_value: grey level of the padding, in [0, 1].

    Shape:
        x: ``(B, C, H, W)`` with ``C`` in {1, 3}

    Raises:
        ValueError: naming ``x`` when it is not ``(B, 1|3, H, W)`` in [0, 1]; ``nrow < 1`` or
            ``padding < 0``.

    Example:
        >>> save_grid_png("/tmp/grid.png", torch.rand(6, 3, 8, 8), nrow=3, pad_value=1.0)
    """
    from torchvision.utils import save_image

    check_image(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 or 3 channels, got shape {tuple(x.shape)}")
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    buf = io.BytesIO()
    save_image(x.detach().cpu().float(), buf, nrow=nrow, padding=padding, pad_value=pad_value,
               format="png")
    atomic_write_bytes(path, buf.getvalue())
