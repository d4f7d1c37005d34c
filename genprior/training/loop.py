"""The resumable step loop every trainer runs.

A trainer builds its models and optimisers, then hands :func:`fit` a ``step_fn`` that does one
optimisation step on a batch and returns a dict of scalar losses. :func:`fit` owns the rest:
epochs, ``max_steps``, checkpoints every ``ckpt_every`` steps (atomic, via
:func:`genprior.training.checkpoint.save_checkpoint`), resuming, a CSV loss log and a PNG sample
grid written as it goes. Under ``torchrun`` only rank 0 writes.

Finite-or-fail: a non-finite loss stops the run with :class:`NonFiniteError` at the step it
appears, and no checkpoint (nor ``final/``) is ever written with non-finite weights or optimiser
state, so the last good checkpoint survives a diverged run.

Resuming is exact on CPU: the data order is a pure function of ``(seed, epoch)``
(:class:`~genprior.data.ResumableSampler`), the position inside the epoch is checkpointed, and so
are every ``torch.Generator`` and the global CPU RNG state.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from genprior.data.training_data import ResumableSampler
from genprior.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from genprior.training.logging import CSVLogger, progress_bar, save_sample_grid

__all__ = ["NonFiniteError", "TrainState", "first_nonfinite", "fit", "lr_scale", "total_steps"]


class NonFiniteError(ValueError):
    """Training produced a NaN or infinite loss, weight or optimiser state.

    A ``ValueError``, so ``genprior train`` reports it in one line and exits with status 2.
    """


def first_nonfinite(modules: dict[str, nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None) -> str | None:
    """The name of the first floating-point tensor of the modules' ``state_dict`` or the
    optimisers' state that holds NaN or inf, or ``None`` when all are finite.

    Example:
        >>> m = nn.Linear(2, 1)
        >>> first_nonfinite({"m": m}) is None
        True
        >>> with torch.no_grad():
        ...     _ = m.bias.fill_(float("nan"))
        >>> first_nonfinite({"m": m})
        'm.bias'
    """
    for name, module in modules.items():
        for key, t in module.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{name}.{key}"
    for name, opt in (optimizers or {}).items():
        for i, st in enumerate(opt.state.values()):
            for key, t in st.items():
                if torch.is_tensor(t) and t.is_floating_point() and \
                        not bool(torch.isfinite(t).all()):
                    return f"optimizer {name} state {i}.{key}"
    return None


@dataclass
class TrainState:
    """Counters saved in every checkpoint: ``step`` (optimisation steps done), ``epoch`` and
    ``batch`` (batches of that epoch done), plus the JSON-able run ``config``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    config: dict[str, Any] = field(default_factory=dict)


def total_steps(steps_per_epoch: int, *, epochs: int, max_steps: int | None = None) -> int:
    """Steps a run makes in all: ``epochs * steps_per_epoch``, capped by ``max_steps``."""
    total = epochs * steps_per_epoch
    return total if max_steps is None else min(total, max_steps)


def lr_scale(step: int, *, start: int | None, total: int) -> float:
    """The factor on every base learning rate for the step after ``step`` steps: 1 before
    ``start``, then linear from 1 at ``start`` towards 0 at ``total`` (``start=None``: 1).

    Example:
        >>> [lr_scale(s, start=6, total=10) for s in (0, 5, 6, 8, 9)]
        [1.0, 1.0, 1.0, 0.5, 0.25]
    """
    if start is None or step < start:
        return 1.0
    return (total - step) / (total - start)


def _check_config(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    diff = {k: (saved.get(k), current.get(k)) for k in set(saved) | set(current)
            if saved.get(k) != current.get(k)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"checkpoint {path} was written for another model/run configuration "
                         f"({detail}); start a new --out or pass matching flags")


def fit(
    *,
    out: str | os.PathLike,
    loader: DataLoader,
    sampler: ResumableSampler,
    step_fn: Callable[[Tensor, TrainState], dict[str, float]],
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    config: dict[str, Any],
    loss_names: Sequence[str],
    epochs: int,
    device: torch.device | str = "cpu",
    is_main: bool = True,
    sample_fn: Callable[[], Tensor] | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    ckpt_every: int = 500,
    sample_every: int = 500,
    resume: str | os.PathLike | None = None,
    lr_decay_start: int | None = None,
) -> TrainState:
    """Run the training loop shared by every trainer.

    Args:
        out: the run folder (``checkpoint.safetensors``, ``log.csv``, ``samples.png``).
        loader, sampler: a loader over the training set and its :class:`ResumableSampler`
            (:func:`genprior.training.run.make_loader`).
        step_fn: does one optimisation step on a batch (already on ``device``) and returns
            scalar losses named as in ``loss_names``.
        modules, optimizers, generators: everything a checkpoint must hold (models, EMA copies,
            optimisers, noise generators).
        config: JSON-able description of the architecture and run; a resumed checkpoint must
            carry the same one.
        loss_names: columns of ``log.csv``.
        epochs: passes over the data.
        device: where batches go.
        is_main: whether this process writes (rank 0).
        sample_fn: returns images in [0, 1] for ``samples.png`` (called on the main process only).
        max_steps: stop after this many steps in total.
        max_minutes: stop (with a checkpoint) after this much wall time.
        ckpt_every, sample_every: write the checkpoint / ``samples.png`` every N steps
            (0: only at the end).
        resume: a checkpoint to continue from.
        lr_decay_start: from this step on, every optimiser's learning rates (as the optimisers
            were built, before ``resume``) fall linearly towards 0 at the run's last step
            (:func:`lr_scale`); ``None``: left alone.

    Returns:
        the final :class:`TrainState`.

    Raises:
        FileNotFoundError: ``resume`` does not exist.
        ValueError: naming the checkpoint when ``resume`` holds another architecture; naming
            ``log.csv`` when, on resume, the log does not lead up to the checkpoint's step;
            ``lr_decay_start`` not below the run's number of steps.
        NonFiniteError: a loss is NaN or infinite (checked every step, before it is logged), or
            a weight or optimiser state is when a checkpoint is due; the checkpoint on disk is
            then the last good one, and nothing else is written.
    """
    out = Path(out)
    if max_minutes is not None and not (max_minutes > 0 and math.isfinite(max_minutes)):
        raise ValueError(f"--max-minutes must be positive and finite, got {max_minutes}")
    state = TrainState(config=config)
    base_lrs = [[group["lr"] for group in opt.param_groups] for opt in optimizers.values()]
    if resume is not None:
        resume = Path(resume)
        saved = load_checkpoint(resume, modules=modules, optimizers=optimizers,
                                generators=generators, global_rng=True) if resume.is_file() else None
        if saved is None:
            hint = (f" ({out} holds a run stopped before its first checkpoint: start it again "
                    f"with --overwrite)" if (out / "log.csv").is_file() else "")
            raise FileNotFoundError(f"--resume checkpoint not found: {resume}{hint}")
        _check_config(resume, saved.get("config", {}), config)
        state = TrainState(step=saved["step"], epoch=saved["epoch"], batch=saved["batch"],
                           config=config)
    steps_per_epoch = sampler.num_samples // loader.batch_size
    total = total_steps(steps_per_epoch, epochs=epochs, max_steps=max_steps)
    if lr_decay_start is not None and lr_decay_start >= total:
        raise ValueError(f"--lr-decay-start {lr_decay_start} must be below the run's {total} "
                         f"steps")

    def schedule() -> None:
        scale = lr_scale(state.step, start=lr_decay_start, total=total)
        for opt, lrs in zip(optimizers.values(), base_lrs):
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr * scale
    logger = CSVLogger(out / "log.csv", loss_names,
                       resume_step=state.step if resume is not None else None) if is_main else None
    t_log = logger.time_offset if logger is not None else 0.0
    ckpt_path = out / CHECKPOINT_NAME
    # the step of the good checkpoint in ``out`` (None: there is none yet)
    saved_step = (state.step if resume is not None and resume.resolve() == ckpt_path.resolve()
                  else None)

    def diverged(what: str) -> NonFiniteError:
        kept = (f"the last good checkpoint {ckpt_path} (step {saved_step}) is kept"
                if saved_step is not None else "no checkpoint was written")
        return NonFiniteError(f"training diverged at step {state.step}: {what}; {kept} and no "
                              f"final model was saved (lower --lr, or check the data)")

    def checkpoint() -> None:
        nonlocal saved_step
        bad = first_nonfinite(modules, optimizers)
        if bad is not None:
            raise diverged(f"{bad} holds non-finite values")
        if is_main:
            save_checkpoint(ckpt_path, modules=modules, optimizers=optimizers,
                            generators=generators,
                            state={"step": state.step, "epoch": state.epoch,
                                   "batch": state.batch, "config": config})
        saved_step = state.step

    def samples() -> None:
        if is_main and sample_fn is not None:
            save_sample_grid(out / "samples.png", sample_fn())

    bar = progress_bar(total=total, initial=min(state.step, total), enabled=is_main,
                       desc=f"train {out.name}")
    t0 = time.monotonic()
    try:
        out_of_time = False
        while state.step < total and state.epoch < epochs and not out_of_time:
            sampler.set_epoch(state.epoch, start=state.batch * loader.batch_size)
            for (x,) in loader:
                if lr_decay_start is not None:
                    schedule()
                losses = step_fn(x.to(device, non_blocking=True), state)
                state.step += 1
                state.batch += 1
                bad = [f"{k} = {v}" for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise diverged(", ".join(bad))
                if logger is not None:
                    logger.log(state.step, state.epoch, t_log + time.monotonic() - t0, losses)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
                    bar.update(1)
                if ckpt_every and state.step % ckpt_every == 0:
                    checkpoint()
                if sample_every and state.step % sample_every == 0:
                    samples()
                out_of_time = (max_minutes is not None
                               and time.monotonic() - t0 > 60.0 * max_minutes)
                if state.step >= total or out_of_time:
                    break
            if state.batch >= steps_per_epoch:  # epoch complete (the loader drops the last partial batch)
                state.epoch, state.batch = state.epoch + 1, 0
        if saved_step != state.step:
            checkpoint()
        samples()
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if dist.is_initialized():
        dist.barrier()
    return state
