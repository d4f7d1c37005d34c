"""Score reconstructions: ``genprior evaluate --truth DIR/y.npz --recon XHAT.npz --out t.csv``.

Writes one row per image (``mse_per_pixel``, ``psnr``, ``ssim``; ``residual`` = ||A x_hat - y|| /
||y|| when ``--measurements`` and ``--operator`` are given; ``lpips`` with ``--lpips``) and a
summary (mean and 95% half-width 1.96 std / sqrt(N)) to a CSV or JSON file, and prints the summary.
``--truth`` reads key ``x`` of any npz, so the ``y.npz`` written by ``genprior measure`` works.
An operator that is not the one recorded in ``--measurements`` is refused; an existing ``--out``
file is refused unless ``--overwrite`` is given (the table is written to a temporary file and
renamed, so it is never half-written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

HELP = "per-image PSNR, SSIM, MSE, LPIPS and measurement residual of reconstructions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--truth", required=True,
                        help=".npz with the ground-truth images under key x (e.g. DIR/y.npz)")
    parser.add_argument("--recon", required=True,
                        help=".npz with the reconstructions under key x")
    parser.add_argument("--measurements", default=None,
                        help="y.npz from genprior measure, for the residual (needs --operator)")
    parser.add_argument("--operator", default=None,
                        help="operator.safetensors from genprior measure (needs --measurements)")
    parser.add_argument("--out", required=True, help="table to write: .csv or .json")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--data-range", type=float, default=1.0,
                        help="value range for PSNR and SSIM (images are in [0, 1])")
    parser.add_argument("--lpips", action="store_true",
                        help="also compute LPIPS (needs the torchvision backbone weights in the "
                        "torch hub cache; never downloads)")
    parser.add_argument("--lpips-net", default="alex", choices=("alex", "vgg", "squeeze"),
                        help="LPIPS backbone")


def run(args: argparse.Namespace) -> int:
    from genprior._io import load_images_npz
    from genprior.cli._inputs import read_measurements, reading, resolve_operator
    from genprior.cli._output import check_output, remove_stale
    from genprior.metrics import MetricsTable, image_metrics

    out = Path(args.out)
    if out.suffix not in (".csv", ".json"):
        raise ValueError(f"--out must end in .csv or .json, got {args.out!r}")
    if (args.measurements is None) != (args.operator is None):
        raise ValueError("--measurements and --operator must be given together")
    check_output(out, args.overwrite, kind="file")
    with reading("--truth", args.truth):
        x = load_images_npz(args.truth)
    with reading("--recon", args.recon):
        x_hat = load_images_npz(args.recon)
    if x_hat.shape != x.shape:
        raise ValueError(f"--recon holds images of shape {tuple(x_hat.shape)} but --truth holds "
                         f"{tuple(x.shape)}")
    y = A = None
    if args.measurements is not None:
        meas = read_measurements(args.measurements)
        A = resolve_operator(args.operator, meas, args.measurements, device=torch.device("cpu"))
        y = meas.y
        try:
            A.check_y(y)
        except ValueError as e:
            raise ValueError(f"--measurements {args.measurements} do not fit --operator "
                             f"{args.operator}: {e}") from e
    metrics = image_metrics(x_hat, x, data_range=args.data_range, y=y, A=A,
                            lpips_net=args.lpips_net if args.lpips else None)
    table = MetricsTable.from_metrics(metrics)
    if out.parent.is_dir():
        remove_stale(out.parent)
    if out.suffix == ".csv":
        table.to_csv(out)
    else:
        table.to_json(out, truth=str(args.truth), recon=str(args.recon),
                      data_range=args.data_range)
    print(table)
    print(f"wrote {out}")
    return 0
