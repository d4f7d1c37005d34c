"""Reproduce Fig. 1a of Bora et al. 2017 (CSGM): MNIST per-pixel error vs number of measurements.

Protocol of the reference code (``AshishBora/csgm``, ``quant_scripts/mnist_reconstruction.sh``):
``A`` i.i.d. N(0, 1) (``m x 784``, unscaled), noise std 0.1, test digits in [0, 1];

- ``VAE``: CSGM on the MNIST VAE, lambda = 0 (``zprior_weight 0``),
- ``VAE+Reg``: lambda = 0.1,
  both Adam lr 0.01, 1000 steps, 10 restarts, keeping the restart with the lowest objective
  (the reference's ``BestKeeper``),
- ``Lasso``: pixel basis, alpha = 0.1 (the reference's ``--lmbd 0.1``, sklearn units), clamped,
- ``Sparse-Gen`` (Dhar et al. 2018, ``ermongroup/sparse_gen``): pixel-basis deviation with its
  per-m weights: (lambda, lambda_nu) = (0.1, 0.5) for m <= 100, (0.1, 0.1) for 200..400 and
  (0, 0.01) for m >= 500, same optimiser budget as VAE,
- ``VAE-PM`` (not in the paper): the posterior mean, the estimator with the least expected
  squared error, approximated by the average of 16 annealed-MALA chains per image
  (:func:`genprior.sampling.langevin` from random latents, likelihood variance annealed through
  sigma^2 + a^2 for a = 30, 10, 3, 1, 0.3 during 1000 burn-in iterations, then 10 samples thinned
  by 10 at the true sigma = 0.1).

Error: per-pixel squared error ``||x_hat - x||^2 / 784`` (the reference's ``get_l2_loss``), mean
and 95% confidence half-width over the test images. Writes ``<out>/reproduce_mnist.csv``,
``.md`` (with the command line) and ``.png`` (error vs m) plus an example grid at m = 100.

Example (what docs/reproduction.md reports)::

    python scripts/reproduce_mnist.py --data-root /work/shared/data --n-images 300 --out docs \
        --prior mnist-vae --threads 1
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
from _run import first_images, prepare_run

import genprior
from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_mnist
from genprior.metrics import mse_per_pixel, summary
from genprior.operators.gaussian_cs import GaussianCS
from genprior.reconstruct import csgm, lasso, sparse_gen
from genprior.sampling import langevin

M_VALUES = (10, 25, 50, 100, 200, 300, 400, 500, 750)
METHODS = ("Lasso", "VAE", "VAE+Reg", "Sparse-Gen", "VAE-PM")
PM_ANNEAL = (30.0, 10.0, 3.0, 1.0, 0.3)  # extra likelihood noise levels of VAE-PM's burn-in
NOISE_STD = 0.1
GRID_IMAGES = 10  # test digits shown in the example grid


def sparse_gen_weights(m: int) -> tuple[float, float]:
    """(lambda, lambda_nu) of the Sparse-Gen reference scripts for MNIST."""
    if m <= 100:
        return 0.1, 0.5
    if m <= 400:
        return 0.1, 0.1
    return 0.0, 0.01


def bora_measurements(x, m: int, seed: int):
    """The protocol's operator ``A`` (i.i.d. N(0, 1), ``m x 784``, noise std 0.1) and
    measurements ``y`` of the digits ``x``, both seeded by ``seed + m`` (so every script using it
    sees the same ``A`` and ``y``)."""
    A = GaussianCS(m, (1, 28, 28), normalize=False, noise_std=NOISE_STD, seed=seed + m)
    return A, A.measure(x, generator=make_generator(10_000 + seed + m))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding mnist/ (npz shards)")
    p.add_argument("--n-images", type=int, default=300, help="first N MNIST test digits")
    p.add_argument("--out", default="docs", help="folder for the CSV, markdown and figures")
    p.add_argument("--prior", default="mnist-vae", help="prior name or folder")
    p.add_argument("--m", type=int, nargs="+", default=list(M_VALUES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return p.parse_args(argv)


def posterior_mean(y, A, prior, *, generator: torch.Generator, n_chains: int = 16,
                   burn_in: int = 1000):
    """``VAE-PM``: the mean of ``n_chains`` annealed-MALA chains (random starts, the likelihood
    annealed through :data:`PM_ANNEAL` during ``burn_in`` iterations, then 10 samples thinned by
    10 at the true noise level)."""
    return langevin(y, A, prior, sigma=NOISE_STD, n_chains=n_chains, burn_in=burn_in,
                    n_samples=10, thin=10, method="mala", anneal=PM_ANNEAL,
                    generator=generator).mean


def run_method(name: str, y, A, prior, args, m: int):
    gen = make_generator(args.seed)
    opt = {"restarts": args.restarts, "steps": args.steps, "lr": args.lr, "generator": gen,
           "select": "loss", "optimizer": "adam"}
    if name == "Lasso":
        return lasso(y, A, basis="pixel", alpha=0.1, generator=gen).x_hat
    if name == "VAE":
        return csgm(y, A, prior, lam=0.0, **opt).x_hat
    if name == "VAE+Reg":
        return csgm(y, A, prior, lam=0.1, **opt).x_hat
    if name == "VAE-PM":
        return posterior_mean(y, A, prior, generator=gen)
    lam, lam_nu = sparse_gen_weights(m)
    return sparse_gen(y, A, prior, lam=lam, lam_nu=lam_nu, basis="pixel", **opt).x_hat.clamp(0, 1)


def plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        ax.errorbar([r["m"] for r in sel], [r["mean"] for r in sel],
                    yerr=[r["ci95"] for r in sel], marker="o", capsize=3, label=method)
    ax.set_xlabel("number of measurements m")
    ax.set_ylabel("reconstruction error (per pixel)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tables(rows, out: Path, stem: str, command: str, note: str) -> None:
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    ms = sorted({r["m"] for r in rows})
    cell = {(r["method"], r["m"]): f"{r['mean']:.3g} ± {r['ci95']:.2g}" for r in rows}
    lines = [f"Command: `{command}`", "", note, "",
             "| m | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    lines += [f"| {m} | " + " | ".join(cell.get((k, m), "") for k in methods) + " |" for m in ms]
    secs = {k: sum(r["seconds"] for r in rows if r["method"] == k) for k in methods}
    lines += ["", "Wall time per method (s, all m): " +
              ", ".join(f"{k} {v:.0f}" for k, v in secs.items())]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def write_results(rows, out: Path, args) -> None:
    """Write the CSV, the markdown table (with the command line) and the error-vs-m figure."""
    command = "python " + " ".join(sys.argv)
    note = (f"MNIST test digits 0..{args.n_images - 1} ({args.n_images} images), prior "
            f"{args.prior}, {args.restarts} restarts x {args.steps} Adam steps (lr {args.lr}), "
            f"noise std {NOISE_STD}, A i.i.d. N(0, 1). Entries: per-pixel squared error, "
            "mean ± 95% half-width over images.")
    write_tables(rows, out, "reproduce_mnist", command, note)
    plot(rows, out / "reproduce_mnist.png", f"MNIST (n={args.n_images} test images)")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_run(args)
    data = load_mnist(args.data_root, "test")
    x = first_images(data, args.n_images)
    prior = genprior.load_prior(args.prior) if set(args.methods) - {"Lasso"} else None
    rows = []
    for m in args.m:
        A, y = bora_measurements(x, m, args.seed)
        grid = [x]
        for name in args.methods:
            t0 = time.perf_counter()
            x_hat = run_method(name, y, A, prior, args, m)
            secs = time.perf_counter() - t0
            s = summary(mse_per_pixel(x_hat, x))
            rows.append({"method": name, "m": m, "mean": s.mean, "ci95": s.ci95, "n": s.n,
                         "seconds": secs})
            grid.append(x_hat.clamp(0, 1))
            print(f"m={m:4d} {name:<10} error {s.mean:.4f} ± {s.ci95:.4f}  ({secs:.1f} s)",
                  flush=True)
        if m == 100:
            grid = [g[:GRID_IMAGES] for g in grid]
            save_grid_png(out / "reproduce_mnist_m100.png", torch.cat(grid), nrow=grid[0].shape[0])
        write_results(rows, out, args)  # after every m, so an interrupted run keeps its rows
    print(f"wrote {out / 'reproduce_mnist.csv'}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
