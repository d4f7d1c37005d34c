r"""Calibration of per-pixel uncertainty before and after the misfit model (issue 14).

Settings (``--settings``, default all):

- ``mnist25``, ``mnist100``, ``mnist300``: ``mnist-vae``, the Bora protocol:
  ``GaussianCS(m, (1, 28, 28), normalize=False, noise_std=0.1, seed=m)`` (A ~ N(0, 1));
- ``faces500``, ``faces2500``: ``celeba-dcgan``, ``GaussianCS(m, (3, 64, 64), normalize=True,
  noise_std=0.01, seed=m)`` (A ~ N(0, 1/m));
- ``sr4``: ``celeba-dcgan``, 4x super-resolution ``Downsample((3, 64, 64), 4, kernel="box",
  noise_std=0.01)``.

Evaluation images: MNIST test digits 9000.. and held-out CelebA faces from id 008801 on
(``scripts/fit_misfit.py`` fits the shipped misfits on digits 300..799 and faces
008001..008100; a misfit whose recorded images overlap the evaluation images is refused).
Measurement noise from seed ``--seed + m`` (``m = 768`` for ``sr4``).

Per setting, on the same images, operator and measurements:

- **CSGM MAP** (the reference "today's CSGM estimate"; also where every chain starts):
  ``csgm`` with ``lam = noise^2 / m`` (the posterior mode at the true noise, in CSGM's
  reference units), ``--csgm-restarts`` x ``--csgm-steps`` Adam steps, lr 0.05 (MNIST) / 0.1
  (faces);
- **latent** (before): the documented default of ``docs/sampling.md`` ("MNIST calibration",
  ``scripts/calibration_mnist.py``): ``langevin(method="mala")`` at ``sigma = noise``, chains
  started at the CSGM MAP, Laplace-preconditioned (``precondition="laplace"``, step 0.5,
  adapted during burn-in);
- **misfit** (after): ``misfit_posterior`` with the prior's fitted :math:`\Sigma_d` (from
  ``--misfit-dir PRIOR=DIR`` or the prior's own folder), the same chains, start, preconditioner
  and step;
- **misfit+conformal**: split conformal (``fit_conformal``, ``score="interval"``) fitted on the
  **first half** of the evaluation images, one factor per nominal level, and evaluated on the
  **second half** (levels whose calibration half is too small, N < level / (1 - level), are left
  empty). The 90% factor of each setting is written to ``OUT/conformal/<setting>.json`` with its
  setting recorded (prior, operator, noise, sigma, posterior, method), for
  ``genprior sample --conformal``.

Reported per setting and method: empirical coverage of the central (equal-tailed) intervals at
nominal 50/80/90/95/99% (mean over images of the fraction of true pixels inside), mean width
of the 90% interval, corr(std, |error|) (``std_error_correlation``, mean over images), the
per-pixel MSE of the posterior mean and of the CSGM MAP on the same images (images in [0, 1]),
MALA acceptance and seconds (the sampler's time plus the shared CSGM MAP; the misfit time
includes factorising sigma^2 I + A Sigma_d A^T). The latent and misfit rows average over all
evaluation images; the conformal rows over the second half.

Writes ``OUT/calibration_study.csv``, ``OUT/calibration_study.md`` (command line at the top) and
``OUT/calibration_study.png`` (reliability diagram: empirical vs nominal coverage, one panel
per setting, the three methods and the diagonal).

Default sizes: 100 MNIST digits and 20 faces per setting (``--n-images`` sets both,
``--n-faces`` the faces alone); 4 chains x 50 samples after 60 burn-in steps (200 samples per
image); CSGM 5 restarts (MNIST) / 2 restarts (faces, the reference's DCGAN setting) x 500 steps.
Time on one CPU thread, measured on a loaded 2-core machine: one MNIST setting about 50 s
(100 digits; mostly the CSGM MAP), so the three MNIST settings about 2.5 minutes; one face
setting extrapolated from runs on 4 faces (linear in images x iterations) to about 4.5 minutes
(CSGM about 2, each sampler about 1.3-1.8), so the full study takes about 16 minutes.

With 20 faces the conformal calibration half holds 10 images: its finite-sample correction of
one whole image (see ``genprior.sampling.conformal``) then makes the 90% factor cover up to
about 0.9 + 1/11 = 0.99 of the test pixels; use ``--n-faces 40`` or more (about twice the
face time) for conformal rows that can land within 85-95% at the 90% level.

The MNIST settings alone (about 2.5 minutes)::

    python scripts/calibration_study.py --settings mnist25 mnist100 mnist300 --threads 1 \
        --out /tmp/calibration

The full study (about 16 minutes)::

    python scripts/calibration_study.py --data /work/shared/data --threads 1 --out docs

A tiny smoke run (about 30 s; pass ``--misfit-dir mnist-vae=DIR`` until the shipped misfit
exists)::

    python scripts/calibration_study.py --settings mnist100 --n-images 4 --chains 2 \
        --n-samples 20 --burn-in 20 --threads 1 --out /tmp/calibration_smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fit_misfit import CSGM_LR, DATASETS, EVAL_START, FAMILY_SIZE, load_images, overlap

from genprior._random import make_generator
from genprior.metrics import mse_per_pixel
from genprior.operators import OPERATORS, Downsample, GaussianCS
from genprior.priors import load_prior, pretrained_dir
from genprior.reconstruct.csgm import csgm
from genprior.sampling import (
    MISFIT_NAME,
    MisfitCovariance,
    fit_conformal,
    langevin,
    marginal_covariance,
    misfit_posterior,
    std_error_correlation,
)

LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)
METHODS = ("latent", "misfit", "misfit+conformal")
#: default evaluation images and CSGM restarts per family
N_IMAGES = {"mnist": 100, "faces": 20}
BATCH = {"mnist": 100, "faces": 10}
CSGM_RESTARTS = {"mnist": 5, "faces": 2}


@dataclass(frozen=True)
class Setting:
    """One study setting: prior, family and operator."""

    name: str
    prior: str
    family: str
    m: int  # measurements per image
    noise: float
    sr_factor: int = 0  # 0: Gaussian CS

    def operator(self):
        """The forward operator of this setting."""
        if self.sr_factor:
            return Downsample((3, 64, 64), self.sr_factor, kernel="box", noise_std=self.noise)
        img = (1, 28, 28) if self.family == "mnist" else (3, 64, 64)
        return GaussianCS(self.m, img, normalize=self.family != "mnist", noise_std=self.noise,
                          seed=self.m)


SETTINGS = {s.name: s for s in (
    Setting("mnist25", "mnist-vae", "mnist", 25, 0.1),
    Setting("mnist100", "mnist-vae", "mnist", 100, 0.1),
    Setting("mnist300", "mnist-vae", "mnist", 300, 0.1),
    Setting("faces500", "celeba-dcgan", "faces", 500, 0.01),
    Setting("faces2500", "celeba-dcgan", "faces", 2500, 0.01),
    Setting("sr4", "celeba-dcgan", "faces", 3 * 16 * 16, 0.01, sr_factor=4),
)}


def interval_stats(x: torch.Tensor, samples: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and mean width per level and image of the equal-tailed intervals (the intervals
    of ``genprior.sampling.credible_interval``, all levels from one ``torch.quantile`` call).

    Shape:
        - x: ``(B, C, H, W)``; samples: ``(S, B, C, H, W)``; outputs: ``(len(LEVELS), B)``
    """
    q = torch.tensor([p for lv in LEVELS for p in ((1 - lv) / 2, (1 + lv) / 2)],
                     dtype=samples.dtype)
    bounds = torch.quantile(samples, q, dim=0).reshape(len(LEVELS), 2, *x.shape)
    lo, hi = bounds[:, 0], bounds[:, 1]
    cov = ((x >= lo) & (x <= hi)).flatten(2).float().mean(2)
    width = (hi - lo).flatten(2).mean(2)
    return cov.numpy(), width.numpy()


def load_misfit(setting: Setting, dirs: dict[str, str]) -> tuple[MisfitCovariance, str]:
    """The prior's misfit from ``--misfit-dir`` or its shipped folder, checked against the
    evaluation images."""
    folder = Path(dirs.get(setting.prior, pretrained_dir() / setting.prior))
    if not MisfitCovariance.exists(folder) and not folder.is_file():
        raise SystemExit(f"no {MISFIT_NAME} for {setting.prior} in {folder}: fit one with "
                         f"python scripts/fit_misfit.py --prior {setting.prior} --out DIR and "
                         f"pass --misfit-dir {setting.prior}=DIR")
    misfit = MisfitCovariance.from_pretrained(folder)
    if overlap(misfit.info.get("images"), DATASETS[setting.family], EVAL_START[setting.family],
               FAMILY_SIZE[setting.family]):
        raise SystemExit(f"the misfit in {folder} was fitted on "
                         f"{misfit.info['images'].get('what')}, which overlaps the evaluation "
                         f"images")
    return misfit, str(folder)


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def image_range(family: str, a: int, b: int) -> str:
    """Images ``a .. b`` (inclusive) of the family's held-out set, in words."""
    if family == "mnist":
        return f"MNIST test digits {a}..{b}"
    return f"CelebA ids {8001 + a:06d}..{8001 + b:06d}"


def run_setting(setting: Setting, args, prior, misfit: MisfitCovariance, misfit_dir: str,
                out: Path) -> list[dict]:
    family = setting.family
    n = (args.n_faces if family == "faces" else None) or args.n_images or N_IMAGES[family]
    if n < 2:
        raise SystemExit(f"{setting.name}: need at least 2 evaluation images, got {n}")
    start = EVAL_START[family]
    x, _ = load_images(family, args.data, start, n)
    A = setting.operator()
    y = A.measure(x, generator=make_generator(args.seed + setting.m))
    lam = setting.noise**2 / setting.m
    restarts = args.csgm_restarts or CSGM_RESTARTS[family]
    parts = chunks(n, args.batch or BATCH[family])

    t0 = time.perf_counter()
    g = make_generator(args.seed)
    z_map, x_map = [], []
    for part in parts:
        res = csgm(y[part], A, prior, optimizer="adam", restarts=restarts, steps=args.csgm_steps,
                   lr=CSGM_LR[family], lam=lam, generator=g)
        z_map.append(res.z_hat.detach())
        x_map.append(res.x_hat.detach())
    z_map, x_map = torch.cat(z_map), torch.cat(x_map)
    t_map = time.perf_counter() - t0
    mse_map = mse_per_pixel(x_map, x).numpy()

    options = {"n_samples": args.n_samples, "n_chains": args.chains, "burn_in": args.burn_in,
               "thin": args.thin, "method": "mala", "precondition": "laplace",
               "step_size": 0.5}
    per_method = {}
    kept = None
    for method in ("latent", "misfit"):
        g = make_generator(args.seed)
        t0 = time.perf_counter()
        cov_factor = (marginal_covariance(A, misfit, sigma=setting.noise)
                      if method == "misfit" else None)
        stats = {"cov": [], "width": [], "corr": [], "mse": [], "accept": [], "std": []}
        samples_all = []
        for part in parts:
            if method == "latent":
                res = langevin(y[part], A, prior, sigma=setting.noise, init=z_map[part],
                               generator=g, **options)
            else:
                res = misfit_posterior(y[part], A, prior, misfit, sigma=setting.noise,
                                       covariance=cov_factor, init=z_map[part], generator=g,
                                       **options)
            cov, width = interval_stats(x[part], res.samples)
            stats["cov"].append(cov)
            stats["width"].append(width)
            stats["corr"].append(std_error_correlation(res.std, res.mean, x[part]).numpy())
            stats["mse"].append(mse_per_pixel(res.mean, x[part]).numpy())
            stats["accept"].append(res.acceptance_rate.numpy())
            stats["std"].append(res.std.flatten(1).mean(1).numpy())
            if method == "misfit":
                samples_all.append(res.samples)
        seconds = time.perf_counter() - t0 + t_map
        per_method[method] = {k: np.concatenate(v, axis=-1) for k, v in stats.items()}
        per_method[method]["seconds"] = seconds
        if method == "misfit":
            kept = torch.cat(samples_all, dim=1)
        print(f"  {setting.name} {method}: 90% coverage "
              f"{per_method[method]['cov'][LEVELS.index(0.9)].mean():.3f}, "
              f"{seconds:.1f} s (CSGM MAP {t_map:.1f} s)", flush=True)

    # split conformal on the misfit samples: calibrate on the first half, test on the second
    half = n // 2
    cal, test = slice(0, half), slice(half, n)
    op_record = {"type": OPERATORS.key(type(A)), "config": json.loads(json.dumps(A.config))}
    base_setting = {"prior": setting.prior, "operator": op_record, "noise_std": setting.noise,
                    "sigma": setting.noise, "posterior": "misfit", "method": "mala",
                    "sampler": {**options, "init": "csgm MAP", "csgm_lam": lam,
                                "csgm_restarts": restarts, "csgm_steps": args.csgm_steps},
                    "misfit": misfit_dir,
                    "calibration_images": image_range(family, start, start + half - 1),
                    "fitted_by": "scripts/calibration_study.py"}
    t0 = time.perf_counter()
    conf_cov = np.full((len(LEVELS), n - half), np.nan)
    conf_width = np.full((len(LEVELS), n - half), np.nan)
    for i, level in enumerate(LEVELS):
        if half < math.ceil(level / (1 - level)):
            continue
        scale = fit_conformal(x[cal], kept[:, cal], level=level, score="interval",
                              setting=base_setting)
        lo, hi = scale.apply(kept[:, test])
        conf_cov[i] = ((x[test] >= lo) & (x[test] <= hi)).flatten(1).float().mean(1).numpy()
        conf_width[i] = (hi - lo).flatten(1).mean(1).numpy()
        if level == 0.9:
            (out / "conformal").mkdir(parents=True, exist_ok=True)
            scale.save(out / "conformal" / f"{setting.name}.json")
            print(f"  {setting.name} conformal factor at 90%: {scale.factor:.3f}")
    t_conf = time.perf_counter() - t0

    split = (f"{setting.name}: calibrate on {image_range(family, start, start + half - 1)}, "
             f"test on {image_range(family, start + half, start + n - 1)}")
    rows = []
    for method in METHODS:
        src = per_method["misfit" if method != "latent" else "latent"]
        sel = slice(0, n) if method != "misfit+conformal" else test
        cov = src["cov"][:, sel] if method != "misfit+conformal" else conf_cov
        width = src["width"][:, sel] if method != "misfit+conformal" else conf_width
        seconds = src["seconds"] + (t_conf if method == "misfit+conformal" else 0.0)
        row = {"setting": setting.name, "method": method, "prior": setting.prior,
               "m": setting.m, "noise": setting.noise,
               "images": image_range(family, sel.start + start, sel.stop + start - 1),
               "samples_per_image": args.chains * args.n_samples}
        for i, level in enumerate(LEVELS):
            row[f"cov{round(level * 100)}"] = float(np.mean(cov[i]))
        row["width90"] = float(np.mean(width[LEVELS.index(0.9)]))
        row["corr_std_err"] = float(np.nanmean(src["corr"][sel]))
        row["mse_mean"] = float(np.mean(src["mse"][sel]))
        row["mse_csgm"] = float(np.mean(mse_map[sel]))
        row["mean_std"] = float(np.mean(src["std"][sel]))
        row["acceptance"] = float(np.mean(src["accept"][sel]))
        row["seconds"] = float(seconds)
        row["csgm_seconds"] = float(t_map)
        row["split"] = split if method == "misfit+conformal" else ""
        rows.append(row)
    return rows


def fmt(v: float, digits: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def write(rows: list[dict], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "calibration_study.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    levels = [round(lv * 100) for lv in LEVELS]
    lines = [f"Command: `{command}`", "",
             ("Empirical coverage of the central intervals at each nominal level (fraction of "
             "true pixels inside, mean over images), mean width of the 90% interval, "
             "corr(std, |error|), per-pixel MSE of the posterior mean and of the CSGM MAP "
             "(images in [0, 1]), MALA acceptance and seconds. latent = latent-only MALA "
             "(before), misfit = misfit-aware posterior (after), misfit+conformal = split "
             "conformal on the misfit samples (calibrated on the first half of the evaluation "
             "images, reported on the second half; empty where the half is too small for the "
             "level)."), "",
             "| setting | method | images | " + " | ".join(f"{lv}%" for lv in levels) +
             " | width 90% | corr(std, err) | MSE mean | MSE CSGM | accept | s |",
             "|---|---|---|" + "---|" * len(levels) + "---|---|---|---|---|---|"]
    for r in rows:
        cells = [fmt(r[f"cov{lv}"]) for lv in levels]
        lines.append(f"| {r['setting']} | {r['method']} | {r['images']} | " + " | ".join(cells) +
                     f" | {fmt(r['width90'])} | {fmt(r['corr_std_err'], 2)} | "
                     f"{fmt(r['mse_mean'], 4)} | {fmt(r['mse_csgm'], 4)} | "
                     f"{fmt(r['acceptance'], 2)} | {r['seconds']:.0f} |")
    splits = sorted({r["split"] for r in rows if r["split"]})
    if splits:
        lines += ["", "Conformal splits: " + "; ".join(splits) + "."]
    (out / "calibration_study.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "calibration_study.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    fig, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3.4),
                             squeeze=False)
    styles = {"latent": ("tab:red", "o"), "misfit": ("tab:blue", "s"),
              "misfit+conformal": ("tab:green", "^")}
    for ax, name in zip(axes[0], settings):
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="calibrated")
        for r in rows:
            if r["setting"] != name:
                continue
            ys = [r[f"cov{round(lv * 100)}"] for lv in LEVELS]
            color, marker = styles[r["method"]]
            ax.plot(LEVELS, ys, color=color, marker=marker, ms=4, label=r["method"])
        ax.set_title(name)
        ax.set_xlim(0.4, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("nominal coverage")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("empirical coverage")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--data", default=os.environ.get("GENPRIOR_DATA", "/work/shared/data"),
                   help="data root holding mnist/ and celeba/ (default $GENPRIOR_DATA, else "
                   "/work/shared/data)")
    p.add_argument("--misfit-dir", nargs="*", default=[], metavar="PRIOR=DIR",
                   help="folder (or file) of a prior's misfit.safetensors; default the prior's "
                   "own folder")
    p.add_argument("--n-images", type=int, default=None,
                   help="evaluation images per setting (default 100 MNIST, 20 faces)")
    p.add_argument("--n-faces", type=int, default=None,
                   help="evaluation images of the face settings (overrides --n-images there)")
    p.add_argument("--batch", type=int, default=None,
                   help="images per sampler call (default 100 MNIST, 10 faces)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--n-samples", type=int, default=50, help="samples kept per chain")
    p.add_argument("--burn-in", type=int, default=60)
    p.add_argument("--thin", type=int, default=1)
    p.add_argument("--csgm-steps", type=int, default=500)
    p.add_argument("--csgm-restarts", type=int, default=None, help="default 5 MNIST, 2 faces")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    dirs = {}
    for item in args.misfit_dir:
        prior, sep, folder = item.partition("=")
        if not sep or not prior or not folder:
            p.error(f"--misfit-dir takes PRIOR=DIR, got {item!r}")
        dirs[prior] = folder
    args.misfit_dirs = dirs
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(sys.argv if argv is None
                                   else ["scripts/calibration_study.py", *argv])
    out = Path(args.out)
    priors, rows = {}, []
    for name in args.settings:
        setting = SETTINGS[name]
        if setting.prior not in priors:
            priors[setting.prior] = (load_prior(setting.prior),
                                     *load_misfit(setting, args.misfit_dirs))
        prior, misfit, misfit_dir = priors[setting.prior]
        print(f"{name}: {setting.prior}, m = {setting.m}, noise {setting.noise}", flush=True)
        rows += run_setting(setting, args, prior, misfit, misfit_dir, out)
        write(rows, out, command)  # after every setting, so a long run leaves its results
    print(f"wrote {out / 'calibration_study.md'}, .csv, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
