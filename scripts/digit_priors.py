"""Digit priors side by side at few measurements: every prior on the same test digits, A and y.

Issue #17's digit target: the best genprior estimator at least 1.5x below the reference CSGM-VAE
(``mnist-vae``, lambda = 0, Adam 1000 steps x 10 restarts; the "VAE" column of
docs/reproduce_mnist.md) in per-pixel squared error at m = 25 and m = 50, on held-out test
digits. This script measures the reference and each candidate in one run, with the Bora protocol
of :mod:`reproduce_mnist` (``A`` i.i.d. N(0, 1), noise std 0.1; the same ``A`` and noise draws
for every prior, seeded by ``m``), and the estimators of that script:

- ``CSGM``: lambda = 0 (the reference when the prior is ``mnist-vae``),
- ``CSGM+Reg``: lambda = 0.1,
- ``PM``: the posterior mean by 16 annealed-MALA chains (``VAE-PM`` of reproduce_mnist),
- ``CSGM-LBFGS``: lambda = 0 with genprior's default solver (L-BFGS, 300 steps, halving every
  30) and ``--restarts-lbfgs`` restarts (default 20).

Writes ``<out>/<stem>.csv`` and ``<out>/<stem>.md`` (the command, the table, and each entry's
ratio to the reference at the same m), after every m so an interrupted run keeps its rows.

Example (what docs/prior_quality.md reports)::

    python scripts/digit_priors.py --data-root ../shared/data --priors mnist-vae mnist-convvae \
        --m 25 50 --n-images 300 --out docs --threads 1
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

import genprior
from genprior._random import make_generator
from genprior.data import load_mnist
from genprior.metrics import mse_per_pixel, summary
from genprior.reconstruct import csgm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _run import first_images, prepare_run
from reproduce_mnist import NOISE_STD, bora_measurements, run_method

ESTIMATORS = {"CSGM": "VAE", "CSGM+Reg": "VAE+Reg", "PM": "VAE-PM",  # reproduce_mnist's names
              "CSGM-LBFGS": None}
REFERENCE = ("mnist-vae", "CSGM")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding mnist/ (npz shards)")
    p.add_argument("--priors", nargs="+", default=["mnist-vae"],
                   help="prior names or folders; mnist-vae (the reference) is always included")
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    p.add_argument("--m", type=int, nargs="+", default=[25, 50])
    p.add_argument("--n-images", type=int, default=300, help="first N MNIST test digits")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--restarts-lbfgs", type=int, default=20, help="restarts of CSGM-LBFGS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="docs", help="folder for the CSV and the markdown table")
    p.add_argument("--stem", default="digit_priors", help="file name stem of the outputs")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args(argv)
    if args.n_images < 2:
        p.error(f"--n-images must be at least 2 (a confidence interval), got {args.n_images}")
    if any(m < 1 for m in args.m):
        p.error(f"--m values must be positive, got {args.m}")
    args.priors = [REFERENCE[0]] + [n for n in args.priors if n != REFERENCE[0]]
    return args


def estimate(est: str, y, A, prior, args: argparse.Namespace, m: int):
    """The estimate of ``est`` (a key of :data:`ESTIMATORS`)."""
    if est == "CSGM-LBFGS":
        return csgm(y, A, prior, lam=0.0, restarts=args.restarts_lbfgs, select="loss",
                    generator=make_generator(args.seed)).x_hat
    return run_method(ESTIMATORS[est], y, A, prior, args, m)


def write_tables(rows: list[dict], out: Path, stem: str, command: str, note: str) -> None:
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ms = sorted({r["m"] for r in rows})
    cols = list(dict.fromkeys((r["prior"], r["estimator"]) for r in rows))
    cell = {(r["prior"], r["estimator"], r["m"]): r for r in rows}
    lines = [f"Command: `{command}`", "", note, "",
             "| prior | estimator | " + " | ".join(f"m = {m}" for m in ms) + " | s/image |",
             "|---|---|" + "---|" * (len(ms) + 1)]
    for prior, est in cols:
        entries = []
        for m in ms:
            r = cell.get((prior, est, m))
            entries.append("" if r is None else
                           f"{r['mean']:.4f} ± {r['ci95']:.4f} (÷{r['ratio']:.2f})")
        sel = [r for r in rows if (r["prior"], r["estimator"]) == (prior, est)]
        per_image = sum(r["seconds"] for r in sel) / sum(r["n"] for r in sel)
        lines.append(f"| {prior} | {est} | " + " | ".join(entries) + f" | {per_image:.2f} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_run(args)
    data = load_mnist(Path(args.data_root) / "mnist", "test")
    x = first_images(data, args.n_images)
    priors = {name: genprior.load_prior(name) for name in args.priors}
    command = "python " + " ".join(sys.argv)
    note = (f"MNIST test digits 0..{args.n_images - 1} ({args.n_images} images); A i.i.d. "
            f"N(0, 1), noise std {NOISE_STD}, the same A and y for every prior; CSGM: "
            f"{args.restarts} restarts x {args.steps} Adam steps (lr {args.lr}), the restart of "
            "lowest objective; PM: 16 annealed-MALA chains (reproduce_mnist's VAE-PM). Entries: "
            "per-pixel squared error, mean ± 95% half-width over images, and (÷r) how many times "
            f"lower than the reference {REFERENCE[0]} {REFERENCE[1]} at the same m (r > 1: "
            "better).")
    rows: list[dict] = []
    for m in args.m:
        A, y = bora_measurements(x, m, args.seed)
        reference = None
        for name, prior in priors.items():
            for est in args.estimators if name != REFERENCE[0] else dict.fromkeys(
                    [REFERENCE[1], *args.estimators]):
                t0 = time.perf_counter()
                x_hat = estimate(est, y, A, prior, args, m)
                secs = time.perf_counter() - t0
                s = summary(mse_per_pixel(x_hat, x))
                if not torch.isfinite(torch.tensor(s.mean)):
                    raise RuntimeError(f"{name} {est} at m = {m} gave a non-finite error")
                if (name, est) == REFERENCE:
                    reference = s.mean
                rows.append({"prior": name, "estimator": est, "m": m, "mean": s.mean,
                             "ci95": s.ci95, "n": s.n, "ratio": reference / s.mean,
                             "seconds": secs})
                print(f"m={m:3d} {name:<24} {est:<9} {s.mean:.4f} ± {s.ci95:.4f} "
                      f"(÷{reference / s.mean:.2f}, {secs:.0f} s)", flush=True)
            write_tables(rows, out, args.stem, command, note)
    print(f"wrote {out / (args.stem + '.csv')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
