"""All per-image metrics of a batch of reconstructions at once."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from genprior._serialization import atomic_write_bytes
from genprior.metrics.image import mse_per_pixel, psnr, ssim
from genprior.metrics.perceptual import lpips
from genprior.metrics.residual import measurement_residual
from genprior.metrics.summary import Summary, summary

__all__ = ["MetricsTable", "image_metrics"]


@torch.no_grad()
def image_metrics(
    x_hat: Tensor,
    x: Tensor,
    *,
    data_range: float = 1.0,
    y: Tensor | None = None,
    A: Callable[[Tensor], Tensor] | None = None,
    lpips_net: str | None = None,
    lpips_model: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Per-image ``mse_per_pixel``, ``psnr``, ``ssim``, plus ``residual`` when ``y`` and ``A``
    are given and ``lpips`` when ``lpips_net`` or ``lpips_model`` is given.

    Args:
        x_hat: reconstructions.
        x: ground truth.
        data_range: value range for PSNR and SSIM (1 for [0, 1] images).
        y: measurements, for :func:`measurement_residual`.
        A: the operator that produced ``y``.
        lpips_net: LPIPS backbone to load with :func:`load_lpips` (``"alex"``, ...).
        lpips_model: an ``lpips.LPIPS`` model to use instead.

    Returns:
        Metric name -> ``(B,)`` tensor, in a fixed column order.

    Shape:
        - x_hat, x: ``(B, C, H, W)``
        - y: ``(B, *meas_shape)``
    """
    if (y is None) != (A is None):
        raise ValueError("y and A must be given together (the residual needs both)")
    out = {
        "mse_per_pixel": mse_per_pixel(x_hat, x),
        "psnr": psnr(x_hat, x, data_range=data_range),
        "ssim": ssim(x_hat, x, data_range=data_range),
    }
    if y is not None:
        out["residual"] = measurement_residual(x_hat, y, A)
    if lpips_model is not None or lpips_net is not None:
        out["lpips"] = lpips(x_hat, x, net=lpips_net or "alex", model=lpips_model)
    return out


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


@dataclass
class MetricsTable:
    """Per-image metric values and their summaries, writable as CSV or JSON.

    Attributes:
        values: metric name -> one value per image (the columns, in order).
        summaries: metric name -> :class:`Summary` (mean and 95% half-width).
    """

    values: dict[str, list[float]]
    summaries: dict[str, Summary]

    @classmethod
    def from_metrics(cls, metrics: dict[str, Tensor]) -> MetricsTable:
        """Build from :func:`image_metrics` output (``(B,)`` tensors of one length)."""
        lengths = {k: v.numel() for k, v in metrics.items()}
        if not metrics or len(set(lengths.values())) != 1:
            raise ValueError(f"metrics must be non-empty with one value per image each, got "
                             f"lengths {lengths}")
        values = {k: [float(a) for a in v.detach().cpu().flatten()] for k, v in metrics.items()}
        return cls(values=values, summaries={k: summary(v) for k, v in values.items()})

    @property
    def n(self) -> int:
        """Number of images."""
        return len(next(iter(self.values.values())))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Columns ``image`` and one per metric; one row per image (index from 0), then a row
        ``mean`` and a row ``ci95``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        names = list(self.values)
        writer.writerow(["image", *names])
        for i in range(self.n):
            writer.writerow([i, *(repr(self.values[k][i]) for k in names)])
        writer.writerow(["mean", *(repr(self.summaries[k].mean) for k in names)])
        writer.writerow(["ci95", *(repr(self.summaries[k].ci95) for k in names)])
        atomic_write_bytes(path, buf.getvalue().encode())

    def to_json(self, path: str | os.PathLike, **meta: Any) -> None:
        """``{"n", "per_image": [{"image": i, metric: value}], "summary": {metric: {"mean",
        "ci95", "n"}}, **meta}``; non-finite values (an exact reconstruction's PSNR) are
        written as ``null`` to keep the file strict JSON."""
        per_image = [
            {"image": i, **{k: _finite_or_none(v[i]) for k, v in self.values.items()}}
            for i in range(self.n)
        ]
        summary_json = {
            k: {"mean": _finite_or_none(s.mean), "ci95": _finite_or_none(s.ci95), "n": s.n}
            for k, s in self.summaries.items()
        }
        doc = {**meta, "n": self.n, "per_image": per_image, "summary": summary_json}
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(path, text.encode())

    def __str__(self) -> str:
        width = max(len(k) for k in self.values)
        lines = [f"{'metric':<{width}}  mean ± ci95 (n={self.n})"]
        lines += [f"{k:<{width}}  {s.mean:.5g} ± {s.ci95:.2g}" for k, s in self.summaries.items()]
        return "\n".join(lines)
