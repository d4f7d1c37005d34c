r"""A diffusers ``AutoencoderKL`` decoder (e.g. the Stable Diffusion VAE) as a prior.

The latent lives in the *scaled* diffusers latent space, :math:`z = s \cdot z_{\mathrm{vae}}`
(``s = scaling_factor``, 0.18215 for SD 1.x), where it is roughly standard normal, so the default
:meth:`Prior.log_prior` (standard normal on :math:`z`) applies. Images:
:math:`G(z) = \mathrm{clamp}((\mathrm{vae.decode}(z / s + \mathrm{shift}) + 1) / 2, 0, 1)`
(``shift = shift_factor`` when the VAE config has one, else 0).

diffusers is imported lazily (only when such a prior is built).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from genprior._checks import check_shape
from genprior.priors.base import Prior, register_prior

__all__ = ["AutoencoderKLPrior"]


def _autoencoder_kl():
    from diffusers import AutoencoderKL

    return AutoencoderKL


def _json_config(config: Any) -> dict[str, Any]:
    """A diffusers config as a plain JSON dict, without private ``_`` keys."""
    plain = {k: v for k, v in dict(config).items() if not k.startswith("_")}
    return json.loads(json.dumps(plain))


@register_prior
class AutoencoderKLPrior(Prior):
    r"""Decoder of a diffusers ``AutoencoderKL`` as a prior :math:`x = G(z)`.

    Args:
        vae_config: the ``AutoencoderKL`` config (``dict(vae.config)``); JSON-able.
        latent_shape: ``(latent_channels, h, w)`` of the latents to optimise; the images are
            ``(out_channels, h f, w f)`` with ``f = 2**(len(block_out_channels) - 1)``.
        scaling_factor: latent scale :math:`s`; default ``vae_config["scaling_factor"]``
            (1.0 when absent).

    Shape:
        - z: ``(B, *latent_shape)``
        - x: ``(B, out_channels, h f, w f)`` in [0, 1]

    Example:
        >>> prior = AutoencoderKLPrior.from_diffusers("stabilityai/sd-vae-ft-mse")  # doctest: +SKIP
        >>> prior.sample(1, generator=torch.Generator().manual_seed(0)).shape  # doctest: +SKIP
        torch.Size([1, 3, 256, 256])
    """

    def __init__(
        self,
        vae_config: dict[str, Any],
        latent_shape: Sequence[int],
        scaling_factor: float | None = None,
    ) -> None:
        vae_config = _json_config(vae_config)
        if len(latent_shape) != 3:
            raise ValueError(f"latent_shape must be (C, h, w), got {tuple(latent_shape)}")
        latent_shape = tuple(int(s) for s in latent_shape)
        channels = int(vae_config.get("latent_channels", 4))
        if latent_shape[0] != channels:
            raise ValueError(f"latent_shape[0] must equal vae_config['latent_channels'] = "
                             f"{channels}, got latent_shape = {latent_shape}")
        if scaling_factor is None:
            scaling_factor = vae_config.get("scaling_factor") or 1.0
        super().__init__()
        self.register_to_config(vae_config=vae_config, scaling_factor=float(scaling_factor))
        self.vae = _autoencoder_kl().from_config(vae_config)
        self.scaling_factor = float(scaling_factor)
        self.shift_factor = float(vae_config.get("shift_factor") or 0.0)
        f = 2 ** (len(vae_config.get("block_out_channels", (64,))) - 1)
        self.latent_shape = latent_shape
        self.img_shape = (int(vae_config.get("out_channels", 3)), latent_shape[1] * f,
                          latent_shape[2] * f)

    @classmethod
    def from_diffusers(
        cls,
        path_or_model_id: str | os.PathLike,
        *,
        latent_shape: Sequence[int] | None = None,
        scaling_factor: float | None = None,
        subfolder: str | None = None,
    ) -> AutoencoderKLPrior:
        """Load a diffusers ``AutoencoderKL`` (a local folder works offline; a hub id needs a
        network or the hub cache).

        Args:
            path_or_model_id: folder written by ``AutoencoderKL.save_pretrained`` or hub id.
            latent_shape: default ``(latent_channels, sample_size / f, sample_size / f)``.
            scaling_factor: default from the VAE config.
            subfolder: e.g. ``"vae"`` inside a full pipeline repository.

        Returns:
            the prior, in eval mode.
        """
        kwargs = {"subfolder": subfolder} if subfolder else {}
        vae = _autoencoder_kl().from_pretrained(path_or_model_id, **kwargs)
        config = _json_config(vae.config)
        if latent_shape is None:
            f = 2 ** (len(config["block_out_channels"]) - 1)
            size = config["sample_size"]
            h, w = (size, size) if isinstance(size, int) else size
            latent_shape = (config["latent_channels"], h // f, w // f)
        prior = cls(config, latent_shape, scaling_factor)
        prior.vae.load_state_dict(vae.state_dict())
        return prior.to(vae.dtype).eval()

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1] from scaled latents.

        Shape:
            - z: ``(B, *latent_shape)``
            - output: ``(B, *img_shape)``
        """
        check_shape(z, "z", "B {} {} {}".format(*self.latent_shape))
        x = self.vae.decode(z / self.scaling_factor + self.shift_factor).sample
        return ((x + 1) / 2).clamp(0, 1)

    def encode(self, x: Tensor) -> Tensor:
        r"""Scaled mean latent of :math:`q(z \mid x)`: a starting point for latent optimisation.

        Shape:
            - x: ``(B, *img_shape)`` in [0, 1]
            - output: ``(B, *latent_shape)``
        """
        check_shape(x, "x", "B {} {} {}".format(*self.img_shape))
        mean = self.vae.encode(2 * x - 1).latent_dist.mean
        return (mean - self.shift_factor) * self.scaling_factor

    def extra_repr(self) -> str:
        return f"latent_shape={self.latent_shape}, scaling_factor={self.scaling_factor}"
