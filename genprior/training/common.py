"""Shared machinery of every training loop: flags, data, sharded resumable sampling, EMA, mixed
precision, logging (progress bar, CSV, sample grid) and the resumable step loop itself.

A training script builds its models and optimisers, then hands :func:`fit` a ``step_fn`` that
does one optimisation step on a batch and returns a dict of scalar losses. :func:`fit` owns the
rest: epochs, ``--max-steps``, checkpoints every ``--ckpt-every`` steps (atomic, via
:func:`genprior.training.checkpoint.save_checkpoint`), ``--resume``, a CSV loss log and a PNG
sample grid written as it goes. Under ``torchrun`` only rank 0 writes.

Resuming is exact on CPU: the data order is a pure function of ``(seed, epoch)`` (as in
:class:`~torch.utils.data.DistributedSampler`), the position inside the epoch is checkpointed,
and so are every ``torch.Generator`` and the global CPU RNG state.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm.auto import tqdm

from genprior._random import make_generator
from genprior._serialization import atomic_write_bytes
from genprior.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from genprior.training.distributed import DistInfo, cleanup_distributed, init_distributed

__all__ = [
    "EMA",
    "IMAGE_EXTENSIONS",
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

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# ---------------------------------------------------------------------------------------- flags
def parse_range(text: str | None) -> tuple[int, int] | None:
    """Parse an inclusive id range ``"1:8000"`` (both ends included) or ``None``.

    Raises:
        ValueError: naming ``--train-range`` when the text is not ``START:END`` with
            ``START <= END``.
    """
    if text is None or text == "":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if m is None or int(m.group(1)) > int(m.group(2)):
        raise ValueError(f"--train-range must be START:END with START <= END (e.g. 1:8000), "
                         f"got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    img_size: int | None = None,
) -> None:
    """Add the flags every ``genprior train KIND`` shares, with per-kind defaults.

    Flags: ``--data --out --epochs --batch-size --lr --seed --img-size --crop --ckpt-every
    --sample-every --resume --device --max-steps --num-workers --train-range --precision
    --threads``.
    """
    g = parser.add_argument_group("common training options")
    g.add_argument("--data", required=True, type=Path,
                   help="training data: a folder of images (.jpg/.png) or of .npz shards "
                        "holding an array 'x' (MNIST layout)")
    g.add_argument("--out", required=True, type=Path,
                   help="run folder: checkpoint, log.csv, samples.png, final/")
    g.add_argument("--epochs", type=int, default=epochs, help="passes over the data")
    g.add_argument("--batch-size", type=int, default=batch_size,
                   help="batch size per process")
    g.add_argument("--lr", type=float, default=lr, help="Adam learning rate")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order "
                   "and noise")
    g.add_argument("--img-size", type=int, default=img_size,
                   help="square image size for image folders (centre crop + resize); "
                        "npz data keep their size")
    g.add_argument("--crop", type=int, default=None,
                   help="centred square crop before resizing image folders (default: largest "
                        "square; 54 for the 89x109 CelebA copies, as genprior.data.load_celeba)")
    g.add_argument("--train-range", default=None, metavar="START:END",
                   help="use only files whose numeric name lies in START..END (inclusive), "
                        "e.g. 1:8000 for the fixed CelebA training split; for .npz data, "
                        "1-based sample indices")
    g.add_argument("--ckpt-every", type=int, default=500,
                   help="write the checkpoint every N optimisation steps (0: only at the end)")
    g.add_argument("--sample-every", type=int, default=500,
                   help="refresh samples.png every N steps (0: only at the end)")
    g.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help=f"continue from a checkpoint (default OUT/{CHECKPOINT_NAME})")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimisation steps in total")
    g.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this much wall time in this process")
    g.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="mixed precision with torch.autocast (CUDA only)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of this process (default: torch's choice)")


# ---------------------------------------------------------------------------------------- setup
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


def setup_run(args: argparse.Namespace) -> RunContext:
    """Check the common flags, start DDP when under ``torchrun`` and create the run folder.

    Raises:
        ValueError: naming the flag whose value is out of range.
    """
    for flag in ("epochs", "batch_size", "lr"):
        if getattr(args, flag) <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive, "
                             f"got {getattr(args, flag)}")
    for flag in ("ckpt_every", "sample_every", "num_workers"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise ValueError(f"--max-steps must be positive, got {args.max_steps}")
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    if args.device is not None and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device} requested but CUDA is not available")
    if args.precision != "fp32" and not (args.device or "cuda").startswith("cuda"):
        raise ValueError(f"--precision {args.precision} needs CUDA; use fp32 on {args.device}")
    info = init_distributed(args.device)
    if args.precision != "fp32" and info.device.type != "cuda":
        raise ValueError(f"--precision {args.precision} needs CUDA, but training runs on "
                         f"{info.device}")
    out = Path(args.out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    return RunContext(dist=info, out=out, seed=int(args.seed))


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run model construction with the global RNG seeded, leaving the caller's RNG untouched.

    Layers initialise from the global generator (``nn.Linear``, ``nn.Conv2d``); forking it keeps
    initialisation reproducible without the library seeding global state for good.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


# ---------------------------------------------------------------------------------------- data
def _id_of(path: Path) -> int | None:
    m = re.fullmatch(r"(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _load_npz_folder(root: Path, *, split: str, id_range: tuple[int, int] | None) -> Tensor:
    files = sorted(p for p in root.glob("*.npz") if split in p.name) or sorted(root.glob("*.npz"))
    arrays = []
    for p in files:
        try:
            with np.load(p) as d:
                if "x" not in d:
                    raise ValueError(f"{p} holds no array 'x' (keys: {sorted(d.keys())})")
                arrays.append(d["x"])
        except (OSError, ValueError, EOFError) as e:
            if isinstance(e, ValueError) and str(p) in str(e):
                raise
            raise ValueError(f"cannot read data file {p}: {e}") from e
    x = np.concatenate(arrays)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"arrays 'x' in {root} must be (N, H, W) or (N, H, W, C), got {x.shape}")
    if id_range is not None:
        x = x[id_range[0] - 1:id_range[1]]
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def _check_image_file(path: Path, *, min_side: int, channels: int) -> None:
    want = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    if mode != want:
        raise ValueError(f"image {path} has mode {mode}, expected {want} ({channels} channel(s))")
    if min(w, h) < min_side:
        raise ValueError(f"image {path} is {w}x{h}, smaller than the crop/size {min_side}")


def load_image_data(
    root: str | os.PathLike,
    *,
    img_size: int | None = None,
    crop: int | None = None,
    channels: int = 3,
    id_range: tuple[int, int] | None = None,
    split: str = "train",
) -> TensorDataset:
    """Load a whole training set into memory as a :class:`TensorDataset` of images in [0, 1].

    Two layouts: a folder of ``.npz`` shards with an array ``x`` (``uint8`` (N, H, W[, C]), the
    MNIST layout; shards whose name contains ``split`` are used), or a folder of images read by
    :class:`genprior.data.ImageFolderDataset` (centred ``crop``, bilinear resize to ``img_size``;
    CelebA 64x64 uses ``crop=54``, :data:`genprior.data.folder.CELEBA_CROP`).

    Args:
        root: the folder.
        img_size: target side for image folders (required for them).
        crop: centred square crop side before resizing (``None``: the largest square).
        channels: 3 (RGB) or 1 (L) for image folders; every image must have that mode.
        id_range: keep files whose numeric name is in ``[start, end]`` (image folders) or the
            samples ``start..end`` (1-based, npz).
        split: substring selecting npz shards.

    Returns:
        a dataset of float ``(C, H, W)`` tensors in [0, 1].

    Raises:
        FileNotFoundError: ``root`` is missing.
        ValueError: naming the folder or the offending file when the folder holds no data, a
            file cannot be read, or an image has the wrong mode or is too small.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data folder not found: {root}")
    if any(root.glob("*.npz")):
        x = _load_npz_folder(root, split=split, id_range=id_range)
    else:
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if id_range is not None:
            files = [p for p in files if (i := _id_of(p)) is not None
                     and id_range[0] <= i <= id_range[1]]
        if not files:
            where = "" if id_range is None else f" with ids in {id_range[0]}..{id_range[1]}"
            raise ValueError(f"--data folder {root} holds no images{where} "
                             f"({'/'.join(IMAGE_EXTENSIONS)}) and no .npz shards")
        if img_size is None:
            raise ValueError("--img-size is required for an image folder")
        for p in files:
            _check_image_file(p, min_side=crop or img_size, channels=channels)
        from genprior.data.folder import ImageFolderDataset

        folder = ImageFolderDataset(root, img_size=img_size, crop=crop,
                                    grayscale=channels == 1, files=[p.name for p in files])
        x = torch.stack([folder[i] for i in range(len(folder))])
    if x.shape[0] == 0:
        raise ValueError(f"--data folder {root} holds no samples"
                         + ("" if id_range is None else f" in range {id_range}"))
    return TensorDataset(x)


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` whose epoch can start part-way (for exact resumption).

    The order is a pure function of ``(seed, epoch)``; :meth:`set_epoch` with ``start`` skips
    the first ``start`` indices of this rank's shard.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int,
                 shuffle: bool = True, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


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


# ---------------------------------------------------------------------------------------- EMA
class EMA(nn.Module):
    r"""Exponential moving average of a model's weights,
    :math:`\theta_{\mathrm{ema}} \leftarrow d\,\theta_{\mathrm{ema}} + (1-d)\,\theta`
    (buffers such as BatchNorm statistics are copied).

    Args:
        model: the model to track (a deep copy is kept in :attr:`module`).
        decay: :math:`d \in [0, 1)`.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


# ---------------------------------------------------------------------------------------- AMP
class Precision:
    """``torch.autocast`` + one ``GradScaler`` per optimiser (fp16) on CUDA; a no-op for fp32.

    Args:
        kind: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: the training device (mixed precision requires CUDA).
    """

    def __init__(self, kind: str, device: torch.device) -> None:
        if kind not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {kind!r}")
        if kind != "fp32" and device.type != "cuda":
            raise ValueError(f"precision {kind} needs CUDA, got device {device}")
        self.kind, self.device = kind, device
        self._scalers: dict[int, torch.amp.GradScaler] = {}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for the forward pass."""
        if self.kind == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.kind == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """``zero_grad``, backward (scaled for fp16) and optimiser step."""
        optimizer.zero_grad(set_to_none=True)
        if self.kind != "fp16":
            loss.backward()
            optimizer.step()
            return
        scaler = self._scalers.setdefault(id(optimizer), torch.amp.GradScaler("cuda"))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


# ---------------------------------------------------------------------------------------- logs
class CSVLogger:
    """Append rows ``step, epoch, time_s, <losses...>`` to a CSV, flushed per row.

    On resume, rows after ``resume_step`` (written after the checkpoint by the interrupted run)
    are dropped so that the log matches the training state.
    """

    def __init__(self, path: Path, fields: Sequence[str], *, resume_step: int | None = None):
        self.path, self.fields = Path(path), ["step", "epoch", "time_s", *fields]
        rows: list[list[str]] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= resume_step]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.fields)
        w.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self._f = self.path.open("a", newline="")
        self._w = csv.writer(self._f)

    def log(self, step: int, epoch: int, time_s: float, values: dict[str, float]) -> None:
        self._w.writerow([step, epoch, f"{time_s:.1f}",
                          *(f"{values[k]:.6g}" for k in self.fields[3:])])
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def save_image_grid(x: Tensor, path: str | os.PathLike, *, nrow: int = 8, pad: int = 2) -> None:
    """Write a PNG grid of images in [0, 1] atomically.

    Shape:
        - x: ``(B, C, H, W)`` with C in {1, 3}
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must be (B, 1|3, H, W), got {tuple(x.shape)}")
    x = x.detach().float().clamp(0, 1).cpu()
    b, c, h, w = x.shape
    rows = math.ceil(b / nrow)
    cols = min(b, nrow)
    grid = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(b):
        r, k = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + k * (w + pad):pad + k * (w + pad) + w] = x[i]
    arr = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    im = Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------------------------------- loop
@dataclass
class TrainState:
    """Counters saved in every checkpoint: ``step`` (optimisation steps done), ``epoch`` and
    ``batch`` (batches of that epoch done), plus the JSON-able run ``config``."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    config: dict[str, Any] = field(default_factory=dict)


def _resume_path(args: argparse.Namespace, out: Path) -> Path | None:
    if args.resume is None:
        return None
    return out / CHECKPOINT_NAME if args.resume == "auto" else Path(args.resume)


def _check_config(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    diff = {k: (saved.get(k), current.get(k)) for k in set(saved) | set(current)
            if saved.get(k) != current.get(k)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"checkpoint {path} was written for another model/run configuration "
                         f"({detail}); start a new --out or pass matching flags")


def fit(
    args: argparse.Namespace,
    ctx: RunContext,
    *,
    loader: DataLoader,
    sampler: ResumableSampler,
    step_fn: Callable[[Tensor, TrainState], dict[str, float]],
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    generators: dict[str, torch.Generator],
    config: dict[str, Any],
    loss_names: Sequence[str],
    sample_fn: Callable[[], Tensor] | None = None,
) -> TrainState:
    """Run the training loop shared by every ``genprior train`` kind.

    Args:
        args: parsed common flags (:func:`add_common_arguments`).
        ctx: from :func:`setup_run`.
        loader, sampler: from :func:`make_loader`.
        step_fn: does one optimisation step on a batch (already on ``ctx.device``) and returns
            scalar losses named as in ``loss_names``.
        modules, optimizers, generators: everything a checkpoint must hold (models, EMA copies,
            optimisers, noise generators).
        config: JSON-able description of the architecture and run; a resumed checkpoint must
            carry the same one.
        loss_names: columns of ``log.csv``.
        sample_fn: returns images in [0, 1] for ``samples.png`` (called on rank 0 only).

    Returns:
        the final :class:`TrainState`.

    Raises:
        ValueError: naming the checkpoint when ``--resume`` points at another architecture.
    """
    state = TrainState(config=config)
    ckpt_path = ctx.out / CHECKPOINT_NAME
    resume = _resume_path(args, ctx.out)
    if resume is not None:
        saved = load_checkpoint(resume, modules=modules, optimizers=optimizers,
                                generators=generators) if resume.is_file() else None
        if saved is None:
            raise FileNotFoundError(f"--resume checkpoint not found: {resume}")
        _check_config(resume, saved.get("config", {}), config)
        state = TrainState(step=saved["step"], epoch=saved["epoch"], batch=saved["batch"],
                           config=config)
    steps_per_epoch = sampler.num_samples // loader.batch_size
    total = args.epochs * steps_per_epoch
    if args.max_steps is not None:
        total = min(total, args.max_steps)
    logger = CSVLogger(ctx.out / "log.csv", loss_names,
                       resume_step=state.step if resume is not None else None) if ctx.is_main else None
    bar = tqdm(total=total, initial=min(state.step, total), disable=not ctx.is_main,
               dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0,
               desc=f"train {ctx.out.name}")
    t0 = time.monotonic()

    def checkpoint() -> None:
        if ctx.is_main:
            save_checkpoint(ckpt_path, modules=modules, optimizers=optimizers,
                            generators=generators,
                            state={"step": state.step, "epoch": state.epoch,
                                   "batch": state.batch, "config": config})

    def samples() -> None:
        if ctx.is_main and sample_fn is not None:
            save_image_grid(sample_fn(), ctx.out / "samples.png")

    out_of_time = False
    while state.step < total and state.epoch < args.epochs and not out_of_time:
        sampler.set_epoch(state.epoch, start=state.batch * loader.batch_size)
        for (x,) in loader:
            losses = step_fn(x.to(ctx.device, non_blocking=True), state)
            state.step += 1
            state.batch += 1
            if logger is not None:
                logger.log(state.step, state.epoch, time.monotonic() - t0, losses)
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
                bar.update(1)
            if args.ckpt_every and state.step % args.ckpt_every == 0:
                checkpoint()
            if args.sample_every and state.step % args.sample_every == 0:
                samples()
            out_of_time = (args.max_minutes is not None
                           and time.monotonic() - t0 > 60.0 * args.max_minutes)
            if state.step >= total or out_of_time:
                break
        if state.batch >= steps_per_epoch:  # epoch complete (the loader drops the last partial batch)
            state.epoch, state.batch = state.epoch + 1, 0
    bar.close()
    checkpoint()
    samples()
    if logger is not None:
        logger.close()
    if dist.is_initialized():
        dist.barrier()
    return state


def finish(ctx: RunContext) -> None:
    """Tear down DDP (call once at the end of a training command)."""
    del ctx
    cleanup_distributed()


def rank_generator(ctx: RunContext, offset: int = 0) -> torch.Generator:
    """A CPU noise generator seeded by ``seed``, the rank and ``offset`` (distinct per rank)."""
    return make_generator(ctx.seed * 1000 + 17 * offset + ctx.dist.rank + 1)
