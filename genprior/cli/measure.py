"""Simulate measurements: ``genprior measure --images mnist --operator gaussian_cs:100 --out DIR``.

``--images`` is a shipped sample name (``genprior.data.SAMPLES``), an ``.npz`` file with key
``x``, an image file (png, jpg, jpeg, tif, tiff, bmp) or a folder of image files (read in
sorted name order), all of one size. Image files are read with PIL as floats in [0, 1]: a grey
image as one channel, a colour one (palette and alpha converted to RGB) as three; ``--grey``
converts colour to luminance (PIL ``"L"``; the same ITU-R 601-2 weights, in float, for colour
samples and ``.npz`` images).

Writes to DIR:

- ``y.npz``: the measurements ``y`` with the ground truth ``x``, JSON metadata and the operator
  record (spec, seed, noise level, config and the SHA-256 of the operator's tensors), which
  ``genprior reconstruct``, ``sample`` and ``evaluate`` check the operator they are given
  against;
- ``operator.safetensors``: the operator (reload with ``genprior.load_operator``);
- ``x.png`` and ``x_dagger.png``: the ground truth and the pseudo-inverse ``A_dagger(y)``
  (clipped to [0, 1]), also saved as ``x_dagger.npz`` (a baseline for ``genprior evaluate``).

The operator's random draws use ``--seed`` (as ``make_operator(spec, seed=SEED)`` does); the noise
uses a generator seeded from ``numpy.random.SeedSequence([SEED, 1])`` so that it is independent of
the operator's draws. The same arguments give the same ``y``, bit for bit (on one device).

The files appear together or not at all (written to a temporary folder beside DIR, renamed on
success); a non-empty DIR is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genprior._io import save_grid_png, save_images_npz, save_measurements
from genprior._random import make_generator
from genprior.cli._inputs import operator_record, reading
from genprior.cli._output import check_output, transactional_output
from genprior.data.samples import SAMPLES

HELP = "simulate noisy measurements y = A x + e of sample or given images"

#: names accepted by ``--images`` besides a path to an ``.npz`` file, an image file or a folder
SAMPLE_NAMES = tuple(SAMPLES)
#: suffixes of the image files accepted by ``--images`` (a file, or the files of a folder)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: PIL modes read as one grey channel; every other mode is converted to RGB
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: ITU-R 601-2 luma weights, those of PIL's ``convert("L")``
_LUMA = (0.299, 0.587, 0.114)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True,
                        help=f"shipped samples ({', '.join(SAMPLE_NAMES)}), an .npz file with "
                        "key x (B, C, H, W) in [0, 1], an image file "
                        f"({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) or a folder of image "
                        "files of one size")
    parser.add_argument("--grey", action="store_true",
                        help="convert colour images to one luminance channel (PIL 'L')")
    parser.add_argument("--operator", required=True, metavar="SPEC",
                        help="operator spec, e.g. gaussian_cs:100, gaussian_cs_unscaled:100, "
                        "structured_cs:500, downsample:4, downsample:4:bicubic, "
                        "inpaint:center:16, inpaint:random:0.5")
    parser.add_argument("--noise-std", type=float, default=0.0,
                        help="standard deviation of the Gaussian measurement noise")
    parser.add_argument("--seed", type=int, default=0, help="seed of the operator and noise")
    parser.add_argument("--num-images", type=int, default=None,
                        help="use only the first N images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")


def noise_generator(seed: int) -> torch.Generator:
    """The generator of the measurement noise for ``--seed seed``, independent of the
    operator's own draws (which use ``seed`` directly)."""
    return make_generator(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))


def load_images(source: str, *, grey: bool = False) -> Tensor:
    """Images for ``--images``: a shipped sample name, an ``.npz`` path, an image file or a
    folder of image files of one size.

    Args:
        source: the value of ``--images``.
        grey: convert colour images to one luminance channel.

    Returns:
        float images in [0, 1].

    Shape:
        output: ``(B, C, H, W)``, ``C = 1`` for grey images (and with ``grey``), else 3 for
        image files.

    Raises:
        ValueError: an unknown name or suffix, an unreadable file, a folder without image
            files or with images of different sizes, each naming ``--images``.
        FileNotFoundError: a missing file.
    """
    from genprior._io import load_images_npz
    from genprior.data import load_samples

    path = Path(source)
    if source in SAMPLE_NAMES:
        x = load_samples(source)
    elif path.suffix.lower() == ".npz":
        with reading("--images", source):
            x = load_images_npz(path)
    elif path.is_dir():
        return _read_folder(path, grey=grey)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        with reading("--images", source):
            return _read_image(path, grey=grey)[None]
    else:
        raise ValueError(f"--images must be one of {SAMPLE_NAMES}, an .npz file, an image file "
                         f"({', '.join(IMAGE_SUFFIXES)}) or a folder of them, got {source!r}")
    return luminance(x, source) if grey else x


def luminance(x: Tensor, source: str = "images") -> Tensor:
    """One grey channel from colour images, with PIL's ``"L"`` weights (ITU-R 601-2) in float;
    grey images unchanged.

    Shape:
        - x: ``(B, 3, H, W)`` or ``(B, 1, H, W)``
        - output: ``(B, 1, H, W)``

    Raises:
        ValueError: another number of channels.
    """
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"--grey needs images with 1 or 3 channels; --images {source} has "
                         f"{x.shape[1]}")
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _read_image(path: Path, *, grey: bool) -> Tensor:
    """One image file as float ``(C, H, W)`` in [0, 1]: grey modes as one channel (16-bit and
    float ones scaled by their range), others as RGB; ``grey`` converts RGB to ``"L"``."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode in ("1", "LA") or (grey and mode not in _GREY_MODES):
            img, mode = img.convert("L"), "L"
        elif mode not in _GREY_MODES:
            img, mode = img.convert("RGB"), "RGB"
        a = np.asarray(img)
    a = a.astype(np.float32) / _full_scale(mode, a)
    x = torch.from_numpy(np.ascontiguousarray(a))
    return x[None] if x.ndim == 2 else x.permute(2, 0, 1).contiguous()


def _full_scale(mode: str, a: np.ndarray) -> float:
    """The value of white in an image of PIL ``mode``: 255 (8 bit), 65535 (16 bit integer
    modes), 1 (float); values outside ``[0, white]`` are refused."""
    white = 65535.0 if mode.startswith("I") else 1.0 if mode == "F" else 255.0
    if a.size and (a.min() < 0 or a.max() > white):
        raise ValueError(f"a {mode!r} image with values in [{a.min():g}, {a.max():g}], "
                         f"outside [0, {white:g}]")
    return white


def _read_folder(folder: Path, *, grey: bool) -> Tensor:
    """Every image file of ``folder`` (sorted by name), which must all have one shape.

    Shape:
        output: ``(B, C, H, W)``
    """
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in "
                         "the folder")
    images = []
    for path in files:
        with reading("--images", path):
            images.append(_read_image(path, grey=grey))
    shapes: dict[tuple[int, ...], str] = {}
    for path, x in zip(files, images):
        shapes.setdefault(tuple(x.shape), path.name)
    if len(shapes) > 1:
        sizes = ", ".join(f"{name} {'x'.join(map(str, s))}" for s, name in shapes.items())
        hint = (" (pass --grey to read them all as one grey channel)"
                if len({s[0] for s in shapes}) > 1 and not grey else "")
        raise ValueError(f"--images {folder}: the image files differ in size (C x H x W): "
                         f"{sizes}; all must have one size{hint}")
    return torch.stack(images)


def run(args: argparse.Namespace) -> int:
    from genprior.operators.factory import make_operator

    out = check_output(args.out, args.overwrite)
    if args.num_images is not None and args.num_images < 1:
        raise ValueError(f"--num-images must be >= 1, got {args.num_images}")
    x = load_images(args.images, grey=args.grey)
    if args.num_images is not None:
        x = x[: args.num_images]
    A = make_operator(args.operator, tuple(x.shape[1:]), noise_std=args.noise_std,
                      seed=args.seed)
    with torch.no_grad():
        y = A.measure(x, generator=noise_generator(args.seed))
        x_dagger = A.A_dagger(y).clamp(0, 1)
    with transactional_output(out, args.overwrite) as tmp:
        save_measurements(tmp / "y.npz", y, x=x, operator_record=operator_record(A, args.operator),
                          images=args.images, operator=args.operator, noise_std=args.noise_std,
                          seed=args.seed, **({"grey": True} if args.grey else {}))
        A.save(tmp / "operator.safetensors")
        nrow = 8
        save_grid_png(tmp / "x.png", x, nrow=nrow)
        save_grid_png(tmp / "x_dagger.png", x_dagger, nrow=nrow)
        save_images_npz(tmp / "x_dagger.npz", x_dagger)
    out = Path(args.out)
    print(f"{x.shape[0]} images {tuple(x.shape[1:])}, {A!r}: n={A.n}, m={A.m}")
    print(f"wrote {out / 'y.npz'}, {out / 'operator.safetensors'}, {out / 'x.png'}, "
          f"{out / 'x_dagger.png'}, {out / 'x_dagger.npz'}")
    return 0
