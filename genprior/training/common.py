"""Deprecated: the old home of the shared training machinery, kept importable for compatibility.

Everything moved to a module with one job; import from there instead:

- :mod:`genprior.training.config`: :class:`TrainConfig` (the settings every run shares; every
  field is a ``genprior train`` flag);
- :mod:`genprior.training.run`: :class:`RunContext`, :func:`setup_run`, :func:`finish`,
  :func:`seeded_init`, :func:`rank_generator`, :func:`make_loader` and :class:`TrainingRun`
  (the set-up every trainer shares);
- :mod:`genprior.training.loop`: :class:`TrainState` and :func:`fit` (explicit arguments);
- :mod:`genprior.training.ema`, :mod:`genprior.training.precision`: :class:`EMA`,
  :class:`Precision`;
- :mod:`genprior.training.logging`: :class:`CSVLogger`;
- :mod:`genprior.data`: :func:`load_image_data`, :func:`parse_range`, :class:`ResumableSampler`;
- :func:`genprior._io.save_grid_png`: the one PNG-grid writer (``save_image_grid`` here is a
  thin alias).

``IMAGE_EXTENSIONS`` is gone: image folders use :data:`genprior.data.folder.IMG_EXTENSIONS`.
The functions below whose signature took an ``argparse.Namespace`` (:func:`add_common_arguments`,
:func:`setup_run`, :func:`fit`) keep working with one and warn.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from torch import Tensor

from genprior._flags import add_dataclass_arguments
from genprior.data.training_data import ResumableSampler, load_image_data, parse_range
from genprior.training import loop as _loop
from genprior.training import run as _run
from genprior.training.config import TrainConfig
from genprior.training.ema import EMA
from genprior.training.logging import CSVLogger, save_sample_grid
from genprior.training.loop import TrainState
from genprior.training.precision import Precision
from genprior.training.run import (
    RunContext,
    finish,
    make_loader,
    rank_generator,
    seeded_init,
)

__all__ = [
    "EMA",
    "CSVLogger",
    "Precision",
    "ResumableSampler",
    "RunContext",
    "TrainState",
    "add_common_arguments",
    "finish",
    "fit",
    "load_image_data",
    "make_loader",
    "parse_range",
    "rank_generator",
    "save_image_grid",
    "seeded_init",
    "setup_run",
]


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"genprior.training.common.{old} is deprecated; use {new}",
                  DeprecationWarning, stacklevel=3)


def add_common_arguments(parser: Any, *, epochs: int, batch_size: int, lr: float,
                         img_size: int | None = None) -> None:
    """Deprecated: the common flags are the fields of :class:`TrainConfig`."""
    _deprecated("add_common_arguments", "a TrainConfig subclass (its fields are the flags)")
    add_dataclass_arguments(parser, TrainConfig, defaults={
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "img_size": img_size})


def _config(args: Any) -> TrainConfig:
    return args if isinstance(args, TrainConfig) else TrainConfig.from_flags(vars(args))


def setup_run(args: Any) -> RunContext:
    """Deprecated: :func:`genprior.training.run.setup_run` takes a :class:`TrainConfig`."""
    _deprecated("setup_run", "genprior.training.run.setup_run(config)")
    return _run.setup_run(_config(args))


def fit(args: Any, ctx: RunContext, **kwargs: Any) -> TrainState:
    """Deprecated: :func:`genprior.training.loop.fit` takes explicit arguments.

    ``kwargs`` are ``loader, sampler, step_fn, modules, optimizers, generators, config,
    loss_names, sample_fn``; the schedule comes from the flags ``args``.
    """
    _deprecated("fit", "genprior.training.loop.fit (explicit arguments) or TrainingRun.fit")
    c = _config(args)
    return _loop.fit(out=ctx.out, device=ctx.device, is_main=ctx.is_main, epochs=c.epochs,
                     max_steps=c.max_steps, max_minutes=c.max_minutes, ckpt_every=c.ckpt_every,
                     sample_every=c.sample_every, resume=c.resume_path, **kwargs)


def save_image_grid(x: Tensor, path: str | os.PathLike, *, nrow: int = 8, pad: int = 2) -> None:
    """Deprecated alias: :func:`genprior._io.save_grid_png` with ``pad_value=1.0``, ``x`` clipped
    to [0, 1] (as :func:`genprior.training.logging.save_sample_grid`).

    Shape:
        - x: ``(B, C, H, W)`` with C in {1, 3}
    """
    _deprecated("save_image_grid", "genprior._io.save_grid_png(path, x, pad_value=1.0)")
    save_sample_grid(path, x, nrow=nrow, padding=pad)
