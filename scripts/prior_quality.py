"""Quality of the shipped priors: sample grids, held-out reconstruction, test ELBO, a pixel-space
Frechet proxy (NOT FID: no Inception weights are available offline).

Usage: python scripts/prior_quality.py --data-root /work/shared/data --out docs/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_celeba, load_mnist
from genprior.metrics import pixel_frechet_distance
from genprior.priors import available_priors, load_prior
from genprior.priors.conditional import is_conditional


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--n", type=int, default=1000, help="held-out images per face prior")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name in available_priors():
        prior = load_prior(name)
        if is_conditional(prior):  # super-resolution models: see scripts/compare_sr.py
            continue
        g = make_generator(0)
        save_grid_png(Path("pretrained") / name / "samples.png",
                      prior.sample(64, generator=g).clamp(0, 1), pad_value=1.0)
        r: dict[str, float] = {}
        if name.startswith("mnist"):
            x = load_mnist(args.data_root / "mnist", split="test").as_tensor()
        else:
            ds = load_celeba(args.data_root / "celeba", split="test")
            x = torch.stack([ds[i] for i in range(min(args.n, len(ds)))])
        if hasattr(prior, "elbo"):
            r["test_elbo_nats_per_image"] = float(torch.cat(
                [prior.elbo(x[i:i + 500], generator=g) for i in range(0, len(x), 500)]).mean())
            mu = torch.cat([prior.encode(x[i:i + 500])[0] for i in range(0, len(x), 500)])
            x_hat = torch.cat([prior.decode(mu[i:i + 500]) for i in range(0, len(x), 500)])
            r["recon_mse_per_pixel"] = float((x_hat - x).pow(2).mean())
        if x.shape[1] == 3:
            s = torch.cat([prior.sample(250, generator=g) for _ in range(len(x) // 250)])
            r["pixel_frechet_8x8_NOT_FID"] = pixel_frechet_distance(s, x[:len(s)])
            r["pixel_frechet_train_vs_heldout_reference"] = pixel_frechet_distance(
                torch.stack([load_celeba(args.data_root / "celeba", split="train")[i]
                             for i in range(len(s))]), x[:len(s)])
        r["n_heldout"] = len(x)
        results[name] = r
        print(name, r)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prior_quality.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
