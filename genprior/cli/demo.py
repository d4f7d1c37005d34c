"""A one-minute tour on the shipped MNIST digits: measure, reconstruct, score.

Setting of CSGM's Fig. 1a (Bora et al. 2017): ``m = 100`` i.i.d. N(0, 1) Gaussian measurements
(unscaled, as the reference code), noise standard deviation 0.1. Reconstructs with CSGM on the
shipped ``mnist-vae`` prior (lambda = 0.1, Adam lr 0.01, as "VAE+Reg"), with the Lasso in the pixel
basis (alpha = 0.1, as the reference) and with the pseudo-inverse, prints a table of per-pixel
MSE / PSNR / SSIM (mean ± 95% half-width) and writes ``demo.png`` (rows: truth, pseudo-inverse,
Lasso, CSGM) and ``metrics.csv``. Without the shipped prior it says so and runs the baselines only;
a prior that is there but unreadable, a non-empty ``--out`` (without ``--overwrite``) or an
``--out`` that is a file is refused before any work.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

HELP = "one-minute demo: MNIST compressed sensing with CSGM vs Lasso (shipped samples + prior)"

M, NOISE_STD, LAM, ALPHA, LR = 100, 0.1, 0.1, 0.1, 0.01
FULL = {"n_images": 8, "restarts": 10, "steps": 1000}
FAST = {"n_images": 4, "restarts": 3, "steps": 300}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="genprior-demo", help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")
    parser.add_argument("--fast", action="store_true",
                        help=f"fewer images, restarts and steps ({FAST}) instead of {FULL}")
    parser.add_argument("--prior", default="mnist-vae", help="prior name or folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of operator, noise, restarts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 by default: these small problems are bound by "
                        "per-op overhead, and on a busy 2-core machine 2 threads ran 20x slower")


def run(args: argparse.Namespace) -> int:
    from genprior._io import save_grid_png
    from genprior._random import make_generator
    from genprior.cli._inputs import check_threads, load_prior_arg
    from genprior.cli._output import check_output, transactional_output
    from genprior.data import load_samples
    from genprior.metrics import MetricsTable, image_metrics
    from genprior.operators.gaussian_cs import GaussianCS
    from genprior.priors.conditional import is_conditional
    from genprior.reconstruct import csgm, lasso, pinv

    check_threads(args.threads)
    out = check_output(args.out, args.overwrite)
    try:
        prior = load_prior_arg(args.prior, torch.device("cpu"))
    except FileNotFoundError as e:
        print(f"NOTE: prior {args.prior!r} is not available, so CSGM is skipped ({e}). "
              "Train it with scripts/train_priors.sh or pass --prior DIR.")
        prior = None
    if prior is not None and is_conditional(prior):
        raise ValueError(f"--prior {args.prior} is a conditional generator x = f(y, eps); the "
                         "demo's CSGM needs a latent prior x = G(z), such as mnist-vae")
    if prior is not None and tuple(prior.img_shape) != (1, 28, 28):
        raise ValueError(f"--prior {args.prior} makes images of shape {tuple(prior.img_shape)}; "
                         "the demo's MNIST digits are (1, 28, 28)")
    size = FAST if args.fast else FULL
    x = load_samples("mnist")[: size["n_images"]]
    A = GaussianCS(M, tuple(x.shape[1:]), normalize=False, noise_std=NOISE_STD, seed=args.seed)
    y = A.measure(x, generator=make_generator(args.seed + 1))
    print(f"MNIST: {x.shape[0]} shipped test digits, A: {M} x {A.n} i.i.d. N(0, 1), "
          f"noise std {NOISE_STD}, {args.threads} torch thread(s)")

    results = {}
    t0 = time.perf_counter()
    results["pinv"] = pinv(y, A)
    results["lasso"] = lasso(y, A, basis="pixel", alpha=ALPHA, generator=make_generator(args.seed))
    print(f"pinv + Lasso (pixel basis, alpha={ALPHA}): {time.perf_counter() - t0:.1f} s")
    if prior is not None:
        t0 = time.perf_counter()
        results["csgm"] = csgm(y, A, prior, lam=LAM, restarts=size["restarts"],
                               steps=size["steps"], lr=LR, generator=make_generator(args.seed))
        print(f"CSGM ({args.prior}, lambda={LAM}, Adam lr {LR}, {size['restarts']} restarts x "
              f"{size['steps']} steps, all in one batch): {time.perf_counter() - t0:.1f} s")

    columns, table_rows = {}, []
    for name, res in results.items():
        x_hat = res.x_hat.clamp(0, 1)
        metrics = image_metrics(x_hat, x, data_range=1.0)
        table = MetricsTable.from_metrics(metrics)
        table_rows.append((name, table))
        for k, v in metrics.items():
            columns[f"{name}_{k}"] = v
    names = list(table_rows[0][1].summaries)
    print(f"\n{'method':<8}" + "".join(f"{k:>22}" for k in names))
    for name, table in table_rows:
        cells = "".join(f"{table.summaries[k].mean:>13.4g} ± {table.summaries[k].ci95:<6.2g}"
                        for k in names)
        print(f"{name:<8}{cells}")

    grid = torch.cat([x] + [r.x_hat.clamp(0, 1) for r in results.values()])
    with transactional_output(out, args.overwrite) as tmp:
        save_grid_png(tmp / "demo.png", grid, nrow=x.shape[0])
        MetricsTable.from_metrics(columns).to_csv(tmp / "metrics.csv")
    out = Path(args.out)
    print(f"\nwrote {out / 'demo.png'} (rows: truth, {', '.join(results)}) and "
          f"{out / 'metrics.csv'}")
    return 0
