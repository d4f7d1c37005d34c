"""Representation error of a spatial-latent prior: autoencoding PSNR G(E(x)) on whole test images
of any size (e.g. BSD68 grey), per image and mean. It bounds what a reconstruction restricted to
the prior's range can reach; the model cards of the natural-image priors quote it.

    python scripts/representation_error.py --prior natural-vae \\
        --data ../shared/data/natural/set68 --out docs/natural_representation.md --threads 2

G(E(x)) is the decoder of the encoder's mean (no sampling), PSNR on the 255 scale over the whole
image (colour images are converted to grey for a one-channel prior).
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
from genprior.metrics import psnr


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", required=True, help="a SpatialVAE prior (name or folder)")
    p.add_argument("--data", required=True, help="folder of test images")
    p.add_argument("--out", required=True, help="markdown table to write")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = genprior.load_prior(args.prior).eval()
    files = sorted(p for p in Path(args.data).iterdir()
                   if p.suffix.lower() in (".png", ".tif", ".bmp", ".jpg"))
    if not files:
        raise SystemExit(f"no images in {args.data}")
    mode = "L" if prior.img_shape[0] == 1 else "RGB"
    rows = []
    t0 = time.perf_counter()
    for f in files:
        im = np.asarray(Image.open(f).convert(mode), dtype=np.float32) / 255.0
        x = torch.from_numpy(im)[None, None] if im.ndim == 2 else \
            torch.from_numpy(im).permute(2, 0, 1)[None]
        G = prior.resized(tuple(x.shape[1:]))
        with torch.no_grad():
            mu, _ = G.encode(x)
            x_r = G.decode(mu).clamp(0, 1)
        rows.append((f.stem, tuple(x.shape[2:]), float(psnr(x_r, x, data_range=1.0))))
    secs = time.perf_counter() - t0
    values = np.array([r[2] for r in rows])
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             (f"Autoencoding PSNR G(E(x)) of `{args.prior}` on {len(rows)} images of "
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
