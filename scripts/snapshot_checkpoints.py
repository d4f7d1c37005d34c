"""Keep copies of a training run's checkpoint at chosen steps while it trains.

A run keeps one ``checkpoint.safetensors``, rewritten every ``--ckpt-every`` steps; this
script watches it and copies it to ``RUN-snap/step_<N>.safetensors`` whenever it holds a
step ``N`` that is a multiple of ``--every``, so that intermediate points can be evaluated
later (``scripts/face_gan_fid.py --checkpoints``, ``scripts/compare_sr.py``,
``scripts/export_checkpoint.py``). It never overwrites a copy, and stops once the run has
written ``final/`` (after a last look) or when ``--until`` is reached.

Usage::

    python scripts/snapshot_checkpoints.py /work/runs/celeba-dcgan-plain --every 1000 &
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from genprior.training.checkpoint import checkpoint_state


def snapshot_once(run: Path, snap: Path, every: int) -> int | None:
    """Copy the run's checkpoint when its step is a multiple of ``every``; return the step.

    Returns ``None`` when the run has no checkpoint yet. A copy that exists is kept as it is.
    """
    ckpt = run / "checkpoint.safetensors"
    if not ckpt.is_file():
        return None
    step = int(checkpoint_state(ckpt)["step"])
    target = snap / f"step_{step}.safetensors"
    if step % every == 0 and not target.exists():
        snap.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(ckpt, partial)
        # the copy must hold the step it is named after (the run may have rewritten it)
        if int(checkpoint_state(partial)["step"]) == step:
            partial.rename(target)
        else:
            partial.unlink()
    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="the run folder (holds checkpoint.safetensors)")
    p.add_argument("--every", type=int, required=True, help="copy steps that are multiples of this")
    p.add_argument("--until", type=int, default=None, help="stop after this step")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between looks")
    args = p.parse_args(argv)
    if args.every <= 0:
        p.error(f"--every must be positive, got {args.every}")
    snap = args.run.with_name(args.run.name + "-snap")
    while True:
        done = (args.run / "final").is_dir()
        step = snapshot_once(args.run, snap, args.every)
        if done or (args.until is not None and step is not None and step >= args.until):
            break
        time.sleep(args.poll)


if __name__ == "__main__":
    main()
