"""What a training run reports as it goes: the CSV loss log, the progress bar and the sample grid.

Only rank 0 reports; the loop (:func:`genprior.training.loop.fit`) decides when.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor
from tqdm.auto import tqdm

from genprior._io import save_grid_png
from genprior._serialization import atomic_write_bytes

__all__ = ["CSVLogger", "progress_bar", "save_sample_grid"]


class CSVLogger:
    """Append rows ``step, epoch, time_s, <losses...>`` to a CSV, flushed per row.

    On resume, rows after ``resume_step`` (written after the checkpoint by the interrupted run)
    are dropped so that the log matches the training state.

    Example:
        >>> log = CSVLogger("/tmp/log.csv", ["loss"])
        >>> log.log(1, 0, 0.5, {"loss": 0.25})
        >>> log.close()
        >>> open("/tmp/log.csv").read().splitlines()
        ['step,epoch,time_s,loss', '1,0,0.5,0.25']
    """

    def __init__(self, path: str | os.PathLike, fields: Sequence[str], *,
                 resume_step: int | None = None) -> None:
        self.path, self.fields = Path(path), ["step", "epoch", "time_s", *fields]
        rows: list[list[str]] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= resume_step]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.fields)
        w.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self._f = self.path.open("a", newline="")
        self._w = csv.writer(self._f)

    def log(self, step: int, epoch: int, time_s: float, values: dict[str, float]) -> None:
        self._w.writerow([step, epoch, f"{time_s:.1f}",
                          *(f"{values[k]:.6g}" for k in self.fields[3:])])
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def progress_bar(*, total: int, initial: int, enabled: bool, desc: str) -> tqdm:
    """A step progress bar that refreshes at most once a second (every 30 s when not a tty)."""
    return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0, desc=desc)


def save_sample_grid(path: str | os.PathLike, x: Tensor, *, nrow: int = 8,
                     padding: int = 2) -> None:
    """Write a training run's sample grid: ``x`` clipped to [0, 1] (NaN as 0), white padding.

    Shape:
        x: ``(B, C, H, W)`` with ``C`` in {1, 3}
    """
    x = x.detach().float().nan_to_num(0.0).clamp(0, 1)
    save_grid_png(path, x, nrow=nrow, padding=padding, pad_value=1.0)
