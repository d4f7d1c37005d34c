"""A tour in about a minute on the shipped samples and priors: measure, reconstruct, score, draw.

**Digits.** Setting of CSGM's Fig. 1a (Bora et al. 2017): ``m = 100`` i.i.d. N(0, 1) Gaussian
measurements of the shipped MNIST test digits (unscaled, as the reference code), noise standard
deviation 0.1. Reconstructs with the pseudo-inverse, with the Lasso in the pixel basis
(alpha = 0.1, as the reference) and with CSGM on the shipped ``mnist-vae`` prior (lambda = 0.1,
Adam lr 0.01, as "VAE+Reg"). Writes ``demo.png`` (one column per method, the truth first, every
panel titled with its method and PSNR) and ``metrics.csv``.

**Faces** (the shipped held-out CelebA faces, 64 x 64 RGB). Compressed sensing with
``m = 1000`` of 12288 Gaussian measurements (noise 0.005, i.e. CSGM's 0.01 on [-1, 1] images):
Lasso in the DCT basis (around grey, as the CSGM reference) against CSGM on the shipped
``celeba-dcgan``; and 4x super-resolution (box downsampling, no noise): bicubic upsampling
against one draw of the range-constrained ``celeba-sr4-affgan``, whose output satisfies
``A x = y`` exactly. Writes ``faces.png`` (the same layout, with the 16 x 16 measurements) and
``faces_metrics.csv``; ``--no-faces`` skips this part.

Both parts print a table of per-pixel MSE / PSNR / SSIM (mean ± 95% half-width over images).
A shipped prior that is missing only skips its method (with a note); a prior that is there but
unreadable, a non-empty ``--out`` (without ``--overwrite``) or an ``--out`` that is a file is
refused before any work.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

HELP = ("one-minute demo: MNIST compressed sensing (CSGM vs Lasso) and faces (CSGM vs "
        "Lasso-DCT, AffGAN 4x super-resolution vs bicubic) with labelled figures")

M, NOISE_STD, LAM, ALPHA, LR = 100, 0.1, 0.1, 0.1, 0.01
FULL = {"n_images": 8, "restarts": 10, "steps": 1000}
FAST = {"n_images": 4, "restarts": 3, "steps": 300}

#: faces: CSGM reference settings of ``scripts/reproduce_celeba.py`` ("DCGAN", lambda 0, Adam
#: lr 0.1, the lowest-objective restart) at one m, with fewer steps
FACE_M, FACE_NOISE_STD, FACE_LR, FACE_ALPHA, SR_FACTOR = 1000, 0.005, 0.1, 0.05, 4
FACE_PRIOR, SR_PRIOR = "celeba-dcgan", "celeba-sr4-affgan"
#: face methods: names in the table and ``faces_metrics.csv`` -> column titles of ``faces.png``
FACE_LABELS = {"cs_lasso-dct": f"Lasso-DCT, m={FACE_M}", "cs_csgm": f"CSGM, m={FACE_M}",
               "sr_bicubic": f"bicubic, {SR_FACTOR}x SR", "sr_affgan": f"AffGAN, {SR_FACTOR}x SR"}
FACES_FULL = {"n_images": 4, "restarts": 2, "steps": 300, "lasso_steps": 300}
FACES_FAST = {"n_images": 2, "restarts": 1, "steps": 20, "lasso_steps": 20}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="genprior-demo", help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")
    parser.add_argument("--fast", action="store_true",
                        help=f"fewer images, restarts and steps (digits {FAST}, faces "
                        f"{FACES_FAST}) instead of {FULL} and {FACES_FULL}")
    parser.add_argument("--prior", default="mnist-vae", help="MNIST prior name or folder")
    parser.add_argument("--no-faces", action="store_true",
                        help=f"skip the face part ({FACE_PRIOR}, {SR_PRIOR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of operator, noise, restarts")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 by default: these small problems are bound by "
                        "per-op overhead, and on a busy 2-core machine 2 threads ran 20x slower")


def _load_optional_prior(name: str, what: str, hint: str = ""):
    """The prior, or ``None`` with a note when it is not there (an unreadable one raises)."""
    from genprior.cli._inputs import load_prior_arg

    try:
        return load_prior_arg(name, torch.device("cpu"))
    except FileNotFoundError as e:
        print(f"NOTE: prior {name!r} is not available, so {what} is skipped ({e}). "
              f"Train it with scripts/train_priors.sh{hint}.")
        return None


def _score(x: torch.Tensor, x_hats: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """Per-method metrics tables, CSV columns ``METHOD_METRIC`` and per-image PSNR."""
    from genprior.metrics import MetricsTable, image_metrics

    tables, columns, psnr = {}, {}, {}
    for name, x_hat in x_hats.items():
        metrics = image_metrics(x_hat, x, data_range=1.0)
        tables[name] = MetricsTable.from_metrics(metrics)
        psnr[name] = metrics["psnr"]
        for k, v in metrics.items():
            columns[f"{name}_{k}"] = v
    return tables, columns, psnr


def _print_table(tables: dict) -> None:
    width = max(8, *(len(n) + 1 for n in tables))
    names = list(next(iter(tables.values())).summaries)
    print(f"\n{'method':<{width}}" + "".join(f"{k:>22}" for k in names))
    for name, table in tables.items():
        cells = "".join(f"{table.summaries[k].mean:>13.4g} ± {table.summaries[k].ci95:<6.2g}"
                        for k in names)
        print(f"{name:<{width}}{cells}")


def _digits(args, prior, size: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The MNIST part: the digits and ``{method: x_hat}`` (clamped)."""
    from genprior._random import make_generator
    from genprior.data import load_samples
    from genprior.operators.gaussian_cs import GaussianCS
    from genprior.reconstruct import csgm, lasso, pinv

    x = load_samples("mnist")[: size["n_images"]]
    A = GaussianCS(M, tuple(x.shape[1:]), normalize=False, noise_std=NOISE_STD, seed=args.seed)
    y = A.measure(x, generator=make_generator(args.seed + 1))
    print(f"MNIST: {x.shape[0]} shipped test digits, A: {M} x {A.n} i.i.d. N(0, 1), "
          f"noise std {NOISE_STD}, {args.threads} torch thread(s)")
    results = {}
    t0 = time.perf_counter()
    results["pinv"] = pinv(y, A)
    results["lasso"] = lasso(y, A, basis="pixel", alpha=ALPHA, generator=make_generator(args.seed))
    print(f"pinv + Lasso (pixel basis, alpha={ALPHA}): {time.perf_counter() - t0:.1f} s")
    if prior is not None:
        t0 = time.perf_counter()
        results["csgm"] = csgm(y, A, prior, lam=LAM, restarts=size["restarts"], optimizer="adam",
                               steps=size["steps"], lr=LR, generator=make_generator(args.seed))
        print(f"CSGM ({args.prior}, lambda={LAM}, Adam lr {LR}, {size['restarts']} restarts x "
              f"{size['steps']} steps, all in one batch): {time.perf_counter() - t0:.1f} s")
    return x, {name: res.x_hat.clamp(0, 1) for name, res in results.items()}


def _faces(args, dcgan, affgan, size: dict
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The face part: the faces, ``{method: x_hat}`` (clamped) and the low-resolution ``y``."""
    from genprior._random import make_generator
    from genprior.data import load_samples
    from genprior.operators import Downsample, GaussianCS
    from genprior.reconstruct import bicubic, csgm, lasso
    from genprior.reconstruct.baselines import conditional

    x = load_samples("celeba")[: size["n_images"]]
    img = tuple(x.shape[1:])
    A = GaussianCS(FACE_M, img, normalize=False, noise_std=FACE_NOISE_STD, seed=args.seed)
    y = A.measure(x, generator=make_generator(args.seed + 1))
    print(f"\nFaces: {x.shape[0]} shipped held-out CelebA faces {img}; compressed sensing with "
          f"A: {FACE_M} x {A.n} i.i.d. N(0, 1), noise std {FACE_NOISE_STD}; {SR_FACTOR}x "
          "super-resolution (box downsampling, no noise)")
    results = {}
    t0 = time.perf_counter()
    half = torch.full((1, *img), 0.5)  # the reference's Lasso is sparse around grey
    res = lasso(y - A.A(half), A, basis="dct", alpha=FACE_ALPHA, steps=size["lasso_steps"],
                clip=False, generator=make_generator(args.seed))
    results["cs_lasso-dct"] = res.x_hat + half
    print(f"Lasso (DCT basis, alpha={FACE_ALPHA}, {size['lasso_steps']} FISTA steps): "
          f"{time.perf_counter() - t0:.1f} s")
    if dcgan is not None:
        t0 = time.perf_counter()
        results["cs_csgm"] = csgm(
            y, A, dcgan, lam=0.0, restarts=size["restarts"], steps=size["steps"], lr=FACE_LR,
            optimizer="adam", select="loss", generator=make_generator(args.seed)).x_hat
        print(f"CSGM ({FACE_PRIOR}, Adam lr {FACE_LR}, {size['restarts']} restarts x "
              f"{size['steps']} steps): {time.perf_counter() - t0:.1f} s")
    D = Downsample(img, SR_FACTOR)
    y_low = D.A(x)
    t0 = time.perf_counter()
    results["sr_bicubic"] = bicubic(y_low, D).x_hat
    if affgan is not None:
        results["sr_affgan"] = conditional(
            y_low, D, affgan, generator=make_generator(args.seed)).x_hat
    print(f"bicubic{' + AffGAN (one draw)' if affgan is not None else ''}: "
          f"{time.perf_counter() - t0:.1f} s")
    return x, {name: x_hat.clamp(0, 1) for name, x_hat in results.items()}, {
        f"y ({img[1] // SR_FACTOR}x{img[2] // SR_FACTOR})": y_low}


def run(args: argparse.Namespace) -> int:
    from genprior.cli._figures import comparison_figure, save_figure
    from genprior.cli._inputs import check_threads
    from genprior.cli._output import check_output, transactional_output
    from genprior.metrics import MetricsTable
    from genprior.priors.conditional import is_conditional

    start = time.perf_counter()
    check_threads(args.threads)
    out = check_output(args.out, args.overwrite)
    prior = _load_optional_prior(args.prior, "CSGM", " or pass --prior DIR")
    if prior is not None and is_conditional(prior):
        raise ValueError(f"--prior {args.prior} is a conditional generator x = f(y, eps); the "
                         "demo's CSGM needs a latent prior x = G(z), such as mnist-vae")
    if prior is not None and tuple(prior.img_shape) != (1, 28, 28):
        raise ValueError(f"--prior {args.prior} makes images of shape {tuple(prior.img_shape)}; "
                         "the demo's MNIST digits are (1, 28, 28)")
    dcgan = affgan = None
    if not args.no_faces:
        dcgan = _load_optional_prior(FACE_PRIOR, "face CSGM")
        affgan = _load_optional_prior(SR_PRIOR, "AffGAN super-resolution")

    x, x_hats = _digits(args, prior, FAST if args.fast else FULL)
    tables, columns, psnr = _score(x, x_hats)
    _print_table(tables)
    figures = {"demo.png": comparison_figure(
        x, x_hats, psnr=psnr, title=f"MNIST test digits, m = {M} Gaussian measurements, "
        f"noise {NOISE_STD}")}
    csvs = {"metrics.csv": MetricsTable.from_metrics(columns)}
    if not args.no_faces:
        faces, face_hats, low = _faces(args, dcgan, affgan, FACES_FAST if args.fast else FACES_FULL)
        face_tables, face_columns, face_psnr = _score(faces, face_hats)
        _print_table(face_tables)
        figures["faces.png"] = comparison_figure(
            faces, {**low, **{FACE_LABELS[k]: v for k, v in face_hats.items()}},
            psnr={FACE_LABELS[k]: v for k, v in face_psnr.items()},
            title=f"held-out CelebA faces: CS from m = {FACE_M} of {faces[0].numel()} "
            f"measurements; {SR_FACTOR}x super-resolution")
        csvs["faces_metrics.csv"] = MetricsTable.from_metrics(face_columns)

    with transactional_output(out, args.overwrite) as tmp:
        for name, fig in figures.items():
            save_figure(tmp / name, fig)
        for name, table in csvs.items():
            table.to_csv(tmp / name)
    out = Path(args.out)
    print(f"\nwrote {', '.join(str(out / n) for n in [*figures, *csvs])} (figures: one column "
          "per method, the truth first, PSNR on every panel) in "
          f"{time.perf_counter() - start:.0f} s")
    return 0
