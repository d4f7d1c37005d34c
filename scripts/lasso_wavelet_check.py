"""Why Lasso-Wavelet lags in the CelebA reproduction: FISTA convergence at the reference weight.

One shipped held-out face, A i.i.d. N(0, 1) with m = 1000, noise std 0.005 (0.01 in [-1, 1]
units); Lasso around x = 1/2 in the wavelet and DCT bases at the reference's weights (halved for
the [0, 1] problem) and at alpha = 0.05, after 300 and 3000 FISTA iterations. Prints the
per-pixel squared error on [-1, 1] images.

Usage: python scripts/lasso_wavelet_check.py
"""

import torch

from genprior.data import load_samples
from genprior.operators import GaussianCS
from genprior.reconstruct import lasso


def main() -> None:
    torch.set_num_threads(1)
    x = load_samples("celeba")[:1]
    A = GaussianCS(1000, (3, 64, 64), normalize=False, noise_std=0.005, seed=0)
    y = A.measure(x, generator=torch.Generator().manual_seed(1))
    half = torch.full_like(x, 0.5)
    print("| basis | alpha | FISTA iterations | error per pixel ([-1, 1]) |\n|---|---|---|---|")
    for basis, alpha in (("wavelet", 5e-6), ("dct", 0.05), ("wavelet", 0.05)):
        for steps in (300, 3000):
            r = lasso(y - A.A(half), A, basis=basis, alpha=alpha, steps=steps, clip=False,
                      generator=torch.Generator().manual_seed(0))
            x_hat = (r.x_hat + half).clamp(0, 1)
            print(f"| {basis} | {alpha:g} | {steps} | {(4 * (x_hat - x) ** 2).mean().item():.4f} |")


if __name__ == "__main__":
    main()
