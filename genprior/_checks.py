"""Input validation that raises clear, named errors instead of asserts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_finite", "check_image", "check_positive", "check_shape"]


def check_shape(t: Tensor, name: str, spec: str) -> None:
    """Check that ``t`` has the shape described by ``spec``.

    ``spec`` is a space-separated list of dimension names or integers, e.g. ``"B C H W"`` or
    ``"B 3 64 64"``; names match any size, integers must match exactly.

    Raises:
        TypeError: if ``t`` is not a tensor.
        ValueError: naming ``name``, the expected and the actual shape.
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    dims = spec.split()
    if t.ndim != len(dims):
        raise ValueError(
            f"{name} must have shape ({', '.join(dims)}), got {tuple(t.shape)} "
            f"({t.ndim} dims instead of {len(dims)})"
        )
    for i, (d, s) in enumerate(zip(dims, t.shape)):
        if d.isdigit() and int(d) != s:
            raise ValueError(
                f"{name} must have shape ({', '.join(dims)}), got {tuple(t.shape)} "
                f"(dim {i} is {s}, expected {d})"
            )


def check_finite(t: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``t`` contains NaN or infinite values."""
    if not torch.isfinite(t).all():
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or inf)")


def check_image(
    x: Tensor,
    name: str = "x",
    *,
    img_size: Sequence[int] | None = None,
    check_range: bool = True,
    atol: float = 1e-4,
) -> None:
    """Check the public image convention: float ``(B, C, H, W)`` with values in [0, 1].

    Args:
        x: the tensor to check.
        name: argument name used in the error message.
        img_size: optional expected ``(C, H, W)``.
        check_range: whether to enforce values in ``[0, 1]`` (up to ``atol``).
        atol: tolerance on the range check.

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: wrong number of dims, wrong ``(C, H, W)``, values outside [0, 1] or non-finite.
    """
    check_shape(x, name, "B C H W")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if img_size is not None and tuple(x.shape[1:]) != tuple(img_size):
        raise ValueError(
            f"{name} must have (C, H, W) = {tuple(img_size)}, got {tuple(x.shape[1:])} "
            f"(full shape {tuple(x.shape)})"
        )
    check_finite(x, name)
    if check_range and x.numel() > 0:
        lo, hi = float(x.min()), float(x.max())
        if lo < -atol or hi > 1 + atol:
            raise ValueError(
                f"{name} must have values in [0, 1] (images at public boundaries are in [0, 1]); "
                f"got min {lo:.4g}, max {hi:.4g}"
            )


def check_positive(value: float, name: str, *, allow_zero: bool = False,
                   allow_inf: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is positive (or zero when allowed) and finite
    (NaN is never allowed; ``inf`` only with ``allow_inf``)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    if not allow_inf and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
