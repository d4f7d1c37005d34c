"""IAGAN (image-adaptive reconstruction) studies: where adapting the generator's weights per
image helps, against CSGM, Sparse-Gen, Lasso, bicubic and AffGAN, on the same images and
operators in one run. Each study writes ``<out>/adaptive_<study>.csv`` and ``.md`` (and a figure).

    python scripts/adaptive_study.py cs --data-root /work/shared/data --n-images 8 --out docs
    python scripts/adaptive_study.py sr --data-root /work/shared/data --n-images 8 --out docs
    python scripts/adaptive_study.py ood --data-root /work/shared/data --n-images 8 --out docs
    python scripts/adaptive_study.py mnist --data-root /work/shared/data --n-images 16 --out docs
    python scripts/adaptive_study.py overfit --data-root /work/shared/data --n-images 4 --out docs

Protocols: ``cs`` is the CSGM CelebA protocol of docs/reproduce_celeba.md (A i.i.d. N(0, 1),
noise 0.01 on [-1, 1] images, held-out faces 008001.., error per pixel on [-1, 1]); ``sr`` is
noise-free 4x box downsampling of held-out faces (crop-54 framing, that of the face priors);
``ood`` takes centred 64x64 crops of CBSD68 (not faces) with the face prior at m = 2500 and 4x
SR; ``mnist`` is the Bora protocol of docs/reproduce_mnist.md (A i.i.d. N(0, 1), noise 0.1);
``overfit`` records the error after every adaptation step at two noise levels, with and without
the discrepancy rule and the weight anchor.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from _run import first_images

import genprior
from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_celeba, load_mnist
from genprior.data.folder import ImageFolderDataset
from genprior.metrics import measurement_residual, mse_per_pixel, psnr, to_minus1_1
from genprior.operators import Downsample, GaussianCS
from genprior.reconstruct import adapt_weights, back_project, csgm, lasso, reconstruct

FACE_NOISE = 0.01 / 2  # the reference's 0.01 on [-1, 1] images, on [0, 1] images
ADAPT = {"lr_theta": 1e-4, "lr_z": 1e-4}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", choices=("cs", "sr", "ood", "mnist", "overfit"))
    p.add_argument("--data-root", required=True)
    p.add_argument("--n-images", type=int, default=8)
    p.add_argument("--out", default="docs")
    p.add_argument("--m", type=int, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=500, help="CSGM steps (stage 1)")
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--adapt-steps", type=int, default=300)
    p.add_argument("--tau", type=float, default=1.0, help="discrepancy factor (noisy studies)")
    p.add_argument("--sparse-gen-steps", type=int, default=1500)
    p.add_argument("--lasso-steps", type=int, default=500)
    p.add_argument("--noise", type=float, nargs=2, default=[FACE_NOISE, 5.0],
                   help="overfit: the two noise std (on [0, 1] images, A unscaled N(0, 1))")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------- helpers
def face_error(x_hat, x):
    """Per-pixel squared error on [-1, 1] images (the CSGM CelebA convention), per image."""
    return mse_per_pixel(to_minus1_1(x_hat.clamp(0, 1)), to_minus1_1(x))


def iagan(y, A, prior, z, *, noise_std, args):
    """Stage 2 from CSGM's latents, then exact and regularised back-projection."""
    tau = args.tau if noise_std > 0 else None
    x_ad, _, _, steps = adapt_weights(y, A, prior, z, steps=args.adapt_steps, noise_std=noise_std,
                                      tau=tau, **ADAPT)
    out = {"IAGAN": x_ad, "IAGAN+BP": back_project(x_ad, y, A)}
    if noise_std > 0:  # regularised: eps = 0.1 x the mean eigenvalue of A A^T
        eps = 0.1 * float(A.matrix.pow(2).sum()) / A.matrix.shape[0]
        out["IAGAN+rBP"] = back_project(x_ad, y, A, eps=eps)
    return out, steps


class Table:
    """Rows written after every addition, so an interrupted study keeps what it measured."""

    def __init__(self, out: Path, stem: str, note: str) -> None:
        self.out, self.stem, self.note, self.rows = out, stem, note, []

    def add(self, **row) -> None:
        self.rows.append(row)
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)
        with open(self.out / f"{self.stem}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            w.writeheader()
            w.writerows(self.rows)
        keys = list(self.rows[0])
        lines = [f"Command: `python {' '.join(sys.argv)}`", "", self.note, "",
                 "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])
                                    for k in keys) + " |" for r in self.rows]
        (self.out / f"{self.stem}.md").write_text("\n".join(lines) + "\n")


def summary(values) -> tuple[float, float]:
    v = values.double()
    half = 1.96 * float(v.std()) / len(v) ** 0.5 if len(v) > 1 else float("nan")
    return float(v.mean()), half


def csgm_face(y, A, prior, args, lam=0.0):
    return csgm(y, A, prior, lam=lam, restarts=args.restarts, steps=args.steps, lr=0.1, optimizer="adam",
                select="loss", generator=make_generator(0))


def lasso_dct(y, A, args):
    half = torch.full((1, *A.img_size), 0.5)
    res = lasso(y - A.A(half), A, basis="dct", alpha=0.05, steps=args.lasso_steps, clip=False,
                generator=make_generator(0))
    return (res.x_hat + half).clamp(0, 1)


# ----------------------------------------------------------------------------------- studies
def study_cs(args, out: Path) -> None:
    import reproduce_celeba as rc

    x = _faces(args)
    prior = genprior.load_prior("celeba-dcgan")
    table = Table(out, "adaptive_cs", _note("cs", args))
    ns = SimpleNamespace(seed=0, restarts=args.restarts, steps=args.steps, lr=0.1,
                         lasso_steps=args.lasso_steps, sparse_gen_steps=args.sparse_gen_steps)
    for m in args.m or [200, 500, 1000, 2500, 5000, 10000]:
        A = GaussianCS(m, (3, 64, 64), normalize=False, noise_std=FACE_NOISE, seed=m)
        y = A.measure(x, generator=make_generator(10_000 + m))
        results, grid = {}, [x]
        t0 = time.perf_counter()
        results["Lasso-DCT"] = (lasso_dct(y, A, args), time.perf_counter() - t0)
        t0 = time.perf_counter()
        results["Sparse-Gen"] = (rc.run_method("Sparse-Gen", y, A, prior, ns, m),
                                 time.perf_counter() - t0)
        t0 = time.perf_counter()
        stage1 = csgm_face(y, A, prior, args)
        t1 = time.perf_counter() - t0
        results["CSGM"] = (stage1.x_hat, t1)
        t0 = time.perf_counter()
        ada, steps = iagan(y, A, prior, stage1.z_hat, noise_std=FACE_NOISE, args=args)
        t2 = time.perf_counter() - t0
        for k, v in ada.items():
            results[k] = (v, t1 + t2)
        for name, (x_hat, secs) in results.items():
            mean, ci = summary(face_error(x_hat, x))
            table.add(m=m, method=name, error=mean, ci95=ci,
                      psnr=float(psnr(x_hat.clamp(0, 1), x, data_range=1.0).mean()),
                      seconds=secs, adapt_steps=float(steps.double().mean()) if "IAGAN" in name
                      else float("nan"))
            grid.append(x_hat.clamp(0, 1))
        if m in (500, 2500):
            save_grid_png(out / f"adaptive_cs_m{m}.png", torch.cat(grid), nrow=len(x))
    _plot(table.rows, out / "adaptive_cs.png", "error", "m",
          f"CelebA CS, {len(x)} held-out faces (per-pixel error on [-1, 1])", log=True)


def study_sr(args, out: Path) -> None:
    x = _faces(args)
    prior = genprior.load_prior("celeba-dcgan")
    affgan = genprior.load_prior("celeba-sr4-affgan")
    A = Downsample((3, 64, 64), 4)
    y = A.A(x)
    table = Table(out, "adaptive_sr", _note("sr", args))
    results = {}
    t0 = time.perf_counter()
    results["bicubic"] = (reconstruct("bicubic", y, A).x_hat, time.perf_counter() - t0)
    t0 = time.perf_counter()
    results["AffGAN"] = (reconstruct("conditional", y, A, prior=affgan,
                                     generator=make_generator(0)).x_hat, time.perf_counter() - t0)
    t0 = time.perf_counter()
    stage1 = csgm_face(y, A, prior, args)
    t1 = time.perf_counter() - t0
    results["CSGM"] = (stage1.x_hat, t1)
    results["CSGM+BP"] = (back_project(stage1.x_hat, y, A), t1)
    t0 = time.perf_counter()
    ada, _ = iagan(y, A, prior, stage1.z_hat, noise_std=0.0, args=args)
    for k, v in ada.items():
        results[k] = (v, t1 + time.perf_counter() - t0)
    for name, (x_hat, secs) in results.items():
        p_mean, p_ci = summary(psnr(x_hat.clamp(0, 1), x, data_range=1.0))
        table.add(method=name, psnr=p_mean, psnr_ci95=p_ci,
                  error=summary(face_error(x_hat, x))[0],
                  max_residual=float(measurement_residual(x_hat, y, A).max()), seconds=secs)
    save_grid_png(out / "adaptive_sr.png",
                  torch.cat([x] + [r[0].clamp(0, 1) for r in results.values()]), nrow=len(x))


def study_ood(args, out: Path) -> None:
    folder = Path(args.data_root) / "testsets" / "CBSD68"
    data = ImageFolderDataset(folder, img_size=64, crop=64)
    x = first_images(data, args.n_images)
    prior = genprior.load_prior("celeba-dcgan")
    table = Table(out, "adaptive_ood", _note("ood", args))
    grid = [x]
    for task in ("cs", "sr"):
        if task == "cs":
            A = GaussianCS(2500, (3, 64, 64), normalize=False, noise_std=FACE_NOISE, seed=2500)
            y = A.measure(x, generator=make_generator(12_500))
            base = ("Lasso-DCT", lasso_dct(y, A, args))
        else:
            A = Downsample((3, 64, 64), 4)
            y = A.A(x)
            base = ("bicubic", reconstruct("bicubic", y, A).x_hat)
        stage1 = csgm_face(y, A, prior, args)
        ada, _ = iagan(y, A, prior, stage1.z_hat, noise_std=FACE_NOISE if task == "cs" else 0.0,
                       args=args)
        for name, x_hat in [base, ("CSGM", stage1.x_hat), *ada.items()]:
            p_mean, p_ci = summary(psnr(x_hat.clamp(0, 1), x, data_range=1.0))
            table.add(task="CS m=2500" if task == "cs" else "4x SR", method=name, psnr=p_mean,
                      psnr_ci95=p_ci, error=summary(face_error(x_hat, x))[0])
            grid.append(x_hat.clamp(0, 1))
    save_grid_png(out / "adaptive_ood.png", torch.cat(grid), nrow=len(x))


def study_mnist(args, out: Path) -> None:
    data = load_mnist(args.data_root + "/mnist", "test")
    x = first_images(data, args.n_images)
    prior = genprior.load_prior("mnist-vae")
    table = Table(out, "adaptive_mnist", _note("mnist", args))
    for m in args.m or [100, 200, 500, 750]:
        A = GaussianCS(m, (1, 28, 28), normalize=False, noise_std=0.1, seed=m)
        y = A.measure(x, generator=make_generator(10_000 + m))
        t0 = time.perf_counter()
        lasso_x = lasso(y, A, basis="pixel", alpha=0.1, generator=make_generator(0)).x_hat
        results = {"Lasso": (lasso_x, time.perf_counter() - t0)}
        t0 = time.perf_counter()
        stage1 = csgm(y, A, prior, lam=0.1, restarts=10, steps=1000, lr=0.01, optimizer="adam", select="loss",
                      generator=make_generator(0))
        t1 = time.perf_counter() - t0
        results["VAE+Reg (CSGM)"] = (stage1.x_hat, t1)
        t0 = time.perf_counter()
        ada, _ = iagan(y, A, prior, stage1.z_hat, noise_std=0.1, args=args)
        for k, v in ada.items():
            results[k] = (v, t1 + time.perf_counter() - t0)
        for name, (x_hat, secs) in results.items():
            mean, ci = summary(mse_per_pixel(x_hat.clamp(0, 1), x))
            table.add(m=m, method=name, error=mean, ci95=ci, seconds=secs)
    _plot(table.rows, out / "adaptive_mnist.png", "error", "m",
          f"MNIST CS, {len(x)} test digits (per-pixel error)", log=True)


def study_overfit(args, out: Path) -> None:
    x = _faces(args)
    prior = genprior.load_prior("celeba-dcgan")
    table = Table(out, "adaptive_overfit", _note("overfit", args))
    curves = {}
    for noise in args.noise:
        A = GaussianCS(2500, (3, 64, 64), normalize=False, noise_std=noise, seed=2500)
        y = A.measure(x, generator=make_generator(12_500))
        z = csgm_face(y, A, prior, args).z_hat
        for label, kw in [("plain", {}), ("discrepancy tau=1", {"tau": 1.0}),
                          ("anchor 1e-6", {"lam_theta": 1e-6}),
                          ("anchor 1e-5", {"lam_theta": 1e-5})]:
            errs: list[float] = []

            def record(t, xx, errs=errs):
                errs.append(float(face_error(xx, x).mean()))

            adapt_weights(y, A, prior, z, steps=args.adapt_steps, noise_std=noise,
                          callback=record, **ADAPT, **kw)
            curves[(noise, label)] = errs
            table.add(noise_std=noise, variant=label, error_start=errs[0],
                      error_best=min(errs), best_step=int(min(range(len(errs)),
                                                              key=errs.__getitem__)),
                      error_end=errs[-1], steps_run=len(errs))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, noise in zip(axes, args.noise):
        for (n, label), errs in curves.items():
            if n == noise:
                ax.plot(errs, label=label)
        ax.set_title(f"noise std {noise:g} (on [0, 1]), m = 2500")
        ax.set_xlabel("adaptation step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("per-pixel error on [-1, 1]")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "adaptive_overfit.png", dpi=110)
    plt.close(fig)


def _faces(args):
    data = load_celeba(args.data_root, "test", img_size=64)
    return first_images(data, args.n_images)


def _note(study: str, args) -> str:
    return (f"Study `{study}`, {args.n_images} images; CSGM stage 1: {args.restarts} restarts x "
            f"{args.steps} Adam steps; IAGAN stage 2: {args.adapt_steps} steps, lr_theta "
            f"{ADAPT['lr_theta']}, lr_z {ADAPT['lr_z']}, discrepancy tau {args.tau} on noisy "
            "data; IAGAN+BP exact back-projection, IAGAN+rBP regularised (eps = 0.1 x mean "
            "eigenvalue of A A^T). CPU, 1 thread.")


def _plot(rows, path: Path, key: str, x_key: str, title: str, log: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        ax.plot([r[x_key] for r in sel], [r[key] for r in sel], marker="o", label=method)
    ax.set_xscale("log")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("number of measurements m")
    ax.set_ylabel("per-pixel error")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    {"cs": study_cs, "sr": study_sr, "ood": study_ood, "mnist": study_mnist,
     "overfit": study_overfit}[args.study](args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
