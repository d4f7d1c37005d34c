"""Cut grey training images into overlapping square patches, saved as uint8 npz shards for
``genprior train vae --data`` (the npz-folder layout: array ``x`` of shape (N, H, W)).

Train400 (180x180 BSD crops), images test_001..test_380 for training (test_381..test_400 are
held out for validation)::

    python scripts/make_patches.py --data ../shared/data/natural/train400 --first 1 --last 380 \
        --size 48 --stride 22 --out runs/natural/patches
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from genprior._serialization import atomic_write_bytes


def patches(image: np.ndarray, size: int, stride: int) -> np.ndarray:
    """All ``size x size`` patches at multiples of ``stride`` (plus the last row/column).

    Shape:
        - image: ``(H, W)``; output: ``(N, size, size)``
    """
    h, w = image.shape
    if min(h, w) < size:
        raise ValueError(f"image of {h}x{w} is smaller than the patch size {size}")
    rows = sorted(set(range(0, h - size + 1, stride)) | {h - size})
    cols = sorted(set(range(0, w - size + 1, stride)) | {w - size})
    return np.stack([image[r:r + size, c:c + size] for r in rows for c in cols])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder of grey images named *_NNN.png")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=380)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--stride", type=int, default=22)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    files = []
    for f in sorted(Path(args.data).iterdir()):
        m = re.search(r"(\d+)\.\w+$", f.name)
        if m and args.first <= int(m.group(1)) <= args.last:
            files.append(f)
    if not files:
        raise SystemExit(f"no images numbered {args.first}..{args.last} in {args.data}")
    x = np.concatenate([patches(np.asarray(Image.open(f).convert("L")), args.size, args.stride)
                        for f in files])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=x.astype(np.uint8))
    atomic_write_bytes(out / "patches_train.npz", buf.getvalue())
    print(f"{len(files)} images -> {x.shape[0]} patches of {args.size}x{args.size} in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
