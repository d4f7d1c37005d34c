"""Write a copy of a generator prior with its BatchNorm statistics recomputed from its own draws.

The prior (a shipped name or a model folder) is loaded, its BatchNorm running statistics are
replaced by :func:`genprior.priors.standing_stats.recalibrate_batchnorm` (``--batches``
batches of 64 draws, latents from a generator seeded ``--seed``), and the result is written with
``save_pretrained`` to a new folder; ``config.json`` keeps the source's records and gains
``standing_stats`` (batches, batch size, seed, source). Weights are unchanged. Files beside the
weights that were fitted to the old outputs (a ``misfit.safetensors``) are not copied. Nothing
is overwritten. For a training checkpoint use ``scripts/export_checkpoint.py --standing-stats``.

Example (docs/prior_quality.md, "Standing statistics")::

    python scripts/recalibrate_prior.py celeba-dcgan /work/runs/celeba-dcgan-ss
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from _records import source_records, standing_stats

from genprior.priors import load_prior

BATCH_SIZE = 64


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("prior", help="a shipped prior's name or a model folder")
    p.add_argument("out", type=Path, help="the new model folder (must not exist)")
    p.add_argument("--batches", type=int, default=100, help="batches of 64 draws")
    p.add_argument("--seed", type=int, default=1, help="seed of the latents' generator")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.batches < 1:
        p.error(f"--batches must be >= 1, got {args.batches}")
    if args.out.exists():
        p.error(f"{args.out} exists; choose a new folder (nothing is overwritten)")
    torch.set_num_threads(args.threads)
    try:
        model = load_prior(args.prior)
    except (FileNotFoundError, ValueError, KeyError) as e:
        p.error(str(e))
    record = standing_stats(model, args.batches, batch_size=BATCH_SIZE, seed=args.seed)
    if record is None:
        p.error(f"{args.prior}: its {type(model).__name__} has no BatchNorm statistics to "
                "recompute")
    extra = source_records(args.prior)
    extra["standing_stats"] = {**record, "source": args.prior}
    model.save_pretrained(args.out, **extra)
    print(f"wrote {type(model).__name__} of {args.prior} with standing statistics to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
