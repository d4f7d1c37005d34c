"""Generative priors: one interface (:class:`Prior`) for VAE decoders, GAN generators and
diffusers autoencoders, and one (:class:`ConditionalPrior`) for the conditional
super-resolution generators; both are saved and loaded the same way (:func:`load_prior`)."""

from genprior.priors import (  # noqa: F401  (registers classes)
    autoencoder_kl,
    blend,
    conditional,
    conv_vae,
    dcgan,
    denoiser,
    linear,
    spatial_gan,
    spatial_vae,
    vae_mlp,
)
from genprior.priors.base import PRIORS, PretrainedMixin, Prior, register_prior
from genprior.priors.blend import ConditionalBlend
from genprior.priors.conditional_base import (
    CONDITIONAL_PRIORS,
    ConditionalPrior,
    register_conditional_prior,
)
from genprior.priors.hub import (
    HUB_PREFIX,
    available_priors,
    hub_cache_dir,
    load_prior,
    pretrained_dir,
)

__all__ = [
    "CONDITIONAL_PRIORS",
    "HUB_PREFIX",
    "PRIORS",
    "ConditionalBlend",
    "ConditionalPrior",
    "PretrainedMixin",
    "Prior",
    "available_priors",
    "hub_cache_dir",
    "load_prior",
    "pretrained_dir",
    "register_conditional_prior",
    "register_prior",
]
