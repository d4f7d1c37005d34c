"""Score reconstructions: ``genprior evaluate --truth DIR/y.npz --recon XHAT.npz --out t.csv``.

Writes one row per image (``mse_per_pixel``, ``psnr``, ``ssim``; ``residual`` = ||A x_hat - y|| /
||y|| when ``--measurements`` and ``--operator`` are given; ``lpips`` with ``--lpips``) and a
summary (mean and 95% half-width 1.96 std / sqrt(N)) to a CSV or JSON file, and prints the summary.
``--truth`` reads key ``x`` of any npz, so the ``y.npz`` written by ``genprior measure`` works.
An operator that is not the one recorded in ``--measurements`` is refused; an existing ``--out``
file is refused unless ``--overwrite`` is given (the table is written to a temporary file and
renamed, so it is never half-written).

``--figure FILE.png`` also draws the first 8 images, one per row: the truth and the
reconstruction (titled ``--label``, by default the name of the folder holding ``x_hat.npz``, and
its PSNR), checked and written like ``--out``.
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
    parser.add_argument("--figure", default=None, metavar="FILE_PNG",
                        help="also write a labelled figure (truth | reconstruction with its "
                        "PSNR) of the first 8 images")
    parser.add_argument("--label", default=None,
                        help="the reconstruction's name in the figure (default: the folder of "
                        "--recon when it is named x_hat.npz, else the file's name)")


def recon_label(recon: str | Path) -> str:
    """The default ``--label``: the folder of a file named ``x_hat.npz``, else the file's stem.

    Example:
        >>> recon_label("run/csgm/x_hat.npz"), recon_label("run/lasso.npz")
        ('csgm', 'lasso')
    """
    path = Path(recon)
    return path.parent.name if path.stem == "x_hat" and path.parent.name else path.stem


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
    if args.figure is not None:
        if Path(args.figure).suffix != ".png":
            raise ValueError(f"--figure must end in .png, got {args.figure!r}")
        if Path(args.figure).absolute() == out.absolute():
            raise ValueError("--figure and --out name the same file")
        check_output(args.figure, args.overwrite, option="--figure", kind="file")
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
    if args.figure is not None:
        from genprior.cli._figures import comparison_figure, save_figure

        label = args.label or recon_label(args.recon)
        save_figure(args.figure, comparison_figure(
            x, {label: x_hat}, psnr={label: metrics["psnr"]},
            title=f"genprior evaluate {args.recon}"))
    if out.suffix == ".csv":
        table.to_csv(out)
    else:
        table.to_json(out, truth=str(args.truth), recon=str(args.recon),
                      data_range=args.data_range)
    print(table)
    print(f"wrote {out}" + ("" if args.figure is None else f" and {args.figure}"))
    return 0
