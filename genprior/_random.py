"""Explicit randomness: every random draw takes a ``torch.Generator``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["make_generator", "rand", "randn"]


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def _drawer(fn: Callable[..., Tensor], doc: str) -> Callable[..., Tensor]:
    """A draw function over ``fn`` (``torch.rand`` / ``torch.randn``) with the signature below."""

    def draw(
        shape: Sequence[int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        # Draw on the generator's device (so results do not depend on the target device), then
        # move.
        device = device or "cpu"
        gen_device = generator.device if generator is not None else device
        return fn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)

    draw.__name__ = draw.__qualname__ = fn.__name__
    draw.__doc__ = doc
    return draw


randn = _drawer(
    torch.randn,
    """Standard normal tensor drawn from ``generator`` and placed on ``device``.

    Shape:
        ``shape``.
    """,
)

rand = _drawer(
    torch.rand,
    """Uniform [0, 1) tensor drawn from ``generator`` and placed on ``device``.

    Shape:
        ``shape``.
    """,
)
