"""Pieces shared by the natural-image benchmark scripts (bench_set11.py, bench_sr_natural.py):
the untrained-generator baseline and the one-row comparison figure."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["dip", "figure"]


def dip(y: torch.Tensor, A, img_size: tuple[int, int, int], iterations: int) -> torch.Tensor:
    """deepinv's ``DeepImagePrior`` with a ``ConvDecoder`` (untrained), fixed iteration budget.

    Shape:
        - y: ``(1, *meas_shape)``; output: ``(1, *img_size)``
    """
    import deepinv

    net = deepinv.models.ConvDecoder(img_size=img_size, in_size=(8, 8), layers=6, channels=64)
    model = deepinv.models.DeepImagePrior(net, img_size=(64, 8, 8), iterations=iterations,
                                          learning_rate=0.01)
    torch.manual_seed(0)  # script-level: deepinv's DIP draws its input from the global RNG
    return model(y, A).detach()


def figure(images: dict, path: Path, title: str, panel: tuple[float, float]) -> None:
    """The truth beside every method's output, one row (grey or RGB), labels as given.

    Args:
        images: label -> ``(1, C, H, W)`` image in [0, 1], C = 1 or 3.
        panel: width and height of one panel in inches.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(panel[0] * len(images), panel[1]))
    for ax, (label, img) in zip(axes, images.items()):
        if img.shape[1] == 3:
            ax.imshow(img[0].permute(1, 2, 0).clamp(0, 1).numpy())
        else:
            ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
