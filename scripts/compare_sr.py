r"""Compare 4x face super-resolution methods on held-out CelebA faces (ids 8001..9000).

Every method sees the same noise-free measurements :math:`y = A x` with
``A = Downsample((3, 64, 64), 4, kernel="box")`` (16x16 inputs; for the box kernel
:math:`A^\dagger y` is exactly the nearest-neighbour upsampling of ``y``).

Methods:

- ``bicubic``: bicubic upsampling of ``y`` (clamped to [0, 1]);
- ``A_dagger y``: the pseudo-inverse;
- ``celeba-sr4-mse`` (the MSE twin) and ``celeba-sr4-affgan`` (or the ``--models`` given, as
  ``NAME``, ``FOLDER``, ``LABEL=FOLDER`` or ``LABEL=CHECKPOINT.safetensors``, the EMA weights of
  a ``genprior train affgan`` checkpoint): ``--samples`` draws of the range-constrained
  generator per input (fresh noise each, at the model's ``--temperature``, default 1); the
  estimate is the first draw;
- ``CSGM celeba-dcgan`` / ``CSGM celeba-vae``: latent optimisation
  (:func:`genprior.sampling.csgm_restarts`: ``--restarts`` independent restarts, Adam ``--lr``,
  ``--steps`` steps, latent weight ``--lam`` in the CSGM reference's units); the restarts are
  the samples, the estimate is the restart with the lowest measurement error (as ``csgm``'s
  ``select="measurement"``);
- ``... + projection``: every CSGM restart projected onto :math:`\{x : A x = y\}` with
  :func:`genprior.operators.projection.affine_projection` (the estimate: the projected best
  restart).

CSGM is slow, so the main table evaluates *all* methods on the first ``--csgm-n`` faces; the
fast methods are also reported on all ``--n`` faces (second table).

Metrics (per method): PSNR (mean ± 95% half-width) and SSIM of the estimate clamped to [0, 1],
both with ``data_range`` 1; LPIPS (AlexNet) of the clamped estimate when the backbone weights
are in the torch hub cache, else ``n/a`` with the missing file named; the relative measurement
residual :math:`\|A x - y\| / \|y\|` (worst over all images and samples) of the unclamped
outputs, and of the clamped estimate; diversity, the per-pixel standard deviation across the
samples averaged over pixels and images (0 for deterministic methods); the high-frequency
energy ratio :math:`\|x - b(x)\|^2 / \|x_{true} - b(x_{true})\|^2` of the clamped estimate
(``b`` a 3x3 box blur; 1 = the truth's high-frequency energy, averaged over images); seconds per
image and the ratio to AffGAN's (``celeba-sr4-affgan``, else the last of ``--models``); "corr(std,
twin err)", the Pearson correlation over all pixels and images between the per-pixel std across
the samples and the absolute error of the MSE twin's estimate (is the spread where the truth is
ambiguous?; only when ``celeba-sr4-mse`` is among the models). Seconds per image: for the generators, the time to draw all
samples divided by (images x samples), i.e. one output; for CSGM, the whole run with all
restarts divided by the images, i.e. one estimate (projection rows add the projection time).
All timings come from the same process and thread count (``--threads``).

With ``--fid``, also FID (:func:`genprior.metrics.fid`: standard TF-Inception 2048 features)
of the estimates of bicubic and of every SR model (draw 1) against the held-out truth, on all
``--n`` faces (the reference features are computed once and shared, the same computation as
``fid``, and kept in ``--fid-cache`` when given); other rows and the ``--csgm-n`` table get ``n/a`` (CSGM on 64 faces is too few for
FID). With ``--no-csgm`` the CSGM rows (and figure columns) are skipped and only the all-faces
table is written: the fast way to get the FID figures.

Writes ``OUT/NAME.csv`` (one row per method and face set), ``OUT/NAME_table.md`` (the
command line, the settings and the tables, also printed) and ``OUT/NAME.png`` (rows: the first
``--figure-faces`` faces; columns: LR input, bicubic, MSE twin, two AffGAN draws, the per-pixel
std of the AffGAN draws, the CSGM estimates without and with projection, the HR truth).

Usage (what docs/super_resolution.md reports)::

    python scripts/compare_sr.py --data ../shared/data/celeba --n 1000 --csgm-n 64 --threads 1

and its FID table (docs/super_resolution_fid_table.md)::

    python scripts/compare_sr.py --data ../shared/data/celeba --n 1000 --threads 1 \
        --no-csgm --fid --name super_resolution_fid
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import genprior
from genprior._random import make_generator
from genprior.metrics import (
    frechet_distance,
    inception_features,
    load_lpips,
    lpips,
    measurement_residual,
    psnr,
    ssim,
    summary,
)
from genprior.operators.downsample import Downsample
from genprior.operators.projection import affine_projection
from genprior.priors.conditional import ConditionalSR
from genprior.sampling import csgm_restarts
from genprior.training.checkpoint_model import checkpoint_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sr_faces import (
    FIRST_ID,
    LAST_ID,
    SR_MODELS,
    Output,
    bicubic,
    box_operator,
    held_out_faces,
)
from sr_figure import figure

CSGM_PRIORS = ("celeba-dcgan", "celeba-vae")
REFERENCE = "celeba-sr4-affgan"
COLUMNS = ("faces", "method", "n_images", "psnr", "psnr_ci95", "ssim", "lpips", "residual_max",
           "residual_clamped_max", "diversity", "std_err_corr", "hf_ratio", "seconds_per_image",
           "x_affgan_time", "fid")
TWIN = "celeba-sr4-mse"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of aligned CelebA NNNNNN.jpg")
    p.add_argument("--n", type=int, default=1000, help="faces 8001.. for the fast methods")
    p.add_argument("--csgm-n", type=int, default=64,
                   help="first faces on which every method, CSGM included, is compared")
    p.add_argument("--crop", type=int, default=None,
                   help="centre crop before resizing to 64 (default: the largest square, as the "
                   "SR models were trained; 54 is how celeba-dcgan/celeba-vae were trained)")
    p.add_argument("--samples", type=int, default=8, help="draws per input of the SR models")
    p.add_argument("--models", nargs="+", default=list(SR_MODELS),
                   help="SR models: shipped names, folders, LABEL=FOLDER or LABEL=CHECKPOINT "
                   "(a genprior train affgan checkpoint .safetensors: its EMA weights)")
    p.add_argument("--temperature", nargs="+", default=[], metavar="LABEL=T",
                   help="noise scale of an SR model's draws (ConditionalSR.sample's temperature; "
                   "default 1 for every model); the same weights may be listed twice under two "
                   "labels")
    p.add_argument("--restarts", type=int, default=8, help="CSGM restarts (= its samples)")
    p.add_argument("--steps", type=int, default=500, help="CSGM Adam steps")
    p.add_argument("--lr", type=float, default=0.1, help="CSGM Adam learning rate")
    p.add_argument("--lam", type=float, default=1e-5,
                   help="CSGM latent weight (the reference's zprior_weight)")
    p.add_argument("--batch", type=int, default=64, help="faces per batch of the fast methods")
    p.add_argument("--figure-faces", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="docs")
    p.add_argument("--name", default="super_resolution", help="stem of the output files")
    p.add_argument("--fid", action="store_true",
                   help="FID of bicubic and the SR models vs the truth on all --n faces (needs "
                   "the Inception weights; minutes per 1,000 images on a CPU)")
    p.add_argument("--fid-methods", nargs="+", default=None,
                   help="FID only for these methods (labels; default: bicubic and every SR model)")
    p.add_argument("--fid-cache", type=Path, default=None,
                   help="safetensors file keeping the truth's Inception features between runs")
    p.add_argument("--fid-batch", type=int, default=25, help="images per Inception pass")
    p.add_argument("--no-csgm", action="store_true",
                   help="skip the CSGM rows: only the fast methods on all --n faces")
    args = p.parse_args(argv)
    if args.no_csgm:
        args.csgm_n = args.n  # no CSGM table: every method on all --n faces
    if not 1 <= args.csgm_n <= args.n <= LAST_ID - FIRST_ID + 1:
        p.error(f"need 1 <= --csgm-n <= --n <= {LAST_ID - FIRST_ID + 1}")
    for name in ("samples", "restarts", "steps", "batch", "threads", "fid_batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.samples < 2 or args.restarts < 2:
        p.error("--samples and --restarts must be >= 2 (diversity is a std across them)")
    args.models = dict(model_entry(e) for e in args.models)
    temperatures = {}
    for entry in args.temperature:
        label, sep, value = entry.partition("=")
        try:
            t = float(value)
        except ValueError:
            t = math.nan
        if not sep or label not in args.models or not (math.isfinite(t) and t >= 0):
            p.error(f"--temperature {entry}: need LABEL=T with LABEL one of --models "
                    f"({', '.join(args.models)}) and T finite and >= 0")
        temperatures[label] = t
    args.temperature = temperatures
    return args


def model_entry(entry: str) -> tuple[str, str]:
    """``(label, name or folder)`` of a ``--models`` entry: ``LABEL=FOLDER``, else the entry is
    both (a shipped name, or a folder labelled by its path)."""
    label, sep, where = entry.partition("=")
    return (label, where) if sep else (entry, entry)


def load_sr_model(where: str) -> nn.Module:
    """A shipped name or model folder (:func:`genprior.load_prior`), or the EMA weights of a
    ``genprior train affgan`` checkpoint (a ``.safetensors`` file)."""
    if not where.endswith(".safetensors"):
        return genprior.load_prior(where)
    try:
        model, _ = checkpoint_model(where)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    if not isinstance(model, ConditionalSR):
        raise SystemExit(f"{where} is not a checkpoint of genprior train affgan")
    return model


def reference_label(models: dict[str, object]) -> str:
    """The SR model whose time is the unit of "× AffGAN time" and whose draws the figure
    shows: ``celeba-sr4-affgan`` when present, else the last of ``--models``."""
    return REFERENCE if REFERENCE in models else list(models)[-1]


def std_error_correlation(samples: Tensor, error: Tensor) -> float:
    """Pearson correlation over all entries between the per-pixel std across ``samples`` and
    ``error`` (e.g. the absolute error of the MSE twin).

    Shape:
        - samples: ``(S, B, C, H, W)``, ``S >= 2``
        - error: ``(B, C, H, W)``
    """
    a = samples.double().std(0).flatten()
    b = error.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def hf_energy(x: Tensor) -> Tensor:
    """High-frequency energy :math:`\\|x - b(x)\\|^2` per image, ``b`` a 3x3 box blur.

    Args:
        x: images.

    Returns:
        One value per image (0 for a constant image).

    Shape:
        - x: ``(B, C, H, W)``
        - output: ``(B,)``
    """
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (x - blur).pow(2).flatten(1).sum(1)


def residual_max(samples: Tensor, y: Tensor, A: Downsample) -> float:
    """Largest relative residual :math:`\\|A x - y\\| / \\|y\\|` over all samples and images.

    Shape:
        - samples: ``(S, B, C, H, W)``; y: ``(B, *meas_shape)``
    """
    return max(measurement_residual(s, y, A).max().item() for s in samples)


def fast_methods(y: Tensor, A: Downsample, models: dict[str, nn.Module], args: argparse.Namespace
                 ) -> dict[str, Output]:
    """Bicubic, :math:`A^\\dagger y` and the SR models on all ``y``, in batches of ``--batch``.

    Each SR model draws its noise from its own generator seeded with ``--seed`` (so the MSE twin
    and AffGAN get the same noise inputs).
    """
    gens = {name: make_generator(args.seed) for name in models}
    fns: dict[str, Callable[[Tensor], Tensor]] = {
        "bicubic": lambda yb: bicubic(yb)[None],
        "A_dagger y": lambda yb: A.A_dagger(yb)[None],
    }
    for name, model in models.items():
        fns[name] = partial(model.sample, n=args.samples, generator=gens[name],
                            temperature=args.temperature.get(name, 1.0))
    with torch.no_grad():  # untimed warm-up (first-call allocations), its own noise
        for model in models.values():
            model.sample(y[:args.batch], args.samples, generator=make_generator(args.seed + 1))
    out = {}
    for name, fn in fns.items():
        parts, seconds = [], 0.0
        for yb in y.split(args.batch):
            t0 = time.perf_counter()
            with torch.no_grad():
                parts.append(fn(yb))
            seconds += time.perf_counter() - t0
        samples = torch.cat(parts, dim=1)
        out[name] = Output(samples, samples[0], seconds / (samples.shape[0] * samples.shape[1]))
    return out


def csgm_methods(y: Tensor, A: Downsample, args: argparse.Namespace) -> dict[str, Output]:
    """CSGM with each face prior (all images x restarts in one batch), and its projection."""
    out = {}
    b = y.shape[0]
    for prior_name in CSGM_PRIORS:
        prior = genprior.load_prior(prior_name)
        t0 = time.perf_counter()
        res = csgm_restarts(y, A, prior, n=args.restarts, generator=make_generator(args.seed),
                            steps=args.steps, lr=args.lr, lam=args.lam)
        samples = res.samples.detach()
        err = (A.A(samples.flatten(0, 1)) - y.repeat(args.restarts, 1, 1, 1)).pow(2)
        best = err.flatten(1).sum(1).view(args.restarts, b).argmin(0)
        x_hat = samples[best, torch.arange(b)]
        seconds = time.perf_counter() - t0
        out[f"CSGM {prior_name}"] = Output(samples, x_hat, seconds / b)
        t0 = time.perf_counter()
        with torch.no_grad():
            projected = torch.stack([affine_projection(s, y, A) for s in samples])
        seconds += time.perf_counter() - t0
        out[f"CSGM {prior_name} + projection"] = Output(projected, projected[best, torch.arange(b)],
                                                        seconds / b)
        print(f"CSGM {prior_name}: {seconds:.0f} s for {b} faces x {args.restarts} restarts",
              flush=True)
    return out


def lpips_model() -> tuple[nn.Module | None, str]:
    """The AlexNet LPIPS model, or ``None`` and why it is unavailable."""
    try:
        return load_lpips("alex"), ""
    except (FileNotFoundError, ImportError) as e:
        return None, str(e)


def evaluate(faces: str, name: str, out: Output, x: Tensor, y: Tensor, A: Downsample,
             lp: nn.Module | None, twin_error: Tensor | None) -> dict[str, object]:
    """One CSV row of metrics (see the module docstring) for ``out`` against the truth ``x``
    (``twin_error``: the MSE twin's absolute error, for the std correlation)."""
    xc = out.x_hat.clamp(0, 1)
    s = summary(psnr(xc, x, data_range=1.0))
    diversity = out.samples.std(0).mean().item() if out.samples.shape[0] > 1 else 0.0
    return {
        "faces": faces, "method": name, "n_images": x.shape[0], "psnr": s.mean,
        "psnr_ci95": s.ci95, "ssim": ssim(xc, x, data_range=1.0).mean().item(),
        "lpips": lpips(xc, x, model=lp).mean().item() if lp is not None else math.nan,
        "residual_max": residual_max(out.samples, y, A),
        "residual_clamped_max": measurement_residual(xc, y, A).max().item(),
        "diversity": diversity,
        "std_err_corr": (std_error_correlation(out.samples, twin_error)
                         if diversity > 0 and twin_error is not None else math.nan),
        "hf_ratio": (hf_energy(xc) / hf_energy(x)).mean().item(),
        "seconds_per_image": out.seconds_per_image, "x_affgan_time": math.nan, "fid": math.nan,
    }


def markdown_table(rows: list[dict[str, object]], *, fid: bool = False) -> str:
    """The rows of one face set as a markdown table (with an FID column when ``fid``)."""
    corr = any(not math.isnan(r.get("std_err_corr", math.nan)) for r in rows)
    header = ("| method | PSNR (± 95%) | SSIM | LPIPS | ‖Ax−y‖/‖y‖ (max) | same, clamped | "
              "diversity (std) |" + (" corr(std, twin err) |" if corr else "") +
              " HF ratio | s/image | × AffGAN time |" + (" FID |" if fid else ""))
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if corr else "") +
             ("---|" if fid else "")]
    for r in rows:
        lp = "n/a" if math.isnan(r["lpips"]) else f"{r['lpips']:.3f}"
        fd = "n/a" if math.isnan(r["fid"]) else f"{r['fid']:.1f}"
        cr = "n/a" if math.isnan(r.get("std_err_corr", math.nan)) else f"{r['std_err_corr']:.2f}"
        lines.append(
            f"| {r['method']} | {r['psnr']:.2f} ± {r['psnr_ci95']:.2f} | {r['ssim']:.3f} | {lp} | "
            f"{r['residual_max']:.1e} | {r['residual_clamped_max']:.1e} | {r['diversity']:.4f} |"
            + (f" {cr} |" if corr else "") +
            f" {r['hf_ratio']:.2f} | {r['seconds_per_image']:.2e} | {r['x_affgan_time']:.3g} |"
            + (f" {fd} |" if fid else ""))
    return "\n".join(lines)


def truth_features(x: Tensor, batch_size: int, cache: Path | None) -> Tensor:
    """Inception features of the truth ``x``, read from / written to ``cache`` when given (the
    cache is used only when it holds the features of the very same images)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    key = f"{tuple(x.shape)} {float(x.double().sum()):.12e}"
    if cache is not None and cache.is_file():
        with safe_open(str(cache), framework="pt") as f:
            if (f.metadata() or {}).get("images") == key:
                return load_file(str(cache))["features"]
    real = inception_features(x, batch_size=batch_size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": real}, str(cache), metadata={"images": key})
    return real


def add_fid(rows: list[dict[str, object]], outs: dict[str, Output], x: Tensor,
            batch_size: int, methods: list[str], cache: Path | None = None) -> None:
    """Set ``row["fid"]`` for ``methods``: FID of the clamped estimate vs ``x``.

    The truth's Inception features are computed once (:func:`truth_features`); each FID is then
    ``frechet_distance(features(x_hat), features(x))``, what :func:`genprior.metrics.fid` does.
    """
    real = truth_features(x, batch_size, cache)
    for r in rows:
        if r["method"] in methods:
            t0 = time.perf_counter()
            fake = inception_features(outs[r["method"]].x_hat.clamp(0, 1), batch_size=batch_size)
            r["fid"] = frechet_distance(fake, real)
            print(f"FID {r['method']}: {r['fid']:.2f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = held_out_faces(args.data, args.n, args.crop)
    A = box_operator()
    y = A.A(x)
    models = {label: load_sr_model(where) for label, where in args.models.items()}
    reference = reference_label(models)
    fid_methods = args.fid_methods or ["bicubic", *models]
    unknown = sorted(set(fid_methods) - {"bicubic", "A_dagger y", *models})
    if unknown:
        raise SystemExit(f"--fid-methods {unknown} are not among the methods of this run")
    lp, lp_missing = lpips_model()
    fast = fast_methods(y, A, models, args)
    k = args.csgm_n
    sub = {name: Output(o.samples[:, :k], o.x_hat[:k], o.seconds_per_image)
           for name, o in fast.items()}
    if not args.no_csgm:
        sub.update(csgm_methods(y[:k], A, args))
    last = FIRST_ID + k - 1
    face_sets = [(f"{FIRST_ID}..{last}", sub, x[:k], y[:k])]
    if args.n > k:
        face_sets.append((f"{FIRST_ID}..{FIRST_ID + args.n - 1}", fast, x, y))
    rows: list[dict[str, object]] = []
    tables = []
    for faces, outs, xs, ys in face_sets:
        twin_error = (outs[TWIN].x_hat - xs).abs() if TWIN in outs else None
        set_rows = [evaluate(faces, name, o, xs, ys, A, lp, twin_error)
                    for name, o in outs.items()]
        ref = next(r["seconds_per_image"] for r in set_rows if r["method"] == reference)
        for r in set_rows:
            r["x_affgan_time"] = r["seconds_per_image"] / ref
        with_fid = args.fid and xs.shape[0] == args.n
        if with_fid:
            add_fid(set_rows, outs, xs, args.fid_batch, fid_methods, args.fid_cache)
        rows += set_rows
        tables.append(f"Faces {faces} ({xs.shape[0]} images):\n\n"
                      f"{markdown_table(set_rows, fid=with_fid)}")
    with open(out_dir / f"{args.name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    figure(out_dir / f"{args.name}.png", x[:args.figure_faces], y[:args.figure_faces], sub,
           reference, twin=TWIN, csgm_priors=CSGM_PRIORS)
    crop = "largest centred square" if args.crop is None else f"centre crop {args.crop}"
    command = " ".join(["python scripts/compare_sr.py", *(sys.argv[1:] if argv is None else argv)])
    temperatures = "".join(f"{k} {v:g}, " for k, v in args.temperature.items())
    temperatures = f"; noise temperature {temperatures}others 1" if temperatures else ""
    csgm = ("no CSGM rows (--no-csgm)" if args.no_csgm else
            f"CSGM: {args.restarts} restarts x {args.steps} Adam steps, lr {args.lr}, lam {args.lam} "
            "(estimate: lowest measurement error)")
    settings = (f"CelebA held-out faces from id {FIRST_ID} ({crop}, resized to 64x64), "
                "`Downsample((3, 64, 64), 4, kernel='box')`, no noise; "
                f"SR models: {args.samples} draws (estimate: draw 1{temperatures}); "
                f"{csgm}; {args.threads} CPU thread(s), seed {args.seed}.")
    if args.fid:
        settings += (f" FID: {', '.join(fid_methods)} (estimate, clamped) vs the {args.n} "
                     "held-out truths, standard TF-Inception 2048 features "
                     "(genprior.metrics.fid); other rows n/a.")
    lpips_note = "" if lp is not None else f"LPIPS n/a: {lp_missing}"
    text = "\n".join([f"Command: `{command}`", "", settings, "", lpips_note, "",
                      "\n\n".join(tables), ""])
    (out_dir / f"{args.name}_table.md").write_text(text)
    print(text)
    print(f"wrote {out_dir / args.name}.csv, _table.md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
