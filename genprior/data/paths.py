"""Where the data lives: an explicit argument, else ``$GENPRIOR_DATA``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_root"]

#: environment variable naming the folder that holds ``mnist/`` and ``celeba/``
DATA_ENV = "GENPRIOR_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data folder: ``root`` when given, else ``$GENPRIOR_DATA``.

    Args:
        root: an explicit folder, or ``None`` to use the environment variable.

    Returns:
        The folder as a :class:`~pathlib.Path` (not checked for existence).

    Raises:
        ValueError: ``root`` is ``None`` and ``$GENPRIOR_DATA`` is unset or empty.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if not env:
        raise ValueError(
            f"no data folder given: pass root=... (or --data on the command line) or set "
            f"${DATA_ENV} to the folder holding mnist/ and celeba/"
        )
    return Path(env).expanduser()
