"""Write the weight-space interpolation of two priors of one architecture as a model folder.

``(1 - t) * A + t * B`` for every floating-point parameter and buffer
(:func:`genprior.training.ema.average_weights` with weights ``(1 - t, t)``): with ``A`` a
trained prior and ``B`` a fine-tuned copy of it, ``t`` trades what the fine-tuning bought
against what it cost (weight-space ensembles, "WiSE-FT", Wortsman et al. 2022). Issue #17 uses
it between ``celeba-dcgan-plain`` and its VAE-GAN fine-tune (docs/prior_quality.md), where the
term brings held-out faces into the range at some cost in FID. Both priors must have the same
class and ``config``; ``config.json``'s ``training`` record names both and ``t``, with each
one's own ``training`` record (``A_training``, ``B_training``) where its folder has one. The
BatchNorm statistics of the interpolation are not the interpolation of the statistics: use
``--standing-stats``. Nothing is overwritten.

Example::

    python scripts/interpolate_priors.py celeba-dcgan-plain /work/runs/vaegan/eval/w4-2000 \\
        /tmp/plain-w4-t0.5 --t 0.5 --standing-stats 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _records import source_records, standing_stats

from genprior.priors import Prior, load_prior
from genprior.training.ema import average_weights


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("A", help="the prior at t = 0 (shipped name or folder)")
    p.add_argument("B", help="the prior at t = 1 (shipped name or folder), same architecture")
    p.add_argument("out", type=Path, help="the new model folder (must not exist)")
    p.add_argument("--t", type=float, required=True, help="the weight of B, in [0, 1]")
    p.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="recompute the BatchNorm statistics from N batches of 64 of the "
                        "interpolation's own draws (genprior.priors.standing_stats; seed 1)")
    args = p.parse_args(argv)
    if not 0.0 <= args.t <= 1.0:
        p.error(f"--t must be in [0, 1], got {args.t}")
    if args.standing_stats < 0:
        p.error(f"--standing-stats must be >= 0, got {args.standing_stats}")
    if args.out.exists():
        p.error(f"{args.out} exists; choose a new folder (nothing is overwritten)")
    try:
        a, b = load_prior(args.A), load_prior(args.B)
    except (FileNotFoundError, ValueError) as e:
        p.error(str(e))
    for name, model in (("A", a), ("B", b)):
        if not isinstance(model, Prior):
            p.error(f"{name} ({getattr(args, name)}) is a {type(model).__name__}, not a latent "
                    "prior x = G(z)")
    if type(a) is not type(b) or a.config != b.config:
        p.error(f"{args.A} ({type(a).__name__} {a.config}) and {args.B} ({type(b).__name__} "
                f"{b.config}) are not one architecture")
    model = average_weights([a, b], weights=[1.0 - args.t, args.t])
    record = {"interpolated": {"A": args.A, "B": args.B, "t": args.t}}
    for name in ("A", "B"):
        if "training" in (parent := source_records(getattr(args, name))):
            record["interpolated"][f"{name}_training"] = parent["training"]
    if args.standing_stats:
        record["standing_stats"] = standing_stats(model, args.standing_stats)
        if record["standing_stats"] is None:
            p.error(f"--standing-stats: the {type(model).__name__} has no BatchNorm statistics "
                    "to recompute")
    model.save_pretrained(args.out, training=record)
    print(f"wrote (1 - {args.t}) * {args.A} + {args.t} * {args.B} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
