"""Set11 block compressed sensing (the ReconNet / ISTA-Net protocol): every method on the same
images and the benchmark's own sampling matrices, PSNR (255 scale) and SSIM per image and mean,
and time per image, in one run; the published figures quoted beside them.

Protocol (../shared/README.md): each image's luminance, zero-padded to a multiple of 33, cut into
non-overlapping 33x33 blocks, each block measured with the same ``phi`` (``phi_0_{R}_1089.mat``,
orthonormal rows), no noise; PSNR on the 255 scale over the original size.

    python scripts/bench_set11.py --data-root ../shared/data --prior natural-vae \
        --ratios 1 4 10 25 40 --out docs --threads 1

Methods: ``pinv`` (A^+ y), ``TV`` (deepinv's ``TVPrior`` in deepinv's proximal-gradient
``optim_builder`` from A^+ y, the weight decreased geometrically from ``--tv-lambda-start`` to
``--tv-lambda`` over the iterations: a measured stand-in for TVAL3), ``Lasso-DCT``,
``Lasso-wavelet`` (genprior's FISTA, whole image), ``DIP`` (deepinv's ``DeepImagePrior`` with
``ConvDecoder``, untrained, at a fixed iteration budget), and genprior's natural prior:
``TV+VAE+BP`` (the TV estimate encoded by the VAE's encoder as the start, CSGM on the spatial
latent of the whole image, exact back-projection onto {x : Ax = y}; its time includes the TV
stage). Optional: ``VAE+BP`` (the same from the encoder of A^+ y), ``TV+IAGAN+BP`` (then the
image-adaptive stage), and with a GAN-family prior (``--gan-prior``, no encoder) ``TV+GAN+BP``:
the TV estimate projected onto the generator's range (``--gan-fit-steps`` L-BFGS steps on
||G(z) - x_TV||^2 from a seeded random latent) as the start, then ``--gan-steps`` L-BFGS steps of
CSGM on the measurements, then exact back-projection.

    python scripts/bench_set11.py --data-root ../shared/data --gan-prior natural-gan \
        --methods TV TV+GAN+BP --ratios 10 25 --out OUT --threads 1
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import genprior
from genprior.metrics import psnr, ssim
from genprior.operators import BlockCS, Inpaint
from genprior.reconstruct import adapt_weights, back_project, csgm, lasso
from genprior.reconstruct import tv as reconstruct_tv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _natural import dip, figure

METHODS = ("pinv", "TV", "Lasso-DCT", "Lasso-wavelet", "DIP", "TV+VAE+BP", "VAE+BP",
           "TV+IAGAN+BP", "TV+GAN+BP")
DEFAULT_METHODS = METHODS[:6]
PRIOR_METHODS = {"TV+VAE+BP", "VAE+BP", "TV+IAGAN+BP"}
GAN_METHODS = {"TV+GAN+BP"}
#: mean PSNR on Set11 at 25 / 10 / 4 / 1 %, with the table they are quoted from
PUBLISHED = {
    "TVAL3": ({25: 27.84, 10: 22.84, 4: 18.39, 1: 11.31}, "ReconNet, CVPR 2016, Table 1"),
    "D-AMP": ({25: 28.17, 10: 21.14, 4: 15.49, 1: 5.19}, "ReconNet, CVPR 2016, Table 1"),
    "ReconNet": ({25: 25.54, 10: 22.68, 4: 19.99, 1: 17.27}, "ReconNet, CVPR 2016, Table 1"),
    "DR2-Net": ({25: 28.66, 10: 24.32, 4: 20.80, 1: 17.44}, "ReconNet, CVPR 2016, Table 1"),
    "ISTA-Net+": ({25: 32.57, 10: 26.64, 4: 21.31, 1: 17.34},
                  "Zhang & Ghanem, CVPR 2018, Table 1; supervised, one network per ratio"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--prior", default=None, help="a SpatialVAE prior (name or folder)")
    p.add_argument("--ratios", type=int, nargs="+", default=[1, 4, 10, 25, 40])
    p.add_argument("--images", nargs="+", default=None, help="file names (default: all 11)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   choices=METHODS)
    p.add_argument("--tv-lambda-start", type=float, default=0.3)
    p.add_argument("--tv-lambda", type=float, default=0.01)
    p.add_argument("--tv-iters", type=int, default=300)
    p.add_argument("--lasso-alpha", type=float, default=0.02)
    p.add_argument("--lasso-steps", type=int, default=1000)
    p.add_argument("--dip-iters", type=int, default=50)
    p.add_argument("--vae-steps", type=int, default=100)
    p.add_argument("--vae-lr", type=float, default=0.01)
    p.add_argument("--vae-lam", type=float, default=1e-7)
    p.add_argument("--adapt-steps", type=int, default=100)
    p.add_argument("--gan-prior", default=None,
                   help="a spatial GAN prior (name or folder) for TV+GAN+BP")
    p.add_argument("--gan-fit-steps", type=int, default=50)
    p.add_argument("--gan-steps", type=int, default=50)
    p.add_argument("--gan-lam", type=float, default=1e-7)
    p.add_argument("--figure-image", default="cameraman",
                   help="the image shown beside its reconstructions, one figure per ratio")
    p.add_argument("--from-csv", nargs="+", default=None,
                   help="only rebuild the table from these CSVs (runs split across processes)")
    p.add_argument("--out", default="docs")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def load_image(path: Path) -> torch.Tensor:
    """Luminance in [0, 1] as ``(1, 1, H, W)`` (palette images converted through RGB)."""
    im = Image.open(path)
    im = im.convert("RGB").convert("L") if im.mode not in ("L", "I;16") else im.convert("L")
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None, None]


def tv(y: torch.Tensor, A: BlockCS, args) -> torch.Tensor:
    """``genprior.reconstruct.tv`` (deepinv's TV prior in deepinv's PGD, from A^+ y, the weight
    decreasing from ``--tv-lambda-start`` to ``--tv-lambda``), not clamped."""
    return reconstruct_tv(y, A, lam=args.tv_lambda, lam_start=args.tv_lambda_start,
                          steps=args.tv_iters, clip=False,
                          generator=torch.Generator().manual_seed(0)).x_hat


def run(method: str, x: torch.Tensor, y: torch.Tensor, A: BlockCS, prior, args,
        cache: dict) -> torch.Tensor:
    """One method's estimate; ``cache`` holds this image's TV estimate and its time."""
    g = torch.Generator().manual_seed(0)
    if method == "pinv":
        return A.A_dagger(y)
    if method == "TV" or method.startswith("TV+"):
        if "TV" not in cache:
            t0 = time.perf_counter()
            cache["TV"] = tv(y, A, args)
            cache["TV seconds"] = time.perf_counter() - t0
        if method == "TV":
            return cache["TV"]
    if method.startswith("Lasso"):
        basis = "dct" if method == "Lasso-DCT" else "wavelet"
        return lasso(y, A, basis=basis, alpha=args.lasso_alpha, steps=args.lasso_steps,
                     loss_reduction="sum", generator=g).x_hat
    if method == "DIP":
        return dip(y, A, tuple(x.shape[1:]), args.dip_iters)
    if method == "TV+GAN+BP":
        return tv_gan(y, A, prior, cache["TV"], args)
    G = prior.resized(tuple(x.shape[1:]))
    start = cache["TV"] if method.startswith("TV+") else A.A_dagger(y)
    with torch.no_grad():
        mu, _ = G.encode(start.clamp(0, 1))
    res = csgm(y, A, G, z_init=mu[:, None], restarts=1, steps=args.vae_steps, lr=args.vae_lr,
               optimizer="adam",
               lam=args.vae_lam, generator=g)
    if not method.endswith("IAGAN+BP"):
        return back_project(res.x_hat, y, A)
    x_ad, *_ = adapt_weights(y, A, G, res.z_hat, steps=args.adapt_steps, lr_theta=1e-4,
                             lr_z=1e-3)
    return back_project(x_ad, y, A)


def tv_gan(y: torch.Tensor, A: BlockCS, gan, x_tv: torch.Tensor, args) -> torch.Tensor:
    """``TV+GAN+BP``: the TV estimate projected onto the GAN's range (L-BFGS on
    ``||G(z) - x_tv||^2``), CSGM from there (L-BFGS), exact back-projection."""
    img = tuple(x_tv.shape[1:])
    G = gan.resized(img)
    identity = Inpaint(img, torch.ones(img, dtype=torch.bool))
    fit = csgm(identity.A(x_tv.clamp(0, 1)), identity, G, restarts=1, steps=args.gan_fit_steps,
               optimizer="lbfgs", lr=1.0, loss_reduction="sum",
               generator=torch.Generator().manual_seed(0))
    res = csgm(y, A, G, z_init=fit.z_hat, restarts=1, steps=args.gan_steps, optimizer="lbfgs",
               lr=1.0, lam=args.gan_lam)
    return back_project(res.x_hat, y, A)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_csv:
        rows = []
        for name in args.from_csv:
            with open(name, newline="") as fh:
                rows += [dict(r) for r in csv.DictReader(fh)]
        for r in rows:
            r.update(ratio=int(r["ratio"]), psnr=float(r["psnr"]), ssim=float(r["ssim"]),
                     seconds=float(r["seconds"]))
        write(rows, out, args)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.data_root) / "natural"
    files = sorted((root / "set11").glob("*.tif"))
    if args.images:
        files = [f for f in files if f.name in args.images]
    prior = None
    if PRIOR_METHODS & set(args.methods):
        if args.prior is None:
            raise SystemExit(f"--prior is required for {sorted(PRIOR_METHODS)}")
        prior = genprior.load_prior(args.prior)
    if GAN_METHODS & set(args.methods):
        if args.gan_prior is None:
            raise SystemExit(f"--gan-prior is required for {sorted(GAN_METHODS)}")
        prior = genprior.load_prior(args.gan_prior)
        if PRIOR_METHODS & set(args.methods):
            raise SystemExit("run the VAE and the GAN methods in separate runs (one prior each)")
    rows = []
    for ratio in args.ratios:
        phi = root / "set11_phi" / f"phi_0_{ratio}_1089.mat"
        for f in files:
            x = load_image(f)
            A = BlockCS.from_file(phi, tuple(x.shape[1:]))
            y = A.A(x)
            cache: dict = {}
            shown = {"truth": x}
            for method in args.methods:
                t0 = time.perf_counter()
                had_tv = "TV" in cache
                x_hat = run(method, x, y, A, prior, args, cache)
                secs = time.perf_counter() - t0
                if method.startswith("TV+") and had_tv:
                    secs += cache["TV seconds"]
                x_c = x_hat.clamp(0, 1)
                row = {"ratio": ratio, "image": f.stem, "method": method,
                       "psnr": float(psnr(x_c, x, data_range=1.0)),
                       "ssim": float(ssim(x_c, x, data_range=1.0)), "seconds": secs}
                rows.append(row)
                print(row, flush=True)
                shown[f"{method}\n{row['psnr']:.2f} dB"] = x_c
            if f.stem == args.figure_image:
                figure(shown, out / f"set11_{f.stem}_{ratio}.png", f"{f.stem}, {ratio} %", (2.2, 2.6))
            write(rows, out, args)
    return 0


def write(rows, out: Path, args) -> None:
    with open(out / "bench_set11.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    ratios = sorted({r["ratio"] for r in rows})
    lines = [f"Command: `python {' '.join(sys.argv)}`", "",
             "Mean PSNR (dB, 255 scale) / SSIM over the images measured, and seconds per image.",
             "", "| method | " + " | ".join(f"{r} %" for r in ratios) + " |",
             "|---|" + "---|" * len(ratios)]
    for m in methods:
        cells = []
        for r in ratios:
            sel = [row for row in rows if row["method"] == m and row["ratio"] == r]
            cells.append(f"{np.mean([s['psnr'] for s in sel]):.2f} / "
                         f"{np.mean([s['ssim'] for s in sel]):.3f} "
                         f"({np.mean([s['seconds'] for s in sel]):.0f} s)" if sel else "")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    for name, (fig, source) in PUBLISHED.items():
        lines.append(f"| {name} (published: {source}) | " +
                     " | ".join(f"{fig[r]:.2f}" if r in fig else "" for r in ratios) + " |")
    (out / "bench_set11.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
