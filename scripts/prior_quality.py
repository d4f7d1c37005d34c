"""Quality of the shipped priors: sample grids, held-out reconstruction, test ELBO, FID (with
``--fid``) and a pixel-space Frechet proxy (NOT FID; kept as a secondary, weight-free column).

FID (``--fid``) is :func:`genprior.metrics.fid` (standard TF-Inception 2048 features) between
``--n`` prior samples (fixed ``torch.Generator`` seed 0) and the ``--n`` held-out faces
008001.., the framing the face priors were trained in (``load_celeba``: crop 54, 64x64); the
floor is the FID of ``--n`` training faces 000001.. vs the same held-out faces. The held-out
features are computed once and shared (the same computation as ``fid``).

Usage (what docs/prior_quality.md reports)::

    python scripts/prior_quality.py --data-root /work/shared/data --out docs/ --fid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _run import first_images
from torch import Tensor

from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_celeba, load_mnist
from genprior.metrics import frechet_distance, inception_features, pixel_frechet_distance
from genprior.priors import available_priors, load_prior
from genprior.priors.conditional import is_conditional


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--n", type=int, default=1000, help="held-out images per face prior")
    p.add_argument("--fid", action="store_true",
                   help="also compute FID (needs the Inception weights; minutes per 1,000 images "
                   "on a CPU)")
    p.add_argument("--fid-batch", type=int, default=25, help="images per Inception pass")
    p.add_argument("--priors", nargs="+", default=None,
                   help="only these shipped priors (default: all); their entries replace those "
                   "of an existing prior_quality.json, the others are kept")
    p.add_argument("--side-by-side", type=Path, default=None,
                   help="also a PNG with 16 draws (seed 0) of each measured prior, one row each")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    features: dict[str, Tensor] = {}  # Inception features of the real face sets, computed once

    def feats(x: Tensor) -> Tensor:
        return inception_features(x, batch_size=args.fid_batch)

    names = available_priors() if args.priors is None else args.priors
    priors = {name: load_prior(name) for name in names}
    # super-resolution models: see scripts/compare_sr.py
    priors = {name: prior for name, prior in priors.items() if not is_conditional(prior)}
    shapes = {name: tuple(prior.img_shape) for name, prior in priors.items()}
    if args.side_by_side is not None and len(set(shapes.values())) > 1:
        raise SystemExit(f"--side-by-side needs priors of one image shape, got {shapes}")
    rows: list[Tensor] = []
    for name, prior in priors.items():
        g = make_generator(0)
        grid = prior.sample(64, generator=g).clamp(0, 1)
        save_grid_png(Path("pretrained") / name / "samples.png", grid, pad_value=1.0)
        rows.append(grid[:16])
        r: dict[str, float] = {}
        if name.startswith("mnist"):
            x = load_mnist(args.data_root / "mnist", split="test").as_tensor()
        else:
            ds = load_celeba(args.data_root / "celeba", split="test")
            x = first_images(ds, min(args.n, len(ds)))
        if hasattr(prior, "elbo"):
            r["test_elbo_nats_per_image"] = float(torch.cat(
                [prior.elbo(x[i:i + 500], generator=g) for i in range(0, len(x), 500)]).mean())
            mu = torch.cat([prior.encode(x[i:i + 500])[0] for i in range(0, len(x), 500)])
            x_hat = torch.cat([prior.decode(mu[i:i + 500]) for i in range(0, len(x), 500)])
            r["recon_mse_per_pixel"] = float((x_hat - x).pow(2).mean())
        if x.shape[1] == 3:
            chunk = min(250, len(x))
            s = torch.cat([prior.sample(chunk, generator=g) for _ in range(len(x) // chunk)])
            train = torch.stack([load_celeba(args.data_root / "celeba", split="train")[i]
                                 for i in range(len(s))])
            r["pixel_frechet_8x8_NOT_FID"] = pixel_frechet_distance(s, x[:len(s)])
            r["pixel_frechet_train_vs_heldout_reference"] = pixel_frechet_distance(
                train, x[:len(s)])
            if args.fid:
                if "heldout" not in features:
                    features["heldout"] = feats(x[:len(s)])
                    features["train"] = feats(train)
                    print("floor (train vs held-out) FID", frechet_distance(
                        features["train"], features["heldout"]), flush=True)
                r["fid"] = frechet_distance(feats(s.clamp(0, 1)), features["heldout"])
                r["fid_train_vs_heldout_floor"] = frechet_distance(features["train"],
                                                                   features["heldout"])
                r["n_fid"] = len(s)
        r["n_heldout"] = len(x)
        results[name] = r
        print(name, r, flush=True)
    if args.side_by_side is not None:
        save_grid_png(args.side_by_side, torch.cat(rows), nrow=16, pad_value=1.0)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "prior_quality.json"
    if path.is_file():  # keep the entries of the priors not measured this time
        results = {**json.loads(path.read_text()), **results}
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
