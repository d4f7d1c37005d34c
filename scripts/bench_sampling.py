"""Throughput of latent Langevin sampling on MNIST compressed sensing (one run, CPU by default).

1. Batching: samples/s of ULA with B images x K chains advanced in one batch, versus the same
   number of (image, chain) pairs run one chain at a time (B = K = 1 per call).
2. Efficiency: ESS/s of ULA versus MALA on the same problem. MALA adapts its step during
   burn-in; ULA then uses the median of MALA's adapted steps (so both move equally far per step;
   ULA is biased by O(step), MALA is exact). ESS is the per-image minimum over latent
   coordinates; ESS/s counts sampling plus burn-in wall time. A third run, "mala_laplace", is
   MALA in latent coordinates whitened by the Laplace covariance at the last MALA state.

Prints one JSON line per measurement.

Example:
    python scripts/bench_sampling.py --prior mnist-vae --images 8 --chains 16
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from genprior._random import make_generator
from genprior.operators import GaussianCS
from genprior.priors import load_prior
from genprior.sampling import langevin


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default="mnist-vae")
    p.add_argument("--data", default="/work/shared/data/mnist/mnist_test_00.npz")
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--steps", type=int, default=200, help="iterations for the batching test")
    p.add_argument("--n-samples", type=int, default=500)
    p.add_argument("--burn-in", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    prior = load_prior(args.prior, device=device)
    with np.load(args.data, allow_pickle=False) as f:
        x = torch.from_numpy(f["x"][: args.images].astype(np.float32) / 255.0)[:, None]
    x = x.to(device)
    op = GaussianCS(args.m, (1, 28, 28), normalize=False, noise_std=args.noise, seed=0).to(device)
    y = op.measure(x, generator=make_generator(1))
    b, k = args.images, args.chains
    common = {"sigma": args.noise, "step_size": 1e-6, "method": "ula", "burn_in": 0}

    # 1. batching
    t0 = time.perf_counter()
    langevin(y, op, prior, n_samples=args.steps, n_chains=k, generator=make_generator(2), **common)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(b):
        for _ in range(k):
            langevin(y[i : i + 1], op, prior, n_samples=args.steps, n_chains=1,
                     generator=make_generator(3), **common)
    t_single = time.perf_counter() - t0
    total = b * k * args.steps
    print(json.dumps({
        "test": "batching", "images": b, "chains": k, "steps": args.steps, "device": str(device),
        "threads": args.threads, "batched_samples_per_s": round(total / t_batch, 1),
        "one_at_a_time_samples_per_s": round(total / t_single, 1),
        "speedup": round(t_single / t_batch, 1)}), flush=True)

    # 2. ESS/s, ULA vs MALA
    results = {}
    kw = {"sigma": args.noise, "n_samples": args.n_samples, "n_chains": k,
          "burn_in": args.burn_in}
    t0 = time.perf_counter()
    mala = langevin(y, op, prior, method="mala", step_size=1e-6,
                    generator=make_generator(4), **kw)
    results["mala"] = (mala, time.perf_counter() - t0)
    step = float(mala.step_size.median())
    t0 = time.perf_counter()
    ula = langevin(y, op, prior, method="ula", step_size=step, generator=make_generator(4), **kw)
    results["ula"] = (ula, time.perf_counter() - t0)
    t0 = time.perf_counter()
    pre = langevin(y, op, prior, method="mala", step_size=0.5, precondition="laplace",
                   init=mala.z_samples[-1], generator=make_generator(4), **kw)
    results["mala_laplace"] = (pre, time.perf_counter() - t0)
    for name, (res, wall) in results.items():
        print(json.dumps({
            "test": "ess", "method": name, "m": args.m, "images": b, "chains": k,
            "samples_per_chain": args.n_samples, "burn_in": args.burn_in,
            "step_median": float(f"{float(res.step_size.median()):.3g}"),
            "acceptance": round(float(res.acceptance_rate.nanmean()), 3)
            if name.startswith("mala") else None,
            "ess_median": round(float(res.ess.median()), 1), "seconds": round(wall, 2),
            "ess_per_s": round(float(res.ess.median()) / wall, 2)}), flush=True)


if __name__ == "__main__":
    main()
