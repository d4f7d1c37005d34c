"""Deterministic train / validation / test splits by seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from genprior._random import make_generator

__all__ = ["Splits", "split_indices"]


@dataclass
class Splits:
    """Disjoint index sets covering ``range(n)``, each sorted ascending (int64)."""

    train: Tensor
    val: Tensor
    test: Tensor


def _count(size: float, n: int, name: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"{name} must be an int (count) or a float in [0, 1) (fraction), got "
                        f"{size!r}")
    if isinstance(size, float):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"{name} as a fraction must be in [0, 1), got {size}")
        return round(size * n)
    if size < 0:
        raise ValueError(f"{name} as a count must be >= 0, got {size}")
    return size


def split_indices(
    n: int, *, val: float = 0.1, test: float = 0.1, seed: int = 0
) -> Splits:
    """Split ``range(n)`` at random into train / val / test, the same way for the same ``n``
    and ``seed``.

    The indices come from one permutation drawn with a ``torch.Generator`` seeded with ``seed``:
    its first ``n_test`` entries are the test set, the next ``n_val`` the validation set and the
    rest the training set.

    Args:
        n: number of items.
        val: validation size, a count (int) or a fraction of ``n`` (float, rounded).
        test: test size, a count or a fraction.
        seed: the permutation's seed.

    Returns:
        :class:`Splits` with sorted int64 index tensors.

    Raises:
        ValueError: negative sizes, fractions outside [0, 1), or ``val + test > n``.

    Example:
        >>> s = split_indices(10, val=2, test=0.2, seed=0)
        >>> len(s.train), len(s.val), len(s.test)
        (6, 2, 2)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    n_val, n_test = _count(val, n, "val"), _count(test, n, "test")
    if n_val + n_test > n:
        raise ValueError(f"val + test = {n_val} + {n_test} exceeds n = {n}")
    perm = torch.randperm(n, generator=make_generator(seed))
    test_idx, val_idx = perm[:n_test], perm[n_test:n_test + n_val]
    train_idx = perm[n_test + n_val:]
    return Splits(train=train_idx.sort().values, val=val_idx.sort().values,
                  test=test_idx.sort().values)
