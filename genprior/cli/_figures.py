"""The labelled figures of the ``genprior`` commands: the one place where matplotlib is used.

Two layouts, shared by ``demo``, ``reconstruct``, ``evaluate`` and ``sample``:

- :func:`comparison_figure`: one row per image and one column per method, the truth first; every
  panel is titled with its method and, where the truth is known, its PSNR (``PSNR 23.4 dB``).
- :func:`samples_figure`: the truth, the posterior mean and a few samples (each with its PSNR),
  and the per-pixel standard deviation as a heat map with a colour bar.

Figures are drawn on matplotlib's Agg canvas without ``pyplot`` (no global state, no display
needed) and written by :func:`save_figure` through :func:`genprior._io.save_grid_png`, the
package's one PNG writer (atomic: a failed write leaves no half-written file).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["comparison_figure", "figure_image", "psnr_label", "samples_figure", "save_figure"]

#: at most this many images (rows) per figure
MAX_ROWS = 8
#: side of one image panel, inches (at :data:`DPI`)
PANEL_INCHES = 1.35
DPI = 100
_FONT = 8


def psnr_label(value: float) -> str:
    """The per-panel PSNR text, e.g. ``PSNR 23.4 dB`` (``PSNR inf`` for an exact match)."""
    return "PSNR inf" if not np.isfinite(value) else f"PSNR {value:.1f} dB"


def _psnr(x_hat: Tensor, x: Tensor) -> Tensor:
    from genprior.metrics import psnr

    return psnr(x_hat.clamp(0, 1), x.clamp(0, 1), data_range=1.0)


def _to_cpu(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float32)


def _show(ax, img: Tensor) -> None:
    """One image ``(C, H, W)`` in [0, 1] (clamped for display), without ticks."""
    img = img.clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _new_figure(rows: int, cols: int, *, extra_width: float = 0.0) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(cols * PANEL_INCHES + extra_width, rows * (PANEL_INCHES + 0.35) + 0.4),
                 dpi=DPI, layout="compressed")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def _title(fig: Figure, title: str | None) -> None:
    """The figure's title, wrapped to the figure's width."""
    if title:
        width = max(20, int(fig.get_size_inches()[0] * 11))
        fig.suptitle(textwrap.fill(title, width), fontsize=_FONT + 2)


def _draw_columns(axes: np.ndarray, x: Tensor | None, columns: Mapping[str, Tensor],
                  psnr: Mapping[str, Tensor] | None) -> None:
    """Fill the first columns of ``axes``: the truth (when known), then one per entry of
    ``columns``, every panel titled with its name and, where it can be scored, its PSNR."""
    n = axes.shape[0]
    names = (["truth"] if x is not None else []) + list(columns)
    for j, name in enumerate(names):
        images = x if name == "truth" else columns[name]
        score = None
        if name != "truth" and psnr is not None and name in psnr:
            score = _to_cpu(psnr[name][:n])
        elif name != "truth" and x is not None and images.shape == x.shape:
            score = _psnr(images, x)
        for i in range(n):
            _show(axes[i, j], images[i])
            label = name if score is None else f"{name}\n{psnr_label(float(score[i]))}"
            axes[i, j].set_title(label, fontsize=_FONT,
                                 fontweight="bold" if name == "truth" else None)
    for i in range(n):
        axes[i, 0].set_ylabel(f"image {i}", fontsize=_FONT)


def _first(x: Tensor | None, columns: Mapping[str, Tensor], max_images: int
           ) -> tuple[int, Tensor | None, dict[str, Tensor]]:
    if not columns:
        raise ValueError("nothing to draw: no method columns given")
    batch = next(iter(columns.values())).shape[0] if x is None else x.shape[0]
    n = min(max_images, batch)
    return (n, None if x is None else _to_cpu(x[:n]),
            {name: _to_cpu(v[:n]) for name, v in columns.items()})


def comparison_figure(
    x: Tensor | None,
    x_hats: Mapping[str, Tensor],
    *,
    psnr: Mapping[str, Tensor] | None = None,
    title: str | None = None,
    max_images: int = MAX_ROWS,
) -> Figure:
    """Rows = images, columns = methods (the truth first), each panel titled with its method
    and its PSNR.

    Args:
        x: the ground truth, or ``None`` when it is unknown (then no truth column and no PSNR).
        x_hats: method name -> its images, in column order. An entry of another image size
            than ``x`` (e.g. low-resolution measurements) is shown without a PSNR.
        psnr: method name -> per-image PSNR ``(B,)`` to print instead of computing it (e.g. the
            values of the command's metrics table); computed on [0, 1] otherwise.
        title: the figure's title.
        max_images: show the first ``max_images`` images.

    Returns:
        the figure (Agg canvas), to pass to :func:`save_figure`.

    Shape:
        - x, each x_hat: ``(B, C, H, W)`` in [0, 1] (clamped for display), ``C`` in {1, 3}

    Raises:
        ValueError: ``x_hats`` is empty.

    Example:
        >>> x = torch.full((2, 1, 8, 8), 0.5)
        >>> fig = comparison_figure(x, {"csgm": x + 0.1})
        >>> print(fig.axes[1].get_title())
        csgm
        PSNR 20.0 dB
    """
    n, x, columns = _first(x, x_hats, max_images)
    fig, axes = _new_figure(n, len(columns) + (x is not None))
    _draw_columns(axes, x, columns, psnr)
    _title(fig, title)
    return fig


def samples_figure(
    samples: Tensor,
    mean: Tensor,
    std: Tensor,
    *,
    x: Tensor | None = None,
    n_samples: int = 3,
    title: str | None = None,
    max_images: int = MAX_ROWS,
) -> Figure:
    """Rows = images; columns: the truth (when known), the posterior mean and ``n_samples``
    samples, each titled with its PSNR, then the per-pixel standard deviation as a heat map
    (averaged over colour channels) on one scale with a colour bar.

    Args:
        samples: the samples, sample-major.
        mean: their mean per image.
        std: their standard deviation per image and pixel.
        x: the ground truth, or ``None``.
        n_samples: samples shown per image.
        title: the figure's title.
        max_images: show the first ``max_images`` images.

    Returns:
        the figure (Agg canvas), to pass to :func:`save_figure`.

    Shape:
        - samples: ``(S, B, C, H, W)``; mean, std, x: ``(B, C, H, W)``

    Example:
        >>> samples = torch.rand(4, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> fig = samples_figure(samples, samples.mean(0), samples.std(0))
        >>> [ax.get_title().splitlines()[0] for ax in fig.axes[:5]]
        ['mean', 'sample 1', 'sample 2', 'sample 3', 'std']
        >>> fig.axes[-1].get_ylabel()  # the colour bar
        'per-pixel std'
    """
    k = min(n_samples, samples.shape[0])
    columns = {"mean": mean, **{f"sample {s + 1}": samples[s] for s in range(k)}}
    n, x, columns = _first(x, columns, max_images)
    fig, axes = _new_figure(n, len(columns) + (x is not None) + 1, extra_width=0.8)
    _draw_columns(axes, x, columns, None)
    spread = _to_cpu(std[:n]).mean(dim=1)  # (n, H, W): mean over channels
    vmax = max(float(spread.max()), 1e-12)
    image = None
    for i in range(n):
        ax = axes[i, -1]
        image = ax.imshow(spread[i].numpy(), cmap="magma", vmin=0.0, vmax=vmax,
                          interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"std\nmean {float(spread[i].mean()):.3f}", fontsize=_FONT)
    bar = fig.colorbar(image, ax=list(axes[:, -1]), shrink=0.9)
    bar.set_label("per-pixel std" + (" (mean over RGB)" if std.shape[1] > 1 else ""),
                  fontsize=_FONT)
    bar.ax.tick_params(labelsize=_FONT)
    _title(fig, title)
    return fig


def figure_image(fig: Figure) -> Tensor:
    """The figure rendered on its Agg canvas, as an RGB image.

    Shape:
        - output: ``(1, 3, H, W)`` float in [0, 1] (exact multiples of 1/255)
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # settle the layout first (a colour bar moves it once)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1)[None].float() / 255


def save_figure(path: str | os.PathLike, fig: Figure) -> None:
    """Render ``fig`` and write it as a PNG, atomically, through the package's PNG writer."""
    from genprior import _io

    _io.save_grid_png(path, figure_image(fig), nrow=1, padding=0)
