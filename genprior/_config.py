"""One config convention and one registry rule for operators, priors and conditional priors.

- :class:`ConfigMixin`: the JSON-able arguments ``__init__`` received are captured once (bound
  with :func:`inspect.signature`, defaults applied), so no class repeats them by hand;
  ``obj.config`` returns them and ``type(obj).from_config(obj.config)`` rebuilds an equal
  object (the idea of diffusers' ``register_to_config``).
- :class:`Registry`: classes by name. The key is the class's own ``name`` attribute when it
  sets one, else its class name; a second class under the same key is an error.
"""

from __future__ import annotations

import copy
import functools
import inspect
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["ConfigMixin", "Registry"]

T = TypeVar("T", bound=type)

# Instance attribute holding the config while the outermost ``__init__`` runs.
_PENDING = "_config_pending"


def to_json(value: Any, where: str) -> Any:
    """``value`` with tuples as lists and numbers as plain ``int`` / ``float``.

    Raises:
        TypeError: naming ``where``, for anything JSON cannot hold (tensors, generators, ...).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):  # torch.Size is a tuple
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where} must have str keys to be stored in a config")
        return {k: to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which a JSON config cannot hold; list the "
        "argument in config_ignore or record a JSON-able form with register_to_config"
    )


def _capturing(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``init`` so that its outermost call records the arguments it received."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _PENDING in self.__dict__:  # an inner ``super().__init__``: the outer call records
            init(self, *args, **kwargs)
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        ignore = set(type(self).config_ignore)
        pending: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{type(self).__name__} takes no extra positional arguments")
            elif kind is inspect.Parameter.VAR_KEYWORD:
                pending.update((k, v) for k, v in value.items() if k not in ignore)
            elif name not in ignore:
                pending[name] = value
        object.__setattr__(self, _PENDING, pending)
        try:
            init(self, *args, **kwargs)
            config = self.__dict__[_PENDING]
        finally:
            self.__dict__.pop(_PENDING, None)
        cls = type(self).__name__
        object.__setattr__(
            self, "_config", {k: to_json(v, f"{cls} argument {k!r}") for k, v in config.items()}
        )

    __init__._captures_config = True  # type: ignore[attr-defined]
    return __init__


class ConfigMixin:
    """Records the constructor arguments of every subclass as its JSON-able :attr:`config`.

    Each subclass's ``__init__`` is wrapped when the class is created. The outermost call
    binds the arguments it received, with defaults applied, leaves out those named in
    ``config_ignore`` (tensors, generators: what the weights file or the caller supplies),
    lets ``__init__`` run and then stores them, updated by any :meth:`register_to_config` call
    the constructor made (for a value it normalised or derived), with tuples as lists.

    A subclass therefore writes only its constructor::

        class Blur(Operator):
            def __init__(self, img_size, sigma: float = 1.0, *, noise_std: float = 0.0):
                super().__init__(img_size, noise_std=noise_std)
                ...

        Blur((1, 8, 8), 2.0).config  # {"img_size": [1, 8, 8], "sigma": 2.0, "noise_std": 0.0}

    Example:
        >>> from torch import nn
        >>> class Net(ConfigMixin, nn.Module):
        ...     def __init__(self, width: int = 4, sizes=(1, 2)):
        ...         super().__init__()
        ...         self.layer = nn.Linear(width, width)
        >>> Net(8).config
        {'width': 8, 'sizes': [1, 2]}
        >>> Net.from_config(Net(8).config).config == Net(8).config
        True
    """

    #: constructor arguments left out of the config (not JSON-able, or not needed to rebuild)
    config_ignore: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_captures_config", False):
            cls.__init__ = _capturing(init)  # type: ignore[method-assign]

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-able constructor arguments (a copy): ``type(self).from_config`` rebuilds."""
        return copy.deepcopy(self.__dict__["_config"])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Any:
        """Build an object from a :attr:`config` (the keyword arguments of the constructor)."""
        return cls(**config)

    def register_to_config(self, **values: Any) -> None:
        """Record normalised or derived constructor values (call it from ``__init__``).

        Raises:
            RuntimeError: when called outside ``__init__``.
        """
        self._pending_config().update(values)

    def _replace_config(self, values: Mapping[str, Any]) -> None:
        """Replace the captured arguments by ``values`` (the deprecated hand-written configs)."""
        pending = self._pending_config()
        pending.clear()
        pending.update(values)

    def _pending_config(self) -> dict[str, Any]:
        pending = self.__dict__.get(_PENDING)
        if pending is None:
            raise RuntimeError(
                f"{type(self).__name__}: the config can only be changed inside __init__"
            )
        return pending


class Registry(Mapping[str, T]):
    """Classes by name, for loading saved files: one rule for operators and priors.

    The key of a class is its own ``name`` attribute when it sets one (operators:
    ``"gaussian_cs"``), else its class name (priors: ``"DCGANGenerator"``). Registering a second
    class under a taken key raises. Read it as a mapping: ``name in reg``, ``reg[name]``,
    ``sorted(reg)``.

    Args:
        kind: what the registry holds, for messages (``"operator"``, ``"prior"``).

    Example:
        >>> reg = Registry("widget")
        >>> @reg.register
        ... class Knob:
        ...     pass
        >>> sorted(reg), Registry.key(Knob)
        (['Knob'], 'Knob')
        >>> reg.register(type("Knob", (), {}))
        Traceback (most recent call last):
        ...
        ValueError: widget name 'Knob' is registered twice (by Knob and Knob)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, T] = {}

    @staticmethod
    def key(klass: type) -> str:
        """The registry key of ``klass``: its own non-empty ``name`` attribute, else its
        ``__name__``."""
        name = klass.__dict__.get("name")
        return name if isinstance(name, str) and name else klass.__name__

    def register(self, cls: T) -> T:
        """Class decorator adding ``cls`` under :meth:`key`.

        Raises:
            ValueError: if the key is already registered.
        """
        key = self.key(cls)
        if key in self._classes:
            raise ValueError(
                f"{self.kind} name {key!r} is registered twice "
                f"(by {self._classes[key].__qualname__} and {cls.__qualname__})"
            )
        self._classes[key] = cls
        return cls

    def __getitem__(self, name: str) -> T:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; known: {sorted(self._classes)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._classes)})"
