"""The settings every training run shares, as a typed dataclass.

Each trainer extends :class:`TrainConfig` with its own fields (:class:`~genprior.training.vae.
VAETrainConfig`, :class:`~genprior.training.gan.GANTrainConfig`,
:class:`~genprior.training.affgan.AffGANTrainConfig`) and its own defaults. Every field is also a
``genprior train`` flag of the same name (``batch_size`` is ``--batch-size``); the CLI builds the
config with :meth:`TrainConfig.from_flags`.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from typing_extensions import Self

from genprior._flags import add_dataclass_arguments, choices_of, flag
from genprior.training.checkpoint import CHECKPOINT_NAME

__all__ = ["COMMON", "TrainConfig", "check_at_least", "check_positive_flags",
           "deprecated_entry_points"]

#: argparse group of the flags every ``genprior train KIND`` shares
COMMON = "common training options"

C = TypeVar("C", bound="TrainConfig")


@dataclass(kw_only=True)
class TrainConfig:
    """Settings of one training run (data, run folder, schedule, checkpoints, devices).

    Arguments are keyword-only; ``data`` and ``out`` are required, and so are ``epochs``,
    ``batch_size`` and ``lr`` here (each trainer's config gives them defaults). Values are checked
    on construction.

    Numbers are finite-or-fail: ``lr``, ``max_minutes``, ``max_steps`` and the sizes must be
    positive and finite (``inf`` and NaN are refused), the counts ``>= 0``. The run folder itself
    is checked when the run starts (:func:`~genprior.training.run_folder.check_run_folder`): one
    holding a run needs ``resume`` or ``overwrite``.

    Raises:
        ValueError: naming the flag whose value is out of range; ``overwrite`` together with
            ``resume`` from ``out``'s own checkpoint (it would delete it).
        TypeError: naming the flag whose value has the wrong type (a float or ``inf`` for an
            integer, a string for a number, a non-bool for a switch).

    Example:
        >>> cfg = TrainConfig(data="digits", out="runs/x", epochs=1, batch_size=8, lr=1e-3)
        >>> cfg.out, cfg.ckpt_every, cfg.resume_path
        (PosixPath('runs/x'), 500, None)
    """

    data: Path = field(metadata=flag(
        "training data: a folder of images (.jpg/.png) or of .npz shards holding an array 'x' "
        "(MNIST layout)", group=COMMON))
    out: Path = field(metadata=flag(
        "run folder: checkpoint, log.csv, samples.png, final/", group=COMMON))
    epochs: int = field(metadata=flag("passes over the data", group=COMMON))
    batch_size: int = field(metadata=flag("batch size per process", group=COMMON))
    lr: float = field(metadata=flag("Adam learning rate", group=COMMON))
    seed: int = field(default=0, metadata=flag(
        "seed of initialisation, data order and noise", group=COMMON))
    img_size: int | None = field(default=64, metadata=flag(
        "square image size for image folders (centre crop + resize); npz data keep their size",
        group=COMMON))
    crop: int | None = field(default=None, metadata=flag(
        "centred square crop before resizing image folders (default: largest square; 54 for the "
        "89x109 CelebA copies, as genprior.data.load_celeba)", group=COMMON))
    train_range: str | None = field(default=None, metadata=flag(
        "use only files whose numeric name lies in START..END (inclusive), e.g. 1:8000 for the "
        "fixed CelebA training split; for .npz data, 1-based sample indices",
        group=COMMON, metavar="START:END"))
    ckpt_every: int = field(default=500, metadata=flag(
        "write the checkpoint every N optimisation steps (0: only at the end)", group=COMMON))
    sample_every: int = field(default=500, metadata=flag(
        "refresh samples.png every N steps (0: only at the end)", group=COMMON))
    resume: str | None = field(default=None, metadata=flag(
        f"continue from a checkpoint (default OUT/{CHECKPOINT_NAME})",
        group=COMMON, nargs="?", const="auto", metavar="CKPT"))
    overwrite: bool = field(default=False, metadata=flag(
        "replace the run already in OUT (its log.csv, samples.png, checkpoint, final/ and "
        "final-raw/ are deleted first); without it, or --resume, an OUT holding a run is "
        "refused", group=COMMON))
    device: str | None = field(default=None, metadata=flag(
        "cpu or cuda (default: cuda when present)", group=COMMON))
    max_steps: int | None = field(default=None, metadata=flag(
        "stop after this many optimisation steps in total", group=COMMON))
    max_minutes: float | None = field(default=None, metadata=flag(
        "stop (with a checkpoint) after this much wall time in this process (> 0)",
        group=COMMON))
    lr_decay_start: int | None = field(default=None, metadata=flag(
        "from this step on, every learning rate falls linearly towards 0 at the run's last "
        "step (--max-steps, or the epochs); default: constant", group=COMMON, metavar="STEP"))
    num_workers: int = field(default=0, metadata=flag(
        "DataLoader worker processes", group=COMMON))
    precision: Literal["fp32", "bf16", "fp16"] = field(default="fp32", metadata=flag(
        "mixed precision with torch.autocast (CUDA only)", group=COMMON))
    threads: int | None = field(default=None, metadata=flag(
        "torch CPU threads of this process (default: torch's choice)", group=COMMON))

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if isinstance(self.resume, os.PathLike):
            self.resume = os.fspath(self.resume)
        _check_types(self)
        for name, allowed in choices_of(type(self)).items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of "
                                 f"{', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        check_positive_flags(self, "epochs", "batch_size", "lr", "max_steps", "max_minutes",
                             "lr_decay_start", "img_size", "crop", "threads")
        check_at_least(self, 0, "ckpt_every", "sample_every", "num_workers")
        if self.overwrite and self.resume is not None and \
                _same_path(self.resume_path, self.out / CHECKPOINT_NAME):
            raise ValueError(f"--overwrite would delete the checkpoint that --resume continues "
                             f"from ({self.resume_path}); pass one of them")

    @property
    def resume_path(self) -> Path | None:
        """The checkpoint to resume from: ``resume="auto"`` is ``OUT/checkpoint.safetensors``."""
        if self.resume is None:
            return None
        return self.out / CHECKPOINT_NAME if self.resume == "auto" else Path(self.resume)

    @classmethod
    def from_flags(cls, values: Mapping[str, Any]) -> Self:
        """Build the config from parsed flag values, e.g. ``vars(args)`` of ``genprior train``.

        Keys that are not fields of ``cls`` are ignored; missing ones take the fields' defaults.
        """
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)
                      if f.name in values})


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_positive_flags(config: Any, *names: str) -> None:
    """Raise ``ValueError`` naming the flag unless each field is ``None`` or positive and finite
    (``inf`` and NaN are refused: no setting of a run means "infinitely")."""
    for name in names:
        value = getattr(config, name)
        if value is None:
            continue
        if not value > 0:
            raise ValueError(f"{_flag(name)} must be positive, got {value}")
        if not math.isfinite(value):
            raise ValueError(f"{_flag(name)} must be finite, got {value}")


def check_at_least(config: Any, low: float, *names: str) -> None:
    """Raise ``ValueError`` naming the flag unless each field is ``None`` or a finite number
    ``>= low``."""
    for name in names:
        value = getattr(config, name)
        if value is not None and not (math.isfinite(value) and value >= low):
            raise ValueError(f"{_flag(name)} must be >= {low} and finite, got {value}")


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _check_types(config: Any) -> None:
    """Refuse values whose type cannot be the field's: a float (or ``inf``) where an ``int`` is
    expected, a string for a number, a number for a switch."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        tp, value = hints[f.name], getattr(config, f.name)
        if value is None:
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
        if tp is bool:
            ok, what = isinstance(value, bool), "True or False"
        elif tp is int:
            what = "an integer"
            try:
                ok = operator.index(value) is not None and not isinstance(value, bool)
            except TypeError:
                ok = False
        elif tp is float:
            ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        else:
            continue
        if not ok:
            raise TypeError(f"{_flag(f.name)} must be {what}, got {value!r}")


def deprecated_entry_points(
    config_cls: type[C], train: Callable[[C], Any], module: str
) -> tuple[Callable[[Any], None], Callable[[Any], int]]:
    """The deprecated ``add_arguments(parser)`` and ``main(args) -> int`` of a trainer module,
    which took an ``argparse`` parser and namespace before the trainers took a config.

    Args:
        config_cls: the trainer's config class (its fields are the flags).
        train: the trainer, called with the config built from ``vars(args)``.
        module: the trainer module's name, for the warnings.
    """
    new = f"{train.__name__}({config_cls.__name__}(...))"

    def add_arguments(parser: Any) -> None:
        warnings.warn(f"{module}.add_arguments is deprecated; the flags are the fields of "
                      f"{config_cls.__name__}", DeprecationWarning, stacklevel=2)
        add_dataclass_arguments(parser, config_cls)

    def main(args: Any) -> int:
        warnings.warn(f"{module}.main is deprecated; use {new}", DeprecationWarning,
                      stacklevel=2)
        train(config_cls.from_flags(vars(args)))
        return 0

    add_arguments.__doc__ = f"Deprecated: the flags are the fields of {config_cls.__name__}."
    main.__doc__ = f"Deprecated: use ``{new}``."
    return add_arguments, main
