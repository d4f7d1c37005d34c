"""Benchmark the batched CSGM solver against one-image-one-restart-at-a-time and deepinv.

Three ways to run the same CSGM problem (same prior weights, operator, measurements, starting
latents, Adam lr and number of steps, lambda = 0, keep the restart with the lowest measurement
error):

- ``batched``: :func:`genprior.reconstruct.csgm`, all B images x R restarts in one batch;
- ``sequential``: the same function called B * R times with one image and one restart;
- ``deepinv``: ``deepinv.models.CSGMGenerator.optimize_z`` (one latent per call; its stopping
  tolerance set to 0 so it runs every step), called B * R times, best restart picked here.

Each variant runs in a fresh child process (``--variant``) so that its peak resident memory
(the peak resident set size, ``VmHWM`` reset just before the solve, minus the resident
size at that point; ``torch.cuda.max_memory_allocated``
on CUDA) is its own. Ratios come from one invocation. Also reported: the FLOPs of one solver
step (generator forward + backward, counted by ``torch.utils.flop_counter``), the achieved FLOP/s
against this machine's measured float32 matmul FLOP/s, and the batched solver's throughput as
batch, restarts and m vary. Writes ``<out>/bench_csgm.csv`` and ``<out>/bench_csgm.md``.

Example (what docs/benchmark.md reports)::

    python scripts/bench_csgm.py --out docs --threads 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _bench import peak_rss_mib, reset_peak_rss, rss_mib
from _run import prepare_run

import genprior
from genprior._io import load_images_npz, save_images_npz
from genprior._random import make_generator
from genprior.data import load_samples
from genprior.metrics import mse_per_pixel, summary
from genprior.operators.gaussian_cs import GaussianCS
from genprior.priors.vae_mlp import MLPVAE
from genprior.reconstruct import csgm

VARIANTS = ("batched", "sequential", "deepinv")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs")
    p.add_argument("--prior", default="mnist-vae",
                   help="prior name or folder; a randomly initialised MLPVAE if not found")
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--restarts", type=int, default=10)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--m", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--scaling-steps", type=int, default=50)
    p.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load_problem(args):
    """Prior, operator, truth, measurements and starting latents (identical in every child)."""
    device = torch.device(args.device)
    try:
        prior, prior_name = genprior.load_prior(args.prior, device=device), args.prior
    except FileNotFoundError:
        prior = MLPVAE().to(device).eval()
        for p, g in zip(prior.parameters(), range(1000)):  # deterministic random weights
            with torch.no_grad():
                p.copy_(0.05 * torch.randn(p.shape, generator=make_generator(g)))
        prior_name = "random MLPVAE (shipped prior not found)"
    x = load_samples("mnist")[: args.n_images].to(device)
    A = GaussianCS(args.m, (1, 28, 28), normalize=False, noise_std=0.1, seed=args.seed).to(device)
    y = A.measure(x, generator=make_generator(args.seed + 1, device))
    z0 = prior.sample_latent(args.n_images * args.restarts, generator=make_generator(args.seed))
    return prior, prior_name, A, x, y, z0.view(args.n_images, args.restarts, -1)


def solve(variant: str, prior, A, y, z0, args) -> torch.Tensor:
    B, R = z0.shape[:2]
    if variant == "batched":
        return csgm(y, A, prior, restarts=R, steps=args.steps, lr=args.lr, optimizer="adam",
                    z_init=z0).x_hat
    outs = torch.empty(B, R, *prior.img_shape, device=y.device)
    errs = torch.empty(B, R, device=y.device)
    if variant == "sequential":
        for i in range(B):
            for r in range(R):
                res = csgm(y[i:i + 1], A, prior, restarts=1, steps=args.steps, lr=args.lr, optimizer="adam",
                           z_init=z0[i:i + 1, r])
                outs[i, r], errs[i, r] = res.x_hat[0], res.measurement_error[0]
    else:
        from deepinv.models import CSGMGenerator

        class Backbone(torch.nn.Module):
            def __init__(self, prior):
                super().__init__()
                self.prior, self.nz = prior, prior.latent_dim

            def forward(self, z):
                return self.prior.decode(z.flatten(1))

        model = CSGMGenerator(Backbone(prior), inf_max_iter=args.steps, inf_tol=0.0,
                              inf_lr=args.lr).eval()
        for i in range(B):
            for r in range(R):
                z = model.optimize_z(z0[i, r].view(1, -1, 1, 1).clone(), y[i:i + 1], A)
                with torch.no_grad():
                    x_hat = model.backbone_generator(z)
                    outs[i, r] = x_hat[0]
                    errs[i, r] = (A.A(x_hat) - y[i:i + 1]).pow(2).mean()
    best = errs.argmin(1)
    return outs[torch.arange(B), best].detach()


def child(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    prior, _, A, _x, y, z0 = load_problem(args)
    cuda = y.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = rss_mib()
    reset_peak_rss()
    t0 = time.perf_counter()
    x_hat = solve(args.variant, prior, A, y, z0, args)
    if cuda:
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else peak_rss_mib() - rss0)
    save_images_npz(Path(args.tmp) / f"{args.variant}.npz", x_hat.clamp(0, 1).cpu())
    print(json.dumps({"seconds": secs, "peak_mib": peak}))
    return 0


def step_flops(prior, A, y, z0) -> int:
    """FLOPs of one solver step on all rows: decode, operator, backward to z."""
    from torch.utils.flop_counter import FlopCounterMode

    z = z0.reshape(-1, z0.shape[-1]).clone().requires_grad_(True)
    yr = y.repeat_interleave(z0.shape[1], 0)
    flags = [p.requires_grad for p in prior.parameters()]
    for p in prior.parameters():  # the solver differentiates with respect to z only
        p.requires_grad_(False)
    with FlopCounterMode(display=False) as counter:
        (A.A(prior.decode(z)) - yr).pow(2).sum().backward()
    for p, flag in zip(prior.parameters(), flags):
        p.requires_grad_(flag)
    return counter.get_total_flops()


def matmul_flops_per_s(device: torch.device, n: int = 1024, reps: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def scaling(args, prior, device) -> list[dict]:
    """Batched throughput (restart-solves per second) as B, R and m vary, few steps each."""
    rows = []
    base = {"B": args.n_images, "R": args.restarts, "m": args.m}
    grid = [("B", v) for v in (1, 4, 16, 64)] + [("R", v) for v in (1, 4, 16)] + \
        [("m", v) for v in (25, 100, 400)]
    x_all = load_samples("mnist").to(device)
    for key, value in grid:
        cfg = {**base, key: value}
        A = GaussianCS(cfg["m"], (1, 28, 28), normalize=False, noise_std=0.1, seed=0).to(device)
        y = A.measure(x_all[: cfg["B"]], generator=make_generator(1, device))
        t0 = time.perf_counter()
        csgm(y, A, prior, restarts=cfg["R"], steps=args.scaling_steps, lr=args.lr, optimizer="adam",
             generator=make_generator(0))
        secs = time.perf_counter() - t0
        rows.append({"vary": key, **cfg, "steps": args.scaling_steps, "seconds": secs,
                     "restart_solves_per_s": cfg["B"] * cfg["R"] / secs})
        print(f"scaling {key}={value}: {rows[-1]['restart_solves_per_s']:.2f} restart-solves/s",
              flush=True)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.variant:
        return child(args)
    out = prepare_run(args)
    prior, prior_name, A, x, y, z0 = load_problem(args)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                   "--variant", variant, "--tmp", tmp]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            x_hat = load_images_npz(Path(tmp) / f"{variant}.npz")
            err = summary(mse_per_pixel(x_hat, x.cpu()))
            results[variant] = {**stats, "error": err.mean, "error_ci95": err.ci95,
                                "x_hat": x_hat}
            print(f"{variant:<10} {stats['seconds']:.1f} s, peak +{stats['peak_mib']:.0f} MiB, "
                  f"error {err.mean:.4f} ± {err.ci95:.4f}", flush=True)
    B, R, S = args.n_images, args.restarts, args.steps
    flops = step_flops(prior, A, y, z0)
    peak = matmul_flops_per_s(y.device)
    achieved = flops * S / results["batched"]["seconds"]
    diff_seq = float((results["sequential"]["x_hat"] - results["batched"]["x_hat"]).abs().max())
    diff_di = float((results["deepinv"]["x_hat"] - results["batched"]["x_hat"]).abs().max())
    scale_rows = scaling(args, prior, y.device)

    import csv

    with open(out / "bench_csgm.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seconds", "recon_per_s", "peak_mib", "error", "error_ci95"])
        for k, r in results.items():
            w.writerow([k, r["seconds"], B / r["seconds"], r["peak_mib"], r["error"],
                        r["error_ci95"]])
    bt = results["batched"]["seconds"]
    lines = [
        f"Command: `python {' '.join(sys.argv)}`", "",
        (f"Problem: {B} MNIST sample digits, {R} restarts each, {S} Adam steps (lr {args.lr}), "
        f"lambda = 0, GaussianCS m = {args.m} (unscaled), noise 0.1, prior: {prior_name}, "
        f"device {y.device}, torch threads {torch.get_num_threads()}."), "",
        ("| variant | seconds | reconstructions/s | speed-up of batched | peak memory (MiB) | "
        "per-pixel error |"), "|---|---|---|---|---|---|",
    ]
    for k, r in results.items():
        lines.append(f"| {k} | {r['seconds']:.2f} | {B / r['seconds']:.3f} | "
                     f"{r['seconds'] / bt:.1f}x | {r['peak_mib']:.0f} | "
                     f"{r['error']:.4f} ± {r['error_ci95']:.4f} |")
    lines += [
        "", f"Max |x_hat difference| vs batched: sequential {diff_seq:.2e}, deepinv {diff_di:.2e}.",
        "", (f"One solver step on all {B * R} rows: {flops / 1e6:.1f} MFLOP (generator forward + "
        f"backward + operator, torch.utils.flop_counter). Achieved by the batched solver: "
        f"{achieved / 1e9:.2f} GFLOP/s; float32 1024x1024 matmul on this machine: "
        f"{peak / 1e9:.2f} GFLOP/s ({100 * achieved / peak:.0f}%)."), "",
        (f"Scaling of the batched solver ({args.scaling_steps} steps per run; one of B, R, m "
        "varied from the setting above):"), "",
        "| varied | B | R | m | seconds | restart-solves/s |", "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['vary']} | {r['B']} | {r['R']} | {r['m']} | {r['seconds']:.2f} | "
              f"{r['restart_solves_per_s']:.1f} |" for r in scale_rows]
    (out / "bench_csgm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
