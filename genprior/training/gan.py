r"""Train a GAN prior: ``genprior train gan --arch dcgan --data PATH``.

Non-saturating GAN (Goodfellow et al. 2014): the discriminator minimises
:math:`-\log D(x) - \log(1 - D(G(z)))`, the generator minimises :math:`-\log D(G(z))`; Adam with
lr 2e-4 and betas (0.5, 0.999) for both (Radford et al. 2016). The generator's weights are
averaged (EMA) and the average is what ``final/`` holds.

Stabilisers (flags): one-sided label smoothing (real target ``--label-smoothing``, 0.9 by
default; Salimans et al. 2016), instance noise (Gaussian noise of std ``--instance-noise``
added to real and fake images before the discriminator, annealed linearly to 0 over the run;
Sønderby et al. 2017) and spectral normalisation of the discriminator (``--spectral-norm``;
Miyato et al. 2018). See ``docs/training.md`` for the choice made for the shipped faces prior.

Example:
    genprior train gan --arch dcgan --data ../shared/data/celeba --train-range 1:8000 \
        --img-size 64 --crop 54 --ngf 32 --ndf 32 --out runs/celeba-dcgan
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from genprior._random import make_generator, randn
from genprior.training.common import (
    EMA,
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

HELP = "train a DCGAN prior (non-saturating loss, generator EMA)"

__all__ = ["HELP", "add_arguments", "discriminator_loss", "generator_loss", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", choices=("dcgan",), default="dcgan", help="architecture")
    parser.add_argument("--nz", type=int, default=100, help="latent dimension")
    parser.add_argument("--ngf", type=int, default=64, help="generator width")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="generator EMA decay")
    parser.add_argument("--label-smoothing", type=float, default=0.9,
                        help="target of real images for D (one-sided; 1.0 disables)")
    parser.add_argument("--instance-noise", type=float, default=0.0,
                        help="initial std of the noise added to D's inputs (annealed to 0)")
    parser.add_argument("--instance-noise-steps", type=int, default=None,
                        help="steps over which the instance noise decays linearly to 0 "
                             "(default: epochs x steps per epoch)")
    parser.add_argument("--spectral-norm", action="store_true",
                        help="spectral normalisation in D (and no BatchNorm)")
    add_common_arguments(parser, epochs=25, batch_size=64, lr=2e-4, img_size=64)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, *,
                       real_target: float = 1.0) -> Tensor:
    r""":math:`\mathrm{BCE}(D(x), t) + \mathrm{BCE}(D(G(z)), 0)` with real target :math:`t`
    (one-sided label smoothing for :math:`t < 1`), batch means.

    Shape:
        - real_logits, fake_logits: ``(B,)``
        - output: scalar
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits,
                                                                           real_target))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: Tensor) -> Tensor:
    r"""Non-saturating generator loss :math:`-\log \sigma(D(G(z)))`, batch mean.

    Shape:
        - fake_logits: ``(B,)``
        - output: scalar
    """
    return F.softplus(-fake_logits).mean()


def main(args: argparse.Namespace) -> int:
    from genprior.priors.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_

    ctx: RunContext = setup_run(args)
    try:
        if not 0.0 < args.label_smoothing <= 1.0:
            raise ValueError(f"--label-smoothing must be in (0, 1], got {args.label_smoothing}")
        if args.instance_noise < 0:
            raise ValueError(f"--instance-noise must be >= 0, got {args.instance_noise}")
        data = load_image_data(args.data, img_size=args.img_size, crop=args.crop,
                               id_range=parse_range(args.train_range))
        nc, h, w = data.tensors[0].shape[1:]
        if h != w:
            raise ValueError(f"DCGAN needs square images, --data {args.data} gives {h}x{w}")
        init = make_generator(args.seed)
        with seeded_init(args.seed):
            G = dcgan_init_(DCGANGenerator(nz=args.nz, ngf=args.ngf, nc=nc, img_size=h),
                            generator=init).to(ctx.device)
            D = dcgan_init_(DCGANDiscriminator(ndf=args.ndf, nc=nc, img_size=h,
                                               spectral_norm=args.spectral_norm),
                            generator=init).to(ctx.device)
        ema = EMA(G, args.ema_decay)
        G_train: nn.Module = G
        D_train: nn.Module = D
        if ctx.dist.distributed:
            ids = [ctx.device] if ctx.device.type == "cuda" else None
            G_train = DistributedDataParallel(G, device_ids=ids)
            D_train = DistributedDataParallel(D, device_ids=ids)
        opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(0.5, 0.999))
        precision = Precision(args.precision, ctx.device)
        noise = rank_generator(ctx)
        z_fixed = G.sample_latent(64, generator=make_generator(args.seed))
        loader, sampler = make_loader(data, ctx, batch_size=args.batch_size,
                                      num_workers=args.num_workers)
        anneal = args.instance_noise_steps or args.epochs * (sampler.num_samples
                                                            // args.batch_size)

        def noisy(x: Tensor, sigma: float) -> Tensor:
            if sigma == 0.0:
                return x
            return x + sigma * randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)

        def step(x: Tensor, state: TrainState) -> dict[str, float]:
            G.train()
            D.train()
            sigma = args.instance_noise * max(0.0, 1.0 - state.step / anneal)
            z = randn((x.shape[0], args.nz), generator=noise, device=x.device, dtype=x.dtype)
            with precision.autocast():
                fake = G_train(z)
                real_logits = D_train(noisy(x, sigma))
                fake_logits = D_train(noisy(fake.detach(), sigma))
                loss_d = discriminator_loss(real_logits, fake_logits,
                                            real_target=args.label_smoothing)
            precision.step(loss_d, opt_d)
            with precision.autocast():
                loss_g = generator_loss(D_train(noisy(fake, sigma)))
            precision.step(loss_g, opt_g)
            ema.update(G)
            return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                    "d_real": float(torch.sigmoid(real_logits.detach().float()).mean()),
                    "d_fake": float(torch.sigmoid(fake_logits.detach().float()).mean()),
                    "sigma": sigma}

        @torch.no_grad()
        def sample() -> Tensor:
            return ema.module.eval().decode(z_fixed)

        config = {"kind": "gan", "arch": args.arch, "generator": G.config,
                  "discriminator": D.config, "ema_decay": args.ema_decay,
                  "label_smoothing": args.label_smoothing,
                  "instance_noise": args.instance_noise, "instance_noise_steps": anneal,
                  "batch_size": args.batch_size,
                  "lr": args.lr, "world_size": ctx.dist.world_size, "seed": args.seed}
        state = fit(args, ctx, loader=loader, sampler=sampler, step_fn=step,
                    modules={"G": G, "D": D, "G_ema": ema.module},
                    optimizers={"G": opt_g, "D": opt_d}, generators={"noise": noise},
                    config=config, loss_names=["loss_d", "loss_g", "d_real", "d_fake", "sigma"],
                    sample_fn=sample)
        if ctx.is_main:
            info = {"steps": state.step, "epochs_completed": state.epoch,
                    "data": str(args.data), "train_range": args.train_range,
                    "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                    "ema_decay": args.ema_decay, "label_smoothing": args.label_smoothing,
                    "instance_noise": args.instance_noise, "spectral_norm": args.spectral_norm,
                    "ndf": args.ndf}
            ema.module.eval().save_pretrained(ctx.out / "final", training=info)
            G.eval().save_pretrained(ctx.out / "final-raw", training=info)
            print(f"saved {ctx.out / 'final'} (EMA generator) after {state.step} steps")
    finally:
        finish(ctx)
    return 0
