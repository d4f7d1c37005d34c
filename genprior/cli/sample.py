r"""Draw many plausible reconstructions per measurement and map their uncertainty.

Writes ``DIR/figure.png`` (a labelled figure of the first 8 images, one per row; columns: the
truth when the measurements file holds ``x``, the mean and 3 samples, each titled with its PSNR,
and the per-pixel std map with a colour bar), ``DIR/grid.png`` (the same images as a bare grid:
one column per image; rows: up to 8 samples, the mean, the std map scaled to its maximum, and
the truth) and ``DIR/samples.npz`` (``samples (S, B, C, H, W)``, ``mean``, ``std``, ``ess``,
``acceptance_rate``, ``step_size``; with ``--conformal`` also the calibrated intervals
``lower``, ``upper (B, C, H, W)``).

``--posterior auto`` (default) is ``misfit`` for ``--method mala``/``ula`` when a misfit file is
found (``--misfit`` or the prior's own folder: the shipped ``mnist-vae`` has one), else
``latent``: the best-calibrated sampler measured (docs/sampling.md, "Calibrated intervals").
``--posterior latent`` samples the latent posterior :math:`p(z \mid y)`
(``genprior.sampling.sample``), every sample on the generator's range. ``--posterior misfit``
(``--method mala`` or ``ula``) samples the misfit model :math:`x = G(z) + d`,
:math:`d \sim \mathcal N(0, \Sigma_d)` (``genprior.sampling.misfit_posterior``), with
:math:`\Sigma_d` read from ``--misfit`` (a ``misfit.safetensors`` or its folder) or, by default,
from the prior's own folder (``pretrained/<name>/`` for a shipped name); fit one with
``scripts/fit_misfit.py``. ``--conformal FILE`` (a ``ConformalScale`` JSON, e.g. from
``scripts/calibration_study.py``) scales the intervals; it is refused when the setting it
records (prior, operator, noise level, likelihood sigma, posterior, method) is not this run's.

Inputs are read and checked before any sampling: the measurements, the prior (``--method eps``
needs a conditional generator, the other methods a latent prior, which is fitted to the
operator's image size when it has ``resized``, e.g. a SpatialVAE, and refused when it has a fixed
size of another image size), ``--operator`` (refused when the measurements' operator record names
another one), the device and DIR. The files appear
together or not at all; a non-empty DIR is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
import torch

from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior._serialization import atomic_write_bytes
from genprior.cli._inputs import (
    check_prior_kind,
    fit_prior_arg,
    load_prior_arg,
    operator_record,
    parse_device,
    read_measurements,
    reading,
    resolve_operator,
)
from genprior.cli._output import check_output, transactional_output
from genprior.sampling import (
    METHODS,
    MISFIT_NAME,
    ConformalScale,
    MisfitCovariance,
    SampleResult,
    marginal_covariance,
    misfit_posterior,
    sample,
)

HELP = "sample plausible reconstructions (Langevin, CSGM restarts, generator noise)"

_MAX_SAMPLE_ROWS = 8
#: the values of ``--posterior``
POSTERIORS = ("auto", "latent", "misfit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prior", required=True, help="shipped prior name or folder")
    parser.add_argument("--measurements", required=True, help="npz with y (and optionally x)")
    parser.add_argument("--operator", default=None,
                        help="operator file from genprior measure, or a spec checked against "
                        "the measurements' operator record (not needed for --method eps)")
    parser.add_argument("-n", type=int, default=16, help="samples per image")
    parser.add_argument("--method", choices=METHODS, default="mala")
    parser.add_argument("--sigma", type=float, default=None,
                        help="likelihood noise std (default: the operator's noise_std)")
    parser.add_argument("--chains", type=int, default=None,
                        help="Langevin chains per image (default gcd(n, 4))")
    parser.add_argument("--burn-in", type=int, default=500)
    parser.add_argument("--thin", type=int, default=1)
    parser.add_argument("--step-size", type=float, default=1e-5,
                        help="Langevin step (MALA: initial value, adapted during burn-in)")
    parser.add_argument("--init", choices=("random", "csgm"), default="csgm",
                        help="start the chains at the CSGM solution (default) or at random latents")
    parser.add_argument("--precondition", choices=("none", "laplace"), default="laplace",
                        help="Langevin in Laplace-whitened latents at the initial point "
                        "(use with --init csgm)")
    parser.add_argument("--anneal", type=float, nargs="+", default=None, metavar="A",
                        help="decreasing extra noise levels annealed through during burn-in "
                        "(Jalal et al. 2021); with --init random --precondition none, chains "
                        "settle in different modes, e.g. --anneal 30 10 3 1 0.3")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="--method eps: noise scale of the generator's draws (1: as trained; "
                        "larger spreads them, 0 gives one output)")
    parser.add_argument("--steps", type=int, default=500, help="CSGM (Adam) steps (restarts, init)")
    parser.add_argument("--lr", type=float, default=0.05, help="CSGM Adam learning rate")
    parser.add_argument("--lam", type=float, default=0.0, help="CSGM latent penalty")
    parser.add_argument("--posterior", choices=POSTERIORS, default="auto",
                        help="'latent': samples on the generator's range; 'misfit': the misfit "
                        "model x = G(z) + d, d ~ N(0, Sigma_d) (--method mala/ula); 'auto' "
                        "(default): misfit when a misfit file is found, else latent")
    parser.add_argument("--misfit", default=None, metavar="PATH",
                        help="misfit.safetensors or its folder for --posterior misfit "
                        "(default: the prior's folder)")
    parser.add_argument("--conformal", default=None, metavar="FILE",
                        help="ConformalScale JSON: write its calibrated intervals (lower, upper) "
                        "into samples.npz; refused for another prior/operator/noise/sampler")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")


def _options(args: argparse.Namespace) -> dict:
    csgm_options = {"steps": args.steps, "lr": args.lr, "lam": args.lam, "optimizer": "adam"}
    if args.method in ("ula", "mala"):
        opts = {"sigma": args.sigma, "burn_in": args.burn_in, "thin": args.thin,
                "step_size": args.step_size, "init": args.init, "anneal": args.anneal,
                "precondition": None if args.precondition == "none" else "laplace"}
        if args.init == "csgm":
            opts["csgm_options"] = {**csgm_options, "restarts": 1}
        if args.chains is not None:
            opts["n_chains"] = args.chains
        return opts
    if args.method == "eps":
        return {"temperature": args.temperature}
    return csgm_options if args.method == "restarts" else {}


def prior_folder(value: str) -> Path | None:
    """The folder ``--prior`` was loaded from, resolved as ``genprior.load_prior`` resolves
    it (a folder, else a shipped name under ``pretrained_dir()``); ``None`` for a hub name."""
    from genprior.priors import pretrained_dir
    from genprior.priors.hub import HUB_PREFIX

    if value.startswith(HUB_PREFIX):
        return None
    path = Path(value)
    return path if path.is_dir() else pretrained_dir() / value


def has_misfit(prior: str | None) -> bool:
    """Whether the prior's own folder holds a misfit file (``--posterior auto``)."""
    folder = prior_folder(prior) if prior is not None else None
    return folder is not None and MisfitCovariance.exists(folder)


def load_misfit(args: argparse.Namespace, device: torch.device) -> MisfitCovariance:
    """The misfit of ``--misfit``, else of the prior's folder.

    Raises:
        FileNotFoundError: naming where it looked.
        ValueError: not a misfit file.
    """
    if args.misfit is not None:
        path = Path(args.misfit)
        where = path if path.is_file() else path / MISFIT_NAME
        if not where.is_file():
            raise FileNotFoundError(f"--misfit {args.misfit}: no misfit file {where}")
        option, value = "--misfit", args.misfit
    else:
        folder = prior_folder(args.prior)
        if folder is None or not MisfitCovariance.exists(folder):
            looked = "a hub prior's folder is not searched" if folder is None else \
                f"no {folder / MISFIT_NAME}"
            raise FileNotFoundError(
                f"--posterior misfit needs the prior's misfit covariance: {looked}; fit one "
                f"with scripts/fit_misfit.py or pass --misfit PATH")
        where, option, value = folder, "--prior", args.prior
    with reading(option, value):
        return MisfitCovariance.from_pretrained(where, device=device)


def load_conformal(path: str, args: argparse.Namespace, A, sigma: float | None
                   ) -> ConformalScale:
    """The ``--conformal`` scale, refused when its recorded setting is not this run's.

    Raises:
        FileNotFoundError / ValueError: unreadable, or another setting (naming what differs).
    """
    with reading("--conformal", path):
        scale = ConformalScale.load(path)
    setting = scale.setting
    mine: dict = {"posterior": args.posterior, "method": args.method}
    diffs = []
    if "prior" in setting:
        folder = prior_folder(args.prior)
        names = {args.prior, Path(args.prior).name} | ({folder.name} if folder else set())
        if str(setting["prior"]) not in names:
            diffs.append(f"prior {setting['prior']} != {args.prior}")
    for key, value in mine.items():
        if key in setting and setting[key] != value:
            diffs.append(f"{key} {setting[key]} != {value}")
    if A is not None:
        noise = float(A.noise_std)
        run_sigma = noise if sigma is None else float(sigma)
        for key, value in (("noise_std", noise), ("sigma", run_sigma)):
            if key in setting and not math.isclose(float(setting[key]), value, rel_tol=1e-6):
                diffs.append(f"{key} {setting[key]} != {value}")
        if isinstance(setting.get("operator"), dict):
            diffs += _operator_diffs(setting["operator"], operator_record(A))
    if diffs:
        raise ValueError(f"--conformal {path} was fitted for another setting: "
                         f"{'; '.join(diffs)} (recorded != this run)")
    return scale


def _operator_diffs(recorded: dict, mine: dict) -> list[str]:
    if "type" in recorded and recorded["type"] != mine["type"]:
        return [f"operator {recorded['type']} != {mine['type']}"]
    theirs = recorded.get("config", {})
    diffs = [f"operator {key} {theirs.get(key)} != {mine['config'].get(key)}"
             for key in sorted(set(theirs) | set(mine["config"]))
             if "config" in recorded and theirs.get(key) != mine["config"].get(key)]
    if "sha256" in recorded and recorded["sha256"] != mine["sha256"]:
        diffs.append("the operator's matrix/mask differs")
    return diffs


def _misfit_run(y, A, prior, misfit: MisfitCovariance, args: argparse.Namespace,
                covariance=None) -> SampleResult:
    """``--posterior misfit``: ``misfit_posterior`` with the Langevin options of the run
    (and the marginal covariance when it is already factorised)."""
    opts = _options(args)
    n_chains = int(opts.pop("n_chains", math.gcd(args.n, 4)))
    if n_chains < 1 or args.n % n_chains:
        raise ValueError(f"n = {args.n} must be a multiple of n_chains = {n_chains}")
    return misfit_posterior(y, A, prior, misfit, sigma=opts.pop("sigma"),
                            n_samples=args.n // n_chains, n_chains=n_chains,
                            method=args.method, covariance=covariance,
                            generator=make_generator(args.seed), **opts)


def grid(res: SampleResult, x: torch.Tensor | None) -> torch.Tensor:
    """Rows of the PNG grid: samples, mean, std map (scaled to its max), truth.

    Shape:
        - output: ``(rows * B, C, H, W)`` in [0, 1]
    """
    std = res.std / res.std.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    rows = [*res.samples[:_MAX_SAMPLE_ROWS], res.mean, std]
    if x is not None:
        rows.append(x.to(res.mean))
    return torch.cat(rows).clamp(0, 1)


def run(args: argparse.Namespace) -> int:
    from genprior.cli._figures import samples_figure, save_figure

    if args.temperature != 1.0 and args.method != "eps":
        raise ValueError(f"--temperature applies to --method eps only, not {args.method}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(f"--temperature must be finite and >= 0, got {args.temperature}")
    device = parse_device(args.device)
    check_output(args.out, args.overwrite)
    meas = read_measurements(args.measurements)
    prior = load_prior_arg(args.prior, device)
    check_prior_kind(prior, args.method, "sample", args.prior)
    y = meas.y.to(device)
    if args.method == "eps":
        A = None
    else:
        if args.operator is None:
            raise ValueError(f"--operator is required for --method {args.method}")
        A = resolve_operator(args.operator, meas, args.measurements, prior=prior, device=device)
        prior = fit_prior_arg(prior, A, args.prior)
        y = y.to(next((b.dtype for b in A.buffers() if b.is_floating_point()), y.dtype))
        try:
            A.check_y(y)
        except ValueError as e:
            raise ValueError(f"--measurements {args.measurements} do not fit --operator "
                             f"{args.operator}: {e}") from e
    misfit = scale = covariance = None
    auto = args.posterior == "auto"
    if auto:
        args.posterior = "misfit" if args.method in ("mala", "ula") and (
            args.misfit is not None or has_misfit(args.prior)) else "latent"
    if args.misfit is not None and args.posterior != "misfit":
        raise ValueError("--misfit is only used with --posterior misfit")
    if args.conformal is not None and args.n < 2:
        raise ValueError(f"--conformal needs at least 2 samples per image (-n), got {args.n}")
    if args.posterior == "misfit":
        if args.method not in ("mala", "ula"):
            raise ValueError(f"--posterior misfit samples with --method mala or ula, "
                             f"not {args.method}")
        misfit = load_misfit(args, device)
        try:
            misfit.check_img_size(tuple(A.img_size))
        except ValueError as e:
            raise ValueError(f"--posterior misfit: {e}") from e
        if auto:
            try:  # factorised once here, reused by every chain and step
                covariance = marginal_covariance(A, misfit, sigma=_options(args)["sigma"])
            except ValueError as e:
                print(f"--posterior auto: latent, since the misfit covariance cannot be "
                      f"factorised here ({e})")
                args.posterior, misfit = "latent", None
    if args.conformal is not None:
        scale = load_conformal(args.conformal, args, A, args.sigma)
    if misfit is None:
        res = sample(args.method, y, A, prior, n=args.n,
                     generator=make_generator(args.seed), **_options(args))
    else:
        res = _misfit_run(y, A, prior, misfit, args, covariance)
    arrays = {k: getattr(res, k).detach().cpu().numpy() for k in
              ("samples", "mean", "std", "ess", "acceptance_rate", "step_size")}
    if scale is not None:
        lower, upper = scale.apply(res.samples)
        arrays |= {"lower": lower.detach().cpu().numpy(), "upper": upper.detach().cpu().numpy()}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    what = f"--method {args.method}" + (" --posterior misfit" if misfit is not None else "")
    figure = samples_figure(res.samples, res.mean, res.std, x=meas.x,
                            title=f"genprior sample {what}: {res.n_samples} "
                            f"samples per image, {Path(args.measurements).name}")
    with transactional_output(args.out, args.overwrite) as tmp:
        save_figure(tmp / "figure.png", figure)
        save_grid_png(tmp / "grid.png", grid(res, meas.x), nrow=y.shape[0])
        atomic_write_bytes(tmp / "samples.npz", buf.getvalue())
    out = Path(args.out)
    print(f"{args.method}: {res.n_samples} samples x {y.shape[0]} images, "
          f"ESS {res.ess.min().item():.1f}..{res.ess.max().item():.1f}, "
          f"mean std {res.std.mean().item():.4f} -> {out}")
    if misfit is not None:
        kind = "per-pixel" if misfit.per_pixel else "scalar"
        print(f"posterior misfit: {kind} Sigma_d, mean variance "
              f"{misfit.variance.mean().item():.4g}")
    if scale is not None:
        print(f"conformal: {scale.level:.0%} intervals scaled by {scale.factor:.3f} "
              f"(lower, upper in samples.npz)")
    return 0
