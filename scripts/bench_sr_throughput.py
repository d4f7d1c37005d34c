"""Throughput of range-constrained super-resolution (one network evaluation per image): images
per second of ``genprior.reconstruct.conditional`` at batch sizes B, eager and (optionally)
``torch.compile``d, in float32 and under bfloat16 autocast, with the worst relative residual
``||A x - y|| / ||y||`` of each variant (the projection keeps it near float32 rounding).

    python scripts/bench_sr_throughput.py --device cuda --out OUT --compile
    python scripts/bench_sr_throughput.py --device cpu --threads 1 --batches 1 16 64 --out OUT

Writes ``<out>/bench_sr_throughput.{csv,md}``. The low-resolution inputs are the shipped faces
(``load_samples("celeba")``) downsampled by the model's own operator, tiled to B.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

import genprior
from genprior._random import make_generator
from genprior.data import load_samples
from genprior.reconstruct.baselines import conditional


def timed(fn, device: torch.device, reps: int) -> float:
    """Best wall time of ``reps`` calls after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="celeba-sr4-affgan")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256, 1024])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = genprior.load_prior(args.model, device=device).eval()
    A = model.operator.to(device)
    y1 = A.A(load_samples("celeba").to(device))
    variants = [("eager fp32", model, None), ("eager bf16", model, torch.bfloat16)]
    if args.compile:
        compiled = torch.compile(model)
        variants += [("compiled fp32", compiled, None), ("compiled bf16", compiled,
                                                         torch.bfloat16)]
    rows = []
    for name, net, dtype in variants:
        for b in args.batches:
            y = y1.repeat((b + len(y1) - 1) // len(y1), 1, 1, 1)[:b]

            def call(net=net, dtype=dtype, y=y):
                with torch.autocast(device.type, dtype=dtype or torch.float32,
                                    enabled=dtype is not None):
                    return conditional(y, A, net if net is model else _Wrapped(model, net),
                                       generator=make_generator(0, device))

            secs = timed(call, device, args.reps)
            x_hat = call().x_hat.float()
            residual = float(((A.A(x_hat) - y).flatten(1).norm(dim=1)
                              / y.flatten(1).norm(dim=1)).max())
            rows.append({"variant": name, "batch": b, "seconds": secs,
                         "images_per_s": b / secs, "max_relative_residual": residual})
            print(f"{name:14s} B={b:5d} {b / secs:10.1f} images/s residual {residual:.1e}",
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_sr_throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    where = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} thread(s)"
    lines = [f"**{args.model} throughput**, {where}.", "",
             "| variant | B | seconds | images / s | max relative residual |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['batch']} | {r['seconds']:.4f} | "
              f"{r['images_per_s']:.1f} | {r['max_relative_residual']:.1e} |" for r in rows]
    (out / "bench_sr_throughput.md").write_text("\n".join(lines) + "\n")
    return 0


class _Wrapped(torch.nn.Module):
    """``model``'s attributes with ``compiled`` as its forward (what ``conditional`` calls)."""

    def __init__(self, model, compiled) -> None:
        super().__init__()
        self.model, self.compiled = model, compiled
        self.operator = model.operator

    def sample_latent(self, n, *, generator=None):
        return self.model.sample_latent(n, generator=generator)

    def forward(self, y, eps):
        return self.compiled(y, eps)


if __name__ == "__main__":
    raise SystemExit(main())
