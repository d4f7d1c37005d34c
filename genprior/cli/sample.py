"""Draw many plausible reconstructions per measurement and map their uncertainty.

Writes ``DIR/figure.png`` (a labelled figure of the first 8 images, one per row; columns: the
truth when the measurements file holds ``x``, the mean and 3 samples, each titled with its PSNR,
and the per-pixel std map with a colour bar), ``DIR/grid.png`` (the same images as a bare grid:
one column per image; rows: up to 8 samples, the mean, the std map scaled to its maximum, and
the truth) and ``DIR/samples.npz`` (``samples (S, B, C, H, W)``, ``mean``, ``std``, ``ess``,
``acceptance_rate``, ``step_size``).

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
    parse_device,
    read_measurements,
    resolve_operator,
)
from genprior.cli._output import check_output, transactional_output
from genprior.sampling import METHODS, SampleResult, sample

HELP = "sample plausible reconstructions (Langevin, CSGM restarts, generator noise)"

_MAX_SAMPLE_ROWS = 8


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
    parser.add_argument("--steps", type=int, default=500, help="CSGM steps (restarts, init)")
    parser.add_argument("--lr", type=float, default=0.05, help="CSGM learning rate")
    parser.add_argument("--lam", type=float, default=0.0, help="CSGM latent penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")


def _options(args: argparse.Namespace) -> dict:
    csgm_options = {"steps": args.steps, "lr": args.lr, "lam": args.lam}
    if args.method in ("ula", "mala"):
        opts = {"sigma": args.sigma, "burn_in": args.burn_in, "thin": args.thin,
                "step_size": args.step_size, "init": args.init, "anneal": args.anneal,
                "precondition": None if args.precondition == "none" else "laplace"}
        if args.init == "csgm":
            opts["csgm_options"] = {**csgm_options, "restarts": 1}
        if args.chains is not None:
            opts["n_chains"] = args.chains
        return opts
    return csgm_options if args.method == "restarts" else {}


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
    res = sample(args.method, y, A, prior, n=args.n,
                 generator=make_generator(args.seed), **_options(args))
    arrays = {k: getattr(res, k).detach().cpu().numpy() for k in
              ("samples", "mean", "std", "ess", "acceptance_rate", "step_size")}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    figure = samples_figure(res.samples, res.mean, res.std, x=meas.x,
                            title=f"genprior sample --method {args.method}: {res.n_samples} "
                            f"samples per image, {Path(args.measurements).name}")
    with transactional_output(args.out, args.overwrite) as tmp:
        save_figure(tmp / "figure.png", figure)
        save_grid_png(tmp / "grid.png", grid(res, meas.x), nrow=y.shape[0])
        atomic_write_bytes(tmp / "samples.npz", buf.getvalue())
    out = Path(args.out)
    print(f"{args.method}: {res.n_samples} samples x {y.shape[0]} images, "
          f"ESS {res.ess.min().item():.1f}..{res.ess.max().item():.1f}, "
          f"mean std {res.std.mean().item():.4f} -> {out}")
    return 0
