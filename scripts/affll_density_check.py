"""Would AffLL with a shipped VAE push super-resolution towards real faces? Rank outputs by the
density's log-likelihood bound.

AffLL (``genprior train affgan --loss affll --density celeba-vae``) trains the range-constrained
network to maximise the density's ELBO of its outputs. That helps realism only when the density
scores real faces above the blurred or artefact-ridden outputs of today's methods. This script
measures the ELBO per image entry (nats; one encoder draw, a ``torch.Generator`` seeded
``--seed``) of the held-out truths and of each method's output of their 4x box-downsampled
versions, in the density's framing (``celeba-vae``: crop 54, 64x64), and how often each method's
output scores above the truth of the same face.

Writes ``<out>/<stem>.md`` (the command and the table).

Example (what docs/super_resolution.md reports)::

    python scripts/affll_density_check.py --data ../shared/data/celeba --n 256 --out docs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import genprior
from genprior._random import make_generator
from genprior.metrics import summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sr_faces import FIRST_ID, SR_MODELS, bicubic, box_operator, held_out_faces


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of aligned CelebA NNNNNN.jpg")
    p.add_argument("--density", default="celeba-vae", help="a VAE prior (name or folder)")
    p.add_argument("--crop", type=int, default=54, help="the density's framing (centre crop)")
    p.add_argument("--n", type=int, default=256, help="held-out faces 8001..")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--stem", default="affll_density_check")
    args = p.parse_args(argv)
    if not 2 <= args.n <= 1000:
        p.error(f"--n must be in 2..1000, got {args.n}")
    return args


@torch.no_grad()
def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    density = genprior.load_prior(args.density)
    if not hasattr(density, "elbo"):
        raise SystemExit(f"--density {args.density} has no ELBO (not a VAE prior)")
    x = held_out_faces(args.data, args.n, args.crop)
    A = box_operator()
    y = A.A(x)
    outputs = {"truth": x, "bicubic": bicubic(y), "A_dagger y": A.A_dagger(y)}
    for name in SR_MODELS:
        outputs[name] = genprior.load_prior(name).sample(
            y, 1, generator=make_generator(args.seed))[0].clamp(0, 1)
    n_entries = x[0].numel()
    elbo = {name: density.elbo(out, generator=make_generator(args.seed)).double() / n_entries
            for name, out in outputs.items()}
    command = "python " + " ".join(sys.argv)
    lines = [f"Command: `{command}`", "",
             (f"ELBO of {args.density} (nats per image entry, one encoder draw) of {args.n} "
             f"held-out faces {FIRST_ID}.. (crop {args.crop}, 64x64) and of each method's output "
             "of their 4x box-downsampled versions (SR models: one draw, clamped). Higher = more "
             "probable under the density."), "",
             "| output | ELBO / entry (± 95%) | above the truth (share of faces) |",
             "|---|---|---|"]
    for name, e in elbo.items():
        s = summary(e)
        above = "-" if name == "truth" else f"{(e > elbo['truth']).double().mean():.2f}"
        lines.append(f"| {name} | {s.mean:.3f} ± {s.ci95:.3f} | {above} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
