"""Mean and 95% confidence half-width of a metric over images."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Summary", "summary"]


@dataclass(frozen=True)
class Summary:
    r"""Mean of ``n`` values and the half-width of its normal 95% interval,
    :math:`1.96\, s / \sqrt{n}` with :math:`s` the sample standard deviation (``n - 1``)."""

    mean: float
    ci95: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.ci95:.2g} (n={self.n})"


def summary(values: Tensor | Sequence[float]) -> Summary:
    r"""Summarise per-image values as mean :math:`\pm` 95% confidence half-width.

    Args:
        values: one value per image.

    Returns:
        :class:`Summary`; ``ci95`` is ``nan`` for a single value. Non-finite values (e.g. an
        ``inf`` PSNR of an exact reconstruction) propagate to the mean.

    Shape:
        values: ``(N,)``

    Example:
        >>> summary([1.0, 2.0, 3.0])
        Summary(mean=2.0, ci95=1.1316065276116665, n=3)
    """
    v = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if v.ndim != 1 or v.numel() == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {tuple(v.shape)}")
    n = v.numel()
    ci95 = 1.96 * float(v.std(correction=1)) / math.sqrt(n) if n > 1 else float("nan")
    return Summary(mean=float(v.mean()), ci95=ci95, n=n)
