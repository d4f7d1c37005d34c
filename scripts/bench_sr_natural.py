"""4x super-resolution on Set5 and Set14 (grey) with a natural-image prior, the usual protocol:
every method on the same images in one run, PSNR / SSIM on the luminance with a 4-pixel border
crop, consistency and time per image.

Protocol: the high-resolution image is cropped to a multiple of 4 ("modcrop"), the
low-resolution image is genprior's ``Downsample(kernel="bicubic")`` of it (deepinv's bicubic
filter, then every 4th pixel), no noise. Grey sets (Set5, Set14): the luminance is the image.
Colour sets (CSet5, CSet14): every method reconstructs the luminance Y (ITU-R BT.601, MATLAB's
``rgb2ycbcr``) from the low-resolution Y, the chroma Cb, Cr is the bicubic upscaling of the
low-resolution chroma (the grey prior's colour path), and the figure shows the RGB result. PSNR
on the 255 scale of Y after cropping 4 pixels from every border.

    python scripts/bench_sr_natural.py --data-root ../shared/data --prior natural-vae \\
        --sets Set5 Set14 --out docs --threads 1

Methods: ``bicubic`` (deepinv's ``imresize_matlab`` of y: MATLAB's bicubic upscaling), ``A^+y`` (the exact pseudo-inverse),
``DIP`` (deepinv's ``DeepImagePrior`` with ``ConvDecoder``, untrained, fixed iteration budget),
and genprior's natural prior: ``VAE+BP`` (the bicubic image encoded as the start, CSGM on the
spatial latent of the whole image, exact back-projection onto {x : Ax = y}). ``consistency``
is :math:`\\|A\\hat x - y\\| / \\|y\\|` before clamping.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from deepinv.physics.functional import imresize_matlab
from PIL import Image

import genprior
from genprior.metrics import psnr, ssim
from genprior.operators import Downsample
from genprior.reconstruct import back_project, csgm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _natural import dip, figure

METHODS = ("bicubic", "A^+y", "DIP", "VAE+BP")
FACTOR = 4
BORDER = 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--prior", default=None, help="a SpatialVAE prior (name or folder)")
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--dip-iters", type=int, default=50)
    p.add_argument("--vae-steps", type=int, default=100)
    p.add_argument("--vae-lr", type=float, default=0.01)
    p.add_argument("--vae-lam", type=float, default=1e-7)
    p.add_argument("--figure-image", default="butterfly")
    p.add_argument("--out", default="docs")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def load_image(path: Path) -> torch.Tensor:
    """Image in [0, 1] as ``(1, C, H, W)`` (grey files 1 channel, colour 3), cropped to a
    multiple of the factor."""
    im = Image.open(path)
    im = im.convert("L") if im.mode in ("L", "I;16", "1") else im.convert("RGB")
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    h, w = (s - s % FACTOR for s in x.shape[-2:])
    return x[..., :h, :w].contiguous()


#: ITU-R BT.601 (MATLAB ``rgb2ycbcr``) on [0, 1]: rows Y, Cb, Cr; offsets 16, 128, 128 / 255
_YCBCR = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0],
                       [112.0, -93.786, -18.214]]) / 255.0
_OFFSET = torch.tensor([16.0, 128.0, 128.0]) / 255.0


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] to YCbCr (BT.601, MATLAB's convention)."""
    return torch.einsum("ij,bjhw->bihw", _YCBCR, x) + _OFFSET[:, None, None]


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_ycbcr`."""
    inv = torch.linalg.inv(_YCBCR)
    return torch.einsum("ij,bjhw->bihw", inv, x - _OFFSET[:, None, None])


def run(method: str, x: torch.Tensor, y: torch.Tensor, A: Downsample, prior, args) -> torch.Tensor:
    up = imresize_matlab(y, scale=FACTOR)
    if method == "bicubic":
        return up
    if method == "A^+y":
        return A.A_dagger(y)
    if method == "DIP":
        return dip(y, A, tuple(x.shape[1:]), args.dip_iters)
    G = prior.resized(tuple(x.shape[1:]))
    with torch.no_grad():
        mu, _ = G.encode(up.clamp(0, 1))
    res = csgm(y, A, G, z_init=mu[:, None], restarts=1, steps=args.vae_steps, lr=args.vae_lr,
               optimizer="adam",
               lam=args.vae_lam, generator=torch.Generator().manual_seed(0))
    return back_project(res.x_hat, y, A)


def crop(x: torch.Tensor) -> torch.Tensor:
    return x[..., BORDER:-BORDER, BORDER:-BORDER]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    prior = None
    if "VAE+BP" in args.methods:
        if args.prior is None:
            raise SystemExit("--prior is required for VAE+BP")
        prior = genprior.load_prior(args.prior)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.sets:
        files = sorted(p for p in (Path(args.data_root) / "testsets" / name).iterdir()
                       if p.suffix.lower() in (".png", ".bmp", ".tif", ".jpg"))
        if not files:
            raise SystemExit(f"no images in {Path(args.data_root) / 'testsets' / name}")
        for f in files:
            x = load_image(f)
            chroma = None
            if x.shape[1] == 3:  # colour: the luminance is reconstructed, chroma is bicubic
                ycc = rgb_to_ycbcr(x)
                x, chroma = ycc[:, :1], ycc[:, 1:]
            A = Downsample(tuple(x.shape[1:]), FACTOR, kernel="bicubic")
            y = A.A(x)
            if chroma is not None:
                chroma = imresize_matlab(Downsample(tuple(chroma.shape[1:]), FACTOR,
                                                    kernel="bicubic").A(chroma), scale=FACTOR)
            shown = {"truth": x if chroma is None else ycbcr_to_rgb(torch.cat([x, ycc[:, 1:]], 1))}
            for method in args.methods:
                t0 = time.perf_counter()
                x_hat = run(method, x, y, A, prior, args)
                secs = time.perf_counter() - t0
                x_c = x_hat.clamp(0, 1)
                row = {"set": name, "image": f.stem, "method": method,
                       "psnr": float(psnr(crop(x_c), crop(x), data_range=1.0)),
                       "ssim": float(ssim(crop(x_c), crop(x), data_range=1.0)),
                       "consistency": float((A.A(x_hat) - y).norm() / y.norm()),
                       "seconds": secs}
                rows.append(row)
                print(row, flush=True)
                shown[f"{method}\n{row['psnr']:.2f} dB"] = x_c if chroma is None else \
                    ycbcr_to_rgb(torch.cat([x_c, chroma], 1)).clamp(0, 1)
            if f.stem == args.figure_image:
                figure(shown, out / f"sr_natural_{f.stem}.png", f"{f.stem}, 4x", (2.4, 2.8))
            write(rows, out)
    return 0


def write(rows, out: Path) -> None:
    with open(out / "sr_natural.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             ("4x, bicubic kernel, luminance (grey sets: the image; colour sets: Y of YCbCr, "
              "chroma bicubic), 4-pixel border crop. Mean PSNR (dB) / SSIM,"),
             "worst consistency ||A x - y|| / ||y||, seconds per image.", "",
             "| method | " + " | ".join(sets) + " | worst consistency | s / image |",
             "|---|" + "---|" * (len(sets) + 2)]
    for m in methods:
        cells = []
        for s in sets:
            sel = [r for r in rows if r["method"] == m and r["set"] == s]
            cells.append(f"{np.mean([r['psnr'] for r in sel]):.2f} / "
                         f"{np.mean([r['ssim'] for r in sel]):.3f}" if sel else "")
        sel = [r for r in rows if r["method"] == m]
        cells.append(f"{max(r['consistency'] for r in sel):.1e}")
        cells.append(f"{np.mean([r['seconds'] for r in sel]):.1f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    (out / "sr_natural.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
