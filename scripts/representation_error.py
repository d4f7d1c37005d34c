"""Representation error of a spatial-latent prior: PSNR of the closest image the prior produces,
on whole test images of any size (e.g. BSD68 grey), per image and mean. It bounds what a
reconstruction restricted to the prior's range can reach; the model cards of the natural-image
priors quote it.

    python scripts/representation_error.py --prior natural-vae \\
        --data ../shared/data/natural/set68 --out docs/natural_representation.md --threads 2
    python scripts/representation_error.py --prior natural-gan --fit latent --max-images 12 \\
        --data ../shared/data/natural/set68 --out docs/natural_gan_representation.md

``--fit encoder`` (a VAE): G(E(x)), the decoder of the encoder's mean (no sampling).
``--fit latent`` (any prior, e.g. a GAN): G(z*) with z* = argmin ||G(z) - x||^2 by ``--steps``
batched L-BFGS iterations (CSGM with the identity operator; a VAE starts at its encoder mean, a
GAN at a latent drawn with seed 0). PSNR on the 255 scale over the whole image (colour images are
converted to grey for a one-channel prior).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import genprior
from genprior._random import make_generator
from genprior.metrics import psnr
from genprior.operators import Inpaint
from genprior.reconstruct import csgm


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", required=True,
                   help="a spatial-latent prior (name or folder): SpatialVAE, SpatialGenerator")
    p.add_argument("--fit", choices=("encoder", "latent"), default="encoder",
                   help="encoder: G(E(x)) (a VAE); latent: L-BFGS on z (any prior)")
    p.add_argument("--steps", type=int, default=100, help="--fit latent: L-BFGS iterations")
    p.add_argument("--max-images", type=int, default=None, help="the first N images only")
    p.add_argument("--data", required=True, help="folder of test images")
    p.add_argument("--out", required=True, help="markdown table to write")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def closest_image(prior, x: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """The prior's image closest to ``x``, by ``args.fit`` (see the module docstring)."""
    G = prior.resized(tuple(x.shape[1:]))
    encoder = callable(getattr(G, "encode", None))
    if args.fit == "encoder":
        with torch.no_grad():
            return G.decode(G.encode(x)[0]).clamp(0, 1)
    identity = Inpaint(tuple(x.shape[1:]), torch.ones(x.shape[1:], dtype=torch.bool))
    out = csgm(identity.A(x), identity, G, restarts=1, steps=args.steps, optimizer="lbfgs",
               lr=1.0, loss_reduction="sum", init="encoder" if encoder else "random",
               x_init=x if encoder else None, generator=make_generator(0))
    return out.x_hat.clamp(0, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = genprior.load_prior(args.prior).eval()
    files = sorted(p for p in Path(args.data).iterdir()
                   if p.suffix.lower() in (".png", ".tif", ".bmp", ".jpg"))
    if not files:
        raise SystemExit(f"no images in {args.data}")
    files = files[: args.max_images]
    if args.fit == "encoder" and not callable(getattr(prior, "encode", None)):
        raise SystemExit(f"{args.prior} has no encoder: use --fit latent")
    mode = "L" if prior.img_shape[0] == 1 else "RGB"
    rows = []
    t0 = time.perf_counter()
    for f in files:
        im = np.asarray(Image.open(f).convert(mode), dtype=np.float32) / 255.0
        x = torch.from_numpy(im)[None, None] if im.ndim == 2 else \
            torch.from_numpy(im).permute(2, 0, 1)[None]
        x_r = closest_image(prior, x, args)
        rows.append((f.stem, tuple(x.shape[2:]), float(psnr(x_r, x, data_range=1.0))))
    secs = time.perf_counter() - t0
    values = np.array([r[2] for r in rows])
    what = ("Autoencoding PSNR G(E(x))" if args.fit == "encoder" else
            f"PSNR of G(z*), z* from {args.steps} L-BFGS steps on ||G(z) - x||^2,")
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             (f"{what} of `{args.prior}` on {len(rows)} images of "
              f"`{Path(args.data).name}`: **mean {values.mean():.2f} dB** (median "
              f"{np.median(values):.2f}, min {values.min():.2f}, max {values.max():.2f}); "
              f"{secs / len(rows):.2f} s per image."), "",
             "| image | H x W | PSNR (dB) |", "|---|---|---|"]
    lines += [f"| {name} | {h} x {w} | {v:.2f} |" for name, (h, w), v in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(lines[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
