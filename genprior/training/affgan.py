r"""Train a range-constrained super-resolution network: ``genprior train affgan --data PATH``.

AffGAN (Sønderby et al. 2017, "Amortised MAP Inference for Image Super-resolution"): the
network :math:`x = A^\dagger y + (I - A^\dagger A) f(y, \epsilon)`
(:class:`~genprior.priors.conditional.ConditionalSR`) is consistent with its low-resolution
input by construction, and is trained to minimise the cross-entropy between the distribution of
its outputs and the distribution of high-resolution images, estimated by a discriminator
(non-saturating GAN loss, instance noise on the discriminator's inputs annealed linearly to 0).

Training is unpaired: the training images are split into two disjoint halves (in file order);
the low-resolution inputs :math:`y = A x` come from the first half, the high-resolution images
the discriminator sees from the second. No (y, x) pair enters a loss.

``--loss mse`` trains the same network supervised on pairs (AffMSE): it minimises
:math:`\|x_{\mathrm{proj}} - x\|^2` over all training images, the MSE baseline.

The run folder gets ``log.csv``, ``samples.png`` (rows: :math:`A^\dagger y`, two outputs with
different noise, the truth), ``checkpoint.safetensors`` and, at the end, ``final/``
(``save_pretrained`` of the EMA weights, loadable with ``genprior.load_prior``).

Example:
    genprior train affgan --data ../shared/data/celeba --train-range 1:8000 \
        --out runs/celeba-sr4-affgan --max-steps 3000 --threads 1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset

from genprior._random import make_generator, randn
from genprior.priors.conditional import ConditionalSR, SRDiscriminator, init_weights_
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
    setup_run,
)

HELP = "train a range-constrained super-resolution network (AffGAN, or its MSE twin)"

__all__ = ["HELP", "add_arguments", "instance_noise_std", "main", "split_unpaired"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss", choices=("gan", "mse"), default="gan",
                        help="gan: AffGAN on unpaired halves; mse: AffMSE on pairs")
    parser.add_argument("--factor", type=int, default=4, help="downsampling factor")
    parser.add_argument("--kernel", choices=("box", "bicubic"), default="box",
                        help="anti-aliasing kernel of the downsampling operator")
    parser.add_argument("--width", type=int, default=48, help="generator body width")
    parser.add_argument("--n-blocks", type=int, default=5, help="generator residual blocks")
    parser.add_argument("--noise-channels", type=int, default=8,
                        help="channels of the generator's noise input (0: deterministic)")
    parser.add_argument("--d-width", type=int, default=32, help="discriminator first width")
    parser.add_argument("--lr-d", type=float, default=None,
                        help="discriminator learning rate (default: --lr)")
    parser.add_argument("--instance-noise", type=float, default=0.1,
                        help="initial std of the Gaussian instance noise on the discriminator's "
                             "inputs (images in [0, 1]), annealed linearly to 0")
    parser.add_argument("--anneal-steps", type=int, default=None,
                        help="steps over which the instance noise reaches 0 (default: the run's "
                             "total number of steps)")
    parser.add_argument("--ema-decay", type=float, default=0.999,
                        help="EMA of the generator weights; final/ holds the EMA weights")
    add_common_arguments(parser, epochs=1000, batch_size=32, lr=2e-4, img_size=64)


def split_unpaired(x: Tensor) -> tuple[Tensor, Tensor]:
    """Split training images into two disjoint halves (file order): low-resolution inputs come
    from the first, the discriminator's high-resolution images from the second.

    Raises:
        ValueError: fewer than 2 images.

    Shape:
        - x: ``(N, C, H, W)``
        - output: ``(N // 2, C, H, W)`` and ``(N - N // 2, C, H, W)``
    """
    if x.shape[0] < 2:
        raise ValueError(f"unpaired training needs at least 2 images, got {x.shape[0]}")
    n = x.shape[0] // 2
    return x[:n], x[n:]


def instance_noise_std(step: int, *, start: float, anneal_steps: int) -> float:
    """Linear annealing ``start * max(0, 1 - step / anneal_steps)``."""
    if anneal_steps <= 0:
        return 0.0
    return float(start) * max(0.0, 1.0 - step / anneal_steps)


def _wrap(module: nn.Module, ctx: RunContext) -> nn.Module:
    if not ctx.dist.distributed:
        return module
    return DistributedDataParallel(
        module, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)


def _check_args(args: argparse.Namespace) -> None:
    if args.instance_noise < 0:
        raise ValueError(f"--instance-noise must be >= 0, got {args.instance_noise}")
    if args.anneal_steps is not None and args.anneal_steps < 0:
        raise ValueError(f"--anneal-steps must be >= 0, got {args.anneal_steps}")
    if args.lr_d is not None and args.lr_d <= 0:
        raise ValueError(f"--lr-d must be positive, got {args.lr_d}")
    if args.img_size is None or args.img_size % args.factor:
        raise ValueError(f"--img-size must be divisible by --factor {args.factor}, "
                         f"got {args.img_size}")


def main(args: argparse.Namespace) -> int:
    _check_args(args)
    ctx: RunContext = setup_run(args)
    try:
        data = load_image_data(args.data, img_size=args.img_size,
                               id_range=parse_range(args.train_range)).tensors[0]
        if args.loss == "gan":
            x_lr_half, x_hr_half = split_unpaired(data)
            hr_pool = x_hr_half.to(ctx.device)
        else:
            x_lr_half, hr_pool = data, None
        img_shape = tuple(data.shape[1:])
        model = ConditionalSR(img_size=img_shape, factor=args.factor, kernel=args.kernel,
                              width=args.width, n_blocks=args.n_blocks,
                              noise_channels=args.noise_channels)
        model.reset_parameters(generator=make_generator(args.seed))
        model = model.to(ctx.device)
        ema = EMA(model, decay=args.ema_decay)
        generator = _wrap(model, ctx)
        opt_g = torch.optim.Adam(model.parameters(), lr=args.lr,
                                 betas=(0.5, 0.999) if args.loss == "gan" else (0.9, 0.999))
        modules: dict[str, nn.Module] = {"model": model, "ema": ema}
        optimizers = {"adam_g": opt_g}
        if args.loss == "gan":
            disc = SRDiscriminator(channels=img_shape[0], img_size=img_shape[1],
                                   width=args.d_width)
            init_weights_(disc, generator=make_generator(args.seed + 1))
            disc = disc.to(ctx.device)
            critic = _wrap(disc, ctx)
            opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr_d or args.lr,
                                     betas=(0.5, 0.999))
            modules["disc"] = disc
            optimizers["adam_d"] = opt_d
        precision = Precision(args.precision, ctx.device)
        noise = rank_generator(ctx)
        A = model.operator

        loader, sampler = make_loader(TensorDataset(x_lr_half), ctx, batch_size=args.batch_size,
                                      num_workers=args.num_workers)
        total = args.epochs * (sampler.num_samples // args.batch_size)
        if args.max_steps is not None:
            total = min(total, args.max_steps)
        anneal = args.anneal_steps if args.anneal_steps is not None else total

        def perturb(x: Tensor, sigma: float) -> Tensor:
            if sigma == 0:
                return x
            return x + sigma * randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)

        def gan_step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            b = x.shape[0]
            with torch.no_grad():
                y = A.A(x)
            idx = torch.randint(hr_pool.shape[0], (b,), generator=noise).to(ctx.device)
            x_real = hr_pool[idx]
            eps = model.sample_latent(b, generator=noise)
            sigma = instance_noise_std(state.step, start=args.instance_noise,
                                       anneal_steps=anneal)
            with precision.autocast():
                x_fake = generator(y, eps)
                logits = critic(torch.cat([perturb(x_real, sigma),
                                           perturb(x_fake.detach(), sigma)]))
                d_loss = F.softplus(-logits[:b]).mean() + F.softplus(logits[b:]).mean()
            precision.step(d_loss, opt_d)
            with precision.autocast():
                g_loss = F.softplus(-critic(perturb(x_fake, sigma))).mean()
            precision.step(g_loss, opt_g)
            ema.update(model)
            d = torch.sigmoid(logits.detach().float())
            return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
                    "d_real": float(d[:b].mean()), "d_fake": float(d[b:].mean()),
                    "instance_noise": sigma}

        def mse_step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            with torch.no_grad():
                y = A.A(x)
            eps = model.sample_latent(x.shape[0], generator=noise)
            with precision.autocast():
                loss = F.mse_loss(generator(y, eps).float(), x)
            precision.step(loss, opt_g)
            ema.update(model)
            return {"mse": float(loss.detach())}

        x_show = x_lr_half[:8].to(ctx.device)
        y_show = A.A(x_show)

        @torch.no_grad()
        def sample() -> Tensor:
            g = make_generator(args.seed)
            outs = ema.module.eval().sample(y_show, 2, generator=g)
            return torch.cat([A.A_dagger(y_show), outs[0], outs[1], x_show]).clamp(0, 1)

        names = (["d_loss", "g_loss", "d_real", "d_fake", "instance_noise"]
                 if args.loss == "gan" else ["mse"])
        config = {"kind": "affgan", "loss": args.loss, "model": model.config,
                  "d_width": args.d_width if args.loss == "gan" else None,
                  "batch_size": args.batch_size, "lr": args.lr, "lr_d": args.lr_d,
                  "instance_noise": args.instance_noise, "anneal_steps": anneal,
                  "ema_decay": args.ema_decay, "world_size": ctx.dist.world_size,
                  "seed": args.seed, "train_range": args.train_range}
        state = fit(args, ctx, loader=loader, sampler=sampler,
                    step_fn=gan_step if args.loss == "gan" else mse_step,
                    modules=modules, optimizers=optimizers, generators={"noise": noise},
                    config=config, loss_names=names, sample_fn=sample)
        if ctx.is_main:
            ema.module.eval().save_pretrained(
                ctx.out / "final",
                training={"loss": args.loss, "steps": state.step,
                          "epochs_completed": state.epoch, "data": str(args.data),
                          "train_range": args.train_range,
                          "unpaired_split": ("first half -> y, second half -> discriminator"
                                             if args.loss == "gan" else "paired"),
                          "batch_size": args.batch_size, "lr": args.lr, "lr_d": args.lr_d,
                          "instance_noise": args.instance_noise, "anneal_steps": anneal,
                          "ema_decay": args.ema_decay, "seed": args.seed})
            print(f"saved {ctx.out / 'final'} after {state.step} steps")
    finally:
        finish(ctx)
    return 0
