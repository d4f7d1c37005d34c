"""Latent solvers compared: error reached vs generator evaluations and vs wall time.

One CSGM problem per run (``--problem``), every setting solved in this process on the same
images, operator, measurements and random starts (``generator`` seeded identically, so the
restarts of every setting with ``R`` restarts start at the same latents):

- ``mnist``: the shipped ``mnist-vae``, the 64 shipped test digits (``--n-images``),
  ``GaussianCS`` m = 100 unscaled rows, noise 0.1, lambda = 0 (docs/benchmark.md's problem);
- ``celeba``: the shipped ``celeba-dcgan``, the 16 shipped held-out faces, m = 1000, noise
  0.01, lambda = 0.001 (the reference's DCGAN+Reg), Adam lr 0.1 (the reference's).

Settings: the reference (Adam, 1000 steps x 10 restarts), Adam with fewer steps / restarts and
with successive halving (``halving_every``), batched L-BFGS (armijo line search), Gauss-Newton
/ Levenberg-Marquardt, and (for a VAE) the encoder start of ``A_dagger y`` as first restart.
Per setting: mean per-pixel squared error against the truth (and its 95% half-width), mean
measurement error, generator evaluations per image (all restarts, ``CSGMResult.evaluations``),
seconds per image. A setting *matches* the reference when its mean error is at most
``(1 + --tol)`` times the reference's. deepinv's ``CSGMGenerator`` is timed on the reference
setting (``--deepinv-images`` images, one latent per call as its API takes), right after the
batched reference on the same images, so that the two share the machine's load; a setting's
throughput ratio to deepinv is (deepinv / batched reference, same images, back to back) x (the
reference's time / the setting's time, this run).

Writes ``<out>/bench_solvers_<problem>.{csv,md,png}``. With ``--throughput B1 B2 ...`` it
instead measures images per second of the settings named by ``--only`` at batch sizes ``B``
(the test images repeated), e.g. on a GPU (``--device cuda``, ``--autocast bf16``), and writes
``<out>/bench_solvers_<problem>_throughput.{csv,md}``.

Example (what docs/csgm.md reports)::

    python scripts/bench_solvers.py --problem mnist --out docs --threads 1
    python scripts/bench_solvers.py --problem celeba --out docs --threads 1
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch

import genprior
from genprior._random import make_generator
from genprior.data import load_samples
from genprior.metrics import mse_per_pixel
from genprior.operators.gaussian_cs import GaussianCS
from genprior.reconstruct import csgm

PROBLEMS = {
    "mnist": {"prior": "mnist-vae", "samples": "mnist", "m": 100, "noise": 0.1, "lam": 0.0,
              "lr": 0.01, "n_images": 64},
    "celeba": {"prior": "celeba-dcgan", "samples": "celeba", "m": 1000, "noise": 0.01,
               "lam": 0.001, "lr": 0.1, "n_images": 16},
}


def settings(problem: str, lr: float, encoder: bool) -> list[dict]:
    """The grid: name, optimizer, steps, restarts, lr, and optionally halving, early stopping
    (relative tolerance, patience 10) and init of every setting."""
    grid = [{"name": "adam 1000x10 (reference)", "optimizer": "adam", "steps": 1000,
             "restarts": 10, "lr": lr}]
    for steps, restarts in ((300, 10), (100, 10), (300, 3), (1000, 1)):
        grid.append({"name": f"adam {steps}x{restarts}", "optimizer": "adam", "steps": steps,
                     "restarts": restarts, "lr": lr})
    for every in (25, 50):
        grid.append({"name": f"adam 1000x10 halving/{every}", "optimizer": "adam",
                     "steps": 1000, "restarts": 10, "lr": lr, "halving_every": every})
    for steps, restarts in ((200, 10), (100, 10), (50, 10), (25, 10), (100, 3), (100, 1)):
        grid.append({"name": f"lbfgs {steps}x{restarts}", "optimizer": "lbfgs", "steps": steps,
                     "restarts": restarts, "lr": 1.0})
    for steps, restarts, every in ((100, 10, 10), (150, 10, 15), (200, 10, 20), (300, 10, 30),
                                   (100, 20, 10), (200, 20, 20)):
        grid.append({"name": f"lbfgs {steps}x{restarts} halving/{every}", "optimizer": "lbfgs",
                     "steps": steps, "restarts": restarts, "lr": 1.0, "halving_every": every})
    grid.append({"name": "lbfgs 100x10 halving/10 early-stop", "optimizer": "lbfgs",
                 "steps": 100, "restarts": 10, "lr": 1.0, "halving_every": 10,
                 "early_stop_tol": 1e-4})
    gn = ((20, 10), (10, 10), (10, 3), (10, 1)) if problem == "mnist" else ((10, 3), (10, 1))
    for steps, restarts in gn:
        grid.append({"name": f"gauss-newton {steps}x{restarts}", "optimizer": "gauss-newton",
                     "steps": steps, "restarts": restarts, "lr": 1.0})
    if encoder:
        for opt, steps, restarts, step_lr, every in (
                ("adam", 300, 3, lr, None), ("lbfgs", 100, 1, 1.0, None),
                ("lbfgs", 100, 3, 1.0, None), ("lbfgs", 100, 10, 1.0, 10),
                ("gauss-newton", 10, 1, 1.0, None), ("gauss-newton", 10, 3, 1.0, None)):
            name = f"encoder + {opt} {steps}x{restarts}" + (f" halving/{every}" if every else "")
            grid.append({"name": name, "optimizer": opt, "steps": steps, "restarts": restarts,
                         "lr": step_lr, "init": "encoder",
                         **({"halving_every": every} if every else {})})
    return grid


def deepinv_seconds_per_image(prior, A, y, *, restarts: int, steps: int, lr: float,
                              seed: int) -> float:
    """Wall time per image of deepinv's ``CSGMGenerator.optimize_z`` on the reference setting
    (every restart one call, ``inf_tol=0`` so every step runs)."""
    from deepinv.models import CSGMGenerator

    class Backbone(torch.nn.Module):
        def __init__(self, prior):
            super().__init__()
            self.prior, self.nz = prior, prior.latent_dim

        def forward(self, z):
            return self.prior.decode(z.flatten(1).view(-1, *self.prior.latent_shape))

    model = CSGMGenerator(Backbone(prior), inf_max_iter=steps, inf_tol=0.0, inf_lr=lr).eval()
    z0 = prior.sample_latent(y.shape[0] * restarts, generator=make_generator(seed))
    t0 = time.perf_counter()
    for i in range(y.shape[0]):
        for r in range(restarts):
            model.optimize_z(z0[i * restarts + r].reshape(1, -1, 1, 1).clone(), y[i:i + 1], A)
    return (time.perf_counter() - t0) / y.shape[0]


def load(args: argparse.Namespace):
    """Prior, truth, operator and measurements of ``args.problem`` on ``args.device``."""
    spec = PROBLEMS[args.problem]
    device = torch.device(args.device)
    prior = genprior.load_prior(spec["prior"], device=device).eval()
    x = load_samples(spec["samples"])[: args.n_images or spec["n_images"]].to(device)
    A = GaussianCS(spec["m"], tuple(x.shape[1:]), normalize=False, noise_std=spec["noise"],
                   seed=args.seed).to(device)
    y = A.measure(x, generator=make_generator(args.seed + 1, device))
    return prior, x, A, y


def solve(prior, A, y, setting: dict, args: argparse.Namespace):
    """One timed ``csgm`` call of ``setting``: ``(result, seconds)``."""
    kw = {k: setting[k] for k in ("optimizer", "steps", "restarts", "lr")}
    kw["halving_every"] = setting.get("halving_every", 0)
    kw.update({k: setting[k] for k in ("init", "early_stop_tol") if k in setting})
    if "early_stop_tol" in setting:
        kw["patience"] = 10
    autocast = torch.bfloat16 if args.autocast == "bf16" else None
    cuda = y.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = csgm(y, A, prior, lam=PROBLEMS[args.problem]["lam"], autocast=autocast,
               generator=make_generator(args.seed + 2, y.device), **kw)
    if cuda:
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> list[dict]:
    spec = PROBLEMS[args.problem]
    prior, x, A, y = load(args)
    n = x.shape[0]
    encoder = callable(getattr(prior, "encode", None))
    rows = []
    for s in settings(args.problem, spec["lr"], encoder):
        if args.only and s["name"] not in args.only:
            continue
        out, secs = solve(prior, A, y, s, args)
        err = mse_per_pixel(out.x_hat.clamp(0, 1), x).cpu()
        half = 1.96 * float(err.std()) / math.sqrt(len(err)) if len(err) > 1 else 0.0
        rows.append({"setting": s["name"], "optimizer": s["optimizer"], "steps": s["steps"],
                     "restarts": s["restarts"], "halving_every": s.get("halving_every", ""),
                     "early_stop_tol": s.get("early_stop_tol", ""),
                     "init": s.get("init", "random"), "error": float(err.mean()),
                     "error_ci": half,
                     "measurement_error": float(out.measurement_error.mean()),
                     "evaluations": float(out.evaluations.sum(1).float().mean()),
                     "seconds_per_image": secs / n})
        print(f"{s['name']:32s} error {rows[-1]['error']:.5f} evals "
              f"{rows[-1]['evaluations']:8.0f} s/img {rows[-1]['seconds_per_image']:.3f}",
              flush=True)
    ref = rows[0]
    for r in rows:
        r["matches"] = r["error"] <= ref["error"] * (1 + args.tol)
        r["evaluations_ratio"] = ref["evaluations"] / r["evaluations"]
        r["speedup"] = ref["seconds_per_image"] / r["seconds_per_image"]
    if args.deepinv_images:
        m = min(args.deepinv_images, n)
        _, ref_secs = solve(prior, A, y[:m], settings(args.problem, spec["lr"], False)[0], args)
        secs = deepinv_seconds_per_image(prior, A, y[:m], restarts=10, steps=1000,
                                         lr=spec["lr"], seed=args.seed + 2)
        ratio = secs / (ref_secs / m)
        for r in rows:
            r["deepinv_ratio"] = ratio * r["speedup"]
            r["deepinv_over_reference"] = ratio
        print(f"deepinv CSGMGenerator reference setting: {secs:.2f} s/img, the batched "
              f"reference on the same {m} images just before: {ref_secs / m:.3f} s/img "
              f"({ratio:.1f}x)")
    return rows


def throughput(args: argparse.Namespace) -> list[dict]:
    """Images per second of every ``--only`` setting at the batch sizes ``--throughput`` (the
    test images tiled to ``B``; one untimed warm-up call per setting)."""
    spec = PROBLEMS[args.problem]
    prior, _, A, y = load(args)
    named = [s for s in settings(args.problem, spec["lr"], callable(getattr(prior, "encode",
                                                                            None)))
             if s["name"] in args.only]
    rows = []
    for s in named:
        solve(prior, A, y[:1], {**s, "steps": min(s["steps"], 5)}, args)  # warm-up
        for b in args.throughput:
            yb = y.repeat((b + len(y) - 1) // len(y), *([1] * (y.ndim - 1)))[:b]
            _, secs = solve(prior, A, yb, s, args)
            rows.append({"setting": s["name"], "batch": b, "seconds": secs,
                         "images_per_s": b / secs, "device": args.device,
                         "autocast": args.autocast or "none"})
            print(f"{s['name']:32s} B={b:5d} {b / secs:9.1f} images/s", flush=True)
    stem = Path(args.out) / f"bench_solvers_{args.problem}_throughput"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
            else f"CPU, {torch.get_num_threads()} thread(s)")
    lines = [(f"**CSGM throughput on {args.problem}**, {name}, autocast "
              f"{args.autocast or 'none'}."),
             "", "| setting | B | seconds | images / s |", "|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['batch']} | {r['seconds']:.3f} | {r['images_per_s']:.1f} |"
              for r in rows]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    return rows


def write(rows: list[dict], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench_solvers_{args.problem}"
    with open(f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    spec = PROBLEMS[args.problem]
    n = args.n_images or spec["n_images"]
    deep = "deepinv_ratio" in rows[0]
    lines = [(f"**Latent solvers on {args.problem}**: {spec['prior']}, m = {spec['m']}, "
              f"noise {spec['noise']}, lambda = {spec['lam']}, {n} images."), "",
             f"Command: `python scripts/bench_solvers.py --problem {args.problem} --out "
             f"{args.out} --threads {args.threads}" +
             (f" --deepinv-images {args.deepinv_images}" if args.deepinv_images else "") + "`",
             "", f"Matches = mean error at most {1 + args.tol:.2f} x the reference's." +
             (f" deepinv's `CSGMGenerator` on the reference setting took "
              f"{rows[0]['deepinv_over_reference']:.1f}x the batched reference's time on the same "
              f"{args.deepinv_images} images, back to back; 'vs deepinv' = that x 'faster'."
              if deep else ""), "",
             "| setting | per-pixel error | measurement error | evaluations / image | "
             "fewer evaluations | s / image | faster | " + ("vs deepinv | " if deep else "") +
             "matches |",
             "|---|---|---|---|---|---|---|" + ("---|" if deep else "") + "---|"]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['error']:.5f} ± {r['error_ci']:.5f} | "
            f"{r['measurement_error']:.5f} | {r['evaluations']:.0f} | "
            f"{r['evaluations_ratio']:.1f}x | {r['seconds_per_image']:.3f} | "
            f"{r['speedup']:.1f}x | " + (f"{r['deepinv_ratio']:.1f}x | " if deep else "") +
            ("yes" if r["matches"] else "no") + " |")
    matching = [r for r in rows[1:] if r["matches"]]
    if matching:
        best = min(matching, key=lambda r: r["seconds_per_image"])
        fewest = min(matching, key=lambda r: r["evaluations"])
        lines += ["", f"Fastest matching setting: **{best['setting']}** "
                  f"({best['speedup']:.1f}x faster, {best['evaluations_ratio']:.1f}x fewer "
                  f"evaluations" + (f", {best['deepinv_ratio']:.1f}x deepinv's throughput"
                                    if deep else "") + ").",
                  (f"Fewest evaluations among matching settings: **{fewest['setting']}** "
                   f"({fewest['evaluations_ratio']:.1f}x fewer).")]
    else:
        lines += ["", "No setting matches the reference's error."]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    figure(rows, f"{stem}.png", args.problem)


def figure(rows: list[dict], path: str, problem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"adam": "C0", "lbfgs": "C1", "gauss-newton": "C2"}
    for r in rows:
        marker = "*" if r is rows[0] else ("s" if r["init"] == "encoder" else "o")
        for ax, key in zip(axes, ("evaluations", "seconds_per_image"), strict=True):
            ax.scatter(r[key], r["error"], c=colours[r["optimizer"]], marker=marker,
                       s=120 if r is rows[0] else 30)
    for ax, label in zip(axes, ("generator evaluations per image", "seconds per image"),
                         strict=True):
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("per-pixel squared error")
        ax.axhline(rows[0]["error"], color="grey", lw=0.8, ls="--")
    for name, c in colours.items():
        axes[0].scatter([], [], c=c, label=name)
    axes[0].scatter([], [], c="k", marker="s", label="encoder start")
    axes[0].scatter([], [], c="k", marker="*", s=120, label="reference")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"CSGM solvers, {problem}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _typed(row: dict) -> dict:
    """A CSV row with its numbers and flags converted back."""
    out = dict(row)
    for k, v in row.items():
        if k == "matches":
            out[k] = v == "True"
        elif k not in ("setting", "optimizer", "init") and v != "":
            out[k] = float(v)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problem", choices=sorted(PROBLEMS), default="mnist")
    p.add_argument("--out", default="docs")
    p.add_argument("--n-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=0.02)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--autocast", choices=("bf16",), default=None,
                   help="run the generator in bfloat16 (torch.autocast), the data term in fp32")
    p.add_argument("--from-csv", default=None,
                   help="only rebuild the table and figure from this run's CSV")
    p.add_argument("--throughput", type=int, nargs="*", default=None,
                   help="batch sizes: measure images/s of the --only settings instead")
    p.add_argument("--deepinv-images", type=int, default=0,
                   help="images for deepinv's timing on the reference setting (0: skip)")
    p.add_argument("--only", nargs="*", default=None,
                   help="run only the settings of these names (the reference always runs)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            rows = [_typed(r) for r in csv.DictReader(f)]
        write(rows, args)
        return 0
    if args.throughput:
        if not args.only:
            raise SystemExit("--throughput needs --only SETTING ...")
        throughput(args)
        return 0
    if args.only:
        args.only = [*args.only, "adam 1000x10 (reference)"]
    rows = run(args)
    write(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
