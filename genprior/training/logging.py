"""What a training run reports as it goes: the CSV loss log, the progress bar and the sample grid.

Only rank 0 reports; the loop (:func:`genprior.training.loop.fit`) decides when.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor
from tqdm.auto import tqdm

from genprior._io import save_grid_png
from genprior._serialization import atomic_write_bytes

__all__ = ["CSVLogger", "progress_bar", "read_log", "save_sample_grid"]


class CSVLogger:
    """Append rows ``step, epoch, time_s, <losses...>`` to a CSV, flushed per row.

    A fresh log (``resume_step=None``) replaces any file at ``path``; the run folder's guard
    (:func:`genprior.training.run_folder.check_run_folder`) makes sure none is there unless the
    user asked to overwrite. On resume the log continues exactly from the checkpoint: rows after
    ``resume_step`` (written after the checkpoint by the interrupted run, including a row cut
    short by a kill) are dropped, and :attr:`time_offset` is the ``time_s`` of the last row kept.

    Raises:
        ValueError: naming the file, on resume, when its columns are not ``fields`` or its rows
            up to ``resume_step`` do not end at that step without gaps (it is not the log of the
            checkpoint's run; appending to it would splice two runs).

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
        rows = [] if resume_step is None else self._rows_until(resume_step)
        self.time_offset = float(rows[-1][2]) if rows else 0.0
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.fields)
        w.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self._f = self.path.open("a", newline="")
        self._w = csv.writer(self._f)

    def _rows_until(self, step: int) -> list[list[str]]:
        """The rows of the existing log up to ``step``, checked to end there without gaps."""
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as f:
            lines = list(csv.reader(f))
        if lines and lines[0] != self.fields:
            raise ValueError(f"{self.path} has columns {','.join(lines[0])}, not "
                             f"{','.join(self.fields)}: it is not the log of this run; move it "
                             f"away or start again with --overwrite")
        rows = []
        for r in lines[1:]:
            try:
                ok = len(r) == len(self.fields) and int(r[0]) <= step and \
                    math.isfinite(float(r[2]))
            except ValueError:  # a row cut short by a kill
                ok = False
            if ok:
                rows.append(r)
        steps = [int(r[0]) for r in rows]
        if steps and steps != list(range(step - len(steps) + 1, step + 1)):
            raise ValueError(f"{self.path} does not lead up to the checkpoint's step {step} "
                             f"(its rows up to there are steps {steps[0]}..{steps[-1]}, "
                             f"{len(steps)} rows): it is not the log of the checkpoint's run, "
                             f"and continuing it would splice two runs; move it away or start "
                             f"again with --overwrite")
        return rows

    def log(self, step: int, epoch: int, time_s: float, values: dict[str, float]) -> None:
        self._w.writerow([step, epoch, f"{time_s:.1f}",
                          *(f"{values[k]:.6g}" for k in self.fields[3:])])
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_log(path: str | os.PathLike, *, drop: Sequence[str] = ()) -> list[dict[str, str]]:
    """The rows of a :class:`CSVLogger` log as ``{column: text}``, without the columns in
    ``drop`` (e.g. ``time_s``, to compare two runs' records).

    Example:
        >>> log = CSVLogger("/tmp/log.csv", ["loss"])
        >>> log.log(1, 0, 0.5, {"loss": 0.25})
        >>> log.close()
        >>> read_log("/tmp/log.csv", drop=["time_s"])
        [{'step': '1', 'epoch': '0', 'loss': '0.25'}]
    """
    with Path(path).open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


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
