"""Reconstruct images from measurements written by ``genprior measure``.

``genprior reconstruct --prior mnist-vae --method csgm --measurements DIR/y.npz
--operator DIR/operator.safetensors --out OUT`` writes to OUT:

- ``x_hat.npz``: the reconstructions (key ``x``, clamped to [0, 1]);
- ``grid.png``: one row per image set, top to bottom: the ground truth (when ``y.npz`` holds
  ``x``), the pseudo-inverse ``A_dagger(y)`` (clamped) and ``x_hat`` (first 16 images);
- ``metrics.csv``: per image ``mse_per_pixel``, ``psnr``, ``ssim`` (when the truth is known),
  ``residual`` (``||A x_hat - y|| / ||y||``) and ``measurement_error`` (``||A x_hat - y||^2 / m``),
  then rows ``mean`` and ``ci95``.

Units are those of the CSGM reference code: ``--lam`` is its ``zprior_weight``, ``--alpha`` its
Lasso ``lmbd`` (sklearn's ``alpha``) or Sparse-Gen's ``sparse_gen_weight``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

HELP = ("reconstruct images from measurements (CSGM, Sparse-Gen, Lasso, pinv, bicubic, "
        "range-constrained conditional generator)")

_GRID_IMAGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from genprior.reconstruct.methods import METHODS

    parser.add_argument("--method", default=None, choices=METHODS,
                        help="default: conditional for a conditional prior (celeba-sr4-affgan), "
                        "else csgm")
    parser.add_argument("--prior", default=None, metavar="NAME_OR_DIR",
                        help="shipped prior name (e.g. mnist-vae) or folder; needed by csgm and "
                        "sparse-gen")
    parser.add_argument("--measurements", required=True, metavar="Y_NPZ",
                        help="npz file with key y (and optionally x), e.g. from genprior measure")
    parser.add_argument("--operator", required=True, metavar="OP_FILE_OR_SPEC",
                        help="operator file written by genprior measure, or a spec such as "
                        "downsample:4 (image size taken from the prior)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--lam", type=float, default=0.0,
                        help="latent weight lambda (the CSGM reference's zprior_weight)")
    parser.add_argument("--alpha", type=float, default=0.1,
                        help="l1 weight: Lasso alpha (reference lmbd) or Sparse-Gen lam_nu")
    parser.add_argument("--basis", default="pixel", choices=("pixel", "dct", "wavelet"),
                        help="Sparse-Gen sparsity basis")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--select", default="measurement", choices=("measurement", "loss"),
                        help="keep the restart with the lowest measurement error or objective")
    parser.add_argument("--early-stop-tol", type=float, default=None,
                        help="relative tolerance of per-restart early stopping (default: off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random restarts")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")


def reconstruction_grid(x_hat, y, A, x=None):
    """Rows ``[x,] clamp(A_dagger y), x_hat`` of the first 16 images, and the row length."""
    k = min(_GRID_IMAGES, x_hat.shape[0])
    with torch.no_grad():
        rows = [] if x is None else [x[:k]]
        rows += [A.A_dagger(y[:k]).clamp(0, 1), x_hat[:k]]
    return torch.cat([r.detach().to("cpu", torch.float32) for r in rows]), k


def run(args: argparse.Namespace) -> int:
    from genprior._io import load_measurements, save_grid_png, save_images_npz
    from genprior._random import make_generator
    from genprior.metrics import MetricsTable, image_metrics, measurement_residual
    from genprior.operators import load_operator, make_operator
    from genprior.priors import load_prior
    from genprior.priors.conditional import is_conditional
    from genprior.reconstruct.methods import PRIOR_METHODS, reconstruct

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    meas = load_measurements(args.measurements)
    prior = None if args.prior is None else load_prior(args.prior, device=device)
    if args.method is None:
        args.method = "conditional" if is_conditional(prior) else "csgm"
    if args.method in PRIOR_METHODS and prior is None:
        raise ValueError(f"--method {args.method} needs --prior NAME_OR_DIR")
    if Path(args.operator).is_file():
        A = load_operator(args.operator, device=device)
    elif ":" in args.operator and prior is not None:
        A = make_operator(args.operator, prior.img_shape).to(device)
    else:
        raise FileNotFoundError(f"--operator {args.operator!r} is neither an operator file nor "
                                "a spec (a spec also needs --prior for the image size)")
    dtype = next((b.dtype for b in A.buffers() if b.is_floating_point()), torch.float32)
    y = meas.y.to(device=device, dtype=dtype)
    result = reconstruct(
        args.method, y, A, prior=prior, lam=args.lam, alpha=args.alpha, basis=args.basis,
        restarts=args.restarts, steps=args.steps, lr=args.lr, select=args.select,
        early_stop_tol=args.early_stop_tol, generator=make_generator(args.seed, device),
    )
    x_hat = result.x_hat.detach().clamp(0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_images_npz(out / "x_hat.npz", x_hat.cpu())
    x = None if meas.x is None else meas.x.to(device)
    grid, nrow = reconstruction_grid(x_hat, y, A, x)
    save_grid_png(out / "grid.png", grid, nrow=nrow)
    if x is not None:
        metrics = image_metrics(x_hat, x, data_range=1.0, y=y, A=A)
    else:
        metrics = {"residual": measurement_residual(x_hat, y, A)}
    metrics["measurement_error"] = result.measurement_error
    table = MetricsTable.from_metrics(metrics)
    table.to_csv(out / "metrics.csv")
    print(f"{args.method}: {x_hat.shape[0]} images {tuple(x_hat.shape[1:])}, {A!r}")
    print(table)
    print(f"wrote {out / 'x_hat.npz'}, {out / 'grid.png'}, {out / 'metrics.csv'}")
    return 0
