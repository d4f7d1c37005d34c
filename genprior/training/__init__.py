"""Training as a typed API: one config dataclass and one function per kind of model.

    >>> from genprior.training import VAETrainConfig, train_vae
    >>> result = train_vae(VAETrainConfig(data="data/mnist", out="runs/vae",
    ...                                   epochs=1))  # doctest: +SKIP

``genprior train KIND`` builds the same config from its flags. The pieces: :mod:`.config` (the
shared settings), :mod:`.run` (the set-up every trainer shares), :mod:`.loop` (the resumable step
loop), :mod:`.run_folder` (refuse, resume or overwrite a run folder), :mod:`.checkpoint`,
:mod:`.distributed`, :mod:`.ema`, :mod:`.precision`, :mod:`.logging`; the losses:
:mod:`.adversarial`, :mod:`.augment` (DiffAugment), :mod:`.sr_objectives` (AffDG, AffLL,
diversity).
"""

from genprior.training.affgan import AffGANTrainConfig, train_affgan
from genprior.training.config import TrainConfig
from genprior.training.denoiser import DenoiserTrainConfig, train_denoiser
from genprior.training.gan import GANTrainConfig, train_gan
from genprior.training.loop import NonFiniteError, TrainState, fit
from genprior.training.run import TrainingRun, TrainResult
from genprior.training.vae import VAETrainConfig, train_vae

__all__ = [
    "AffGANTrainConfig",
    "DenoiserTrainConfig",
    "GANTrainConfig",
    "NonFiniteError",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingRun",
    "VAETrainConfig",
    "fit",
    "train_affgan",
    "train_denoiser",
    "train_gan",
    "train_vae",
]
