"""Reproduce Fig. 1b of Bora et al. 2017 (CSGM): CelebA 64x64 per-pixel error vs measurements.

Protocol of the reference code (``AshishBora/csgm``, ``quant_scripts/celebA_reconstruction.sh``):
held-out faces (here ids 008001..009000, the ``test`` split of :func:`genprior.data.load_celeba`,
never used to train the shipped DCGAN), ``A`` i.i.d. N(0, 1) (``m x 12288``), noise std 0.01 and
the error measured on images in [-1, 1] (per-pixel squared error, mean and 95% half-width).

The reference works on images in [-1, 1]; genprior's operators act on images in [0, 1], and with
:math:`x' = 2x - 1`, :math:`y' = 2y - A\\mathbf 1` the [-1, 1] problem is the [0, 1] problem with
the data term multiplied by 4. So the exact equivalents used here are: noise std 0.01 / 2 on
the [0, 1] measurements; latent weights divided by 4 (``zprior_weight`` 0.001 -> lambda 0.00025);
l1 weights divided by 2 (Lasso ``lmbd`` 0.1 -> alpha 0.05 for DCT, 1e-5 -> 5e-6 for wavelets;
Sparse-Gen's ``sparse_gen_weight`` w -> w / 2). The reference's Lasso is sparse around x' = 0, so
the Lasso here solves for x - 1/2 (measurements y - A(1/2)), which makes it exactly the
reference problem. Learning rates and step counts are unchanged (Adam is invariant to the
overall scale of the loss).

Methods: ``DCGAN`` (lambda 0, 2 restarts) and ``DCGAN+Reg`` (lambda 0.001, 10 restarts), both
Adam lr 0.1, 500 steps, keeping the lowest-objective restart; ``Lasso-DCT``, ``Lasso-Wavelet``
(FISTA, clamped to [0, 1]); ``Sparse-Gen`` (Dhar et al. 2018, DCT-sparse deviation, lambda 0.001,
per-m ``sparse_gen_weight`` 5 for m <= 1000, 0.1 for 2500..5000, 0.01 above, 5 restarts, 1500
steps in the reference). Writes ``<out>/reproduce_celeba.csv``, ``.md``, ``.png`` and example
grids ``reproduce_celeba_m500.png``, ``_m5000.png`` (rows: truth, then the methods in order).

Example (what docs/reproduction.md reports)::

    python scripts/reproduce_celeba.py --data-root /work/shared/data --n-images 3 --out docs \\
        --prior celeba-dcgan --m 20 50 100 200 500 1000 2500 5000 10000 --steps 200 \\
        --restarts 2 --lasso-steps 300 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _run import first_images, prepare_run
from reproduce_mnist import plot, write_tables

import genprior
from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_celeba
from genprior.metrics import mse_per_pixel, summary, to_minus1_1
from genprior.operators.gaussian_cs import GaussianCS
from genprior.reconstruct import csgm, lasso, sparse_gen

M_VALUES = (20, 50, 100, 200, 500, 1000, 2500, 5000, 7500, 10000)
METHODS = ("Lasso-DCT", "Lasso-Wavelet", "DCGAN", "DCGAN+Reg", "Sparse-Gen")
NOISE_STD_PM1 = 0.01  # reference, on [-1, 1] images
ZPRIOR = 0.001  # reference zprior_weight of DCGAN+Reg and Sparse-Gen
GRID_M = (500, 5000)  # example grids written for these m
GRID_IMAGES = 8  # faces shown in the example grids


def sparse_gen_weight(m: int) -> float:
    """``sparse_gen_weight`` of the Sparse-Gen reference scripts (DCT basis), [-1, 1] units."""
    if m <= 1000:
        return 5.0
    if m <= 5000:
        return 0.1
    return 0.01


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True, help="folder holding celeba/ (NNNNNN.jpg)")
    p.add_argument("--n-images", type=int, default=64, help="first N held-out faces (008001..)")
    p.add_argument("--out", default="docs")
    p.add_argument("--prior", default="celeba-dcgan")
    p.add_argument("--m", type=int, nargs="+", default=list(M_VALUES))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--steps", type=int, default=500, help="Adam steps (reference: 500)")
    p.add_argument("--restarts", type=int, default=None,
                   help="restarts for every prior method (reference: DCGAN 2, DCGAN+Reg 10, "
                   "Sparse-Gen 5)")
    p.add_argument("--sparse-gen-steps", type=int, default=1500,
                   help="Adam steps of Sparse-Gen (reference: 1500)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lasso-steps", type=int, default=1000, help="FISTA iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def run_method(name: str, y, A, prior, args, m: int):
    gen = make_generator(args.seed)

    def opt(restarts: int, steps: int | None = None) -> dict:
        return {"restarts": args.restarts or restarts, "steps": steps or args.steps,
                "lr": args.lr, "generator": gen, "select": "loss", "optimizer": "adam"}

    if name.startswith("Lasso"):
        # the reference's Lasso is sparse around x' = 0, i.e. x = 1/2: solve for x - 1/2
        half = torch.full((1, *A.img_size), 0.5, dtype=y.dtype, device=y.device)
        basis, alpha = ("dct", 0.1) if name == "Lasso-DCT" else ("wavelet", 1e-5)
        res = lasso(y - A.A(half), A, basis=basis, alpha=alpha / 2, steps=args.lasso_steps,
                    clip=False, generator=gen)
        return (res.x_hat + half).clamp(0, 1)
    if name == "DCGAN":
        return csgm(y, A, prior, lam=0.0, **opt(2)).x_hat
    if name == "DCGAN+Reg":
        return csgm(y, A, prior, lam=ZPRIOR / 4, **opt(10)).x_hat
    return sparse_gen(y, A, prior, lam=ZPRIOR / 4, lam_nu=sparse_gen_weight(m) / 2, basis="dct",
                      **opt(5, args.sparse_gen_steps)).x_hat.clamp(0, 1)


def write_results(rows, out: Path, args) -> None:
    """Write the CSV, the markdown table (with the command line) and the error-vs-m figure."""
    command = "python " + " ".join(sys.argv)
    note = (f"CelebA held-out faces 008001..{8000 + args.n_images:06d} ({args.n_images} images), "
            f"prior {args.prior}, {args.steps} Adam steps (Sparse-Gen {args.sparse_gen_steps}, "
            f"lr {args.lr}), restarts {args.restarts or 'as the reference'}, FISTA "
            f"{args.lasso_steps} iterations, noise std {NOISE_STD_PM1} in [-1, 1] units, A i.i.d. "
            "N(0, 1). Entries: per-pixel squared error on [-1, 1] images, mean ± 95% half-width "
            "over images.")
    write_tables(rows, out, "reproduce_celeba", command, note)
    plot(rows, out / "reproduce_celeba.png", f"CelebA 64x64 (n={args.n_images} held-out faces)")


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_run(args)
    data = load_celeba(args.data_root, "test", img_size=64)
    x = first_images(data, args.n_images)
    prior = genprior.load_prior(args.prior) if set(args.methods) & {
        "DCGAN", "DCGAN+Reg", "Sparse-Gen"} else None
    rows = []
    for m in args.m:
        A = GaussianCS(m, (3, 64, 64), normalize=False, noise_std=NOISE_STD_PM1 / 2,
                       seed=args.seed + m)
        y = A.measure(x, generator=make_generator(10_000 + args.seed + m))
        grid = [x]
        for name in args.methods:
            t0 = time.perf_counter()
            x_hat = run_method(name, y, A, prior, args, m)
            secs = time.perf_counter() - t0
            s = summary(mse_per_pixel(to_minus1_1(x_hat.clamp(0, 1)), to_minus1_1(x)))
            rows.append({"method": name, "m": m, "mean": s.mean, "ci95": s.ci95, "n": s.n,
                         "seconds": secs})
            grid.append(x_hat.clamp(0, 1))
            print(f"m={m:5d} {name:<14} error {s.mean:.4f} ± {s.ci95:.4f}  ({secs:.1f} s)",
                  flush=True)
        if m in GRID_M:
            grid = [g[:GRID_IMAGES] for g in grid]
            save_grid_png(out / f"reproduce_celeba_m{m}.png", torch.cat(grid),
                          nrow=grid[0].shape[0])
        write_results(rows, out, args)  # after every m, so an interrupted run keeps its rows
    print(f"wrote {out / 'reproduce_celeba.csv'}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
