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

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._flags import flag
from genprior._random import make_generator
from genprior.priors.conditional import ConditionalSR, SRDiscriminator, init_weights_
from genprior.training.adversarial import add_instance_noise, instance_noise_std
from genprior.training.config import (
    TrainConfig,
    check_at_least,
    check_positive_flags,
    deprecated_entry_points,
)
from genprior.training.ema import EMA
from genprior.training.loop import TrainState
from genprior.training.run import TrainingRun, TrainResult

__all__ = ["HELP", "AffGANTrainConfig", "add_arguments", "instance_noise_std", "main",
           "split_unpaired", "train_affgan"]

#: the one-line description of ``genprior train affgan``
HELP = "train a range-constrained super-resolution network (AffGAN, or its MSE twin)"


@dataclass(kw_only=True)
class AffGANTrainConfig(TrainConfig):
    """What :func:`train_affgan` trains: the loss (AffGAN or AffMSE), the operator, the two
    networks' sizes and the instance noise, on top of the :class:`TrainConfig` fields.

    Raises:
        ValueError: ``img_size`` not divisible by ``factor``, negative or non-finite
            ``instance_noise`` or ``anneal_steps``, non-positive or infinite ``lr_d``,
            ``ema_decay`` outside [0, 1) (and the checks of :class:`TrainConfig`).

    Example:
        >>> cfg = AffGANTrainConfig(data="data/celeba", out="runs/sr4", loss="mse", lr=5e-4)
        >>> cfg.factor, cfg.img_size, cfg.batch_size
        (4, 64, 32)
    """

    epochs: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    loss: Literal["gan", "mse"] = field(default="gan", metadata=flag(
        "gan: AffGAN on unpaired halves; mse: AffMSE on pairs"))
    factor: int = field(default=4, metadata=flag("downsampling factor"))
    kernel: Literal["box", "bicubic"] = field(default="box", metadata=flag(
        "anti-aliasing kernel of the downsampling operator"))
    width: int = field(default=48, metadata=flag("generator body width"))
    n_blocks: int = field(default=5, metadata=flag("generator residual blocks"))
    noise_channels: int = field(default=8, metadata=flag(
        "channels of the generator's noise input (0: deterministic)"))
    d_width: int = field(default=32, metadata=flag("discriminator first width"))
    lr_d: float | None = field(default=None, metadata=flag(
        "discriminator learning rate (default: --lr)"))
    instance_noise: float = field(default=0.1, metadata=flag(
        "initial std of the Gaussian instance noise on the discriminator's inputs (images in "
        "[0, 1]), annealed linearly to 0"))
    anneal_steps: int | None = field(default=None, metadata=flag(
        "steps over which the instance noise reaches 0 (default: the run's total number of "
        "steps)"))
    ema_decay: float = field(default=0.999, metadata=flag(
        "EMA of the generator weights; final/ holds the EMA weights"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_flags(self, "factor", "width", "d_width", "lr_d")
        if self.img_size is None or self.img_size % self.factor:
            raise ValueError(f"--img-size must be divisible by --factor {self.factor}, "
                             f"got {self.img_size}")
        check_at_least(self, 0, "n_blocks", "noise_channels", "anneal_steps", "instance_noise")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")


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


def _sr_model(config: AffGANTrainConfig, img_shape: tuple[int, int, int]) -> ConditionalSR:
    model = ConditionalSR(img_size=img_shape, factor=config.factor, kernel=config.kernel,
                          width=config.width, n_blocks=config.n_blocks,
                          noise_channels=config.noise_channels)
    model.reset_parameters(generator=make_generator(config.seed))
    return model


def _discriminator(config: AffGANTrainConfig, img_shape: tuple[int, int, int]) -> SRDiscriminator:
    disc = SRDiscriminator(channels=img_shape[0], img_size=img_shape[1], width=config.d_width)
    init_weights_(disc, generator=make_generator(config.seed + 1))
    return disc


def train_affgan(config: AffGANTrainConfig) -> TrainResult:
    """Train a range-constrained super-resolution network (AffGAN, or AffMSE with
    ``loss="mse"``), as ``genprior train affgan`` does; errors are those of :class:`TrainingRun`.

    Returns:
        ``model``: the EMA weights of ``out/final`` (a :class:`ConditionalSR`).
    """
    gan = config.loss == "gan"
    with TrainingRun(config) as run:
        data = run.images()
        if gan:
            x_lr_half, x_hr_half = split_unpaired(data)
            hr_pool = x_hr_half.to(run.device)
        else:
            x_lr_half, hr_pool = data, None
        img_shape = tuple(data.shape[1:])
        model = run.init(lambda: _sr_model(config, img_shape))
        ema = EMA(model, decay=config.ema_decay)
        generator = run.wrap(model)
        opt_g = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 betas=(0.5, 0.999) if gan else (0.9, 0.999))
        modules = {"model": model, "ema": ema}
        optimizers = {"adam_g": opt_g}
        if gan:
            disc = run.init(lambda: _discriminator(config, img_shape))
            critic = run.wrap(disc)
            opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d or config.lr,
                                     betas=(0.5, 0.999))
            modules["disc"] = disc
            optimizers["adam_d"] = opt_d
        precision, noise = run.precision, run.noise
        A = model.operator
        total = run.make_loader(x_lr_half)
        anneal = config.anneal_steps if config.anneal_steps is not None else total

        def perturb(x: Tensor, sigma: float) -> Tensor:
            return add_instance_noise(x, sigma, generator=noise)

        def gan_step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            b = x.shape[0]
            with torch.no_grad():
                y = A.A(x)
            idx = torch.randint(hr_pool.shape[0], (b,), generator=noise).to(run.device)
            x_real = hr_pool[idx]
            eps = model.sample_latent(b, generator=noise)
            sigma = instance_noise_std(state.step, start=config.instance_noise,
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

        x_show = x_lr_half[:8].to(run.device)
        y_show = A.A(x_show)

        @torch.no_grad()
        def sample() -> Tensor:
            g = make_generator(config.seed)
            outs = ema.module.eval().sample(y_show, 2, generator=g)
            return torch.cat([A.A_dagger(y_show), outs[0], outs[1], x_show]).clamp(0, 1)

        shared = {"lr_d": config.lr_d, "instance_noise": config.instance_noise,
                  "anneal_steps": anneal, "ema_decay": config.ema_decay}
        state = run.fit(gan_step if gan else mse_step, modules=modules, optimizers=optimizers,
                        config={"kind": "affgan", "loss": config.loss, "model": model.config,
                                "d_width": config.d_width if gan else None,
                                "train_range": config.train_range, **shared},
                        loss_names=(["d_loss", "g_loss", "d_real", "d_fake", "instance_noise"]
                                    if gan else ["mse"]),
                        sample_fn=sample)
        return run.save(state, {"final": ema.module}, loss=config.loss,
                        unpaired_split=("first half -> y, second half -> discriminator"
                                        if gan else "paired"), **shared)


add_arguments, main = deprecated_entry_points(AffGANTrainConfig, train_affgan, __name__)
