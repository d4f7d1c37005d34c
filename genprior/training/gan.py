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

Limited-data options, all off by default: DiffAugment of every image D sees, real and fake, in
both steps (``--diffaugment color,translation,cutout``; Zhao et al. 2020;
:mod:`~genprior.training.augment`), the hinge loss instead of the non-saturating one
(``--loss hinge``; Lim & Ye 2017, Miyato et al. 2018) and the R1 penalty
:math:`\frac{\gamma}{2} \mathbb E \|\nabla_x D(x)\|^2` on real images (``--r1-gamma``,
applied every ``--r1-every`` steps with weight multiplied by that interval; Mescheder et al. 2018,
lazy as in StyleGAN2). Their randomness comes from the run's checkpointed noise generator, so
``--resume`` stays exact.

Fine-tuning and range coverage, also off by default: ``--init-from PATH`` starts the generator
(and its EMA) from a trained prior of the same network, ``--d-warmup N`` trains only the fresh
discriminator (and the encoder, if any) for the first N steps, and ``--recon-weight w`` adds the
VAE-GAN latent-recovery term (Larsen et al. 2016): an encoder :math:`E` (the DCGAN
discriminator's network with :math:`2 n_z` outputs, mean and log-variance of
:math:`q(z \mid x)`) is trained with :math:`G` to minimise

.. math::
    \frac{w}{P} \Big( \frac{\|x - G(z)\|^2}{2 s^2}
    + \mathrm{KL}\big(q(z \mid x) \,\|\, \mathcal N(0, I)\big) \Big),
    \qquad z \sim q(z \mid x),

per training image (:math:`P` pixels, :math:`s` = ``--recon-sigma`` on [0, 1]), so that training
images stay in :math:`G`'s range, which CSGM searches, while :math:`z` stays standard normal.

Example:
    genprior train gan --arch dcgan --data ../shared/data/celeba --train-range 1:8000 \
        --img-size 64 --crop 54 --ngf 32 --ndf 32 --out runs/celeba-dcgan
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from genprior._flags import flag
from genprior._random import make_generator, randn
from genprior.priors.vae_mlp import gaussian_kl, reparameterize
from genprior.training.adversarial import (
    add_instance_noise,
    discriminator_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    instance_noise_std,
    r1_penalty,
)
from genprior.training.augment import diff_augment, parse_policy
from genprior.training.config import (
    TrainConfig,
    check_at_least,
    check_positive_flags,
    deprecated_entry_points,
)
from genprior.training.ema import EMA
from genprior.training.loop import TrainState
from genprior.training.run import TrainingRun, TrainResult

HELP = "train a DCGAN prior (non-saturating or hinge loss, generator EMA)"

__all__ = [
    "HELP",
    "GANTrainConfig",
    "add_arguments",
    "build_encoder",
    "build_gan",
    "discriminator_loss",
    "generator_loss",
    "latent_recovery_loss",
    "main",
    "train_gan",
]


@dataclass(kw_only=True)
class GANTrainConfig(TrainConfig):
    """What :func:`train_gan` trains: DCGAN widths, the generator EMA and the discriminator's
    stabilisers, on top of the :class:`TrainConfig` fields (defaults here: 25 epochs of batches
    of 64, Adam 2e-4).

    Raises:
        ValueError: ``label_smoothing`` outside (0, 1], ``ema_decay`` outside [0, 1), negative
            or non-finite ``instance_noise``, ``r1_gamma``, ``d_warmup`` or ``recon_weight``,
            ``r1_every`` or ``recon_sigma`` not positive, ``recon_weight`` with
            ``arch="spatial"``, an
            unknown ``diffaugment`` policy (named), ``label_smoothing`` set to anything but its
            default or 1.0 with ``loss="hinge"`` (the hinge loss has no targets), and the checks
            of :class:`TrainConfig`.

    Example:
        >>> cfg = GANTrainConfig(data="data/celeba", out="runs/dcgan", train_range="1:8000",
        ...                      crop=54, ngf=32, ndf=32)
        >>> cfg.epochs, cfg.batch_size, cfg.lr, cfg.label_smoothing
        (25, 64, 0.0002, 0.9)
    """

    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-4
    arch: Literal["dcgan", "spatial"] = field(default="dcgan", metadata=flag(
        "dcgan: DCGANGenerator (square images of one size); spatial: SpatialGenerator with a "
        "PatchDiscriminator (fully convolutional, any image size)"))
    nz: int = field(default=100, metadata=flag(
        "latent dimension (spatial: channels of the latent map at 1/4 resolution)"))
    ngf: int = field(default=64, metadata=flag("generator width (spatial: full-resolution width)"))
    ndf: int = field(default=64, metadata=flag("discriminator width"))
    ema_decay: float = field(default=0.999, metadata=flag("generator EMA decay"))
    label_smoothing: float = field(default=0.9, metadata=flag(
        "target of real images for D (one-sided; 1.0 disables)"))
    instance_noise: float = field(default=0.0, metadata=flag(
        "initial std of the noise added to D's inputs (annealed to 0)"))
    instance_noise_steps: int | None = field(default=None, metadata=flag(
        "steps over which the instance noise decays linearly to 0 (default: epochs x steps per "
        "epoch)"))
    spectral_norm: bool = field(default=False, metadata=flag(
        "spectral normalisation in D (and no BatchNorm)"))
    loss: Literal["ns", "hinge"] = field(default="ns", metadata=flag(
        "ns: non-saturating loss (with --label-smoothing); hinge: D minimises "
        "mean relu(1 - D(x)) + mean relu(1 + D(G(z))), G minimises -mean D(G(z))"))
    diffaugment: str = field(default="", metadata=flag(
        "DiffAugment policies applied to real and fake images before D (both steps), "
        "comma-separated from color, translation, cutout; empty: off", metavar="POLICIES"))
    r1_gamma: float = field(default=0.0, metadata=flag(
        "R1 penalty weight gamma: D's loss gets gamma/2 E||grad_x D(x)||^2 on the real images "
        "as D sees them (0: off; not under torchrun)"))
    r1_every: int = field(default=1, metadata=flag(
        "apply R1 every N steps, its weight multiplied by N (lazy regularisation)"))
    init_from: str | None = field(default=None, metadata=flag(
        "start the generator (and its EMA) from this trained prior (a folder or name, e.g. "
        "celeba-dcgan-plain; same --arch network, --nz, --ngf and image size); the "
        "discriminator starts fresh", metavar="PATH"))
    d_warmup: int = field(default=0, metadata=flag(
        "train only the discriminator (and the --recon-weight encoder) for the first N steps; "
        "the generator's weights and its EMA stay as they are"))
    recon_weight: float = field(default=0.0, metadata=flag(
        "weight w of the VAE-GAN latent-recovery term: an encoder trained with G on "
        "w (||x - G(z)||^2 / (2 s^2) + KL(q(z|x) || N(0, I))) / pixels (0: off; --arch dcgan)"))
    recon_sigma: float = field(default=0.1, metadata=flag(
        "s of the latent-recovery term: the likelihood's std on [0, 1] images"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_flags(self, "nz", "ngf", "ndf")
        if not 0.0 < self.label_smoothing <= 1.0:
            raise ValueError(f"--label-smoothing must be in (0, 1], got {self.label_smoothing}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        check_at_least(self, 0, "instance_noise", "instance_noise_steps", "r1_gamma",
                       "d_warmup", "recon_weight")
        check_positive_flags(self, "r1_every", "recon_sigma")
        if self.recon_weight and self.arch != "dcgan":
            raise ValueError(f"--recon-weight needs --arch dcgan (its encoder is the DCGAN "
                             f"discriminator's network), got --arch {self.arch}")
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise ValueError(f"--diffaugment: {e}") from None
        default = GANTrainConfig.__dataclass_fields__["label_smoothing"].default
        if self.loss == "hinge" and self.label_smoothing not in (default, 1.0):
            raise ValueError(f"--label-smoothing {self.label_smoothing} applies to --loss ns "
                             f"only (the hinge loss has no targets); leave it at its default")


def build_gan(config: GANTrainConfig, img_shape: tuple[int, int, int]):
    """The generator and discriminator of ``config.arch`` for images of ``img_shape``,
    initialised from ``config.seed``: DCGAN's N(0, 0.02) weights for ``dcgan``, PyTorch's
    default initialisation for ``spatial`` (call it inside :meth:`TrainingRun.init`, which
    seeds it).

    Raises:
        ValueError: non-square images for ``dcgan``.
    """
    from genprior.priors.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_
    from genprior.priors.spatial_gan import PatchDiscriminator, SpatialGenerator

    nc, h, w = img_shape
    if config.arch == "spatial":
        return (SpatialGenerator(img_shape=img_shape, latent_channels=config.nz,
                                 base_channels=config.ngf),
                PatchDiscriminator(nc=nc, ndf=config.ndf, spectral_norm=config.spectral_norm))
    if h != w:
        raise ValueError(f"DCGAN needs square images, --data {config.data} gives {h}x{w}")
    init = make_generator(config.seed)
    return (dcgan_init_(DCGANGenerator(nz=config.nz, ngf=config.ngf, nc=nc, img_size=h),
                        generator=init),
            dcgan_init_(DCGANDiscriminator(ndf=config.ndf, nc=nc, img_size=h,
                                           spectral_norm=config.spectral_norm),
                        generator=init))


def build_encoder(config: GANTrainConfig, img_shape: tuple[int, int, int]):
    r"""The encoder of the latent-recovery term: the DCGAN discriminator's network (``ndf``
    wide) with ``2 nz`` outputs, the mean and log-variance of :math:`q(z \mid x)`, initialised
    from ``config.seed + 1`` (so that adding it leaves G and D as they were)."""
    from genprior.priors.dcgan import DCGANDiscriminator, dcgan_init_

    nc, h, _ = img_shape
    return dcgan_init_(DCGANDiscriminator(ndf=config.ndf, nc=nc, img_size=h,
                                          out_features=2 * config.nz),
                       generator=make_generator(config.seed + 1))


def latent_recovery_loss(E: nn.Module, G: nn.Module, x: Tensor, *, sigma: float,
                         generator: torch.Generator | None = None
                         ) -> tuple[Tensor, dict[str, float]]:
    r"""The unweighted latent-recovery term of ``--recon-weight``: the negative ELBO of
    :math:`x` under :math:`G` with Gaussian likelihood of std ``sigma``, per pixel,

    .. math::
        \frac1P \Big( \frac{\|x - G(z)\|^2}{2\sigma^2}
        + \mathrm{KL}\big(\mathcal N(\mu, e^{\mathrm{logvar}}) \,\|\, \mathcal N(0, I)\big) \Big),
        \qquad z = \mu + e^{\mathrm{logvar}/2} \varepsilon,

    averaged over the batch (without the constant of the likelihood), with
    :math:`(\mu, \mathrm{logvar})` the two halves of :math:`E(x)`.

    Args:
        E: the encoder, ``2 nz`` outputs per image.
        G: the generator (its ``forward`` maps ``(B, nz)`` latents to images in [0, 1]).
        x: training images.
        sigma: the likelihood's std on [0, 1].
        generator: draws :math:`\varepsilon`.

    Returns:
        the term, and its log: ``recon`` (mean squared error per pixel) and ``kl`` (per image).

    Shape:
        - x: ``(B, C, H, W)`` in [0, 1]
        - output: a scalar
    """
    mu, logvar = E(x).to(x.dtype).chunk(2, dim=1)
    z = reparameterize(mu, logvar, generator=generator)
    sq = (G(z) - x).pow(2).reshape(x.shape[0], -1).sum(1)
    kl = gaussian_kl(mu, logvar)
    n_pixels = x[0].numel()
    term = (sq / (2 * sigma ** 2) + kl).mean() / n_pixels
    return term, {"recon": float(sq.detach().mean()) / n_pixels, "kl": float(kl.detach().mean())}


def train_gan(config: GANTrainConfig) -> TrainResult:
    r"""Train a GAN (non-saturating or hinge loss, generator EMA), as ``genprior train gan``
    does.

    ``out/final`` holds the EMA generator, ``out/final-raw`` the raw one; besides the errors of
    :class:`TrainingRun`, non-square images are refused for ``arch="dcgan"``, and ``r1_gamma``
    under ``torchrun`` (DDP does not support the double backward of R1).

    ``log.csv`` has the columns ``loss_d`` (without R1), ``loss_g``, ``d_real``, ``d_fake`` (mean
    sigmoid of D's logits) and ``sigma`` (instance noise), plus ``r1`` (the unweighted
    :math:`\mathbb E\|\nabla_x D(x)\|^2`, 0 on the steps that lazy regularisation skips) when
    ``r1_gamma > 0``, and ``recon`` (the per-pixel squared error of :math:`G(z)`,
    :math:`z \sim q(z \mid x)`, on [0, 1]) and ``kl`` (per image) when ``recon_weight > 0``;
    ``loss_g`` is the adversarial term alone. The encoder is saved in the checkpoint only.

    Returns:
        ``model``: the EMA generator of ``out/final``.
    """
    with TrainingRun(config) as run:
        x = run.images()
        G, D = run.init(lambda: build_gan(config, tuple(x.shape[1:])))
        if config.init_from is not None:
            run.init_from("--init-from", config.init_from, G, type(G))
        ema = EMA(G, config.ema_decay)
        G_train, D_train = run.wrap(G), run.wrap(D)
        opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(0.5, 0.999))
        modules = {"G": G, "D": D, "G_ema": ema.module}
        optimizers = {"G": opt_g, "D": opt_d}
        if config.recon_weight:
            E = run.init(lambda: build_encoder(config, tuple(x.shape[1:])))
            E_train = run.wrap(E)
            opt_e = torch.optim.Adam(E.parameters(), lr=config.lr, betas=(0.5, 0.999))
            modules["E"], optimizers["E"] = E, opt_e
        precision, noise = run.precision, run.noise
        z_fixed = G.sample_latent(64, generator=make_generator(config.seed))
        run.make_loader(x)
        anneal = config.instance_noise_steps or config.epochs * run.steps_per_epoch
        policy = parse_policy(config.diffaugment)
        r1_weight = config.r1_gamma / 2 * config.r1_every
        if r1_weight and run.ctx.dist.distributed:
            raise ValueError("--r1-gamma is not supported under torchrun: DDP does not support "
                             "the double backward of the R1 penalty; train in one process")
        if config.loss == "hinge":
            d_loss, g_loss = hinge_discriminator_loss, hinge_generator_loss
        else:
            d_loss = functools.partial(discriminator_loss, real_target=config.label_smoothing)
            g_loss = generator_loss

        def seen(x: Tensor, sigma: float) -> Tensor:
            """``x`` as D sees it: augmented (fresh draws per call), then instance noise."""
            x = diff_augment(x, policy, generator=noise)
            return add_instance_noise(x, sigma, generator=noise)

        def step(x: Tensor, state: TrainState) -> dict[str, float]:
            G.train()
            D.train()
            warmup = state.step < config.d_warmup
            sigma = instance_noise_std(state.step, start=config.instance_noise,
                                       anneal_steps=anneal)
            z = randn((x.shape[0], *G.latent_shape), generator=noise, device=x.device,
                      dtype=x.dtype)
            with precision.autocast():
                with torch.set_grad_enabled(not warmup):
                    fake = G_train(z)
                real_in = seen(x, sigma)
                real_logits = D_train(real_in)
                fake_logits = D_train(seen(fake.detach(), sigma))
                loss_d = d_loss(real_logits, fake_logits)
            r1 = None
            if r1_weight and state.step % config.r1_every == 0:
                r1 = r1_penalty(D, real_in)  # in fp32, outside autocast
            precision.step(loss_d if r1 is None else loss_d + r1_weight * r1, opt_d)
            with precision.autocast(), torch.set_grad_enabled(not warmup):
                loss_g = g_loss(D_train(seen(fake, sigma)))
            extra: dict[str, float] = {}
            if config.recon_weight:
                with precision.autocast():
                    term, extra = latent_recovery_loss(E_train, G_train, x,
                                                       sigma=config.recon_sigma, generator=noise)
                term = config.recon_weight * term
                if warmup:  # G's gradients are cleared before its first step
                    precision.step(term, opt_e)
                else:
                    precision.step(loss_g + term, opt_g, opt_e)
            elif not warmup:
                precision.step(loss_g, opt_g)
            if not warmup:
                ema.update(G)
            logs = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                    "d_real": float(torch.sigmoid(real_logits.detach().float()).mean()),
                    "d_fake": float(torch.sigmoid(fake_logits.detach().float()).mean()),
                    "sigma": sigma}
            if r1_weight:
                logs["r1"] = 0.0 if r1 is None else float(r1.detach())
            return {**logs, **extra}

        @torch.no_grad()
        def sample() -> Tensor:
            return ema.module.eval().decode(z_fixed)

        # the limited-data options enter the checkpoint's config and config.json only when on,
        # so that runs without them keep their records (and resume old checkpoints)
        recipe = _recipe_record(config, policy)
        label_smoothing = config.label_smoothing if config.loss == "ns" else None
        state = run.fit(step, modules=modules, optimizers=optimizers,
                        config={"kind": "gan", "arch": config.arch, "generator": G.config,
                                "discriminator": D.config, "ema_decay": config.ema_decay,
                                "label_smoothing": label_smoothing,
                                "instance_noise": config.instance_noise,
                                "instance_noise_steps": anneal, **recipe},
                        loss_names=["loss_d", "loss_g", "d_real", "d_fake", "sigma",
                                    *(["r1"] if r1_weight else []),
                                    *(["recon", "kl"] if config.recon_weight else [])],
                        sample_fn=sample)
        return run.save(state, {"final": ema.module, "final-raw": G}, what=" (EMA generator)",
                        ema_decay=config.ema_decay, label_smoothing=label_smoothing,
                        instance_noise=config.instance_noise,
                        spectral_norm=config.spectral_norm, ndf=config.ndf, **recipe)


def _recipe_record(config: GANTrainConfig, policy: tuple[str, ...]) -> dict[str, object]:
    """The limited-data settings that differ from their defaults, for the run's records."""
    out: dict[str, object] = {}
    if config.loss != "ns":
        out["loss"] = config.loss
    if policy:
        out["diffaugment"] = ",".join(policy)
    if config.r1_gamma:
        out["r1_gamma"], out["r1_every"] = config.r1_gamma, config.r1_every
    if config.init_from is not None:
        out["init_from"] = config.init_from
    if config.d_warmup:
        out["d_warmup"] = config.d_warmup
    if config.recon_weight:
        out["recon_weight"], out["recon_sigma"] = config.recon_weight, config.recon_sigma
    return out


add_arguments, main = deprecated_entry_points(GANTrainConfig, train_gan, __name__)
