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

The paper's two other amortised-MAP variants replace the discriminator by a frozen density
model of high-resolution images; the generator minimises :math:`-\log p(x)` of its outputs, per
image entry (:math:`n = CHW`), batch mean:

- ``--loss affdg --denoiser PATH`` (AffDG): :math:`\nabla_x \log p` is the score of a Gaussian
  denoiser :math:`D_\sigma` (:class:`~genprior.priors.denoiser.Denoiser`, trained by
  ``genprior train denoiser`` on the second half of the images),
  :math:`s(x) = (D_\sigma(x) - x) / \sigma^2` (Tweedie). The loss is the surrogate
  :func:`affdg_loss`, :math:`-\frac{1}{Bn} \sum_b \langle x_b, \mathrm{sg}[s(x_b)]\rangle`, whose
  gradient in each output is :math:`-s(x_b) / (B n)`: that of
  :math:`-\frac{1}{Bn}\sum_b \log p_\sigma(x_b)`. Its value means nothing; ``log.csv`` has
  ``score_rms``, :math:`\sqrt{\mathrm{mean}\, s^2}`, instead.
- ``--loss affll --density PATH`` (AffLL): :math:`\log p(x)` is bounded below by the ELBO of a
  genprior VAE (``celeba-vae``); the loss is :func:`affll_loss`,
  :math:`-\frac{1}{Bn}\sum_b \mathrm{ELBO}(x_b)` (``neg_elbo`` in ``log.csv``, nats per entry),
  the encoder's draw taken from the run's noise generator.

Both are unpaired: the low-resolution inputs come from the first half of the images, as for
AffGAN; the second half is left to the density model (a denoiser from ``genprior train
denoiser`` with the same ``--data`` and ``--train-range`` saw only that half; ``celeba-vae``
saw ids 1..8000 in the crop-54 framing, so with it the run is unpaired only for inputs outside
them, and ``--crop 54`` matches its framing). The density model is frozen (eval mode, no
gradient to its weights) and recorded by its path.

Options, all off by default (with none of them a run is exactly what it was before they
existed):

- ``--loss gan`` only: ``--gan-loss hinge``
  (:func:`~genprior.training.adversarial.hinge_discriminator_loss` and
  :func:`~genprior.training.adversarial.hinge_generator_loss` instead of the non-saturating
  loss), ``--spectral-norm`` (spectral normalisation of every layer of the discriminator),
  ``--r1-gamma G --r1-every K`` (lazy R1, :math:`\frac{G K}{2}\, \mathbb E \|\nabla_x D(x)\|^2` on
  the real images as D sees them, added to D's loss every ``K`` steps;
  :func:`~genprior.training.adversarial.r1_penalty`) and ``--diffaugment POLICIES``
  (:func:`~genprior.training.augment.diff_augment` of the real and of the generated images
  every time D sees them, before the instance noise).
- every loss: ``--diversity-weight W --diversity-tau T`` (diversity-sensitive term; Yang et al.
  2019, Mao et al. 2019): each low-resolution input gets two noises :math:`\epsilon_1,
  \epsilon_2` and the generator's loss gets :math:`-W` times :func:`diversity_term`, the batch
  mean of :math:`\min(\mathrm{mean}|G(y, \epsilon_1) - G(y, \epsilon_2)| /
  \mathrm{mean}|\epsilon_1 - \epsilon_2|,\, T)` (``diversity`` in ``log.csv``).
- every loss: ``--init-from PATH`` starts the generator and its EMA from the network weights of
  a trained super-resolution model of the same network (a discriminator, when there is one,
  starts fresh). Starting from ``celeba-sr4-mse`` makes the run no longer unpaired: that
  model was trained on (y, x) pairs. ``--loss gan`` only: ``--d-warmup N`` trains only the
  discriminator for the first ``N`` steps (the generator, its optimiser and its EMA stay as
  they are; ``g_loss`` is still logged), so that a fresh discriminator has learnt something
  before the generator follows it.

Every random draw (data for D, noise inputs, instance noise, augmentations, the ELBO's draw)
comes from the run's checkpointed noise generator, so ``--resume`` stays exact; the options
that are on enter the checkpoint's and ``final/config.json``'s records, so a checkpoint is
resumed only with the same options.

The run folder gets ``log.csv``, ``samples.png`` (rows: :math:`A^\dagger y`, two outputs with
different noise, the truth), ``checkpoint.safetensors`` and, at the end, ``final/``
(``save_pretrained`` of the EMA weights, loadable with ``genprior.load_prior``).

Example:
    genprior train affgan --data ../shared/data/celeba --train-range 1:8000 \
        --out runs/celeba-sr4-affgan --max-steps 3000 --threads 1
    genprior train affgan --loss affll --density celeba-vae --data ../shared/data/celeba \
        --train-range 1:8000 --crop 54 --out runs/celeba-sr4-affll --diversity-weight 1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._random import make_generator
from genprior.priors.conditional import ConditionalSR, SRDiscriminator, init_weights_
from genprior.priors.denoiser import Denoiser
from genprior.priors.hub import load_prior
from genprior.priors.vae_mlp import VAEPrior
from genprior.training.adversarial import (
    add_instance_noise,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    instance_noise_std,
    r1_penalty,
)
from genprior.training.affgan_config import AffGANTrainConfig
from genprior.training.augment import diff_augment, parse_policy
from genprior.training.config import (
    deprecated_entry_points,
)
from genprior.training.ema import EMA
from genprior.training.loop import TrainState
from genprior.training.run import TrainingRun, TrainResult
from genprior.training.sr_objectives import affdg_loss, affll_loss, diversity_term

__all__ = ["HELP", "AffGANTrainConfig", "add_arguments", "instance_noise_std", "main",
           "split_unpaired", "train_affgan"]

#: the one-line description of ``genprior train affgan``
HELP = ("train a range-constrained super-resolution network (AffGAN; or AffMSE, AffDG, AffLL "
        "with --loss)")


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


def _ns_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The non-saturating D loss in the softplus form AffGAN always used (bit for bit; the
    BCE of :func:`~genprior.training.adversarial.discriminator_loss` rounds differently)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _discriminator(config: AffGANTrainConfig, img_shape: tuple[int, int, int]) -> SRDiscriminator:
    disc = SRDiscriminator(channels=img_shape[0], img_size=img_shape[1], width=config.d_width,
                           spectral_norm=config.spectral_norm)
    init_weights_(disc, generator=make_generator(config.seed + 1))
    return disc


def _frozen(run: TrainingRun, flag_name: str, path: str, kind: type,
            img_shape: tuple[int, ...]) -> torch.nn.Module:
    """The model of ``--flag_name path`` on the run's device, checked to be a ``kind`` of
    ``img_shape`` images, in eval mode without gradients to its weights. Loaded by
    :meth:`TrainingRun.init`, so that building it leaves the global RNG (checkpointed) alone."""
    model = run.init(lambda: load_prior(path))
    if not isinstance(model, kind):
        raise TypeError(f"--{flag_name} {path} holds a {type(model).__name__}, not a "
                         f"{kind.__name__}")
    if tuple(model.img_shape) != tuple(img_shape):
        raise ValueError(f"--{flag_name} {path} models images of shape "
                         f"{tuple(model.img_shape)}, but the super-resolution outputs have shape "
                         f"{tuple(img_shape)}")
    return model.eval().requires_grad_(False)


def _record(config: AffGANTrainConfig, policy: tuple[str, ...]) -> dict[str, object]:
    """The options that differ from their defaults, for the run's records (so that runs
    without them keep theirs, and resume their old checkpoints)."""
    out: dict[str, object] = {}
    if config.gan_loss != "ns":
        out["gan_loss"] = config.gan_loss
    if config.spectral_norm:
        out["spectral_norm"] = True
    if policy:
        out["diffaugment"] = ",".join(policy)
    if config.r1_gamma:
        out["r1_gamma"], out["r1_every"] = config.r1_gamma, config.r1_every
    if config.diversity_weight:
        out["diversity_weight"] = config.diversity_weight
        out["diversity_tau"] = config.diversity_tau
    if config.d_warmup:
        out["d_warmup"] = config.d_warmup
    for name in ("denoiser", "density", "init_from"):
        if getattr(config, name) is not None:
            out[name] = str(getattr(config, name))
    return out


_SPLITS = {"gan": "first half -> y, second half -> discriminator", "mse": "paired",
           "affdg": "first half -> y, second half -> the denoiser's training",
           "affll": "first half -> y, second half unused"}


def train_affgan(config: AffGANTrainConfig) -> TrainResult:
    """Train a range-constrained super-resolution network (AffGAN; AffMSE, AffDG or AffLL
    with ``loss``), as ``genprior train affgan`` does.

    Besides the errors of :class:`TrainingRun`, these are refused: a ``denoiser`` that is not
    a :class:`~genprior.priors.denoiser.Denoiser` or a ``density`` that is not a
    :class:`~genprior.priors.vae_mlp.VAEPrior` (``TypeError``), either of another image shape
    than the training images, and ``r1_gamma`` under ``torchrun`` (DDP does not support the
    double backward of R1) (``ValueError``).

    ``log.csv`` has ``d_loss``, ``g_loss``, ``d_real``, ``d_fake`` (mean sigmoid of D's logits)
    and ``instance_noise`` (AffGAN; plus ``r1``, unweighted and 0 on the steps lazy R1 skips,
    when ``r1_gamma > 0``), ``mse`` (AffMSE), ``score_rms`` (AffDG) or ``neg_elbo`` (AffLL),
    plus ``diversity`` (the unweighted :func:`diversity_term`) when ``diversity_weight > 0``.

    Returns:
        ``model``: the EMA weights of ``out/final`` (a :class:`ConditionalSR`).
    """
    gan = config.loss == "gan"
    policy = parse_policy(config.diffaugment)
    diverse = config.diversity_weight > 0
    r1_weight = config.r1_gamma / 2 * config.r1_every
    with TrainingRun(config) as run:
        data = run.images()
        if config.loss == "mse":
            x_lr_half, hr_pool = data, None
        else:
            x_lr_half, x_hr_half = split_unpaired(data)
            hr_pool = x_hr_half.to(run.device) if gan else None
        img_shape = tuple(data.shape[1:])
        if r1_weight and run.ctx.dist.distributed:
            raise ValueError("--r1-gamma is not supported under torchrun: DDP does not support "
                             "the double backward of the R1 penalty; train in one process")
        if config.loss == "affdg":
            denoiser = _frozen(run, "denoiser", config.denoiser, Denoiser, img_shape)
        elif config.loss == "affll":
            density = _frozen(run, "density", config.density, VAEPrior, img_shape)
        model = run.init(lambda: _sr_model(config, img_shape))
        if config.init_from is not None:
            run.init_from("--init-from", config.init_from, model, ConditionalSR)
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
            if config.gan_loss == "hinge":
                d_objective, g_objective = hinge_discriminator_loss, hinge_generator_loss
            else:
                d_objective, g_objective = _ns_discriminator_loss, generator_loss
        precision, noise = run.precision, run.noise
        A = model.operator
        total = run.make_loader(x_lr_half)
        anneal = config.anneal_steps if config.anneal_steps is not None else total

        def seen(x: Tensor, sigma: float) -> Tensor:
            """``x`` as D sees it: augmented (fresh draws per call), then instance noise."""
            x = diff_augment(x, policy, generator=noise)
            return add_instance_noise(x, sigma, generator=noise)

        def draw(y: Tensor) -> tuple[Tensor, Tensor | None]:
            """The noise input of each ``y``, and a second one with the diversity term."""
            eps = model.sample_latent(y.shape[0], generator=noise)
            return eps, model.sample_latent(y.shape[0], generator=noise) if diverse else None

        def outputs(y: Tensor, eps: Tensor, eps2: Tensor | None) -> tuple[Tensor, Tensor | None]:
            """``G(y, eps)`` and ``G(y, eps2)``, in one forward pass (one for DDP)."""
            if eps2 is None:
                return generator(y, eps), None
            both = generator(torch.cat([y, y]), torch.cat([eps, eps2]))
            return both[:y.shape[0]], both[y.shape[0]:]

        def with_diversity(loss: Tensor, x_fake: Tensor, x_fake2: Tensor | None, eps: Tensor,
                           eps2: Tensor | None) -> tuple[Tensor, dict[str, float]]:
            """``loss`` minus the weighted diversity term when it is on, and its log."""
            if x_fake2 is None:
                return loss, {}
            term = diversity_term(x_fake, x_fake2, eps, eps2, tau=config.diversity_tau)
            return loss - config.diversity_weight * term, {"diversity": float(term.detach())}

        def gan_step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            b = x.shape[0]
            with torch.no_grad():
                y = A.A(x)
            idx = torch.randint(hr_pool.shape[0], (b,), generator=noise).to(run.device)
            x_real = hr_pool[idx]
            eps, eps2 = draw(y)
            sigma = instance_noise_std(state.step, start=config.instance_noise,
                                       anneal_steps=anneal)
            warmup = state.step < config.d_warmup
            with precision.autocast():
                with torch.set_grad_enabled(not warmup):
                    x_fake, x_fake2 = outputs(y, eps, eps2)
                real_in = seen(x_real, sigma)
                logits = critic(torch.cat([real_in, seen(x_fake.detach(), sigma)]))
                d_loss = d_objective(logits[:b], logits[b:])
            r1 = None
            if r1_weight and state.step % config.r1_every == 0:
                r1 = r1_penalty(disc, real_in)  # in fp32, outside autocast
            precision.step(d_loss if r1 is None else d_loss + r1_weight * r1, opt_d)
            with precision.autocast(), torch.set_grad_enabled(not warmup):
                g_loss = g_objective(critic(seen(x_fake, sigma)))
                loss, extra = with_diversity(g_loss, x_fake, x_fake2, eps, eps2)
            if not warmup:
                precision.step(loss, opt_g)
                ema.update(model)
            d = torch.sigmoid(logits.detach().float())
            logs = {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
                    "d_real": float(d[:b].mean()), "d_fake": float(d[b:].mean()),
                    "instance_noise": sigma}
            if r1_weight:
                logs["r1"] = 0.0 if r1 is None else float(r1.detach())
            return {**logs, **extra}

        def objective(x_fake: Tensor, x: Tensor) -> tuple[Tensor, dict[str, float]]:
            """The generator's loss without a discriminator, and what ``log.csv`` gets."""
            if config.loss == "mse":
                loss = F.mse_loss(x_fake, x)
                return loss, {"mse": float(loss.detach())}
            if config.loss == "affll":
                loss = affll_loss(density, x_fake, generator=noise)
                return loss, {"neg_elbo": float(loss.detach())}
            with torch.no_grad():
                score = denoiser.score(x_fake.detach())
            return affdg_loss(x_fake, score), {"score_rms": float(score.pow(2).mean().sqrt())}

        def direct_step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            with torch.no_grad():
                y = A.A(x)
            eps, eps2 = draw(y)
            with precision.autocast():
                x_fake, x_fake2 = outputs(y, eps, eps2)
                loss, logs = objective(x_fake.float(), x)
                loss, extra = with_diversity(loss, x_fake, x_fake2, eps, eps2)
            precision.step(loss, opt_g)
            ema.update(model)
            return {**logs, **extra}

        x_show = x_lr_half[:8].to(run.device)
        y_show = A.A(x_show)

        @torch.no_grad()
        def sample() -> Tensor:
            g = make_generator(config.seed)
            outs = ema.module.eval().sample(y_show, 2, generator=g)
            return torch.cat([A.A_dagger(y_show), outs[0], outs[1], x_show]).clamp(0, 1)

        shared = {"lr_d": config.lr_d, "instance_noise": config.instance_noise,
                  "anneal_steps": anneal, "ema_decay": config.ema_decay,
                  **_record(config, policy)}
        loss_names = {"gan": ["d_loss", "g_loss", "d_real", "d_fake", "instance_noise",
                              *(["r1"] if r1_weight else [])],
                      "mse": ["mse"], "affdg": ["score_rms"], "affll": ["neg_elbo"]}
        state = run.fit(gan_step if gan else direct_step, modules=modules,
                        optimizers=optimizers,
                        config={"kind": "affgan", "loss": config.loss, "model": model.config,
                                "d_width": config.d_width if gan else None,
                                "train_range": config.train_range, **shared},
                        loss_names=[*loss_names[config.loss],
                                    *(["diversity"] if diverse else [])],
                        sample_fn=sample)
        return run.save(state, {"final": ema.module}, loss=config.loss,
                        unpaired_split=_SPLITS[config.loss], **shared)


add_arguments, main = deprecated_entry_points(AffGANTrainConfig, train_affgan, __name__)
