"""Train a VAE prior by maximising the ELBO: ``genprior train vae --arch mlp|conv --data PATH``.

``mlp`` is the CSGM MNIST VAE (:class:`~genprior.priors.vae_mlp.MLPVAE`, Adam 1e-3, batch 100 as
in the reference); ``conv`` is :class:`~genprior.priors.conv_vae.ConvVAE` for 64x64 faces. The
run folder gets ``log.csv`` (minus ELBO per image), ``samples.png`` (decoded prior draws),
``checkpoint.safetensors`` and, at the end, ``final/`` (``save_pretrained``).

Example:
    genprior train vae --arch mlp --data ../shared/data/mnist --out runs/mnist-vae --epochs 20
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from genprior._random import make_generator
from genprior.priors.base import Prior
from genprior.training.common import (
    Precision,
    RunContext,
    TrainState,
    add_common_arguments,
    finish,
    fit,
    load_image_data,
    make_loader,
    parse_range,
    rank_generator,
    seeded_init,
    setup_run,
)

HELP = "train a VAE prior (MLP for MNIST, convolutional for faces) by maximising the ELBO"

__all__ = ["HELP", "add_arguments", "build_vae", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                        help="mlp: MLPVAE (CSGM MNIST); conv: ConvVAE (64x64 faces)")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latent size (default 20 for mlp, 128 for conv)")
    parser.add_argument("--hidden", type=int, default=500, help="mlp: hidden width")
    parser.add_argument("--base-channels", type=int, default=32, help="conv: first conv width")
    add_common_arguments(parser, epochs=100, batch_size=100, lr=1e-3, img_size=64)


def build_vae(arch: str, img_shape: tuple[int, int, int], *, latent_dim: int | None,
              hidden: int = 500, base_channels: int = 32) -> Prior:
    """The VAE named by ``arch`` for images of shape ``img_shape`` ``(C, H, W)``.

    Raises:
        ValueError: unknown ``arch``.
    """
    if arch == "mlp":
        from genprior.priors.vae_mlp import MLPVAE

        return MLPVAE(img_shape=img_shape, hidden=hidden, latent_dim=latent_dim or 20)
    if arch == "conv":
        from genprior.priors.conv_vae import ConvVAE

        return ConvVAE(img_shape=img_shape, latent_dim=latent_dim or 128,
                       base_channels=base_channels)
    raise ValueError(f"--arch must be mlp or conv, got {arch!r}")


class _NegativeELBO(nn.Module):
    """``forward`` = the VAE's loss, so that DDP sees (and synchronises) the whole step."""

    def __init__(self, vae: Prior) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self.vae.loss(x, generator=generator)


def main(args: argparse.Namespace) -> int:
    ctx: RunContext = setup_run(args)
    try:
        data = load_image_data(args.data, img_size=args.img_size, crop=args.crop,
                               id_range=parse_range(args.train_range))
        img_shape = tuple(data.tensors[0].shape[1:])
        with seeded_init(args.seed):
            vae = build_vae(args.arch, img_shape, latent_dim=args.latent_dim, hidden=args.hidden,
                            base_channels=args.base_channels).to(ctx.device)
        objective: nn.Module = _NegativeELBO(vae)
        if ctx.dist.distributed:
            objective = DistributedDataParallel(
                objective, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
        optimizer = torch.optim.Adam(vae.parameters(), lr=args.lr)
        precision = Precision(args.precision, ctx.device)
        noise = rank_generator(ctx)
        z_fixed = vae.sample_latent(64, generator=make_generator(args.seed))

        def step(x: Tensor, state: TrainState) -> dict[str, float]:
            vae.train()
            with precision.autocast():
                loss = objective(x, noise)
            precision.step(loss, optimizer)
            return {"neg_elbo": float(loss.detach())}

        @torch.no_grad()
        def sample() -> Tensor:
            vae.eval()
            return vae.decode(z_fixed)

        loader, sampler = make_loader(data, ctx, batch_size=args.batch_size,
                                      num_workers=args.num_workers)
        config = {"kind": "vae", "arch": args.arch, "class": type(vae).__name__,
                  "model": vae.config, "batch_size": args.batch_size, "lr": args.lr,
                  "world_size": ctx.dist.world_size, "seed": args.seed}
        state = fit(args, ctx, loader=loader, sampler=sampler, step_fn=step,
                    modules={"vae": vae}, optimizers={"adam": optimizer},
                    generators={"noise": noise}, config=config, loss_names=["neg_elbo"],
                    sample_fn=sample)
        if ctx.is_main:
            vae.eval().save_pretrained(
                ctx.out / "final",
                training={"steps": state.step, "epochs_completed": state.epoch,
                          "data": str(args.data), "train_range": args.train_range,
                          "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed})
            print(f"saved {ctx.out / 'final'} after {state.step} steps")
    finally:
        finish(ctx)
    return 0
