"""Generative priors: one interface (:class:`Prior`) for VAE decoders, GAN generators,
diffusers autoencoders and the conditional super-resolution generators."""

from genprior.priors import autoencoder_kl, conditional, conv_vae, dcgan, linear, vae_mlp  # noqa: F401  (registers classes)
from genprior.priors.base import PRIORS, Prior, register_prior
from genprior.priors.hub import available_priors, load_prior, pretrained_dir

__all__ = ["PRIORS", "Prior", "available_priors", "load_prior", "pretrained_dir", "register_prior"]
