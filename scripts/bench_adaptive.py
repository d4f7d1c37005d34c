"""Benchmark IAGAN's stage 2: every image's own generator weights in one batched
forward/backward (``torch.func.vmap`` over ``functional_call``) against a Python loop over images,
side by side in one run, with peak resident memory (each variant in a fresh child process).

    python scripts/bench_adaptive.py --prior celeba-dcgan --m 1000 --n-images 16 --steps 20 \
        --threads 1 --out docs
    python scripts/bench_adaptive.py --prior mnist-vae --m 100 --n-images 16 --steps 50 \
        --threads 1 --out docs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from _bench import peak_rss_mib, reset_peak_rss, rss_mib

import genprior
from genprior._random import make_generator
from genprior.operators import GaussianCS
from genprior.reconstruct import adapt_weights

VARIANTS = ("batched", "loop")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default="celeba-dcgan")
    p.add_argument("--m", type=int, default=1000)
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="folder for bench_adaptive.md (appended)")
    p.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def problem(args):
    prior = genprior.load_prior(args.prior)
    img = tuple(prior.img_shape)
    A = GaussianCS(args.m, img, normalize=False, seed=0)
    x = prior.sample(args.n_images, generator=make_generator(1)).clamp(0, 1)
    y = A.A(x + 0.05 * torch.randn(x.shape, generator=make_generator(2)))  # off the range
    z = prior.sample_latent(args.n_images, generator=make_generator(3))
    return prior, A, y, z


def child(args) -> int:
    torch.set_num_threads(args.threads)
    prior, A, y, z = problem(args)
    kw = {"steps": args.steps, "lr_theta": 1e-4, "lr_z": 1e-4}
    rss0 = rss_mib()
    reset_peak_rss()
    t0 = time.perf_counter()
    if args.variant == "batched":
        x = adapt_weights(y, A, prior, z, **kw)[0]
    else:
        x = torch.cat([adapt_weights(y[i:i + 1], A, prior, z[i:i + 1], **kw)[0]
                       for i in range(len(y))])
    secs = time.perf_counter() - t0
    print(json.dumps({"seconds": secs, "peak_mib": peak_rss_mib() - rss0,
                      "x_sum": float(x.double().sum())}))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.variant:
        return child(args)
    res = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
               "--variant", variant]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        res[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(variant, res[variant], flush=True)
    ratio = res["loop"]["seconds"] / res["batched"]["seconds"]
    same = abs(res["loop"]["x_sum"] - res["batched"]["x_sum"]) / abs(res["loop"]["x_sum"])
    line = (f"| {args.prior} | {args.m} | {args.n_images} | {args.steps} | "
            f"{res['batched']['seconds']:.2f} | {res['loop']['seconds']:.2f} | **{ratio:.1f}x** | "
            f"{res['batched']['peak_mib']:.0f} | {res['loop']['peak_mib']:.0f} | {same:.1e} |")
    print(line)
    if args.out:
        path = Path(args.out) / "bench_adaptive.md"
        if not path.exists():
            path.write_text("| prior | m | B | steps | batched (s) | loop (s) | speed-up | "
                            "peak batched (MiB) | peak loop (MiB) | rel. diff of outputs |\n"
                            "|---|---|---|---|---|---|---|---|---|---|\n")
        with open(path, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
