"""The one interface every generative prior implements, and its pickle-free persistence."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genprior._random import randn
from genprior._serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_config,
    load_tensors,
    save_config,
    save_tensors,
)

__all__ = ["PRIORS", "Prior", "register_prior"]

PRIORS: dict[str, type[Prior]] = {}


def register_prior(cls: type[Prior]) -> type[Prior]:
    """Class decorator adding a prior class to :data:`PRIORS` under its class name."""
    PRIORS[cls.__name__] = cls
    return cls


class Prior(nn.Module):
    r"""A generative prior :math:`x = G(z)`, :math:`z \sim p(z)` (standard normal by default).

    Subclasses set ``latent_shape`` and ``img_shape``, implement :meth:`decode`, and pass their
    JSON-able constructor arguments to ``super().__init__(**config)``.

    Shape:
        - z: ``(B, *latent_shape)``
        - x: ``(B, C, H, W)`` in [0, 1]
    """

    latent_shape: tuple[int, ...]
    img_shape: tuple[int, int, int]

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config)

    # ------------------------------------------------------------------ model
    def decode(self, z: Tensor) -> Tensor:
        """Map latents to images in [0, 1]."""
        raise NotImplementedError

    def forward(self, z: Tensor) -> Tensor:
        return self.decode(z)

    @property
    def latent_dim(self) -> int:
        """Number of latent entries per sample."""
        return math.prod(self.latent_shape)

    def _reference_param(self) -> Tensor:
        for t in self.parameters():
            return t
        for t in self.buffers():
            return t
        return torch.zeros(())

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents from :math:`p(z)` on the model's device and dtype.

        Shape:
            output: ``(n, *latent_shape)``
        """
        ref = self._reference_param()
        return randn((n, *self.latent_shape), generator=generator, device=ref.device,
                     dtype=ref.dtype)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images :math:`G(z)`, :math:`z \\sim p(z)`.

        Shape:
            output: ``(n, C, H, W)`` in [0, 1]
        """
        return self.decode(self.sample_latent(n, generator=generator))

    def log_prior(self, z: Tensor) -> Tensor:
        r"""Log-density :math:`\log p(z)` per sample (standard normal, normalised).

        Shape:
            - z: ``(B, *latent_shape)``
            - output: ``(B,)``
        """
        d = self.latent_dim
        return -0.5 * z.reshape(z.shape[0], -1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike, **extra: Any) -> None:
        """Write ``config.json`` (class name + constructor args + ``extra``) and
        ``model.safetensors`` into ``directory`` (both atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors(directory / WEIGHTS_NAME, self.state_dict())
        save_config(directory / CONFIG_NAME, {"_class": type(self).__name__,
                                               "config": self.config, **extra})

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, *, device: torch.device | str = "cpu"
    ) -> Prior:
        """Load a prior written by :meth:`save_pretrained` (no pickle).

        Called on :class:`Prior` it dispatches on the stored class name; called on a subclass it
        also checks that the stored class matches.

        Raises:
            FileNotFoundError: naming the missing ``config.json`` or ``model.safetensors``.
            ValueError: unknown class, class mismatch, or weights of another architecture.
        """
        directory = Path(directory)
        meta = load_config(directory / CONFIG_NAME)
        name = meta.get("_class")
        if name not in PRIORS:
            raise ValueError(f"{directory / CONFIG_NAME}: unknown prior class {name!r}; "
                             f"known: {sorted(PRIORS)}")
        klass = PRIORS[name]
        if cls is not Prior and not issubclass(klass, cls):
            raise ValueError(f"{directory} holds a {name}, not a {cls.__name__}")
        model = klass(**meta.get("config", {}))
        state = load_tensors(directory / WEIGHTS_NAME)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(
                f"{directory / WEIGHTS_NAME} does not match the architecture in "
                f"{directory / CONFIG_NAME} ({name}): {e}"
            ) from e
        return model.to(device).eval()
