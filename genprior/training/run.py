"""The set-up every trainer shares, written once: run folder and devices (DDP under
``torchrun``), training data and a sharded resumable loader, seeded initialisation, models on the
device and wrapped for DDP, the loop (:func:`~genprior.training.loop.fit`, resuming when asked)
and the final ``save_pretrained``.

A trainer (:func:`~genprior.training.vae.train_vae`, ...) opens a :class:`TrainingRun` on its
config, builds its models and optimisers with it, writes its ``step_fn`` and hands both to
:meth:`TrainingRun.fit`; what differs between trainers is only what differs between the models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, TensorDataset
from typing_extensions import Self

from genprior._random import make_generator
from genprior.data.training_data import ResumableSampler, load_image_data, parse_range
from genprior.training.config import TrainConfig
from genprior.training.distributed import DistInfo, cleanup_distributed, init_distributed
from genprior.training.loop import NonFiniteError, TrainState, first_nonfinite, fit, total_steps
from genprior.training.precision import Precision
from genprior.training.run_folder import check_run_folder, prepare_run_folder

__all__ = [
    "RunContext",
    "TrainResult",
    "TrainingRun",
    "finish",
    "make_loader",
    "rank_generator",
    "seeded_init",
    "setup_run",
]

M = TypeVar("M")


@dataclass
class RunContext:
    """Where a run writes and on what it runs."""

    dist: DistInfo
    out: Path
    seed: int

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


def setup_run(config: TrainConfig) -> RunContext:
    """Check the run folder and the device settings, start DDP when under ``torchrun`` and
    prepare the run folder.

    Before anything is written (and on every process) the run folder is checked
    (:func:`~genprior.training.run_folder.check_run_folder`): a folder holding a run is refused
    unless resumed from its own checkpoint or ``overwrite`` is set, and so is a folder inside the
    data. Then the main process creates it, deletes the old run when ``overwrite`` is set and
    removes temporary files left by killed runs. Sets torch's CPU threads when
    ``config.threads`` is given.

    Raises:
        ValueError: the run folder is refused; CUDA requested but absent, or mixed precision off
            CUDA.
    """
    check_run_folder(config.out, data=config.data, resume=config.resume_path,
                     overwrite=config.overwrite)
    if config.threads is not None:
        torch.set_num_threads(int(config.threads))
    device, precision = config.device, config.precision
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available")
    if precision != "fp32" and not (device or "cuda").startswith("cuda"):
        raise ValueError(f"--precision {precision} needs CUDA; use fp32 on {device}")
    info = init_distributed(device)
    if precision != "fp32" and info.device.type != "cuda":
        raise ValueError(f"--precision {precision} needs CUDA, but training runs on "
                         f"{info.device}")
    out = Path(config.out)
    if info.is_main:
        prepare_run_folder(out, overwrite=config.overwrite)
    return RunContext(dist=info, out=out, seed=int(config.seed))


def finish(ctx: RunContext) -> None:
    """Tear down DDP (call once at the end of a training run)."""
    del ctx
    cleanup_distributed()


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run model construction with the global RNG seeded, leaving the caller's RNG untouched.

    Layers initialise from the global generator (``nn.Linear``, ``nn.Conv2d``); forking it keeps
    initialisation reproducible without the library seeding global state for good.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def rank_generator(ctx: RunContext, offset: int = 0) -> torch.Generator:
    """A CPU noise generator seeded by ``seed``, the rank and ``offset`` (distinct per rank)."""
    return make_generator(ctx.seed * 1000 + 17 * offset + ctx.dist.rank + 1)


def make_loader(
    dataset: Dataset, ctx: RunContext, *, batch_size: int, num_workers: int = 0
) -> tuple[DataLoader, ResumableSampler]:
    """A sharded, seeded, resumable loader (full batches only).

    Raises:
        ValueError: when a process's shard is smaller than one batch.
    """
    sampler = ResumableSampler(dataset, num_replicas=ctx.dist.world_size, rank=ctx.dist.rank,
                               seed=ctx.seed)
    if sampler.num_samples < batch_size:
        raise ValueError(f"--batch-size {batch_size} exceeds the {sampler.num_samples} samples "
                         f"per process ({len(dataset)} in the data, "
                         f"{ctx.dist.world_size} process(es))")
    # The loader's own generator keeps it from drawing worker seeds from the global RNG.
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=num_workers, pin_memory=ctx.device.type == "cuda",
                        generator=make_generator(ctx.seed + ctx.dist.rank))
    return loader, sampler


@dataclass
class TrainResult:
    """What a trainer returns.

    Attributes:
        model: the trained model as saved in ``out/final`` (the weight average where the trainer
            keeps one), in eval mode.
        state: the loop's final counters (``step``, ``epoch``) and run config.
        out: the run folder.
    """

    model: nn.Module
    state: TrainState
    out: Path


class TrainingRun:
    """One training run on a :class:`~genprior.training.config.TrainConfig`, as a context.

    Entering starts it (:func:`setup_run`); leaving tears DDP down. In between it provides what
    every trainer needs, in this order: :meth:`images`, :meth:`init` (seeded construction on the
    device), :meth:`wrap` (DDP), :meth:`make_loader`, :meth:`fit` and :meth:`save`. The mixed
    precision helper and the run's noise generator (distinct per rank, checkpointed) are
    :attr:`precision` and :attr:`noise`.

    Example:
        >>> with TrainingRun(config) as run:  # doctest: +SKIP
        ...     x = run.images()
        ...     model = run.init(lambda: MyModel())
        ...     run.make_loader(x)
        ...     state = run.fit(step, modules={"model": model}, optimizers={"adam": opt},
        ...                     config={"kind": "mine"}, loss_names=["loss"])
        ...     result = run.save(state, {"final": model})
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.ctx: RunContext | None = None
        self._loader: DataLoader | None = None
        self._sampler: ResumableSampler | None = None

    def __enter__(self) -> Self:
        self.ctx = setup_run(self.config)
        self.precision = Precision(self.config.precision, self.ctx.device)
        self.noise = rank_generator(self.ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        finish(self.ctx)

    @property
    def device(self) -> torch.device:
        """The training device of this process (``ctx.device``)."""
        return self.ctx.device

    def images(self) -> Tensor:
        """The training images ``(N, C, H, W)`` in [0, 1] (``data``, ``img_size``, ``crop``,
        ``train_range`` of the config), on the CPU."""
        c = self.config
        return load_image_data(c.data, img_size=c.img_size, crop=c.crop,
                               id_range=parse_range(c.train_range)).tensors[0]

    def init(self, build: Callable[[], M]) -> M:
        """Call ``build`` with the global RNG seeded by ``seed`` (:func:`seeded_init`) and move
        the module, or each module of the tuple, it returns to the device."""
        with seeded_init(self.config.seed):
            built = build()
        if isinstance(built, tuple):
            return tuple(m.to(self.device) for m in built)  # type: ignore[return-value]
        return built.to(self.device)

    def init_from(self, flag: str, path: str, model: nn.Module, kind: type) -> None:
        """Copy the weights of the trained model at ``path`` (a prior folder or name) into
        ``model``, refusing a model of another class than ``kind`` or another configuration
        (each differing field named); loaded inside :meth:`init`, so that loading it leaves
        the global RNG alone. ``flag`` names the option in the errors."""
        from genprior.priors.hub import load_prior

        source = self.init(lambda: load_prior(path))
        if not isinstance(source, kind):
            raise TypeError(f"{flag} {path} holds a {type(source).__name__}, not a "
                            f"{kind.__name__}")
        theirs, ours = source.config, model.config  # both JSON forms (tuples as lists)
        differ = [f"{k} {theirs.get(k)} (this run: {ours.get(k)})"
                  for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        if differ:
            raise ValueError(f"{flag} {path} has another network: {'; '.join(differ)}")
        model.load_state_dict(source.state_dict())

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` wrapped in :class:`DistributedDataParallel` under ``torchrun``, else itself."""
        if not self.ctx.dist.distributed:
            return module
        return DistributedDataParallel(
            module, device_ids=[self.device] if self.device.type == "cuda" else None)

    def make_loader(self, x: Tensor) -> int:
        """Set up the sharded, resumable loader over the images ``x``; return the total number
        of steps the run will make (``epochs`` x steps per epoch, capped by ``max_steps``)."""
        self._loader, self._sampler = make_loader(TensorDataset(x), self.ctx,
                                                  batch_size=self.config.batch_size,
                                                  num_workers=self.config.num_workers)
        return total_steps(self.steps_per_epoch, epochs=self.config.epochs,
                           max_steps=self.config.max_steps)

    @property
    def steps_per_epoch(self) -> int:
        """Optimisation steps per epoch on this process (after :meth:`make_loader`)."""
        return self._sampler.num_samples // self.config.batch_size

    def fit(
        self,
        step_fn: Callable[[Tensor, TrainState], dict[str, float]],
        *,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        config: dict[str, Any],
        loss_names: Sequence[str],
        sample_fn: Callable[[], Tensor] | None = None,
    ) -> TrainState:
        """Run :func:`~genprior.training.loop.fit` with the config's schedule, checkpointing the
        noise generator too.

        Args:
            step_fn, modules, optimizers, loss_names, sample_fn: as for
                :func:`~genprior.training.loop.fit`.
            config: the trainer's JSON-able architecture description; the run's ``batch_size``,
                ``lr``, ``world_size`` and ``seed`` are added. A resumed checkpoint must carry
                the same one.
        """
        c = self.config
        config = {**config, "batch_size": c.batch_size, "lr": c.lr,
                  "world_size": self.ctx.dist.world_size, "seed": c.seed}
        return fit(out=self.ctx.out, loader=self._loader, sampler=self._sampler,
                   step_fn=step_fn, modules=modules, optimizers=optimizers,
                   generators={"noise": self.noise}, config=config, loss_names=loss_names,
                   epochs=c.epochs, device=self.device, is_main=self.ctx.is_main,
                   sample_fn=sample_fn, max_steps=c.max_steps, max_minutes=c.max_minutes,
                   ckpt_every=c.ckpt_every, sample_every=c.sample_every,
                   resume=c.resume_path, lr_decay_start=c.lr_decay_start)

    def save(self, state: TrainState, models: Mapping[str, nn.Module], *, what: str = "",
             **training: Any) -> TrainResult:
        """``save_pretrained`` each model into ``out/<name>`` (main process only) and report.

        The ``training`` record of each ``config.json`` holds the steps and epochs done, the data,
        the run's ``batch_size``, ``lr``, ``seed`` (and ``lr_decay_start`` when set), and
        ``training``.

        Args:
            state: from :meth:`fit`.
            models: folder name -> model; the first is the run's result.
            what: said after the first folder's name in the printed line.

        Raises:
            NonFiniteError: a model holds NaN or infinite weights (nothing is written).
        """
        c = self.config
        info = {"steps": state.step, "epochs_completed": state.epoch, "data": str(c.data),
                "train_range": c.train_range, "batch_size": c.batch_size, "lr": c.lr,
                "seed": c.seed, **training}
        if c.lr_decay_start is not None:
            info["lr_decay_start"] = c.lr_decay_start
        for model in models.values():
            model.eval()
        name, model = next(iter(models.items()))
        bad = first_nonfinite(dict(models))
        if bad is not None:
            raise NonFiniteError(f"{bad} holds non-finite values after {state.step} steps; "
                                 f"nothing was saved to {self.ctx.out / name}")
        if self.ctx.is_main:
            for folder, m in models.items():
                m.save_pretrained(self.ctx.out / folder, training=info)
            print(f"saved {self.ctx.out / name}{what} after {state.step} steps")
        return TrainResult(model=model, state=state, out=self.ctx.out)
