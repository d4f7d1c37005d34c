"""Build the sample batches shipped in genprior/assets from the shared data.

    python scripts/make_assets.py --data /work/shared/data

writes genprior/assets/mnist_test_64.npz (the first 64 MNIST test digits) and
genprior/assets/celeba_16.npz (CelebA ids 008985..009000, in the held-out split, cropped 54x54
and resized to 64x64 exactly as genprior.data.load_celeba does) and
genprior/assets/bsd68_crops_4.npz (72x88 centre crops of the BSD68 grey test images
test001..test004, natural/set68), all uint8 (B, C, H, W) under key "x", and prints their sizes.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genprior._serialization import atomic_write_bytes
from genprior.data import load_celeba, load_mnist
from genprior.data.samples import ASSETS, SAMPLES

N_MNIST = 64
CELEBA_IDS = list(range(8985, 9001))  # the last 16 of the held-out ids 008001..009000
NATURAL = ["test001.png", "test002.png", "test003.png", "test004.png"]
NATURAL_CROP = (72, 88)


def _write(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    print(f"{path}: {', '.join(f'{k} {v.dtype} {list(v.shape)}' for k, v in arrays.items())}, "
          f"{path.stat().st_size / 1024:.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder holding mnist/ and celeba/")
    parser.add_argument("--out", default=str(ASSETS), help="assets folder")
    args = parser.parse_args()
    out = Path(args.out)

    mnist = load_mnist(Path(args.data) / "mnist", split="test")
    _write(out / SAMPLES["mnist"], x=mnist.images[:N_MNIST].numpy(),
           labels=mnist.labels[:N_MNIST].numpy().astype(np.uint8))

    faces = load_celeba(Path(args.data) / "celeba", split="test")
    first = faces.paths.index(faces.root / f"{CELEBA_IDS[0]:06d}.jpg")
    x = torch.stack([faces[first + i] for i in range(len(CELEBA_IDS))])
    x_u8 = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    _write(out / SAMPLES["celeba"], x=x_u8, ids=np.array(CELEBA_IDS, dtype=np.int32))

    crops = []
    for name in NATURAL:
        im = np.asarray(Image.open(Path(args.data) / "natural" / "set68" / name).convert("L"))
        h, w = NATURAL_CROP
        top, left = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        crops.append(im[top:top + h, left:left + w])
    _write(out / SAMPLES["natural"], x=np.stack(crops)[:, None],
           names=np.array(NATURAL))

    total = sum((out / f).stat().st_size for f in SAMPLES.values())
    print(f"total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
