"""Simulate measurements: ``genprior measure --images mnist --operator gaussian_cs:100 --out DIR``.

Writes to DIR:

- ``y.npz``: the measurements ``y`` with the ground truth ``x``, JSON metadata and the operator
  record (spec, seed, noise level, config and the SHA-256 of the operator's tensors), which
  ``genprior reconstruct``, ``sample`` and ``evaluate`` check the operator they are given
  against;
- ``operator.safetensors``: the operator (reload with ``genprior.load_operator``);
- ``x.png`` and ``x_dagger.png``: the ground truth and the pseudo-inverse ``A_dagger(y)``
  (clipped to [0, 1]), also saved as ``x_dagger.npz`` (a baseline for ``genprior evaluate``).

The operator's random draws use ``--seed`` (as ``make_operator(spec, seed=SEED)`` does); the noise
uses a generator seeded from ``numpy.random.SeedSequence([SEED, 1])`` so that it is independent of
the operator's draws. The same arguments give the same ``y``, bit for bit (on one device).

The files appear together or not at all (written to a temporary folder beside DIR, renamed on
success); a non-empty DIR is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genprior._io import save_grid_png, save_images_npz, save_measurements
from genprior._random import make_generator
from genprior.cli._inputs import operator_record, reading
from genprior.cli._output import check_output, transactional_output

HELP = "simulate noisy measurements y = A x + e of sample or given images"

#: names accepted by ``--images`` besides a path to an ``.npz`` file
SAMPLE_NAMES = ("mnist", "celeba")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True,
                        help="shipped samples 'mnist' (64 test digits) or 'celeba' (16 held-out "
                        "faces), or an .npz file with key x (B, C, H, W) in [0, 1]")
    parser.add_argument("--operator", required=True, metavar="SPEC",
                        help="operator spec, e.g. gaussian_cs:100, gaussian_cs_unscaled:100, "
                        "structured_cs:500, downsample:4, downsample:4:bicubic, "
                        "inpaint:center:16, inpaint:random:0.5")
    parser.add_argument("--noise-std", type=float, default=0.0,
                        help="standard deviation of the Gaussian measurement noise")
    parser.add_argument("--seed", type=int, default=0, help="seed of the operator and noise")
    parser.add_argument("--num-images", type=int, default=None,
                        help="use only the first N images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")


def noise_generator(seed: int) -> torch.Generator:
    """The generator of the measurement noise for ``--seed seed``, independent of the
    operator's own draws (which use ``seed`` directly)."""
    return make_generator(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def load_images(source: str) -> Tensor:
    """Images for ``--images``: a shipped sample name or an ``.npz`` path."""
    from genprior._io import load_images_npz
    from genprior.data import load_samples

    if source in SAMPLE_NAMES:
        return load_samples(source)
    path = Path(source)
    if path.suffix != ".npz":
        raise ValueError(f"--images must be one of {SAMPLE_NAMES} or an .npz file, got {source!r}")
    with reading("--images", source):
        return load_images_npz(path)


def run(args: argparse.Namespace) -> int:
    from genprior.operators.factory import make_operator

    out = check_output(args.out, args.overwrite)
    if args.num_images is not None and args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    x = load_images(args.images)
    if args.num_images is not None:
        x = x[: args.num_images]
    A = make_operator(args.operator, tuple(x.shape[1:]), noise_std=args.noise_std,
                      seed=args.seed)
    with torch.no_grad():
        y = A.measure(x, generator=noise_generator(args.seed))
        x_dagger = A.A_dagger(y).clamp(0, 1)
    with transactional_output(out, args.overwrite) as tmp:
        save_measurements(tmp / "y.npz", y, x=x, operator_record=operator_record(A, args.operator),
                          images=args.images, operator=args.operator, noise_std=args.noise_std,
                          seed=args.seed)
        A.save(tmp / "operator.safetensors")
        nrow = 8
        save_grid_png(tmp / "x.png", x, nrow=nrow)
        save_grid_png(tmp / "x_dagger.png", x_dagger, nrow=nrow)
        save_images_npz(tmp / "x_dagger.npz", x_dagger)
    out = Path(args.out)
    print(f"{x.shape[0]} images {tuple(x.shape[1:])}, {A!r}: n={A.n}, m={A.m}")
    print(f"wrote {out / 'y.npz'}, {out / 'operator.safetensors'}, {out / 'x.png'}, "
          f"{out / 'x_dagger.png'}, {out / 'x_dagger.npz'}")
    return 0
