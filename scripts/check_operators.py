"""Measure the exactness and cost of every operator spec (numbers quoted in docs/operators.md).

Usage:
    python scripts/check_operators.py [--img-size 3 64 64] [--threads 1] [--specs SPEC ...]

For each spec it prints the relative adjointness error, the pseudo-inverse residual
``||A A_dagger y - y|| / ||y||`` for arbitrary ``y`` in float32 and float64, the affine
projection residual in float32, the bytes held in buffers and the time of one ``A`` call.
"""

from __future__ import annotations

import argparse
import time

import torch

from genprior.operators import affine_projection, make_operator


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max())


def check(spec: str, img_size: tuple[int, int, int], batch: int) -> dict[str, float]:
    op = make_operator(spec, img_size, seed=0)
    g = torch.Generator().manual_seed(1)
    out: dict[str, float] = {"m": op.m}
    for dtype, tag in ((torch.float32, "32"), (torch.float64, "64")):
        op = op.to(dtype)
        x = torch.randn(batch, *img_size, generator=g, dtype=dtype)
        v = torch.randn(batch, *op.meas_shape, generator=g, dtype=dtype)
        lhs = (op.A(x) * v).flatten(1).sum(1)
        rhs = (x * op.A_adjoint(v)).flatten(1).sum(1)
        out[f"adj{tag}"] = float(((lhs - rhs).abs() / lhs.abs()).max())
        out[f"pinv{tag}"] = _rel(op.A(op.A_dagger(v)), v)
        out[f"proj{tag}"] = _rel(op.A(affine_projection(x, v, op)), v)
    op = op.to(torch.float32)
    out["buffer_MB"] = sum(b.numel() * b.element_size() for b in op.buffers()) / 2**20
    x = torch.rand(batch, *img_size, generator=g)
    op.A(x)
    start = time.perf_counter()
    for _ in range(5):
        op.A(x)
    out["A_ms"] = (time.perf_counter() - start) / 5 * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, nargs=3, default=(3, 64, 64))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--specs", nargs="+", help="operator specs (default: one of each kind)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    img_size = tuple(args.img_size)
    n = img_size[0] * img_size[1] * img_size[2]
    specs = args.specs or [
        f"gaussian_cs:{n // 10}",
        f"gaussian_cs_unscaled:{n // 10}",
        f"structured_cs:{n // 10}",
        "downsample:4",
        "downsample:4:bicubic",
        f"inpaint:center:{img_size[1] // 2}",
        "inpaint:random:0.3",
    ]
    cols = ["m", "adj32", "adj64", "pinv32", "pinv64", "proj32", "proj64", "buffer_MB", "A_ms"]
    print(f"img_size={img_size} batch={args.batch} threads={args.threads}")
    print(f"| spec | {' | '.join(cols)} |")
    print("|---" * (len(cols) + 1) + "|")
    for spec in specs:
        r = check(spec, img_size, args.batch)
        cells = [f"{int(r['m'])}"] + [f"{r[c]:.1e}" for c in cols[1:7]]
        cells += [f"{r['buffer_MB']:.2f}", f"{r['A_ms']:.2f}"]
        print(f"| `{spec}` | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
