"""The comparison figure of scripts/compare_sr.py: one row per face, one column per method."""

from __future__ import annotations

import sys
from pathlib import Path

from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sr_faces import FIRST_ID, Output


def figure(path: Path, x: Tensor, y: Tensor, outs: dict[str, Output], reference: str, *,
           twin: str, csgm_priors: tuple[str, ...]) -> None:
    """Rows: faces; columns: LR input, bicubic, MSE twin, AffGAN draws 1-2, AffGAN std, CSGM
    (each prior, without and with projection), truth.

    The std map is the per-pixel std of the AffGAN draws averaged over colour channels, shown
    from 0 (black) to its largest value over the shown faces (white).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = x.shape[0]
    aff = outs[reference].samples[:, :k]
    std = aff.std(0).mean(1)
    cols: list[tuple[str, Tensor]] = [
        ("LR input\n(nearest = A⁺y)", y[:k]), ("bicubic", outs["bicubic"].x_hat[:k]),
        *([("MSE twin", outs[twin].x_hat[:k])] if twin in outs else []), ("AffGAN draw 1", aff[0]),
        ("AffGAN draw 2", aff[1]),
        (f"AffGAN std ({aff.shape[0]} draws)\n0..{std.max().item():.2f}", std),
    ]
    for p in (p for p in csgm_priors if f"CSGM {p}" in outs):  # absent with --no-csgm
        short = p.removeprefix("celeba-").upper()
        cols += [(f"CSGM {short}", outs[f"CSGM {p}"].x_hat[:k]),
                 (f"CSGM {short}\n+ projection", outs[f"CSGM {p} + projection"].x_hat[:k])]
    cols.append(("HR truth", x[:k]))
    fig, axes = plt.subplots(k, len(cols), figsize=(1.25 * len(cols), 1.3 * k + 0.5),
                             squeeze=False)
    for j, (title, imgs) in enumerate(cols):
        axes[0, j].set_title(title, fontsize=7)
        for i in range(k):
            ax = axes[i, j]
            if imgs.ndim == 3:  # std map
                ax.imshow(imgs[i].numpy(), cmap="gray", vmin=0, vmax=std.max().item())
            else:
                ax.imshow(imgs[i].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    for i in range(k):
        axes[i, 0].set_ylabel(f"{FIRST_ID + i:06d}", fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
