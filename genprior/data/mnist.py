"""MNIST from local npz shards, torchvision's raw layout, or (opt-in) a torchvision download."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from genprior.data.paths import data_root
from genprior.data.tensor_dataset import ImageTensorDataset

__all__ = ["MNIST_SPLITS", "load_mnist"]

MNIST_SPLITS = ("train", "test")

# torchvision's raw file stems, per split
_RAW_STEMS = {"train": "train", "test": "t10k"}


def _npz_shards(folder: Path, split: str) -> list[Path]:
    return sorted(folder.glob(f"mnist_{split}_*.npz"))


def _load_shards(shards: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for path in shards:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files or "y" not in f.files:
                raise ValueError(f"MNIST shard {path} must hold keys 'x' and 'y', has {f.files}")
            x, y = f["x"], f["y"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"MNIST shard {path}: 'x' must be uint8 [N, 28, 28], got "
                             f"{x.dtype} {list(x.shape)}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"MNIST shard {path}: 'y' must have shape ({x.shape[0]},), got "
                             f"{list(y.shape)}")
        xs.append(x)
        ys.append(y.astype(np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _raw_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    stem = _RAW_STEMS[split]
    for raw in (folder / "MNIST" / "raw", folder / "raw", folder):
        images, labels = raw / f"{stem}-images-idx3-ubyte", raw / f"{stem}-labels-idx1-ubyte"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def load_mnist(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    download: bool = False,
) -> ImageTensorDataset:
    """Load the MNIST training (60,000) or test (10,000) digits, in the original order.

    Layouts tried in ``root`` (or ``root/mnist``), in order:

    1. npz shards ``mnist_{split}_00.npz``, ``mnist_{split}_01.npz``, ... each with keys ``x``
       (uint8 ``[N, 28, 28]``) and ``y`` (labels), concatenated in file-name order;
    2. torchvision's raw layout ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
       (also accepted directly in ``root/raw`` or ``root``);
    3. only with ``download=True``: :class:`torchvision.datasets.MNIST` downloads into ``root``
       (needs internet).

    Args:
        root: the MNIST folder; ``None`` uses ``$GENPRIOR_DATA/mnist``.
        split: ``"train"`` or ``"test"``.
        download: allow a torchvision download when no local copy is found.

    Returns:
        An :class:`ImageTensorDataset`; each item is a ``(1, 28, 28)`` float image in [0, 1],
        the labels are in ``.labels``.

    Raises:
        ValueError: unknown ``split``, malformed shard, or no root and no ``$GENPRIOR_DATA``.
        FileNotFoundError: no local copy (and ``download=False``); names what was looked for.

    Example:
        >>> test = load_mnist("/work/shared/data/mnist", split="test")
        >>> len(test), test[0].shape
        (10000, torch.Size([1, 28, 28]))
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"split must be one of {MNIST_SPLITS}, got {split!r}")
    root = data_root(root) / "mnist" if root is None else Path(root).expanduser()
    folders = [root] + ([root / "mnist"] if (root / "mnist").is_dir() else [])
    for folder in folders:
        shards = _npz_shards(folder, split)
        if shards:
            x, labels = _load_shards(shards)
            return ImageTensorDataset(x.unsqueeze(1), labels)
        raw = _raw_files(folder, split)
        if raw is not None:
            from torchvision.datasets.mnist import read_image_file, read_label_file

            x, labels = read_image_file(str(raw[0])), read_label_file(str(raw[1]))
            return ImageTensorDataset(x.unsqueeze(1).contiguous(), labels.long())
    if download:
        from torchvision.datasets import MNIST

        ds = MNIST(str(root), train=split == "train", download=True)
        return ImageTensorDataset(ds.data.unsqueeze(1).contiguous(), ds.targets.long())
    raise FileNotFoundError(
        f"no MNIST {split} data in {root}: looked for npz shards mnist_{split}_*.npz and for "
        f"torchvision's MNIST/raw/{_RAW_STEMS[split]}-images-idx3-ubyte; pass download=True to "
        f"download with torchvision"
    )
