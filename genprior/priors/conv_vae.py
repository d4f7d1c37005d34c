r"""A convolutional VAE whose decoder mirrors the DCGAN generator (e.g. for 64x64 CelebA).

Likelihood: a Gaussian :math:`p(x \mid z) = \mathcal N(x;\, G(z),\, \sigma^2 I)` with one learned
scalar :math:`\sigma` (the ":math:`\sigma`-VAE" of Rybkin et al. 2021). Why not the alternatives:
a Bernoulli likelihood is not a normalised density for continuous pixels in [0, 1] (its
"ELBO" bounds no likelihood, and Loaiza-Ganem & Cunningham 2019 show the bias it causes), and a
fixed :math:`\sigma` is a
hidden KL weight that must be tuned per data set. With :math:`\sigma` learned, the optimum is
:math:`\sigma^2 = \mathrm{MSE}`, so reconstruction and KL are balanced automatically and the
ELBO is an honest bound in nats. The mean :math:`G(z) = \mathrm{sigmoid}(\mathrm{logits}(z))`
stays in [0, 1]; :math:`G` is the prior used for reconstruction, :meth:`ConvVAE.encode` gives a
starting latent.

Normalisation is GroupNorm, so :meth:`ConvVAE.decode` is the same function in train and eval
mode and does not mix samples of a batch (which latent optimisation relies on).

An *ex-post* latent Gaussian (``latent_gaussian=True``; Ghosh et al. 2020 fit densities to the
latent codes after training) re-parametrises the latent as :math:`z = m + L u` with
:math:`u \sim \mathcal N(0, I)`, :math:`m` and :math:`L L^\top` the mean and covariance of the
encoder means over the training data (:func:`with_latent_gaussian`): prior draws then follow
the codes the decoder was trained on, and every latent method (CSGM's :math:`\|u\|^2`, the
samplers) still sees a standard normal latent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genprior.priors.base import register_prior
from genprior.priors.dcgan import dcgan_decoder, dcgan_layout
from genprior.priors.vae_mlp import VAEPrior

__all__ = ["ConvVAE", "gaussian_log_likelihood", "with_latent_gaussian"]

_MIN_LOG_SIGMA = math.log(1e-3)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, log_sigma: Tensor) -> Tensor:
    r""":math:`\log \mathcal N(x;\, \mathrm{mean},\, \sigma^2 I)` per sample, summed over pixels.

    Args:
        x: observations.
        mean: Gaussian means.
        log_sigma: scalar (or broadcastable) :math:`\log\sigma`.

    Shape:
        - x, mean: ``(B, *)``
        - output: ``(B,)``
    """
    sq = ((x - mean) * torch.exp(-log_sigma)).pow(2)
    ll = -0.5 * sq - log_sigma - 0.5 * math.log(2 * math.pi)
    return ll.reshape(x.shape[0], -1).sum(1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


@register_prior
class ConvVAE(VAEPrior):
    r"""Convolutional Gaussian VAE with a learned scalar output scale :math:`\sigma`.

    Encoder: Conv(4, 2, 1)-GroupNorm-LeakyReLU(0.2) stages down to ``base x base``
    (``base, n = dcgan_layout(H)``), then linear heads for :math:`(\mu, \log\sigma_q^2)`.
    Decoder: the DCGAN generator layout (ConvTranspose from 1x1 to ``base x base``, then
    ConvTranspose(4, 2, 1)-GroupNorm-ReLU doublings) with logits at the end.

    Args:
        img_shape: ``(C, H, W)`` with ``H == W`` a valid DCGAN size (28, 32, 64, ...).
        latent_dim: dimension of :math:`z`.
        base_channels: width of the first encoder / last decoder stage (others are wider by
            powers of 2).
        latent_gaussian: decode :math:`z = m + L u` from the latent :math:`u` (buffers
            ``latent_loc`` :math:`m` and ``latent_scale_tril`` :math:`L`, lower triangular with
            a positive diagonal; the identity map until set, see :func:`with_latent_gaussian`).

    Shape:
        - z: ``(B, latent_dim)``, encoded by the convolutional encoder
        - x: ``(B, C, H, W)`` in [0, 1], with ``H = W`` a power of 2 times 4

    Example:
        >>> vae = ConvVAE(img_shape=(3, 16, 16), latent_dim=8, base_channels=4)
        >>> vae.sample(2, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self, img_shape: Sequence[int] = (3, 64, 64), latent_dim: int = 128,
        base_channels: int = 32, latent_gaussian: bool = False,
    ) -> None:
        if len(img_shape) != 3 or img_shape[1] != img_shape[2]:
            raise ValueError(f"img_shape must be (C, H, W) with H == W, got {tuple(img_shape)}")
        super().__init__()
        self.img_shape = tuple(int(s) for s in img_shape)
        self.latent_shape = (int(latent_dim),)
        c, size = self.img_shape[0], self.img_shape[1]
        base, n = dcgan_layout(size)

        enc: list[nn.Module] = [nn.Conv2d(c, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = base_channels
        for _ in range(n - 1):
            enc += [nn.Conv2d(width, 2 * width, 4, 2, 1), _norm(2 * width), nn.LeakyReLU(0.2)]
            width *= 2
        enc.append(nn.Flatten())
        self.encoder = nn.Sequential(*enc)
        self.fc_mu = nn.Linear(width * base * base, latent_dim)
        self.fc_logvar = nn.Linear(width * base * base, latent_dim)
        self.decoder = nn.Sequential(*dcgan_decoder(latent_dim, base_channels, c, size,
                                                    norm=_norm, bias=True, inplace=False))
        self.log_sigma = nn.Parameter(torch.zeros(()))
        self.latent_gaussian = bool(latent_gaussian)
        if self.latent_gaussian:
            self.register_buffer("latent_loc", torch.zeros(latent_dim))
            self.register_buffer("latent_scale_tril", torch.eye(latent_dim))

    @property
    def sigma(self) -> Tensor:
        r"""Output scale :math:`\sigma` of the Gaussian likelihood (at least 1e-3)."""
        return self.log_sigma.clamp(min=_MIN_LOG_SIGMA).exp()

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(2 * x - 1)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        if not self.latent_gaussian:
            return mu, logvar
        # u = L^{-1} (z - m); q(u | x) keeps the diagonal of L^{-1} diag(var) L^{-T}
        L_inv = torch.linalg.solve_triangular(
            self.latent_scale_tril, torch.eye(len(mu[0]), dtype=mu.dtype, device=mu.device),
            upper=False)
        mu_u = (mu - self.latent_loc) @ L_inv.T
        return mu_u, torch.log(logvar.exp() @ L_inv.pow(2).T)

    def _decode_logits(self, z: Tensor) -> Tensor:
        if self.latent_gaussian:
            z = self.latent_loc + z @ self.latent_scale_tril.T
        return self.decoder(z[:, :, None, None])

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        r"""Gaussian :math:`\log \mathcal N(x;\, G(z),\, \sigma^2 I)` per image.

        Shape:
            - x: ``(B, C, H, W)`` in [0, 1]
            - z: ``(B, latent_dim)``
            - output: ``(B,)``
        """
        log_sigma = self.log_sigma.clamp(min=_MIN_LOG_SIGMA)
        return gaussian_log_likelihood(x, self.decode(z), log_sigma)


@torch.no_grad()
def with_latent_gaussian(vae: ConvVAE, x: Tensor, *, batch_size: int = 500) -> ConvVAE:
    r"""A copy of ``vae`` whose latent prior is the Gaussian fitted to its codes of ``x``.

    :math:`m` and :math:`\Sigma = L L^	op` (Cholesky) are the mean and the covariance (divisor
    :math:`N - 1`) of the encoder means :math:`\mu(x_i)`; the copy decodes
    :math:`z = m + L u`, so its encoder means of ``x`` have mean 0 and covariance :math:`I`
    exactly, and :math:`u \sim \mathcal N(0, I)` draws codes distributed like the data's.

    Args:
        vae: a trained :class:`ConvVAE` with ``latent_gaussian=False``.
        x: the training images whose codes are fitted (more than ``latent_dim`` of them).
        batch_size: images per encoder pass.

    Returns:
        the new :class:`ConvVAE` (``latent_gaussian=True``), in eval mode, on ``vae``'s device.

    Raises:
        ValueError: ``vae`` already has a latent Gaussian, or too few images.

    Shape:
        - x: ``(N, *vae.img_shape)``, ``N > latent_dim``
    """
    if vae.latent_gaussian:
        raise ValueError("this ConvVAE already has a latent Gaussian; fit the original one")
    d = vae.latent_shape[0]
    if x.shape[0] <= d:
        raise ValueError(f"fitting a {d}-d Gaussian needs more than {d} images, got {x.shape[0]}")
    mu = torch.cat([vae.encode(xb)[0] for xb in x.split(batch_size)]).double()
    loc = mu.mean(0)
    scale_tril = torch.linalg.cholesky(torch.cov(mu.T))
    out = ConvVAE(**{**vae.config, "latent_gaussian": True})
    ref = next(vae.parameters())
    out = out.to(device=ref.device, dtype=ref.dtype)
    out.load_state_dict({**vae.state_dict(), "latent_loc": loc.to(ref.dtype),
                         "latent_scale_tril": scale_tril.to(ref.dtype)})
    return out.eval()
