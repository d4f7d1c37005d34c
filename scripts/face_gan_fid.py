"""FID of face generators — shipped priors and training checkpoints — with the real-vs-real floor.

The protocol of scripts/prior_quality.py (docs/prior_quality.md): :func:`genprior.metrics.fid`
features (standard TF-Inception, 2048) of ``--n`` prior samples — a ``torch.Generator`` seeded
``--sample-seed`` (default 0), the draws after the 64 of the sample grid — against the ``--n``
held-out faces 008001.. in the framing the face priors were trained in (``load_celeba``: crop
54, 64x64); the floor is the FID of ``--n`` training faces 000001.. against the same held-out
faces.

``--checkpoints`` takes training checkpoints of ``genprior train gan --arch dcgan`` (the
``G_ema`` weights, the average ``final/`` would hold), so FID can follow a run while it trains.
The real faces' features are cached in ``--cache`` (safetensors), computed once.

Beside FID, each row has the draws' pixel std (each pixel's standard deviation over the
samples, averaged over pixels), and the floor row the held-out faces' own: draws that vary less
than real faces at a fixed place have lost variety.

Writes ``<out>/<stem>.md`` (the command and the table) and ``<out>/<stem>.json``; with
``--grid``, a PNG with 16 samples per row, one row per generator (same latents for generators
of the same latent size).

With ``--no-fid`` only the ``--grid`` is written (no Inception weights needed).

Example (what docs/prior_quality.md reports)::

    python scripts/face_gan_fid.py --data-root ../shared/data --priors celeba-dcgan \
        celeba-dcgan-da --out docs --stem face_gan_fid --grid docs/face_gan_samples.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _run import first_images
from torch import Tensor, nn

from genprior._io import save_grid_png
from genprior._random import make_generator
from genprior.data import load_celeba
from genprior.metrics import frechet_distance, inception_features
from genprior.priors import load_prior
from genprior.priors.dcgan import DCGANGenerator
from genprior.priors.standing_stats import recalibrate_batchnorm
from genprior.training.checkpoint_model import checkpoint_model

GRID_DRAWS = 64  # the sample grid's draws, skipped before the FID samples (prior_quality.py)
CHUNK = 250


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", type=Path, required=True, help="folder holding celeba/")
    p.add_argument("--priors", nargs="*", default=[], help="prior names or folders")
    p.add_argument("--checkpoints", nargs="*", type=Path, default=[],
                   help="checkpoints of genprior train gan --arch dcgan (their G_ema)")
    p.add_argument("--n", type=int, default=1000, help="samples and held-out faces")
    p.add_argument("--cache", type=Path, default=Path("/tmp/genprior_face_features.safetensors"),
                   help="where the real faces' Inception features are kept")
    p.add_argument("--fid-batch", type=int, default=25, help="images per Inception pass")
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--stem", default="face_gan_fid")
    p.add_argument("--grid", type=Path, default=None, help="PNG of 16 samples per generator")
    p.add_argument("--no-fid", action="store_true", help="only the --grid (no Inception)")
    p.add_argument("--standing-stats", type=int, default=0, metavar="N",
                   help="recompute every generator's BatchNorm statistics from N batches of 64 "
                        "of its own draws first (genprior.priors.standing_stats; seed 1)")
    p.add_argument("--sample-seed", type=int, default=0,
                   help="seed of the generator the samples are drawn with (another seed: "
                        "another set of draws, to see how much FID moves with them)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.standing_stats < 0:
        p.error(f"--standing-stats must be >= 0, got {args.standing_stats}")
    if not args.priors and not args.checkpoints:
        p.error("give at least one of --priors and --checkpoints")
    if args.no_fid and args.grid is None:
        p.error("--no-fid needs --grid (there is nothing else to write)")
    if args.n < 2 or args.n % CHUNK:
        p.error(f"--n must be a positive multiple of {CHUNK}, got {args.n}")
    return args


def checkpoint_generator(path: Path) -> tuple[nn.Module, int]:
    """The EMA generator of a DCGAN training checkpoint and the checkpoint's step."""
    G, step = checkpoint_model(path)
    if not isinstance(G, DCGANGenerator):  # a wrong file, not a wrong type of argument
        raise ValueError(f"{path} is not a checkpoint of genprior train gan --arch dcgan")  # noqa: TRY004
    return G, step


def real_features(args: argparse.Namespace) -> dict[str, Tensor]:
    """Inception features of the held-out and the training faces (cached in ``args.cache``)."""
    from safetensors.torch import load_file, save_file

    if args.cache.is_file():
        feats = load_file(str(args.cache))
        if all(f.shape[0] == args.n for f in feats.values()):
            return feats
    heldout = load_celeba(args.data_root / "celeba", split="test")
    train = load_celeba(args.data_root / "celeba", split="train")
    if len(heldout) < args.n:
        raise ValueError(f"--n {args.n} exceeds the {len(heldout)} held-out faces")
    feats = {name: inception_features(first_images(ds, args.n),
                                      batch_size=args.fid_batch)
             for name, ds in (("heldout", heldout), ("train", train))}
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(feats, str(args.cache))
    return feats


@torch.no_grad()
def samples(prior: nn.Module, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The 64 grid draws and the next ``n`` draws of a generator seeded ``seed``, clamped to
    [0, 1]."""
    g = make_generator(seed)
    grid = prior.sample(GRID_DRAWS, generator=g)
    x = torch.cat([prior.sample(CHUNK, generator=g) for _ in range(n // CHUNK)] or [grid[:0]])
    if not torch.isfinite(x).all():
        raise RuntimeError("the generator produced non-finite samples")
    return grid.clamp(0, 1), x.clamp(0, 1)


def pixel_std(x: Tensor) -> float:
    """Each pixel's standard deviation over the images of ``x`` (B, C, H, W), averaged over the
    pixels: how much a set of faces varies at a fixed place (unbiased, B - 1 in the divisor)."""
    return float(x.double().std(dim=0).mean())


def write_table(rows: list[dict], floor: dict, args: argparse.Namespace) -> None:
    command = "python " + " ".join(sys.argv)
    lines = [f"Command: `{command}`", "",
             (f"FID (genprior.metrics, TF-Inception 2048) of {args.n} samples (generator seeded "
             f"{args.sample_seed}, after the {GRID_DRAWS} grid draws) vs {args.n} held-out faces "
             "008001.. (crop 54, 64x64). Lower is better."), "",
             "Pixel std: each pixel's standard deviation over the images, averaged over pixels.",
             "", "| generator | training step | FID | pixel std |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['step'] if r['step'] is not None else '-'} | "
              f"{r['fid']:.1f} | {r['pixel_std']:.3f} |" for r in rows]
    lines.append(f"| *floor: {args.n} training faces 000001.. vs the same held-out faces* | | "
                 f"*{floor['fid']:.1f}* | *{floor['pixel_std']:.3f} (held-out faces)* |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{args.stem}.json").write_text(json.dumps(
        {"command": command, "n": args.n, "sample_seed": args.sample_seed, "floor": floor["fid"],
         "heldout_pixel_std": floor["pixel_std"], "rows": rows}, indent=2) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    generators = [(name, load_prior(name), None) for name in args.priors]
    generators += [(path.stem, *checkpoint_generator(path)) for path in args.checkpoints]
    if args.standing_stats:
        for _, prior, _ in generators:
            recalibrate_batchnorm(prior, n_batches=args.standing_stats,
                                  generator=make_generator(1))
    if args.no_fid:
        save_grid_png(args.grid, torch.cat([samples(prior, 0)[0][:16] for _, prior, _ in
                                            generators]), nrow=16, pad_value=1.0)
        return 0
    feats = real_features(args)
    floor = {"fid": frechet_distance(feats["train"], feats["heldout"]),
             "pixel_std": pixel_std(first_images(load_celeba(args.data_root / "celeba",
                                                             split="test"), args.n))}
    print(f"floor (train vs held-out) FID {floor['fid']:.2f}; held-out faces' pixel std "
          f"{floor['pixel_std']:.4f}", flush=True)
    rows, grids = [], []
    for name, prior, step in generators:
        grid, x = samples(prior, args.n, args.sample_seed)
        score = frechet_distance(inception_features(x, batch_size=args.fid_batch),
                                 feats["heldout"])
        rows.append({"name": name, "step": step, "fid": score, "pixel_std": pixel_std(x)})
        grids.append(grid[:16])
        print(f"{name} (step {step}): FID {score:.2f}, pixel std {rows[-1]['pixel_std']:.4f}",
              flush=True)
        write_table(rows, floor, args)  # after every generator, so a cut-off run keeps its rows
    if args.grid is not None:
        save_grid_png(args.grid, torch.cat(grids), nrow=16, pad_value=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
