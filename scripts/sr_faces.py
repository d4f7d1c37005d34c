"""The 4x face super-resolution set-up that scripts/compare_sr.py and
scripts/affll_density_check.py share: held-out CelebA faces, the box operator, bicubic, and
what one method produced (:class:`Output`).

Ids 1..8000 train the shipped SR models (scripts/train_affgan.sh); ids 8001..9000 are held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from genprior.data import load_image_data
from genprior.operators.downsample import Downsample

FIRST_ID = 8001
LAST_ID = 9000
SR_MODELS = ("celeba-sr4-mse", "celeba-sr4-affgan")


@dataclass
class Output:
    """What one method produced for a batch of inputs.

    Attributes:
        samples: all outputs, unclamped, ``(S, B, C, H, W)`` (``S = 1`` when deterministic).
        x_hat: the point estimate, unclamped, ``(B, C, H, W)``.
        seconds_per_image: wall time per image as scripts/compare_sr.py's docstring defines it.
    """

    samples: Tensor
    x_hat: Tensor
    seconds_per_image: float


def held_out_faces(data: Path | str, n: int, crop: int | None) -> Tensor:
    """The first ``n`` held-out faces (ids 8001..), 64x64 after a centre crop of ``crop``.

    Raises:
        SystemExit: naming the folder, when it does not hold those ``n`` faces.

    Shape:
        output: ``(n, 3, 64, 64)`` in [0, 1].
    """
    x = load_image_data(data, img_size=64, crop=crop,
                        id_range=(FIRST_ID, FIRST_ID + n - 1)).tensors[0]
    if x.shape[0] != n:
        raise SystemExit(f"expected {n} faces {FIRST_ID}.. in {data}, got {x.shape[0]}")
    return x


def box_operator() -> Downsample:
    """The SR models' operator: 4x box downsampling of 64x64 colour images."""
    return Downsample((3, 64, 64), 4, kernel="box")


def bicubic(y: Tensor) -> Tensor:
    """4x bicubic upsampling, clamped to [0, 1].

    Shape:
        y: ``(B, C, h, w)``; output: ``(B, C, 4h, 4w)``.
    """
    return F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
