"""Folders of images (CelebA and friends): centre crop, resize, RGB or grayscale."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from genprior.data.paths import data_root

__all__ = [
    "CELEBA_CROP",
    "CELEBA_SPLITS",
    "IMG_EXTENSIONS",
    "ImageFolderDataset",
    "celeba_ids",
    "center_crop_box",
    "load_celeba",
]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: centre-crop side for our half-resolution (89 x 109) aligned CelebA copies: the CSGM reference
#: crops 108 x 108 from the 178 x 218 originals, i.e. 54 x 54 at half resolution.
CELEBA_CROP = 54

#: CelebA ids (the number in ``000001.jpg``) of each split; ``"test"`` is the held-out split.
CELEBA_SPLITS = {"train": (1, 8000), "test": (8001, 9000), "all": (1, 9000)}


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(s) for s in v)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {v!r}")
    return pair


def center_crop_box(height: int, width: int, crop: tuple[int, int]) -> tuple[int, int, int, int]:
    """PIL box ``(left, top, right, bottom)`` of a centred ``crop = (h, w)`` window.

    Offsets are ``round((size - crop) / 2)`` (Python rounding), as in torchvision's
    ``CenterCrop`` and the CSGM/DCGAN reference code.
    """
    ch, cw = crop
    top, left = round((height - ch) / 2), round((width - cw) / 2)
    return left, top, left + cw, top + ch


class ImageFolderDataset(Dataset):
    """Every image file in a folder, centre-cropped and resized, as float ``(C, H, W)`` in [0, 1].

    Each item is one image (no label). Files are read lazily, in sorted name order unless
    ``files`` gives the list and order.

    Args:
        root: the folder.
        img_size: output side ``s`` (square) or ``(height, width)``.
        crop: centred crop applied before resizing: a side, ``(height, width)``, or ``None`` for
            the largest centred square. CelebA at half resolution: :data:`CELEBA_CROP` (54).
        grayscale: convert to one channel (PIL ``"L"``) instead of RGB.
        files: file names inside ``root`` to use, in this order (default: all image files).

    Shape:
        item: ``(3, H, W)``, or ``(1, H, W)`` when ``grayscale``.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or a name in ``files`` is missing there.
        ValueError: no image files in ``root``; on reading, an unreadable file or an image smaller
            than the crop (naming the file).

    Example:
        >>> faces = ImageFolderDataset("/work/shared/data/celeba", img_size=64, crop=54)
        >>> faces[0].shape
        torch.Size([3, 64, 64])
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        img_size: int | Sequence[int] = 64,
        crop: int | Sequence[int] | None = None,
        grayscale: bool = False,
        files: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        self.img_size = _pair(img_size, "img_size")
        self.crop = None if crop is None else _pair(crop, "crop")
        self.grayscale = bool(grayscale)
        if files is None:
            self.paths = sorted(
                p for p in self.root.iterdir()
                if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
            )
            if not self.paths:
                raise ValueError(
                    f"no image files ({', '.join(IMG_EXTENSIONS)}) in folder {self.root}"
                )
        else:
            self.paths = [self.root / f for f in files]
            missing = [str(p) for p in self.paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} of {len(self.paths)} image files not found, e.g. "
                    f"{missing[:3]}"
                )
            if not self.paths:
                raise ValueError(f"files is empty: no images to read from {self.root}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.grayscale else "RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot read image file {path}: {e}") from e
        crop = self.crop or (min(img.size),) * 2
        if crop[0] > img.height or crop[1] > img.width:
            raise ValueError(f"image file {path} is {img.height}x{img.width} (HxW), smaller than "
                             f"the crop {crop[0]}x{crop[1]}")
        img = img.crop(center_crop_box(img.height, img.width, crop))
        h, w = self.img_size
        if (img.height, img.width) != (h, w):
            img = img.resize((w, h), Image.BILINEAR)
        a = np.asarray(img, dtype=np.float32) / 255.0
        x = torch.from_numpy(a.copy())
        return x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1).contiguous()


def celeba_ids(split: str) -> list[int]:
    """The CelebA ids of a split: ``"train"`` 1..8000, ``"test"`` (held out) 8001..9000,
    ``"all"`` 1..9000."""
    if split not in CELEBA_SPLITS:
        raise ValueError(f"split must be one of {tuple(CELEBA_SPLITS)}, got {split!r}")
    first, last = CELEBA_SPLITS[split]
    return list(range(first, last + 1))


def load_celeba(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    img_size: int | Sequence[int] = 64,
    grayscale: bool = False,
) -> ImageFolderDataset:
    """Aligned CelebA faces ``NNNNNN.jpg`` (89 x 109 copies), cropped 54 x 54 and resized.

    The face priors train on ids 000001..008000 (``split="train"``) and every CelebA
    evaluation uses the held-out ids 008001..009000 (``split="test"``).

    Args:
        root: the CelebA folder; ``None`` uses ``$GENPRIOR_DATA/celeba``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        img_size: output side or ``(height, width)``; 64 is the CSGM setting.
        grayscale: one channel instead of RGB.

    Returns:
        An :class:`ImageFolderDataset` over the split's files, in id order.

    Raises:
        FileNotFoundError: the folder or some of the split's files are missing.
    """
    ids = celeba_ids(split)
    root = data_root(root) / "celeba" if root is None else Path(root).expanduser()
    if not (root / f"{ids[0]:06d}.jpg").is_file() and (root / "celeba").is_dir():
        root = root / "celeba"
    return ImageFolderDataset(root, img_size=img_size, crop=CELEBA_CROP, grayscale=grayscale,
                              files=[f"{i:06d}.jpg" for i in ids])
