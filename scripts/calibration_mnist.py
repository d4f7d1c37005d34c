"""Calibration of latent posterior sampling on MNIST compressed sensing.

For every number of measurements m, Gaussian CS with unscaled N(0, 1) entries and noise std 0.1
on the measurements (the CSGM MNIST setting), sample p(z | y) with MALA (sigma = 0.1, the noise
actually added, unless --sigma says otherwise), every chain started at the CSGM MAP estimate
(lam = noise^2 / m in CSGM's reference units, i.e. the posterior mode at sigma = noise), in
latent coordinates whitened by the Laplace (Gauss-Newton) covariance at that point, and report, averaged over the test images:

- coverage: the fraction of true pixels inside the per-pixel 90% equal-tailed credible interval
  (0.9 for a calibrated posterior);
- corr(std, |error|): Pearson correlation between the per-pixel posterior std and the actual
  error of the posterior mean;
- the per-pixel RMSE of the posterior mean, ESS, MALA acceptance rate and wall time.

With ``--init annealed`` the chains instead start from random latents and the burn-in anneals
the likelihood (Jalal et al. 2021), so that different chains settle in different modes.

Writes a figure (per m: truth, two samples, mean, std map, error map; maps scaled to their max per
image) and prints one JSON line per m.

Example:
    python scripts/calibration_mnist.py --prior mnist-vae --n-images 20 --chains 16 \
        --fig docs/sampling_calibration_mnist.png
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.operators import GaussianCS
from genprior.priors import load_prior
from genprior.reconstruct.csgm import csgm
from genprior.sampling import coverage, langevin, std_error_correlation


def load_mnist(path: str, n: int) -> torch.Tensor:
    with np.load(path, allow_pickle=False) as f:
        x = f["x"][:n]
    return torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]


def scaled(t: torch.Tensor) -> torch.Tensor:
    return t / t.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prior", default="mnist-vae")
    p.add_argument("--data", default="/work/shared/data/mnist/mnist_test_00.npz")
    p.add_argument("--ms", type=int, nargs="+", default=[25, 100, 300])
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--sigma", default=None,
                   help="likelihood sigma: a number, 'auto' (root of the median CSGM residual "
                   "||A G(z_map) - y||^2 / m, i.e. noise plus misfit of the prior), or default "
                   "--noise, the std actually added")
    p.add_argument("--n-images", type=int, default=20)
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--n-samples", type=int, default=250)
    p.add_argument("--burn-in", type=int, default=500)
    p.add_argument("--thin", type=int, default=2)
    p.add_argument("--csgm-restarts", type=int, default=5)
    p.add_argument("--csgm-steps", type=int, default=500)
    p.add_argument("--precondition", choices=("none", "laplace"), default="laplace",
                   help="MALA in Laplace-whitened latent coordinates at the CSGM MAP")
    p.add_argument("--init", choices=("map", "annealed"), default="map",
                   help="'map': every chain starts at the CSGM MAP (with --precondition); "
                   "'annealed': chains start from p(z) and burn-in anneals the likelihood "
                   "variance through sigma^2 + a^2, a in --anneal (Jalal et al. 2021), "
                   "no preconditioner")
    p.add_argument("--anneal", type=float, nargs="+", default=[30.0, 10.0, 3.0, 1.0, 0.3])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--level", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fig", default="docs/sampling_calibration_mnist.png")
    p.add_argument("--fig-images", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    prior = load_prior(args.prior)
    x = load_mnist(args.data, args.n_images)
    rows = []
    for m in args.ms:
        op = GaussianCS(m, (1, 28, 28), normalize=False, noise_std=args.noise, seed=m)
        y = op.measure(x, generator=make_generator(args.seed + m))
        t0 = time.perf_counter()
        map_ = None
        if args.init == "map" or args.sigma == "auto":
            map_ = csgm(y, op, prior, optimizer="adam", restarts=args.csgm_restarts, steps=args.csgm_steps,
                        lr=0.05, lam=args.noise**2 / m, generator=make_generator(args.seed))
        if args.sigma is None:
            sigma = args.noise
        elif args.sigma == "auto":
            sigma = float(map_.measurement_error.median().sqrt())
        else:
            sigma = float(args.sigma)
        if args.init == "annealed":
            start = {"init": "random", "anneal": args.anneal, "step_size": 1e-3}
        else:
            start = {"init": map_.z_hat.detach(),
                     "precondition": None if args.precondition == "none" else "laplace",
                     "step_size": 1e-6 if args.precondition == "none" else 0.5}
        res = langevin(y, op, prior, sigma=sigma, n_samples=args.n_samples,
                       n_chains=args.chains, burn_in=args.burn_in, thin=args.thin,
                       method="mala", generator=make_generator(args.seed), **start)
        wall = time.perf_counter() - t0
        cov = coverage(x, res.samples, level=args.level)
        corr = std_error_correlation(res.std, res.mean, x)
        rmse = (res.mean - x).pow(2).flatten(1).mean(1).sqrt()
        stats = {
            "m": m, "init": args.init, "sigma": round(sigma, 4), "n_images": x.shape[0], "chains": args.chains,
            "samples_per_image": res.n_samples, "coverage": round(cov.mean().item(), 4),
            "coverage_min": round(cov.min().item(), 4),
            "coverage_max": round(cov.max().item(), 4),
            "corr_std_err": round(corr.nanmean().item(), 4), "rmse_mean": round(
                rmse.mean().item(), 4), "mean_pixel_std": round(res.std.mean().item(), 4),
            "ess_median": round(res.ess.median().item(), 1),
            "acceptance": round(res.acceptance_rate.mean().item(), 3), "seconds": round(wall, 1),
        }
        print(json.dumps(stats), flush=True)
        k = min(args.fig_images, x.shape[0])
        err = (res.mean - x).abs()
        rows += [x[:k], res.samples[0, :k], res.samples[-1, :k], res.mean[:k],
                 scaled(res.std[:k]), scaled(err[:k])]
    save_grid_png(args.fig, torch.cat(rows).clamp(0, 1), nrow=min(args.fig_images, x.shape[0]))
    print(f"figure: {args.fig} (per m, rows: truth, sample, sample, mean, std/max, |err|/max)")


if __name__ == "__main__":
    main()
