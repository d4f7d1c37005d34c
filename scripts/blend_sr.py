"""Write the affine blend of super-resolution models as one model folder.

``x = w_1 f_1(y, e_1) + ... + w_k f_k(y, e_k)`` with weights summing to 1
(:class:`genprior.priors.ConditionalBlend`): every output stays consistent with ``y``. By
default the folder holds every member's weights and loads on its own; with ``--by-reference``
it holds ``config.json`` only, naming the members as given, and loading it loads them by name
(so they must stay where the names point). Either loads with ``genprior.load_prior(OUT)``;
evaluate it with ``scripts/compare_sr.py --models LABEL=OUT``.

Example:
    python scripts/blend_sr.py celeba-sr4-mse celeba-sr4-affgan-w96 --weights 0.5 0.5 \
        --out runs/blend-mse-w96
"""

from __future__ import annotations

import argparse
from pathlib import Path

import genprior
from genprior.priors import ConditionalBlend


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="shipped names or model folders (at least two)")
    p.add_argument("--weights", nargs="+", type=float, required=True,
                   help="one weight per model, summing to 1")
    p.add_argument("--out", type=Path, required=True, help="new folder (refused if it exists)")
    p.add_argument("--by-reference", action="store_true",
                   help="write config.json only, referencing the models by the names given "
                        "(default: copy their weights into OUT)")
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"--out {args.out} exists; choose a new folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.by_reference:
            blend = ConditionalBlend(members=list(args.models), weights=args.weights)
        else:
            models = [genprior.load_prior(m) for m in args.models]
            blend = ConditionalBlend.from_models(models, args.weights)
    except (FileNotFoundError, TypeError, ValueError) as e:
        raise SystemExit(f"blend_sr.py: {e}") from None
    blend.save_pretrained(args.out, training={"blend_of": list(args.models)})
    how = "by reference" if args.by_reference else "weights copied"
    print(f"wrote {args.out} ({how}): "
          f"{' + '.join(f'{w:g} {m}' for w, m in zip(args.weights, args.models))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
