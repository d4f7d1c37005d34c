"""Explicit randomness: every random draw takes a ``torch.Generator``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["default_device", "make_generator", "rand", "randn"]


def default_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def _draw(fn, shape, generator, device, dtype) -> Tensor:
    # Draw on the generator's device (so results do not depend on the target device), then move.
    gen_device = generator.device if generator is not None else device
    t = fn(tuple(shape), generator=generator, device=gen_device, dtype=dtype)
    return t.to(device)


def randn(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal tensor drawn from ``generator`` and placed on ``device``.

    Shape:
        ``shape``.
    """
    return _draw(torch.randn, shape, generator, device or "cpu", dtype)


def rand(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniform [0, 1) tensor drawn from ``generator`` and placed on ``device``."""
    return _draw(torch.rand, shape, generator, device or "cpu", dtype)
