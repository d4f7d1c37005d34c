"""The settings of ``genprior train affgan`` (:func:`genprior.training.affgan.train_affgan`):
the loss (AffGAN, AffMSE, AffDG, AffLL), the operator, the networks and their options, checked
once when built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genprior._flags import flag
from genprior.training.augment import parse_policy
from genprior.training.config import TrainConfig, check_at_least, check_positive_flags

__all__ = ["AffGANTrainConfig"]


@dataclass(kw_only=True)
class AffGANTrainConfig(TrainConfig):
    """What :func:`train_affgan` trains: the loss (AffGAN, AffMSE, AffDG or AffLL), the
    operator, the two networks' sizes, the instance noise and the options of the module's
    docstring, on top of the :class:`TrainConfig` fields.

    Raises:
        ValueError: ``img_size`` not divisible by ``factor``, negative or non-finite
            ``instance_noise``, ``anneal_steps``, ``r1_gamma`` or ``diversity_weight``,
            non-positive or infinite ``lr_d``, ``r1_every`` or ``diversity_tau``, ``ema_decay``
            outside [0, 1), an unknown ``diffaugment`` policy (named), a discriminator option
            (``gan_loss``, ``spectral_norm``, ``r1_gamma``, ``diffaugment``) without
            ``loss="gan"``, ``loss="affdg"`` without ``denoiser`` or ``loss="affll"`` without
            ``density`` (or either path with another loss), ``diversity_weight`` with
            ``noise_channels=0``, negative ``d_warmup`` or ``d_warmup`` without ``loss="gan"``
            (and the checks of :class:`TrainConfig`).

    Example:
        >>> cfg = AffGANTrainConfig(data="data/celeba", out="runs/sr4", loss="mse", lr=5e-4)
        >>> cfg.factor, cfg.img_size, cfg.batch_size
        (4, 64, 32)
    """

    epochs: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    loss: Literal["gan", "mse", "affdg", "affll"] = field(default="gan", metadata=flag(
        "gan: AffGAN on unpaired halves; mse: AffMSE on pairs; affdg: -log p(x) by the score "
        "of --denoiser; affll: -ELBO(x) of --density (both unpaired, per image entry)"))
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
    gan_loss: Literal["ns", "hinge"] = field(default="ns", metadata=flag(
        "--loss gan: ns: non-saturating loss; hinge: D minimises mean relu(1 - D(x)) + "
        "mean relu(1 + D(G(y))), G minimises -mean D(G(y))"))
    spectral_norm: bool = field(default=False, metadata=flag(
        "--loss gan: spectral normalisation of every discriminator layer"))
    r1_gamma: float = field(default=0.0, metadata=flag(
        "--loss gan: R1 weight gamma, D's loss gets gamma/2 E||grad_x D(x)||^2 on the real "
        "images as D sees them (0: off; not under torchrun)"))
    r1_every: int = field(default=1, metadata=flag(
        "apply R1 every N steps, its weight multiplied by N (lazy regularisation)"))
    diffaugment: str = field(default="", metadata=flag(
        "--loss gan: DiffAugment policies applied to the real and generated images D sees "
        "(both steps), comma-separated from color, translation, cutout; empty: off",
        metavar="POLICIES"))
    diversity_weight: float = field(default=0.0, metadata=flag(
        "W: the generator's loss gets -W mean_y min(mean|G(y,e1) - G(y,e2)| / mean|e1 - e2|, "
        "tau) for two noises per input (0: off)"))
    diversity_tau: float = field(default=1.0, metadata=flag(
        "tau: the bound of the diversity ratio"))
    denoiser: str | None = field(default=None, metadata=flag(
        "--loss affdg: the denoiser (a folder written by genprior train denoiser)",
        metavar="PATH"))
    density: str | None = field(default=None, metadata=flag(
        "--loss affll: the VAE whose ELBO is log p (a prior folder or name, e.g. celeba-vae)",
        metavar="PATH"))
    init_from: str | None = field(default=None, metadata=flag(
        "start the generator (and its EMA) from the weights of this super-resolution model (a "
        "prior folder or name, e.g. celeba-sr4-mse; same --factor, --kernel, --width, "
        "--n-blocks, --noise-channels and image size); the discriminator starts fresh",
        metavar="PATH"))
    d_warmup: int = field(default=0, metadata=flag(
        "--loss gan: train only the discriminator for the first N steps (the generator and "
        "its EMA stay as they are), e.g. to fit a fresh discriminator to an --init-from "
        "generator before it moves"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_flags(self, "factor", "width", "d_width", "lr_d", "r1_every",
                             "diversity_tau")
        if self.img_size is None or self.img_size % self.factor:
            raise ValueError(f"--img-size must be divisible by --factor {self.factor}, "
                             f"got {self.img_size}")
        check_at_least(self, 0, "n_blocks", "noise_channels", "anneal_steps", "instance_noise",
                       "r1_gamma", "diversity_weight", "d_warmup")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise ValueError(f"--diffaugment: {e}") from None
        if self.loss != "gan":
            for name, off in (("gan_loss", "ns"), ("spectral_norm", False), ("r1_gamma", 0.0),
                              ("diffaugment", ""), ("d_warmup", 0)):
                if getattr(self, name) != off:
                    raise ValueError(f"--{name.replace('_', '-')} applies to --loss gan only, "
                                     f"not --loss {self.loss}")
        for name, loss in (("denoiser", "affdg"), ("density", "affll")):
            if (getattr(self, name) is None) == (self.loss == loss):
                raise ValueError(f"--loss {loss} needs --{name} PATH" if self.loss == loss
                                 else f"--{name} applies to --loss {loss} only")
        if self.diversity_weight and not self.noise_channels:
            raise ValueError("--diversity-weight needs a noise input: --noise-channels is 0")
