"""Training sets in memory, id ranges and the resumable, sharded sampler of the training loops.

:func:`load_image_data` reads a whole training folder (``.npz`` shards in the MNIST layout, or
image files) into one :class:`~torch.utils.data.TensorDataset` of images in [0, 1];
:class:`ResumableSampler` orders it per epoch as a pure function of ``(seed, epoch)`` and can
start part-way through an epoch, which is what makes resumed training exact.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, TensorDataset

from genprior._io import load_npz_array
from genprior.data.folder import IMG_EXTENSIONS, ImageFolderDataset

__all__ = ["ResumableSampler", "load_image_data", "parse_range"]


def parse_range(text: str | None) -> tuple[int, int] | None:
    """Parse an inclusive id range ``"1:8000"`` (both ends included) or ``None``.

    Raises:
        ValueError: naming ``--train-range`` when the text is not ``START:END`` with
            ``START <= END``.

    Example:
        >>> parse_range("1:8000")
        (1, 8000)
    """
    if text is None or text == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None or int(m.group(1)) > int(m.group(2)):
        raise ValueError(f"--train-range must be START:END with START <= END (e.g. 1:8000), "
                         f"got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _id_of(path: Path) -> int | None:
    m = re.fullmatch(r"(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _load_npz_folder(root: Path, *, split: str, id_range: tuple[int, int] | None) -> Tensor:
    files = sorted(p for p in root.glob("*.npz") if split in p.name) or sorted(root.glob("*.npz"))
    arrays = [load_npz_array(p, "x", what="data") for p in files]
    for p, a in zip(files, arrays):
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise ValueError(f"array 'x' in {p} holds {int((~np.isfinite(a)).sum())} NaN or "
                             f"infinite value(s); training data must be finite")
    x = np.concatenate(arrays)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"arrays 'x' in {root} must be (N, H, W) or (N, H, W, C), got {x.shape}")
    if id_range is not None:
        x = x[id_range[0] - 1:id_range[1]]
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def _check_image_file(path: Path, *, min_side: int, channels: int) -> None:
    want = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    if mode != want:
        raise ValueError(f"image {path} has mode {mode}, expected {want} ({channels} channel(s))")
    if min(w, h) < min_side:
        raise ValueError(f"image {path} is {w}x{h}, smaller than the crop/size {min_side}")


def load_image_data(
    root: str | os.PathLike,
    *,
    img_size: int | None = None,
    crop: int | None = None,
    channels: int = 3,
    id_range: tuple[int, int] | None = None,
    split: str = "train",
) -> TensorDataset:
    """Load a whole training set into memory as a :class:`TensorDataset` of images in [0, 1].

    Two layouts: a folder of ``.npz`` shards with an array ``x`` (``uint8`` (N, H, W[, C]), the
    MNIST layout; shards whose name contains ``split`` are used), or a folder of images
    (:data:`~genprior.data.folder.IMG_EXTENSIONS`) read by
    :class:`~genprior.data.folder.ImageFolderDataset` (centred ``crop``, bilinear resize to
    ``img_size``; CelebA 64x64 uses ``crop=54``, :data:`genprior.data.folder.CELEBA_CROP`).

    Args:
        root: the folder.
        img_size: target side for image folders (required for them).
        crop: centred square crop side before resizing (``None``: the largest square).
        channels: 3 (RGB) or 1 (L) for image folders; every image must have that mode.
        id_range: keep files whose numeric name is in ``[start, end]`` (image folders) or the
            samples ``start..end`` (1-based, npz).
        split: substring selecting npz shards.

    Returns:
        a dataset of float ``(C, H, W)`` tensors in [0, 1].

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: naming the folder or the offending file when the folder holds no data, a
            file cannot be read, an image has the wrong mode or is too small, or an npz array
            holds NaN or infinite values.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data folder not found: {root}")
    if any(root.glob("*.npz")):
        x = _load_npz_folder(root, split=split, id_range=id_range)
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        if id_range is not None:
            files = [p for p in files if (i := _id_of(p)) is not None
                     and id_range[0] <= i <= id_range[1]]
        if not files:
            where = "" if id_range is None else f" with ids in {id_range[0]}..{id_range[1]}"
            raise ValueError(f"--data folder {root} holds no images{where} "
                             f"({'/'.join(IMG_EXTENSIONS)}) and no .npz shards")
        if img_size is None:
            raise ValueError("--img-size is required for an image folder")
        for p in files:
            _check_image_file(p, min_side=crop or img_size, channels=channels)
        folder = ImageFolderDataset(root, img_size=img_size, crop=crop,
                                    grayscale=channels == 1, files=[p.name for p in files])
        x = torch.stack([folder[i] for i in range(len(folder))])
    if x.shape[0] == 0:
        raise ValueError(f"--data folder {root} holds no samples"
                         + ("" if id_range is None else f" in range {id_range}"))
    return TensorDataset(x)


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` whose epoch can start part-way (for exact resumption).

    The order is a pure function of ``(seed, epoch)``; :meth:`set_epoch` with ``start`` skips
    the first ``start`` indices of this rank's shard.

    Example:
        >>> s = ResumableSampler(range(10), num_replicas=1, rank=0, seed=0)
        >>> s.set_epoch(0, start=8)
        >>> len(list(s))
        2
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int,
                 shuffle: bool = True, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
