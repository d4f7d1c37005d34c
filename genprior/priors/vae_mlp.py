r"""The MNIST VAE of CSGM (Bora et al. 2017): a fully connected Bernoulli VAE.

Encoder :math:`n \to 500 \to 500 \to (\mu, \log\sigma^2)` and decoder
:math:`20 \to 500 \to 500 \to n`, softplus hidden activations, sigmoid output, Xavier-uniform
weights and zero biases, as in the reference TensorFlow code (``mnist_vae_train.py`` of
``AshishBora/csgm``, itself from J. H. Metzen's VAE notebook). The decoder is the prior
:math:`G(z) = \mathrm{sigmoid}(\mathrm{logits}(z))`, :math:`z \sim \mathcal N(0, I_{20})`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genprior._checks import check_shape
from genprior._random import randn
from genprior.priors.base import Prior, register_prior

__all__ = ["MLPVAE", "VAEPrior", "gaussian_kl", "reparameterize"]


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""KL divergence :math:`\mathrm{KL}(\mathcal N(\mu, e^{\mathrm{logvar}}) \,\|\, \mathcal N(0, I))`
    per sample, summed over latent entries.

    Args:
        mu: posterior means.
        logvar: posterior log-variances.

    Returns:
        :math:`-\tfrac12 \sum (1 + \mathrm{logvar} - \mu^2 - e^{\mathrm{logvar}})` per sample.

    Shape:
        - mu, logvar: ``(B, *)``
        - output: ``(B,)``
    """
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
    return kl.reshape(kl.shape[0], -1).sum(1)


def reparameterize(
    mu: Tensor, logvar: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""One reparameterised draw :math:`z = \mu + e^{\mathrm{logvar}/2} \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I)` drawn from ``generator``.

    Shape:
        - mu, logvar, output: ``(B, *)``
    """
    eps = randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


class VAEPrior(Prior):
    r"""A VAE whose decoder mean is the prior :math:`G(z) = \mathrm{sigmoid}(\mathrm{logits}(z))`.

    Subclasses implement ``_encode``, ``_decode_logits`` (on checked inputs) and
    :meth:`log_likelihood`; the shape checks, the ELBO and the training loss follow.
    """

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Parameters ``(mu, logvar)`` of :math:`q(z \mid x)`.

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]
            - mu, logvar: ``(B, *latent_shape)``
        """
        check_shape(x, "x", "B {} {} {}".format(*self.img_shape))
        return self._encode(x)

    def decode_logits(self, z: Tensor) -> Tensor:
        """Pre-sigmoid decoder output (Bernoulli logits for :class:`MLPVAE`).

        Shape:
            - z: ``(B, *latent_shape)``
            - output: ``(B, C, H, W)``
        """
        check_shape(z, "z", "B " + " ".join(map(str, self.latent_shape)))
        return self._decode_logits(z)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _decode_logits(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z)` per image, in nats.

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]
            - z: ``(B, *latent_shape)``
            - output: ``(B,)``
        """
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """Decoder means :math:`G(z) = \\mathrm{sigmoid}(\\mathrm{logits}(z))` in [0, 1].

        Shape:
            - z: ``(B, *latent_shape)``
            - output: ``(B, C, H, W)``
        """
        return torch.sigmoid(self.decode_logits(z))

    def elbo(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Single-sample ELBO per image in nats:
        :math:`\log p(x \mid z) - \mathrm{KL}(q(z \mid x) \,\|\, \mathcal N(0, I))`,
        :math:`z = \mu + \sigma \varepsilon` with :math:`\varepsilon` drawn from ``generator``.

        Args:
            x: images in [0, 1].
            generator: source of :math:`\varepsilon`.

        Returns:
            ELBO per image.

        Shape:
            - x: ``(B, C, H, W)``
            - output: ``(B,)``
        """
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator=generator)
        return self.log_likelihood(x, z) - gaussian_kl(mu, logvar)

    def loss(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Training loss: minus the batch-mean :meth:`elbo` (a scalar)."""
        return -self.elbo(x, generator=generator).mean()


@register_prior
class MLPVAE(VAEPrior):
    r"""Fully connected Bernoulli VAE (the CSGM MNIST VAE with the defaults).

    Args:
        img_shape: ``(C, H, W)`` of the images; the MLP sees :math:`n = CHW` inputs.
        hidden: width of both hidden layers of encoder and decoder.
        latent_dim: dimension of :math:`z`.

    Shape:
        - z: ``(B, latent_dim)``
        - x: ``(B, C, H, W)`` in [0, 1]

    Example:
        >>> vae = MLPVAE(img_shape=(1, 8, 8), hidden=16, latent_dim=4)
        >>> vae.sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self, img_shape: Sequence[int] = (1, 28, 28), hidden: int = 500, latent_dim: int = 20
    ) -> None:
        if len(img_shape) != 3:
            raise ValueError(f"img_shape must be (C, H, W), got {tuple(img_shape)}")
        super().__init__()
        self.img_shape = tuple(int(s) for s in img_shape)
        self.latent_shape = (int(latent_dim),)
        n = math.prod(self.img_shape)
        self.enc1 = nn.Linear(n, hidden)
        self.enc2 = nn.Linear(hidden, hidden)
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim)
        self.dec1 = nn.Linear(latent_dim, hidden)
        self.dec2 = nn.Linear(hidden, hidden)
        self.dec_out = nn.Linear(hidden, n)
        self.reset_parameters()

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Reference initialisation: Xavier-uniform weights, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, generator=generator)
                nn.init.zeros_(m.bias)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = F.softplus(self.enc1(x.flatten(1)))
        h = F.softplus(self.enc2(h))
        return self.fc_mu(h), self.fc_logvar(h)

    def _decode_logits(self, z: Tensor) -> Tensor:
        h = F.softplus(self.dec1(z))
        h = F.softplus(self.dec2(h))
        return self.dec_out(h).reshape(z.shape[0], *self.img_shape)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""Bernoulli :math:`\log p(x \mid z)` per image: minus the binary cross-entropy with
        logits, summed over pixels (for non-binary ``x`` in [0, 1], the usual cross-entropy
        surrogate).

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]
            - z: ``(B, latent_dim)``
            - output: ``(B,)``
        """
        logits = self.decode_logits(z)
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
