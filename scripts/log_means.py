"""Means of a training log's columns over its last steps (or the steps up to ``--until``), one
line per run.

Used for the discriminator checks of docs/super_resolution.md and docs/prior_quality.md: how far
apart D(real) and D(fake) are at the end of a run. The last column is the run's logged training
time up to the last step averaged (``time_s``, cumulative across resumes): the wall times the
docs give for training runs.

Example::

    python scripts/log_means.py /work/runs/sr/diag-*/log.csv --last 50 --columns d_real d_fake
    python scripts/log_means.py /work/runs/sr/affgan-long/log.csv --last 500 --until 6400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genprior.training.logging import read_log


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("logs", nargs="+", type=Path, help="log.csv files of training runs")
    p.add_argument("--last", type=int, default=50, help="steps averaged (the last ones)")
    p.add_argument("--until", type=int, default=None,
                   help="average the --last steps ending at this step (default: the log's end)")
    p.add_argument("--columns", nargs="+", default=None, help="columns (default: all but step)")
    args = p.parse_args(argv)
    if args.last < 1:
        p.error(f"--last must be >= 1, got {args.last}")
    print(f"| log | steps | {' | '.join(args.columns or ['(all)'])} | logged s |")
    for path in args.logs:
        rows = read_log(path)
        if not rows:
            p.error(f"{path} has no rows")
        cols = args.columns or [c for c in rows[0] if c not in ("step", "epoch", "time_s")]
        missing = [c for c in cols if c not in rows[0]]
        if missing:
            p.error(f"{path} has no column(s) {missing}; it has {list(rows[0])}")
        if args.until is not None:
            rows = [r for r in rows if int(r["step"]) <= args.until]
            if not rows:
                p.error(f"{path} has no step <= --until {args.until}")
        tail = rows[-args.last:]
        means = [sum(float(r[c]) for r in tail) / len(tail) for c in cols]
        print(f"| {path} | {tail[0]['step']}..{tail[-1]['step']} | "
              + " | ".join(f"{m:.4g}" for m in means) + f" | {float(tail[-1]['time_s']):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
