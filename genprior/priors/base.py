"""The one interface every generative prior implements, and the pickle-free persistence that it
shares with the conditional priors (:mod:`genprior.priors.conditional_base`)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genprior._config import ConfigMixin, Registry
from genprior._random import randn
from genprior._serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_config,
    load_tensors,
    save_config,
    save_tensors,
)

__all__ = ["PRIORS", "PretrainedMixin", "Prior", "register_prior"]

#: every :class:`Prior` class by class name (see :class:`~genprior._config.Registry`)
PRIORS: Registry[type[Prior]] = Registry("prior")


def register_prior(cls: type[Prior]) -> type[Prior]:
    """Class decorator adding a prior class to :data:`PRIORS` under its class name.

    Raises:
        ValueError: if the name is already registered.
    """
    return PRIORS.register(cls)


def _reference_tensor(module: nn.Module) -> Tensor:
    """The first parameter (else buffer) of ``module``: its device and dtype."""
    for t in module.parameters():
        return t
    for t in module.buffers():
        return t
    return torch.zeros(())


def draw_latent(
    module: nn.Module, shape: tuple[int, ...], n: int, *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` standard normal latents of ``shape`` on the device and dtype of ``module``.

    Shape:
        output: ``(n, *shape)``
    """
    ref = _reference_tensor(module)
    return randn((n, *shape), generator=generator, device=ref.device, dtype=ref.dtype)


def _family(klass: type) -> type:
    """The class of ``klass``'s MRO that holds its registry (:class:`Prior`, ...)."""
    return next(k for k in klass.__mro__ if "registry" in k.__dict__)


def _registered_class(name: Any) -> type | None:
    """The class saved under ``name`` in any family's registry (``None`` if none)."""
    todo = [PretrainedMixin]
    while todo:
        k = todo.pop()
        todo.extend(k.__subclasses__())
        registry = k.__dict__.get("registry")
        if registry is not None and isinstance(name, str) and name in registry:
            return registry[name]
    return None


class PretrainedMixin(ConfigMixin):
    """``save_pretrained`` / ``from_pretrained`` for models built from their :attr:`config`.

    A family base class (:class:`Prior`, :class:`~genprior.priors.conditional_base.ConditionalPrior`)
    sets ``registry``; ``config.json`` stores ``{"_class": key, "config": config, **extra}``
    with ``key`` the class's registry key, and ``model.safetensors`` the ``state_dict`` (unless
    :meth:`_weights_in_folder` says the weights live elsewhere).
    """

    #: the family's registry, set by the family base class
    registry: ClassVar[Registry]

    @classmethod
    def _weights_in_folder(cls, config: Mapping[str, Any]) -> bool:
        """Whether a folder of this class built from ``config`` holds ``model.safetensors``.

        True here. A class whose weights live elsewhere (a
        :class:`~genprior.priors.blend.ConditionalBlend` that loads its members by name)
        returns False for such a config: :meth:`save_pretrained` then writes ``config.json``
        only, and :meth:`from_pretrained` reads no weights.
        """
        return True

    def save_pretrained(self, directory: str | os.PathLike, **extra: Any) -> None:
        """Write ``config.json`` (class name + constructor args + ``extra``) and
        ``model.safetensors`` into ``directory`` (both atomically).

        A model whose weights live elsewhere (see :meth:`_weights_in_folder`) writes
        ``config.json`` only, and removes a ``model.safetensors`` left by an earlier save.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config
        if type(self)._weights_in_folder(config):
            save_tensors(directory / WEIGHTS_NAME, self.state_dict())
        else:
            (directory / WEIGHTS_NAME).unlink(missing_ok=True)
        save_config(directory / CONFIG_NAME, {"_class": Registry.key(type(self)),
                                               "config": config, **extra})

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, *, device: torch.device | str = "cpu"
    ) -> Any:
        """Load a model written by :meth:`save_pretrained` (no pickle), in eval mode.

        Called on the family base class it dispatches on the stored class name; called on a
        subclass it also checks that the stored class matches.

        Raises:
            FileNotFoundError: naming the missing ``config.json`` or ``model.safetensors`` (the
                latter only for a class that keeps its weights in the folder).
            ValueError: unknown class, class mismatch, or weights of another architecture.
        """
        directory = Path(directory)
        meta = load_config(directory / CONFIG_NAME)
        name = meta.get("_class")
        klass = cls._class_to_load(name, directory)
        config = meta.get("config", {})
        model = klass.from_config(config)
        if klass._weights_in_folder(config):
            state = load_tensors(directory / WEIGHTS_NAME)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise ValueError(
                    f"{directory / WEIGHTS_NAME} does not match the architecture in "
                    f"{directory / CONFIG_NAME} ({name}): {e}"
                ) from e
        return model.to(device).eval()

    @classmethod
    def _class_to_load(cls, name: Any, directory: Path) -> type:
        """The class ``cls.from_pretrained`` builds for the stored class ``name``."""
        klass = _registered_class(name)
        if klass is None:
            raise ValueError(f"{directory / CONFIG_NAME}: unknown {cls.registry.kind} class "
                             f"{name!r}; known: {sorted(cls.registry)}")
        if issubclass(klass, cls):
            return klass
        family = _family(klass)
        if family is not _family(cls):
            raise ValueError(
                f"{directory} holds a {name}, which is a {family.__name__}, not a "
                f"{cls.__name__}; load it with {family.__name__}.from_pretrained or "
                "genprior.load_prior"
            )
        raise ValueError(f"{directory} holds a {name}, not a {cls.__name__}")


class Prior(PretrainedMixin, nn.Module):
    r"""A generative prior :math:`x = G(z)`, :math:`z \sim p(z)` (standard normal by default).

    Subclasses set ``latent_shape`` and ``img_shape``, implement :meth:`decode`, call
    ``super().__init__()`` and are registered with :func:`register_prior`. Their JSON-able
    constructor arguments are captured automatically as :attr:`config` (see
    :class:`~genprior._config.ConfigMixin`), which ``config.json`` stores.

    Args:
        **config: deprecated: a hand-written config (it replaces the captured one).

    Shape:
        - z: ``(B, *latent_shape)``
        - x: ``(B, C, H, W)`` in [0, 1]
    """

    registry = PRIORS
    latent_shape: tuple[int, ...]
    img_shape: tuple[int, int, int]

    def __init__(self, **config: Any) -> None:
        super().__init__()
        if config:
            warnings.warn(
                "Prior.__init__(**config) is deprecated: constructor arguments are captured "
                "automatically (record normalised values with self.register_to_config)",
                DeprecationWarning,
                stacklevel=3,
            )
            self._replace_config(config)

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
        return _reference_tensor(self)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents from :math:`p(z)` on the model's device and dtype.

        Shape:
            output: ``(n, *latent_shape)``
        """
        return draw_latent(self, self.latent_shape, n, generator=generator)

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
    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, *, device: torch.device | str = "cpu"
    ) -> Prior:
        """Load a prior written by :meth:`save_pretrained` (no pickle), in eval mode.

        Called on :class:`Prior` it dispatches on the stored class name; called on a subclass it
        also checks that the stored class matches. A folder holding a conditional prior still
        loads through ``Prior.from_pretrained``, with a ``DeprecationWarning`` (it will become
        an error): load those with :func:`genprior.load_prior` or
        ``ConditionalPrior.from_pretrained``.

        Raises:
            FileNotFoundError: naming the missing ``config.json`` or ``model.safetensors``.
            ValueError: unknown class, class mismatch, or weights of another architecture.
        """
        return super().from_pretrained(directory, device=device)

    @classmethod
    def _class_to_load(cls, name: Any, directory: Path) -> type:
        klass = _registered_class(name)
        if cls is Prior and klass is not None and _family(klass) is not Prior:
            family = _family(klass).__name__
            warnings.warn(
                f"{directory} holds a {name}, which is a {family}, not a Prior: loading it "
                "with Prior.from_pretrained is deprecated and will raise; use "
                f"genprior.load_prior or {family}.from_pretrained",
                DeprecationWarning,
                stacklevel=4,
            )
            return klass
        return super()._class_to_load(name, directory)
