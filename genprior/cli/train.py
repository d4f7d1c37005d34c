"""Train a prior: ``genprior train vae|gan|affgan|denoiser --data PATH --out DIR ...``.

Each kind is a typed Python API in ``genprior.training.<kind>``: a config dataclass whose fields
are the flags (``--batch-size`` is ``batch_size``) and a function that trains from it
(``train_vae(VAETrainConfig(...))``). This command only turns the flags into that config. Under
``torchrun`` the same command trains with DDP.

An --out that already holds a run is refused unless --resume (continue it) or --overwrite
(replace it); a run whose loss or weights become NaN or infinite stops with exit status 2 and
keeps its last good checkpoint (docs/training.md, "Guarantees").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType

from genprior._flags import add_dataclass_arguments
from genprior.training import affgan, denoiser, gan, vae
from genprior.training.config import TrainConfig

HELP = "train a VAE, a GAN, a range-constrained super-resolution GAN or a denoiser"

#: kind -> (module with ``HELP`` and the docstring, config class, trainer)
KINDS: dict[str, tuple[ModuleType, type[TrainConfig], Callable[..., object]]] = {
    "vae": (vae, vae.VAETrainConfig, vae.train_vae),
    "gan": (gan, gan.GANTrainConfig, gan.train_gan),
    "affgan": (affgan, affgan.AffGANTrainConfig, affgan.train_affgan),
    "denoiser": (denoiser, denoiser.DenoiserTrainConfig, denoiser.train_denoiser),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (mod, config_cls, _) in KINDS.items():
        p = sub.add_parser(kind, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_dataclass_arguments(p, config_cls)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The typed config of ``genprior train KIND``'s parsed flags (the one conversion)."""
    _, config_cls, _ = KINDS[args.kind]
    return config_cls.from_flags(vars(args))


def run(args: argparse.Namespace) -> int:
    _, _, train = KINDS[args.kind]
    train(config_from_args(args))
    return 0
