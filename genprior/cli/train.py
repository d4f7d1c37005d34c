"""Train a prior: ``genprior train vae|gan|affgan --data PATH --out DIR ...``.

Each kind lives in ``genprior.training.<kind>``, which defines ``add_arguments(parser)`` and
``main(args) -> int``. Under ``torchrun`` the same command trains with DDP.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "train a VAE, a GAN or a range-constrained super-resolution GAN"

KINDS = {
    "vae": "genprior.training.vae",
    "gan": "genprior.training.gan",
    "affgan": "genprior.training.affgan",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, module in KINDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(kind, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_train=mod.main)


def run(args: argparse.Namespace) -> int:
    return int(args._train(args) or 0)
