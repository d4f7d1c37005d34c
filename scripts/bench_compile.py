"""Does ``torch.compile`` speed up the CSGM solver? Measured side by side.

The same CSGM problem (shipped MNIST digits, ``GaussianCS`` with unscaled rows and noise 0.1,
B images x R restarts, Adam) is solved two ways in one process:

- ``eager``: :func:`genprior.reconstruct.csgm` as shipped;
- ``compiled``: the same with the prior's ``decode`` wrapped in ``torch.compile`` (default
  inductor backend); its first call, which includes compilation, is timed separately.

(Mixed precision is not a variant: under ``torch.autocast`` the generator returns bfloat16
images, which genprior's float32 operators reject with a dtype error instead of silently mixing
precisions.)

Each variant is warmed up once, then timed ``--repeats`` times (best time kept); the ratio to
eager and the mean measurement error ``||A G(z) - y||^2 / m`` are printed as a markdown table.

Example (what docs/benchmark.md reports)::

    python scripts/bench_compile.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext

import torch

import genprior
from genprior._random import make_generator
from genprior.data import load_samples
from genprior.operators.gaussian_cs import GaussianCS
from genprior.reconstruct import csgm


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default="mnist-vae")
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    prior = genprior.load_prior(args.prior).to(device)
    x = load_samples("mnist")[: args.n_images].to(device)
    A = GaussianCS(args.m, tuple(prior.img_shape), normalize=False, noise_std=0.1, seed=0)
    A = A.to(device)
    y = A.measure(x, generator=make_generator(1, device=device))

    def solve(context) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with context():
            res = csgm(y, A, prior, restarts=args.restarts, steps=args.steps, lr=0.01, optimizer="adam",
                       generator=make_generator(0, device=device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, res.measurement_error.float().mean().item()

    def timed(context) -> tuple[float, float]:
        solve(context)  # warm-up
        runs = [solve(context) for _ in range(args.repeats)]
        return min(r[0] for r in runs), runs[-1][1]

    rows = [("eager", *timed(nullcontext))]
    eager_decode = prior.decode
    prior.decode = torch.compile(eager_decode)
    first = solve(nullcontext)[0]
    rows.append(("compiled", *timed(nullcontext)))
    prior.decode = eager_decode

    print(f"{args.prior}, {args.n_images} images x {args.restarts} restarts x {args.steps} "
          f"Adam steps, m = {args.m}, device {device}, {torch.get_num_threads()} thread(s); "
          f"compiled first call (incl. compilation): {first:.1f} s")
    print(f"| variant | s per solve (best of {args.repeats}) | x eager time "
          "| mean measurement error |")
    print("|---|---|---|---|")
    for name, secs, err in rows:
        print(f"| {name} | {secs:.2f} | {secs / rows[0][1]:.2f} | {err:.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
