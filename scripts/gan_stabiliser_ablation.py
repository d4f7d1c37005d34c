"""Measured effect of the DCGAN stabilisers (one-sided label smoothing + instance noise).

Trains the shipped celeba-dcgan architecture twice from the same seed for the same number of
steps, with and without the stabilisers, side by side, then compares the EMA generators by the
pixel-space Fréchet proxy (NOT FID) against held-out faces, and the discriminator's outputs.

Usage:
    python scripts/gan_stabiliser_ablation.py --data-root /work/shared/data --steps 1000 \
        --runs /work/runs/ablation --out docs
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import torch
from _run import first_images

from genprior._random import make_generator
from genprior.data import load_celeba
from genprior.metrics import pixel_frechet_distance
from genprior.priors import load_prior

VARIANTS = {
    "stabilised (shipped)": ["--label-smoothing", "0.9", "--instance-noise", "0.1"],
    "plain": ["--label-smoothing", "1.0", "--instance-noise", "0"],
}


def train_command(data_root: Path, out: Path, steps: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "genprior", "train", "gan", "--arch", "dcgan",
            "--data", str(data_root / "celeba"), "--train-range", "1:8000", "--img-size", "64",
            "--crop", "54", "--out", str(out), "--nz", "100", "--ngf", "32", "--ndf", "32",
            "--batch-size", "64", "--lr", "2e-4", "--ema-decay", "0.999", "--seed", "0",
            "--threads", "1", "--max-steps", str(steps), "--instance-noise-steps", str(steps),
            "--ckpt-every", "0", "--sample-every", "0", "--epochs", "1000", *extra]


def tail_means(log: Path, keys: list[str], last: int = 100) -> dict[str, float]:
    rows = list(csv.DictReader(log.open()))[-last:]
    return {k: sum(float(r[k]) for r in rows) / len(rows) for k in keys if k in rows[0]}


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--n", type=int, default=1000, help="held-out faces for the proxy")
    p.add_argument("--overwrite", action="store_true",
                   help="retrain into existing run folders under --runs (else they are refused)")
    args = p.parse_args()
    outs = {name: args.runs / name.split()[0] for name in VARIANTS}
    again = ["--overwrite"] if args.overwrite else []
    procs = [subprocess.Popen(train_command(args.data_root, outs[n], args.steps, extra + again),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n, extra in VARIANTS.items()]
    if any(proc.wait() for proc in procs):
        raise SystemExit("a training run failed; rerun one command by hand to see why")
    torch.set_num_threads(2)
    ds = load_celeba(args.data_root / "celeba", split="test")
    x = first_images(ds, min(args.n, len(ds)))
    lines = [(f"Command: `python scripts/gan_stabiliser_ablation.py --data-root "
              f"{args.data_root} --steps {args.steps} --runs {args.runs} --out {args.out}`"), "",
             (f"Same seed, architecture and data (celeba-dcgan: ngf = ndf = 32, batch 64, "
              f"Adam 2e-4, EMA 0.999), {args.steps} steps each, run side by side on one CPU "
              f"thread each. Proxy: pixel Fréchet distance (8x8 pooled, NOT FID) of {len(x)} "
              "samples of the EMA and of the raw generator vs the held-out faces (lower is "
              "better). Losses and D outputs (mean sigmoid(D)): means over the last 100 steps."),
             "",
             "| variant | Fréchet EMA G | Fréchet raw G | loss_d | loss_g | D(real) | D(fake) |",
             "|---|---|---|---|---|---|---|"]
    for name, out in outs.items():
        fd = []
        for folder in ("final", "final-raw"):
            G = load_prior(out / folder)
            g = make_generator(0)
            s = torch.cat([G.sample(250, generator=g) for _ in range(len(x) // 250)])
            fd.append(pixel_frechet_distance(s, x[:len(s)]))
        t = tail_means(out / "log.csv", ["loss_d", "loss_g", "d_real", "d_fake"])
        lines.append(f"| {name} | {fd[0]:.3f} | {fd[1]:.3f} | {t.get('loss_d', float('nan')):.3f} | "
                     f"{t.get('loss_g', float('nan')):.3f} | {t.get('d_real', float('nan')):.3f} "
                     f"| {t.get('d_fake', float('nan')):.3f} |")
        print(lines[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gan_stabilisers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
