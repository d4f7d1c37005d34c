r"""Train a Gaussian denoiser: ``genprior train denoiser --data PATH --sigma S``.

The :class:`~genprior.priors.denoiser.Denoiser` :math:`D_\sigma` minimises
:math:`\mathbb E\, \|D_\sigma(x + \sigma n) - x\|^2` (mean over entries),
:math:`n \sim \mathcal N(0, I)` drawn from the run's checkpointed noise generator, with Adam; its
weights are averaged (EMA) and ``final/`` holds the average. AffDG
(``genprior train affgan --loss affdg --denoiser RUN/final``) follows its score
:math:`(D_\sigma(x) - x) / \sigma^2`.

It trains on the *second* half of the training images (file order,
:func:`~genprior.training.affgan.split_unpaired`), the half an AffGAN discriminator sees, so
that with the same ``--data`` and ``--train-range`` the denoiser never sees the images whose
low-resolution versions AffDG super-resolves.

The run folder gets ``log.csv`` (``mse``), ``samples.png`` (rows: noisy, denoised, clean),
``checkpoint.safetensors`` and, at the end, ``final/`` (loadable with ``genprior.load_prior``).

Example:
    genprior train denoiser --data ../shared/data/celeba --train-range 1:8000 --sigma 0.1 \
        --out runs/celeba-denoiser --max-steps 3000 --threads 1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._flags import flag
from genprior._random import make_generator
from genprior.priors.denoiser import Denoiser
from genprior.training.adversarial import add_instance_noise
from genprior.training.affgan import split_unpaired
from genprior.training.config import TrainConfig, check_at_least, check_positive_flags
from genprior.training.ema import EMA
from genprior.training.loop import TrainState
from genprior.training.run import TrainingRun, TrainResult

__all__ = ["HELP", "DenoiserTrainConfig", "train_denoiser"]

#: the one-line description of ``genprior train denoiser``
HELP = "train a Gaussian denoiser (the score model of AffDG) on the second half of the images"


@dataclass(kw_only=True)
class DenoiserTrainConfig(TrainConfig):
    """What :func:`train_denoiser` trains: the noise std and the denoiser's sizes, on top of the
    :class:`TrainConfig` fields (defaults here: 100 epochs of batches of 32, Adam 1e-3).

    Raises:
        ValueError: non-positive or non-finite ``sigma`` or ``width``, negative ``n_blocks``,
            ``ema_decay`` outside [0, 1) (and the checks of :class:`TrainConfig`).

    Example:
        >>> cfg = DenoiserTrainConfig(data="data/celeba", out="runs/den", sigma=0.2)
        >>> cfg.sigma, cfg.width, cfg.n_blocks
        (0.2, 32, 4)
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    sigma: float = field(default=0.1, metadata=flag(
        "std of the Gaussian noise it removes (images in [0, 1])"))
    width: int = field(default=32, metadata=flag("channels of the body"))
    n_blocks: int = field(default=4, metadata=flag("residual blocks"))
    ema_decay: float = field(default=0.999, metadata=flag(
        "EMA of the weights; final/ holds the EMA weights"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_flags(self, "sigma", "width")
        check_at_least(self, 0, "n_blocks")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")


def train_denoiser(config: DenoiserTrainConfig) -> TrainResult:
    """Train a :class:`~genprior.priors.denoiser.Denoiser` by MSE on the second half of the
    training images, as ``genprior train denoiser`` does; errors are those of
    :class:`TrainingRun` and :func:`~genprior.training.affgan.split_unpaired`.

    Returns:
        ``model``: the EMA weights of ``out/final``.
    """
    with TrainingRun(config) as run:
        _, x_half = split_unpaired(run.images())
        img_shape = tuple(x_half.shape[1:])

        def build() -> Denoiser:
            model = Denoiser(img_size=img_shape, width=config.width, n_blocks=config.n_blocks,
                             sigma=config.sigma)
            model.reset_parameters(generator=make_generator(config.seed))
            return model

        model = run.init(build)
        ema = EMA(model, decay=config.ema_decay)
        net = run.wrap(model)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        precision, noise = run.precision, run.noise

        def step(x: Tensor, state: TrainState) -> dict[str, float]:
            model.train()
            y = add_instance_noise(x, config.sigma, generator=noise)
            eps = model.sample_latent(x.shape[0], generator=noise)  # empty: draws nothing
            with precision.autocast():
                loss = F.mse_loss(net(y, eps).float(), x)
            precision.step(loss, opt)
            ema.update(model)
            return {"mse": float(loss.detach())}

        x_show = x_half[:8].to(run.device)
        y_show = add_instance_noise(x_show, config.sigma, generator=make_generator(config.seed))

        @torch.no_grad()
        def sample() -> Tensor:
            return torch.cat([y_show, ema.module.eval().denoise(y_show), x_show]).clamp(0, 1)

        run.make_loader(x_half)
        state = run.fit(step, modules={"model": model, "ema": ema}, optimizers={"adam": opt},
                        config={"kind": "denoiser", "model": model.config,
                                "ema_decay": config.ema_decay,
                                "train_range": config.train_range},
                        loss_names=["mse"], sample_fn=sample)
        return run.save(state, {"final": ema.module}, ema_decay=config.ema_decay,
                        split="second half of the images (the AffGAN discriminator's)")
