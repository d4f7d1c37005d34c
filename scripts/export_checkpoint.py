"""Write the model a training checkpoint holds as a model folder (``save_pretrained``).

The model is what ``final/`` would hold (:func:`genprior.training.checkpoint_model.checkpoint_model`:
the EMA generator or network, or the VAE); ``config.json``'s ``training`` record is the
checkpoint's own record (less the model's constructor arguments, which are its ``config``)
plus its step and the checkpoint's path. Used to ship a point of a run
measured part-way (``celeba-sr4-affgan-r1``: the 6,000-step checkpoint of
``scripts/train_affgan.sh r1``). Given several checkpoints of one architecture (copies taken
along a run by ``scripts/snapshot_checkpoints.py``), it writes the uniform average of their
models' weights (:func:`genprior.training.ema.average_weights`); ``training`` then lists their
steps and paths. Nothing is overwritten.

Example::

    python scripts/export_checkpoint.py /work/runs/sr/affgan-r1-g0.2-snap/step_6000.safetensors \\
        pretrained/celeba-sr4-affgan-r1
    python scripts/export_checkpoint.py \
        /work/runs/celeba-dcgan-plain-snap/step_{20000,21000}.safetensors \
        /tmp/plain-avg --standing-stats 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _records import standing_stats

from genprior.priors import Prior
from genprior.training.checkpoint import checkpoint_state
from genprior.training.checkpoint_model import checkpoint_model
from genprior.training.ema import average_weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, nargs="+",
                   help="a genprior train checkpoint (.safetensors); several: their average")
    p.add_argument("out", type=Path, help="the new model folder (must not exist)")
    p.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="recompute the generator's BatchNorm statistics from N batches of 64 of "
                        "its own draws (genprior.priors.standing_stats; seed 1): for an EMA "
                        "generator, whose statistics are the raw generator's")
    args = p.parse_args(argv)
    if args.standing_stats < 0:
        p.error(f"--standing-stats must be >= 0, got {args.standing_stats}")
    if args.out.exists():
        p.error(f"{args.out} exists; choose a new folder (nothing is overwritten)")
    try:
        models, steps = zip(*(checkpoint_model(path) for path in args.checkpoint))
        configs = [checkpoint_state(path)["config"] for path in args.checkpoint]
        for path, config in zip(args.checkpoint[1:], configs[1:]):
            if config != configs[0]:
                raise ValueError(f"{path} is not a checkpoint of the run configuration of "
                                 f"{args.checkpoint[0]}; only copies of one run are averaged")
        model = models[0] if len(models) == 1 else average_weights(models)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    # the model's own constructor arguments ("model", "generator") are config.json's "config"
    record = {k: v for k, v in configs[0].items() if k not in ("model", "generator")}
    if len(models) == 1:
        record.update(steps=steps[0], checkpoint=str(args.checkpoint[0]))
    else:
        record.update(steps=list(steps), checkpoints=[str(c) for c in args.checkpoint],
                      averaged="uniform")
    if args.standing_stats:
        record["standing_stats"] = (standing_stats(model, args.standing_stats)
                                    if isinstance(model, Prior) else None)
        if record["standing_stats"] is None:
            p.error(f"--standing-stats: the {type(model).__name__} of {args.checkpoint[0]} has no "
                    "BatchNorm statistics to recompute")
    model.save_pretrained(args.out, training=record)
    what = f"step {steps[0]}" if len(steps) == 1 else f"the average of steps {list(steps)}"
    print(f"wrote {type(model).__name__} of {what} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
