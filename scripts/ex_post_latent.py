"""Fit the ex-post latent Gaussian of a trained ConvVAE to its codes of the training images.

:func:`genprior.priors.conv_vae.with_latent_gaussian`: the mean and covariance of the encoder
means over the training set become the prior of the latent (``z = m + L u``, ``u ~ N(0, I)``),
written as a new prior folder (``save_pretrained``); the source folder is left as it is.

Example (the shipped ``mnist-convvae``; docs/prior_quality.md)::

    python scripts/ex_post_latent.py --prior /work/runs/mnist-convvae/final \
        --data ../shared/data/mnist --out pretrained/mnist-convvae
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import genprior
from genprior.data import load_image_data, load_mnist
from genprior.priors.conv_vae import ConvVAE, with_latent_gaussian


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", required=True, help="a trained ConvVAE (name or folder)")
    p.add_argument("--data", type=Path, required=True,
                   help="its training data: an MNIST folder (mnist_train_*.npz) or an image folder")
    p.add_argument("--img-size", type=int, default=64, help="image folders: size (as trained)")
    p.add_argument("--crop", type=int, default=None, help="image folders: crop (as trained)")
    p.add_argument("--out", type=Path, required=True, help="new prior folder (must not exist)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.out.exists():
        p.error(f"--out {args.out} exists; choose a new folder (nothing is overwritten)")
    vae = genprior.load_prior(args.prior)
    if not isinstance(vae, ConvVAE):
        p.error(f"--prior {args.prior} is a {type(vae).__name__}, not a ConvVAE")
    if sorted(args.data.glob("mnist_train_*.npz")):
        x = load_mnist(args.data, "train").as_tensor()
    else:
        x = load_image_data(args.data, img_size=args.img_size, crop=args.crop).tensors[0]
    new = with_latent_gaussian(vae, x)
    new.save_pretrained(args.out)
    eig = torch.linalg.eigvalsh(new.latent_scale_tril @ new.latent_scale_tril.T)
    print(f"fitted on {len(x)} images: |m| = {new.latent_loc.norm():.3f}, covariance "
          f"eigenvalues {eig.min():.3f}..{eig.max():.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
