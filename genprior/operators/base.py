"""Base class, registry and file format for genprior's measurement operators.

Every operator is a :class:`deepinv.physics.LinearPhysics`, so it works inside deepinv algorithms,
and every genprior solver accepts any deepinv ``LinearPhysics`` as well.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, ClassVar

import torch
from deepinv.physics import GaussianNoise, LinearPhysics
from deepinv.physics.noise import ZeroNoise
from torch import Tensor

from genprior._checks import check_finite, check_image, check_shape
from genprior._config import ConfigMixin, Registry
from genprior._random import make_generator, randn
from genprior._serialization import load_tensors, save_tensors

__all__ = [
    "OPERATORS",
    "Operator",
    "OrthonormalRows",
    "SeededDraws",
    "load_operator",
    "operator_signature",
    "register_operator",
]

#: every operator class by its ``name`` (see :class:`~genprior._config.Registry`)
OPERATORS: Registry[type[Operator]] = Registry("operator")

_META_KEY = "genprior_operator"


def operator_signature(A: object) -> dict[str, object]:
    """What makes two operators the same map: the type name and the config without its noise
    level (``{"type": name, **config}``), e.g. to check that a model meets the operator it
    was trained for.

    Example:
        >>> from genprior.operators import Downsample
        >>> operator_signature(Downsample((3, 8, 8), 2, noise_std=0.1))["type"]
        'Downsample'
    """
    return {"type": type(A).__name__,
            **{k: v for k, v in getattr(A, "config", {}).items() if k != "noise_std"}}


def register_operator(cls: type[Operator]) -> type[Operator]:
    """Class decorator adding an operator to :data:`OPERATORS` under ``cls.name`` (its class
    name when the class sets none).

    Raises:
        ValueError: if the name is already registered.
    """
    return OPERATORS.register(cls)


def resolve_generator(
    seed: int | None, generator: torch.Generator | None
) -> tuple[torch.Generator, int | None]:
    """The generator for an operator's random draws, and the seed to record in its config.

    ``generator`` wins when given (recorded seed: ``seed``, possibly ``None``). With neither, a
    fresh seed is drawn from OS entropy and recorded, so the operator stays reproducible.

    Raises:
        TypeError: if ``generator`` is not a ``torch.Generator`` or ``seed`` not an int.
    """
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator, seed
    if seed is None:
        seed = torch.Generator().seed() % 2**63
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return make_generator(seed), seed


class _CallableConfig(dict):
    """An operator's :attr:`~Operator.config` that can still be called as the old method."""

    def __init__(self, config: dict[str, Any], legacy: dict[str, Any]) -> None:
        super().__init__(config)
        self._legacy = legacy

    def __call__(self) -> dict[str, Any]:
        """Deprecated ``op.config()``: the file form ``{"type": op.name, **op.config}``."""
        warnings.warn(
            "Operator.config() is deprecated: read the property op.config (the constructor "
            "arguments) and op.name (the registry key)",
            DeprecationWarning,
            stacklevel=2,
        )
        return dict(self._legacy)


class Operator(ConfigMixin, LinearPhysics):
    r"""A linear measurement operator :math:`y = A x + e`, :math:`e \sim \mathcal N(0, \sigma^2 I)`.

    Subclasses implement :meth:`A`, :meth:`A_adjoint` and :meth:`A_dagger`, set ``name`` (the
    registry key) and ``exact_dagger`` (whether :meth:`A_dagger` is the exact Moore-Penrose
    pseudo-inverse), and call ``super().__init__(img_size, noise_std=noise_std)``. Their
    JSON-able constructor arguments are captured automatically as :attr:`config` (see
    :class:`~genprior._config.ConfigMixin`), so :meth:`save` / :func:`load_operator`
    round-trip exactly.

    Args:
        img_size: image shape ``(C, H, W)``.
        noise_std: standard deviation :math:`\sigma` of the additive Gaussian noise.
        config: deprecated: a hand-written config of the subclass's arguments (it replaces the
            captured one).

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, *meas_shape)``
    """

    name: ClassVar[str] = ""
    exact_dagger: ClassVar[bool] = True

    def __init__(
        self,
        img_size: tuple[int, int, int],
        *,
        noise_std: float = 0.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        img_size = tuple(int(s) for s in img_size)
        if len(img_size) != 3 or min(img_size) < 1:
            raise ValueError(f"img_size must be (C, H, W) with positive sizes, got {img_size}")
        if noise_std < 0 or not float(noise_std) == float(noise_std):
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        noise_model = GaussianNoise(sigma=float(noise_std)) if noise_std > 0 else ZeroNoise()
        super().__init__(img_size=img_size, noise_model=noise_model)
        self.noise_std = float(noise_std)
        if config is not None:
            warnings.warn(
                "Operator(config=...) is deprecated: constructor arguments are captured "
                "automatically (record normalised values with self.register_to_config)",
                DeprecationWarning,
                stacklevel=3,
            )
            self._replace_config(config)
        self.register_to_config(img_size=list(img_size), noise_std=self.noise_std)

    # ------------------------------------------------------------------ shapes and checks
    @property
    def meas_shape(self) -> tuple[int, ...]:
        """Shape of one measurement ``y[i]``."""
        raise NotImplementedError

    @property
    def n(self) -> int:
        """Number of unknowns ``C * H * W``."""
        c, h, w = self.img_size
        return c * h * w

    @property
    def m(self) -> int:
        """Number of measurements per image."""
        out = 1
        for s in self.meas_shape:
            out *= s
        return out

    def check_x(self, x: Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is a float ``(B, *img_size)`` tensor.

        Shape and dtype only: no value check, so the hot path (``A`` inside an optimisation
        loop) never forces a device synchronisation.
        """
        check_shape(x, name, "B C H W")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if tuple(x.shape[1:]) != tuple(self.img_size):
            raise ValueError(
                f"{name} must have (C, H, W) = {tuple(self.img_size)}, got "
                f"{tuple(x.shape[1:])} (full shape {tuple(x.shape)})"
            )

    def check_y(self, y: Tensor, name: str = "y", *, finite: bool = False) -> None:
        """Raise a clear error unless ``y`` is ``(B, *meas_shape)`` (and finite if asked).

        The finiteness check synchronises with the device, so only entry points that see user
        data (``A_dagger``, solvers, the CLI) ask for it; ``A_adjoint`` checks the shape only.
        """
        if not isinstance(y, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
        if tuple(y.shape[1:]) != tuple(self.meas_shape) or y.ndim != 1 + len(self.meas_shape):
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.meas_shape))}) for "
                f"{type(self).__name__}, got {tuple(y.shape)}"
            )
        if finite:
            check_finite(y, name)

    def check_like(self, t: Tensor, name: str) -> None:
        """Raise a clear error unless ``t`` matches the device (and float dtype) of the buffers.

        Only the operator's own public buffers are compared; integer/bool buffers only fix the
        device. Move the operator with ``op.to(device)`` / ``op.to(torch.float64)``.
        """
        for key, buf in self._buffers.items():
            if buf is None or key.startswith("_"):
                continue
            if buf.device != t.device:
                raise ValueError(
                    f"{name} is on {t.device} but {type(self).__name__} is on {buf.device}; "
                    f"move one of them (op.to({str(t.device)!r}))"
                )
            if buf.is_floating_point() and buf.dtype != t.dtype:
                raise TypeError(
                    f"{name} has dtype {t.dtype} but {type(self).__name__} has dtype {buf.dtype}; "
                    f"convert one of them (op.to({t.dtype}))"
                )

    # ------------------------------------------------------------------ measurement
    def measure(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Noisy measurements :math:`y = A x + \sigma \epsilon` with noise from ``generator``.

        Args:
            x: images in [0, 1].
            generator: source of the noise (ignored when ``noise_std == 0``).

        Shape:
            - x: ``(B, C, H, W)``
            - output: ``(B, *meas_shape)``
        """
        check_image(x, "x", img_size=self.img_size)
        y = self.A(x)
        if self.noise_std > 0:
            y = y + self.noise_std * randn(
                y.shape, generator=generator, device=y.device, dtype=y.dtype
            )
        return y

    # ------------------------------------------------------------------ serialisation
    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able constructor arguments; ``type(op).from_config(op.config)`` rebuilds it.

        Calling it, ``op.config()``, is deprecated and returns the old form with the registry
        key under ``"type"``.
        """
        config = super().config
        return _CallableConfig(config, {"type": OPERATORS.key(type(self)), **config})

    def save(self, path: str | os.PathLike) -> None:
        """Save as one safetensors file: buffers as tensors, ``{"type": name, **config}`` in its
        metadata."""
        tensors = {k: v for k, v in self.state_dict().items() if not k.startswith("noise_model")}
        if not tensors:  # safetensors needs at least one entry
            tensors = {"_empty": torch.zeros(1)}
        meta = {"type": OPERATORS.key(type(self)), **self.config}
        save_tensors(path, tensors, metadata={_META_KEY: json.dumps(meta)})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


class OrthonormalRows:
    r"""Mixin of operators with orthonormal rows, :math:`A A^\top = I`.

    Then :math:`A^\dagger = A^\top (A A^\top)^{-1} = A^\top` exactly and :math:`A A^\top` is the
    identity on measurements. List it before :class:`Operator`:
    ``class Inpaint(OrthonormalRows, Operator)``.
    """

    exact_dagger: ClassVar[bool] = True

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""Exact pseudo-inverse :math:`A^\dagger y = A^\top y` (``kwargs`` are ignored)."""
        self.check_y(y, finite=True)
        return self.A_adjoint(y)

    def A_A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A A^\top y = y`."""
        self.check_y(y)
        return y


class SeededDraws:
    """Mixin of operators whose buffers are random draws from ``seed`` or ``generator``.

    ``generator`` is left out of the config and the seed actually used is recorded (a fresh one
    from OS entropy when neither is given). List it before :class:`Operator`.
    """

    config_ignore: ClassVar[tuple[str, ...]] = ("generator",)

    def _generator(
        self, seed: int | None, generator: torch.Generator | None
    ) -> torch.Generator:
        """The generator of the draws; records the seed in the config (call from ``__init__``)."""
        generator, seed = resolve_generator(seed, generator)
        self.register_to_config(seed=seed)
        return generator

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """Rebuild from a config; with ``seed=None`` (drawn from a caller's generator) the
        draws come from a throwaway generator, to be overwritten by the saved buffers."""
        generator = torch.Generator() if config.get("seed") is None else None
        return cls(**config, generator=generator)


def load_operator(path: str | os.PathLike, device: torch.device | str = "cpu") -> Operator:
    """Load an operator written by :meth:`Operator.save`, exactly (buffers included).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: if the file is not a genprior operator file or names an unknown type.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"operator file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if _META_KEY not in meta:
        raise ValueError(f"{path} is not a genprior operator file (no '{_META_KEY}' metadata)")
    config = json.loads(meta[_META_KEY])
    kind = config.pop("type")
    if kind not in OPERATORS:
        raise ValueError(f"{path}: unknown operator type {kind!r}; known: {sorted(OPERATORS)}")
    cls = OPERATORS[kind]
    op = cls.from_config(config)
    tensors = load_tensors(path)
    tensors.pop("_empty", None)
    result = op.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("noise_model")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path}: tensors do not match {cls.__name__}: missing {missing}, "
            f"unexpected {result.unexpected_keys}"
        )
    return op.to(device)
