"""Write the affine blend of super-resolution models as one model folder.

``x = w_1 f_1(y, e_1) + ... + w_k f_k(y, e_k)`` with weights summing to 1
(:class:`genprior.priors.ConditionalBlend`): every output stays consistent with ``y``. The
folder holds every member's weights and loads with ``genprior.load_prior(OUT)``; evaluate it
with ``scripts/compare_sr.py --models LABEL=OUT``.

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
    args = p.parse_args(argv)
    if args.out.exists():
        p.error(f"--out {args.out} exists; choose a new folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = [genprior.load_prior(m) for m in args.models]
    try:
        blend = ConditionalBlend.from_models(models, args.weights)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"blend_sr.py: {e}") from None
    blend.save_pretrained(args.out, training={"blend_of": list(args.models)})
    print(f"wrote {args.out}: {' + '.join(f'{w:g} {m}' for w, m in zip(args.weights, args.models))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
