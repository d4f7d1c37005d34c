"""The run folder's guarantees, checked before a run writes anything.

- A folder that already holds a run (``log.csv``, ``samples.png``, ``checkpoint.safetensors``,
  ``final/``, ``final-raw/``) is refused unless the run is resumed from its own checkpoint
  (``--resume``) or replaced (``--overwrite``, which deletes those files first and nothing else).
- The run folder is never inside the training data (its ``samples.png`` would be read back as
  a training image).
- Temporary files that a killed run left behind (``.model.safetensors.*.tmp`` and the like,
  made by the atomic writes of :mod:`genprior._serialization`) are removed when the next run on
  the folder starts.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from genprior.training.checkpoint import CHECKPOINT_NAME

__all__ = [
    "LOG_NAME",
    "RUN_DIRS",
    "RUN_FILES",
    "SAMPLES_NAME",
    "check_run_folder",
    "existing_run_files",
    "prepare_run_folder",
    "remove_stale_temporaries",
]

LOG_NAME = "log.csv"
SAMPLES_NAME = "samples.png"
#: files a training run writes into its folder
RUN_FILES = (LOG_NAME, SAMPLES_NAME, CHECKPOINT_NAME)
#: folders a training run writes (``save_pretrained``)
RUN_DIRS = ("final", "final-raw")

# ``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")``: a dot, the target's name, 8 random
# characters from [a-z0-9_], ``.tmp``
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def existing_run_files(out: str | os.PathLike) -> list[Path]:
    """The files and folders of a training run present in ``out`` (empty when none is)."""
    out = Path(out)
    return [out / name for name in (*RUN_FILES, *RUN_DIRS) if (out / name).exists()]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_run_folder(out: str | os.PathLike, *, data: str | os.PathLike | None = None,
                     resume: str | os.PathLike | None = None, overwrite: bool = False) -> None:
    """Refuse a run folder that would lose or splice a run, or feed the data; write nothing.

    Args:
        out: the run folder.
        data: the training data folder (``out`` must not be it or lie inside it).
        resume: the checkpoint the run continues from, if any.
        overwrite: whether the run already in ``out`` may be replaced.

    Raises:
        ValueError: ``out`` is a file, is (inside) ``data``, or already holds a run and is
            neither resumed from its own checkpoint nor to be overwritten; or a run is resumed
            from another folder's checkpoint into it without ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if data is not None and _inside(out.resolve(), Path(data).resolve()):
        where = "--data" if out.resolve() == Path(data).resolve() else "inside --data"
        raise ValueError(f"--out {out} is {where} {data}: the run's files (samples.png, "
                         f"checkpoints) would be read as training data; choose an --out outside "
                         f"the data folder")
    found = existing_run_files(out)
    if not found or overwrite:
        return
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found)
    if resume is None:
        raise ValueError(f"--out {out} already holds a training run ({names}); pass --resume to "
                         f"continue it or --overwrite to replace it")
    own = out / CHECKPOINT_NAME
    if Path(resume).resolve() != own.resolve():
        raise ValueError(f"--out {out} already holds a training run ({names}); resuming from "
                         f"another checkpoint ({resume}) into it would mix two runs: pass "
                         f"--overwrite to replace that run, or choose a new --out")


def remove_stale_temporaries(out: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``out`` and its subfolders
    (one level down: ``final/``, ``final-raw/``); return what was removed."""
    out = Path(out)
    if not out.is_dir():
        return []
    removed = []
    for folder in (out, *(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())):
        for p in folder.iterdir():
            if _TEMPORARY.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def prepare_run_folder(out: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Create ``out``; with ``overwrite``, delete the run in it (only the files and folders a run
    writes, :data:`RUN_FILES` and :data:`RUN_DIRS`); remove stale temporary files.

    Call after :func:`check_run_folder`, on the process that writes (rank 0).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in existing_run_files(out):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    remove_stale_temporaries(out)
