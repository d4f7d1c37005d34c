"""PSNR against wall time for one Set11 image (256x256): TV alone at growing iteration budgets,
and genprior's ``TV+VAE+BP`` (TV start, CSGM on the spatial latent, exact back-projection) at
growing CSGM budgets, one figure and one table, both from this run.

    python scripts/set11_time_curve.py --data-root ../shared/data --prior natural-vae \\
        --image cameraman --ratios 10 25 --out docs --threads 1

The methods and their settings are those of ``scripts/bench_set11.py`` (imported from it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import genprior
from genprior.metrics import psnr
from genprior.operators import BlockCS
from genprior.reconstruct import back_project, csgm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_set11 import load_image, tv


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--prior", required=True)
    p.add_argument("--image", default="cameraman")
    p.add_argument("--ratios", type=int, nargs="+", default=[10, 25])
    p.add_argument("--tv-iters", type=int, nargs="+", default=[50, 100, 200, 300, 600])
    p.add_argument("--vae-steps", type=int, nargs="+", default=[0, 25, 50, 100, 200, 400])
    p.add_argument("--tv-lambda-start", type=float, default=0.3)
    p.add_argument("--tv-lambda", type=float, default=0.01)
    p.add_argument("--vae-lr", type=float, default=0.01)
    p.add_argument("--vae-lam", type=float, default=1e-7)
    p.add_argument("--out", default="docs")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data_root) / "natural"
    x = load_image(root / "set11" / f"{args.image}.tif")
    prior = genprior.load_prior(args.prior)
    G = prior.resized(tuple(x.shape[1:]))
    curves: dict[str, list[tuple[float, float]]] = {}
    for ratio in args.ratios:
        A = BlockCS.from_file(root / "set11_phi" / f"phi_0_{ratio}_1089.mat", tuple(x.shape[1:]))
        y = A.A(x)
        for iters in args.tv_iters:
            a = argparse.Namespace(tv_lambda_start=args.tv_lambda_start,
                                   tv_lambda=args.tv_lambda, tv_iters=iters)
            t0 = time.perf_counter()
            x_tv = tv(y, A, a)
            secs = time.perf_counter() - t0
            curves.setdefault(f"TV, {ratio} %", []).append(
                (secs, float(psnr(x_tv.clamp(0, 1), x, data_range=1.0))))
            print(ratio, "TV", iters, curves[f"TV, {ratio} %"][-1], flush=True)
        tv_secs = curves[f"TV, {ratio} %"][args.tv_iters.index(300)][0] \
            if 300 in args.tv_iters else 0.0
        a = argparse.Namespace(tv_lambda_start=args.tv_lambda_start, tv_lambda=args.tv_lambda,
                               tv_iters=300)
        x_tv = tv(y, A, a)
        with torch.no_grad():
            mu, _ = G.encode(x_tv.clamp(0, 1))
        for steps in args.vae_steps:
            t0 = time.perf_counter()
            if steps:
                res = csgm(y, A, G, z_init=mu[:, None], restarts=1, steps=steps, optimizer="adam",
                           lr=args.vae_lr, lam=args.vae_lam,
                           generator=torch.Generator().manual_seed(0))
                x_g = res.x_hat
            else:
                with torch.no_grad():
                    x_g = G.decode(mu)
            x_hat = back_project(x_g, y, A)
            secs = tv_secs + time.perf_counter() - t0
            curves.setdefault(f"TV(300)+VAE+BP, {ratio} %", []).append(
                (secs, float(psnr(x_hat.clamp(0, 1), x, data_range=1.0))))
            print(ratio, "VAE", steps, curves[f"TV(300)+VAE+BP, {ratio} %"][-1], flush=True)
    write(curves, args)
    return 0


def write(curves: dict, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if "VAE" in label else "s--",
                label=label)
    ax.set_xlabel("seconds per image (this CPU, 1 thread)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"Set11 {args.image} (256x256), block CS 33x33")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "set11_time_curve.png", dpi=110)
    plt.close(fig)
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             (f"TV budgets: {args.tv_iters} iterations; CSGM budgets after TV(300): "
              f"{args.vae_steps} steps."), "", "| curve | (seconds, PSNR dB) per budget |",
             "|---|---|"]
    for label, pts in curves.items():
        lines.append(f"| {label} | " + ", ".join(f"({s:.1f}, {p:.2f})" for s, p in pts) + " |")
    (out / "set11_time_curve.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
