"""The small sample batches shipped in ``genprior/assets`` (built by ``scripts/make_assets.py``)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from genprior._io import load_images_npz

__all__ = ["SAMPLES", "load_samples", "samples_path"]

ASSETS = Path(__file__).resolve().parents[1] / "assets"

#: name -> file in ``genprior/assets``: the first 64 MNIST test digits (1 x 28 x 28), 16
#: held-out CelebA faces, ids 008985..009000 (3 x 64 x 64), and centre crops of the first 4
#: BSD68 grey test images (1 x 72 x 88; held out from the natural-image priors' training data)
SAMPLES = {"mnist": "mnist_test_64.npz", "celeba": "celeba_16.npz",
           "natural": "bsd68_crops_4.npz"}


def samples_path(name: str) -> Path:
    """Path of a shipped sample file.

    Raises:
        ValueError: unknown ``name``.
    """
    if name not in SAMPLES:
        raise ValueError(f"unknown sample set {name!r}; known: {sorted(SAMPLES)}")
    return ASSETS / SAMPLES[name]


def load_samples(name: str) -> Tensor:
    """Load a shipped sample batch (works offline, no data folder needed).

    Args:
        name: ``"mnist"`` (64 test digits), ``"celeba"`` (16 held-out faces) or ``"natural"``
            (4 grey crops of BSD68 test images).

    Returns:
        float32 images in [0, 1].

    Shape:
        output: ``(64, 1, 28, 28)`` for ``"mnist"``, ``(16, 3, 64, 64)`` for ``"celeba"``,
        ``(4, 1, 72, 88)`` for ``"natural"``.

    Example:
        >>> load_samples("mnist").shape
        torch.Size([64, 1, 28, 28])
    """
    return load_images_npz(samples_path(name))
