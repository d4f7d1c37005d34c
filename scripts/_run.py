"""The preamble shared by the evaluation scripts: thread count, output folder, first images."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["first_images", "prepare_run"]


def prepare_run(args: Namespace) -> Path:
    """Apply ``args.threads`` (when set) and create ``args.out``; return it as a path."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def first_images(dataset, n: int) -> Tensor:
    """The first ``n`` images of a dataset, stacked.

    Shape:
        output: ``(n, C, H, W)``

    Raises:
        ValueError: the dataset holds fewer than ``n`` images.
    """
    if n > len(dataset):
        raise ValueError(f"asked for {n} images, the data holds {len(dataset)}")
    return torch.stack([dataset[i] for i in range(n)])
