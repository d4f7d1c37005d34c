"""A dataset over an in-memory uint8 image array."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from genprior._checks import check_shape

__all__ = ["ImageTensorDataset"]


class ImageTensorDataset(Dataset):
    """Images held in memory as uint8, served as float in [0, 1].

    Each item is one image ``x`` (no label); labels, when known, are in :attr:`labels`.

    Args:
        images: uint8 images in 0..255.
        labels: optional integer labels, one per image.

    Shape:
        - images: ``(N, C, H, W)``
        - item: ``(C, H, W)`` float32 in [0, 1]
    """

    def __init__(self, images: Tensor, labels: Tensor | None = None) -> None:
        check_shape(images, "images", "N C H W")
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (0..255), got dtype {images.dtype}")
        if labels is not None and labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got "
                             f"{tuple(labels.shape)}")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i].float() / 255.0

    def as_tensor(self) -> Tensor:
        """All images at once, float32 in [0, 1].

        Shape:
            output: ``(N, C, H, W)``
        """
        return self.images.float() / 255.0
