"""Command-line flags from dataclass fields: a settings dataclass documents each field once
(``metadata=flag(help)``) and the CLI derives ``--field-name`` from it, so flags and fields
cannot drift.

The flag's type comes from the annotation: ``int``, ``float``, ``str``, ``Path`` (``X | None``
allowed), ``bool`` (a ``store_true`` switch) or ``Literal[...]`` (its values become the choices).
A subclass may give an inherited field another default without repeating its help: the help,
group and extra argparse options come from the first class in the MRO that declares them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

__all__ = ["add_dataclass_arguments", "choices_of", "flag"]


def flag(help: str, *, group: str | None = None, **cli: Any) -> dict[str, Any]:
    """The metadata that makes a dataclass field a command-line flag:
    ``x: int = field(default=1, metadata=flag("what x is"))``. A field without a default makes
    a required flag.

    Args:
        help: the flag's help text (and the field's documentation).
        group: title of the argparse argument group (``None``: the parser's own options).
        **cli: further ``add_argument`` options (``metavar``, ``nargs``, ``const``).
    """
    return {"help": help, "group": group, "cli": cli}


def _flag_metadata(cls: type, name: str) -> Mapping[str, Any] | None:
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "help" in f.metadata:
            return f.metadata
    return None


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def choices_of(cls: type) -> dict[str, tuple[Any, ...]]:
    """The allowed values of every ``Literal[...]`` field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = _strip_optional(hints[f.name])
        if typing.get_origin(tp) is Literal:
            out[f.name] = typing.get_args(tp)
    return out


def _argparse_kwargs(tp: Any, f: dataclasses.Field, meta: Mapping[str, Any],
                     default: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {"help": meta["help"], **meta.get("cli", {})}
    tp = _strip_optional(tp)
    if tp is bool:
        kw["action"] = "store_true"
    elif typing.get_origin(tp) is Literal:
        kw["choices"] = typing.get_args(tp)
    elif tp in (int, float, Path):
        kw["type"] = tp
    elif tp is not str:
        raise TypeError(f"field {f.name!r}: no command-line flag for type {tp!r}")
    if default is dataclasses.MISSING:
        kw["required"] = True
    else:
        kw["default"] = default
    return kw


def add_dataclass_arguments(parser: Any, cls: type, *,
                            defaults: Mapping[str, Any] | None = None) -> None:
    """Add a ``--field-name`` flag for every :func:`flag` field of the dataclass ``cls``.

    Ungrouped flags come first, then each group, each in field order.

    Args:
        parser: an :class:`argparse.ArgumentParser`.
        cls: the dataclass.
        defaults: defaults that replace the fields' own.
    """
    hints = typing.get_type_hints(cls)
    groups: dict[str | None, Any] = {None: parser}
    todo = []
    for f in dataclasses.fields(cls):
        meta = _flag_metadata(cls, f.name)
        if meta is not None:
            todo.append((f, meta))
    todo.sort(key=lambda item: item[1].get("group") is not None)  # stable: field order kept
    for f, meta in todo:
        group = meta.get("group")
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        default = (defaults or {}).get(f.name, f.default)
        groups[group].add_argument(f"--{f.name.replace('_', '-')}",
                                   **_argparse_kwargs(hints[f.name], f, meta, default))
