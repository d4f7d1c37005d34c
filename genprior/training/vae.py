"""Train a VAE prior by maximising the ELBO: ``genprior train vae --arch mlp|conv --data PATH``.

``mlp`` is the CSGM MNIST VAE (:class:`~genprior.priors.vae_mlp.MLPVAE`, Adam 1e-3, batch 100 as
in the reference); ``conv`` is :class:`~genprior.priors.conv_vae.ConvVAE` for 64x64 faces. The
run folder gets ``log.csv`` (minus ELBO per image), ``samples.png`` (decoded prior draws),
``checkpoint.safetensors`` and, at the end, ``final/`` (``save_pretrained``).

Example:
    genprior train vae --arch mlp --data ../shared/data/mnist --out runs/mnist-vae --epochs 20
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from genprior._flags import flag
from genprior._random import make_generator
from genprior.priors.base import Prior
from genprior.training.config import TrainConfig, check_positive_flags, deprecated_entry_points
from genprior.training.loop import TrainState
from genprior.training.run import TrainingRun, TrainResult

HELP = "train a VAE prior (MLP for MNIST, convolutional for faces) by maximising the ELBO"

__all__ = ["HELP", "VAETrainConfig", "add_arguments", "build_vae", "main", "train_vae"]


@dataclass(kw_only=True)
class VAETrainConfig(TrainConfig):
    """What :func:`train_vae` trains: the architecture (``arch``) and its sizes, on top of the
    :class:`TrainConfig` fields, whose defaults here are the CSGM MNIST VAE's (100 epochs of
    batches of 100, Adam 1e-3).

    Example:
        >>> cfg = VAETrainConfig(data="data/mnist", out="runs/mnist-vae", epochs=20)
        >>> cfg.arch, cfg.batch_size, cfg.lr
        ('mlp', 100, 0.001)
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    arch: Literal["mlp", "conv", "spatial"] = field(default="mlp", metadata=flag(
        "mlp: MLPVAE (CSGM MNIST); conv: ConvVAE (64x64 faces); spatial: SpatialVAE (fully "
        "convolutional, any image size)"))
    latent_dim: int | None = field(default=None, metadata=flag(
        "latent size (default 20 for mlp, 128 for conv); for spatial the latent channels "
        "(default 4)"))
    hidden: int = field(default=500, metadata=flag("mlp: hidden width"))
    base_channels: int = field(default=32, metadata=flag("conv, spatial: first conv width"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_flags(self, "latent_dim", "hidden", "base_channels")


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
    if arch == "spatial":
        from genprior.priors.spatial_vae import SpatialVAE

        return SpatialVAE(img_shape=img_shape, latent_channels=latent_dim or 4,
                          base_channels=base_channels)
    raise ValueError(f"--arch must be mlp, conv or spatial, got {arch!r}")


class _NegativeELBO(nn.Module):
    """``forward`` = the VAE's loss, so that DDP sees (and synchronises) the whole step."""

    def __init__(self, vae: Prior) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self.vae.loss(x, generator=generator)


def train_vae(config: VAETrainConfig) -> TrainResult:
    """Train a VAE by maximising the ELBO with Adam, as ``genprior train vae`` does.

    The run folder ``config.out`` gets ``log.csv`` (minus ELBO per image), ``samples.png``,
    ``checkpoint.safetensors`` and ``final/``; errors are those of :class:`TrainingRun`.

    Returns:
        ``model``: the VAE of ``out/final``.

    Example:
        >>> result = train_vae(VAETrainConfig(data="data/mnist", out="runs/vae", epochs=1,
        ...                                   hidden=16, latent_dim=4))  # doctest: +SKIP
        >>> result.model.sample(8).shape  # doctest: +SKIP
        torch.Size([8, 1, 28, 28])
    """
    with TrainingRun(config) as run:
        x = run.images()
        vae = run.init(lambda: build_vae(config.arch, tuple(x.shape[1:]),
                                         latent_dim=config.latent_dim, hidden=config.hidden,
                                         base_channels=config.base_channels))
        objective = run.wrap(_NegativeELBO(vae))
        optimizer = torch.optim.Adam(vae.parameters(), lr=config.lr)
        z_fixed = vae.sample_latent(64, generator=make_generator(config.seed))

        def step(x: Tensor, state: TrainState) -> dict[str, float]:
            vae.train()
            with run.precision.autocast():
                loss = objective(x, run.noise)
            run.precision.step(loss, optimizer)
            return {"neg_elbo": float(loss.detach())}

        @torch.no_grad()
        def sample() -> Tensor:
            vae.eval()
            return vae.decode(z_fixed)

        run.make_loader(x)
        state = run.fit(step, modules={"vae": vae}, optimizers={"adam": optimizer},
                        config={"kind": "vae", "arch": config.arch, "class": type(vae).__name__,
                                "model": vae.config},
                        loss_names=["neg_elbo"], sample_fn=sample)
        return run.save(state, {"final": vae})


add_arguments, main = deprecated_entry_points(VAETrainConfig, train_vae, __name__)
