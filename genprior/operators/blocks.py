r"""The functional core of block compressed sensing and its matrix sources: cutting images
into ``b x b`` blocks (row-major, zero padding), applying one :math:`m \times b^2` matrix to every
block and its adjoint, drawing such a matrix, and reading one from ``.mat``/``.npy``/
``.safetensors`` files. :class:`~genprior.operators.block_cs.BlockCS` wraps these.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genprior._random import randn
from genprior._serialization import load_tensors

__all__ = [
    "KINDS",
    "MATRIX_SUFFIXES",
    "block_cs",
    "block_cs_adjoint",
    "draw_block_matrix",
    "from_blocks",
    "read_matrix",
    "to_blocks",
]

#: how :class:`BlockCS` draws its matrix
KINDS = ("gaussian", "orthonormal")
#: the matrix files :func:`read_matrix` reads
MATRIX_SUFFIXES = (".mat", ".npy", ".safetensors")


# ---------------------------------------------------------------------------- functional core
def to_blocks(x: Tensor, block: int) -> Tensor:
    r"""Zero-pad the bottom and right of ``x`` to multiples of ``block`` and cut it into blocks.

    Block ``(i, j)`` covers rows ``i*b .. i*b+b-1`` and columns ``j*b .. j*b+b-1`` of the padded
    image and is flattened row-major: pixel ``(r, s)`` of the block is entry ``r*b + s`` (numpy's
    ``reshape(-1)`` of the block, as in ISTA-Net's ``img2col_py``). A linear map with orthonormal
    columns (zero padding, then a permutation); its transpose is :func:`from_blocks`.

    Args:
        x: images.
        block: block side ``b``.

    Shape:
        - x: ``(..., H, W)``
        - output: ``(..., ceil(H/b), ceil(W/b), b*b)``
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % block, (-w) % block
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    rows, cols = (h + pad_h) // block, (w + pad_w) // block
    x = x.reshape(*x.shape[:-2], rows, block, cols, block).transpose(-3, -2)
    return x.reshape(*x.shape[:-2], block * block)


def from_blocks(blocks: Tensor, size: tuple[int, int]) -> Tensor:
    r"""Put blocks back in place and crop the padding: the transpose (and left inverse) of
    :func:`to_blocks`.

    Args:
        blocks: row-major flattened blocks on a ``(rows, cols)`` grid.
        size: the image size ``(H, W)`` before padding.

    Shape:
        - blocks: ``(..., rows, cols, b*b)``
        - output: ``(..., H, W)``
    """
    rows, cols, b2 = blocks.shape[-3:]
    block = math.isqrt(b2)
    x = blocks.reshape(*blocks.shape[:-1], block, block).transpose(-3, -2)
    x = x.reshape(*x.shape[:-4], rows * block, cols * block)
    return x[..., : size[0], : size[1]]


def block_cs(x: Tensor, matrix: Tensor, block: int) -> Tensor:
    r"""Measure every ``b x b`` block of every channel with ``matrix``:
    ``y[:, c, :, i, j] = matrix @ vec(block (i, j) of channel c)``.

    For one channel this is ``conv2d(x_padded, matrix.reshape(m, 1, b, b), stride=b)``, the
    sampling layer of CSNet.

    Args:
        x: images.
        matrix: the block matrix :math:`\Phi`, ``m x b*b``.
        block: block side ``b``.

    Shape:
        - x: ``(B, C, H, W)``
        - matrix: ``(m, b*b)``
        - output: ``(B, C, m, ceil(H/b), ceil(W/b))``
    """
    return (to_blocks(x, block) @ matrix.T).movedim(-1, -3).contiguous()


def block_cs_adjoint(y: Tensor, matrix: Tensor, size: tuple[int, int]) -> Tensor:
    r"""Transpose of :func:`block_cs`: :math:`\Phi^\top` on each block, then crop the padding.

    Args:
        y: block measurements.
        matrix: the block matrix :math:`\Phi`, ``m x b*b``.
        size: the image size ``(H, W)``.

    Shape:
        - y: ``(B, C, m, rows, cols)``
        - matrix: ``(m, b*b)``
        - output: ``(B, C, H, W)``
    """
    return from_blocks(y.movedim(-3, -1) @ matrix, size)


def draw_block_matrix(
    m: int,
    block: int,
    *,
    kind: str = "gaussian",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""A random :math:`m \times b^2` block matrix (float32, on the generator's device).

    ``"gaussian"``: i.i.d. :math:`\mathcal N(0, 1/m)` entries (as :class:`GaussianCS`).
    ``"orthonormal"``: the same draw with its rows orthonormalised by Gram-Schmidt (a QR in
    float64, signs fixed so that the diagonal of ``R`` is positive), so :math:`\Phi\Phi^\top = I`,
    as for the Set11 matrices.

    Shape:
        output: ``(m, block * block)``
    """
    device = generator.device if generator is not None else "cpu"
    matrix = randn((m, block * block), generator=generator, device=device) / m**0.5
    if kind == "orthonormal":
        q, r = torch.linalg.qr(matrix.double().T, mode="reduced")
        signs = torch.where(r.diagonal() < 0, -1.0, 1.0).to(q)
        matrix = (q * signs).T.to(torch.float32).contiguous()
    return matrix


def read_matrix(path: str | os.PathLike, *, key: str | None = None) -> Tensor:
    """Read a matrix from a ``.mat`` (MATLAB up to v7, via ``scipy.io``), ``.npy`` or
    ``.safetensors`` file, in the file's float dtype (``.mat`` files: float64).

    Args:
        path: the file.
        key: the variable (``.mat``) or tensor (``.safetensors``) to read; optional when the file
            holds exactly one (the Set11 files hold only ``"phi"``).

    Returns:
        the matrix as a CPU tensor.

    Raises:
        FileNotFoundError: naming the missing file.
        ImportError: for a ``.mat`` file when scipy is not installed.
        ValueError: for another suffix, an unreadable file, an ambiguous or unknown ``key``, or
            an array that is not a real 2-D matrix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"matrix file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        try:
            import scipy.io
        except ImportError:
            raise ImportError(
                f"reading {path} needs scipy (pip install scipy), or convert it to .npy"
            ) from None
        try:
            data = scipy.io.loadmat(str(path))
        except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
            raise ValueError(
                f"{path}: scipy.io.loadmat cannot read this MATLAB file ({e}); save it with "
                "save(..., '-v7') or as .npy"
            ) from e
        arrays = {k: v for k, v in data.items() if not k.startswith("__")}
    elif suffix == ".npy":
        arrays = {"": np.load(path, allow_pickle=False)}
    elif suffix == ".safetensors":
        arrays = load_tensors(path)
    else:
        raise ValueError(
            f"{path}: unknown matrix file type {suffix!r}; expected one of "
            f"{', '.join(MATRIX_SUFFIXES)}"
        )
    if key is not None and suffix != ".npy":
        if key not in arrays:
            raise ValueError(f"{path} has no {key!r}; it holds {sorted(arrays)}")
        value = arrays[key]
    elif len(arrays) == 1:
        value = next(iter(arrays.values()))
    else:
        raise ValueError(f"{path} holds {sorted(arrays)}; pass key= to choose one")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{path}: the matrix must be real, got dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if value.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D matrix, got shape {tuple(value.shape)}")
    return value if value.is_floating_point() else value.double()


def check_block(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be an int >= 1, got {block!r}")
    return block
