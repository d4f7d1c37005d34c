"""Image batches and measurements on disk: npz (never pickled) and PNG grids, shared by every CLI.

File formats:
    - images ``*.npz``: key ``"x"``, ``(B, C, H, W)``, float in [0, 1] (written as float32) or
      uint8 in 0..255 (read as ``x / 255``).
    - measurements ``*.npz``: key ``"y"`` ``(B, *meas_shape)``, optional key ``"x"`` (the ground
      truth images, as above) and optional key ``"meta"`` (a JSON string).
"""

from __future__ import annotations

import io
import json
import os
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
    """

    y: Tensor
    x: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _open_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise ValueError(
            f"{path} cannot be read without pickle (not a genprior npz file): {e}"
        ) from e
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable npz file: {e}") from e


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


def save_measurements(
    path: str | os.PathLike, y: Tensor, *, x: Tensor | None = None, **meta: Any
) -> None:
    """Save measurements ``y`` (and optionally the ground truth ``x``) to one npz file.

    Args:
        path: destination ``.npz`` file.
        y: measurements (any real or complex dtype).
        x: optional ground-truth images in [0, 1], stored as float32.
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
    _write_npz(path, arrays)


def load_measurements(path: str | os.PathLike) -> Measurements:
    """Load a file written by :func:`save_measurements` (never unpickles).

    Returns:
        :class:`Measurements` with ``y``, ``x`` (or ``None``) and ``meta``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no key ``"y"``, non-finite ``y``, invalid ``x`` or metadata.
    """
    arrays = _open_npz(path, "measurements")
    if "y" not in arrays:
        raise ValueError(f"{path} has no key 'y' (measurements); keys found: {sorted(arrays)}")
    y = torch.from_numpy(arrays["y"])
    check_finite(y, f"measurements 'y' in {path}")
    x = _images_from_array(arrays["x"], f"images 'x' in {path}") if "x" in arrays else None
    meta: dict[str, Any] = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: key 'meta' is not valid JSON: {e}") from e
    return Measurements(y=y, x=x, meta=meta)


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
