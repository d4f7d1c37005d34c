r"""Block compressed sensing: one small matrix measures every ``b x b`` block of the image.

The protocol of the Set11 benchmark (ReconNet, ISTA-Net): the image is zero-padded on the bottom
and right to multiples of ``b``, cut into non-overlapping ``b x b`` blocks, and each block,
flattened **row-major**, is measured with the same :math:`m \times b^2` matrix :math:`\Phi`.
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from genprior._checks import check_finite, check_shape
from genprior.operators.base import Operator, SeededDraws, register_operator
from genprior.operators.blocks import (  # re-exported: the functional core of BlockCS
    KINDS,
    MATRIX_SUFFIXES,
    block_cs,
    block_cs_adjoint,
    check_block,
    draw_block_matrix,
    from_blocks,
    read_matrix,
    to_blocks,
)

__all__ = [
    "KINDS",
    "MATRIX_SUFFIXES",
    "BlockCS",
    "block_cs",
    "block_cs_adjoint",
    "draw_block_matrix",
    "from_blocks",
    "read_matrix",
    "to_blocks",
]

# ---------------------------------------------------------------------------- operator
@register_operator
class BlockCS(SeededDraws, Operator):
    r"""Block compressed sensing: the same :math:`\Phi \in \mathbb R^{m\times b^2}` on every block.

    Each channel is zero-padded on the bottom and right to multiples of ``b`` and cut into
    non-overlapping ``b x b`` blocks, and each block, flattened row-major (pixel ``(r, s)`` is
    entry ``r*b + s``), is measured with :math:`\Phi`:

    .. math::
        y[c, :, i, j] = \Phi\, \mathrm{vec}\big(\tilde x[c,\ ib:(i+1)b,\ jb:(j+1)b]\big),

    :math:`\tilde x` the padded image. With :math:`\Phi_S` the columns of :math:`\Phi` of the
    pixels a block keeps (all of them, except in the last block row and column when ``H`` or
    ``W`` is not a multiple of ``b``), :math:`A = \mathrm{diag}(\Phi_{S_k})` over the blocks
    :math:`k`, so the exact pseudo-inverse is blockwise,

    .. math::
        A^\dagger = \mathrm{diag}\big(\Phi_{S_k}^\dagger\big),

    with at most four distinct :math:`\Phi_S^\dagger` (interior, bottom, right and corner blocks),
    computed on first use by ``torch.linalg.pinv`` and cached per device and dtype. Note that
    :math:`\Phi_S^\dagger` is not the restriction of :math:`\Phi^\dagger`. :math:`A` is surjective
    (:attr:`surjective`) when every :math:`\Phi_S` has rank :math:`m`, which needs ``m`` at most
    the number of pixels of the smallest border block.

    Args:
        img_size: image shape ``(C, H, W)``, any ``H`` and ``W``.
        block: block side ``b``.
        matrix: :math:`\Phi` (``m x b*b``) as a tensor (kept in its float dtype), an array
            (stored as float32) or a path to a ``.mat``, ``.npy`` or ``.safetensors`` file (read
            with :func:`read_matrix`, stored as float32; see :meth:`from_file` for the
            options). ``None``: drawn from ``seed`` / ``generator``. A given matrix must have
            full row rank.
        m: measurements per block, ``1 <= m <= b*b`` (required when ``matrix`` is None; checked
            against it otherwise).
        kind: how to draw the matrix (:func:`draw_block_matrix`): ``"gaussian"``, entries
            :math:`\mathcal N(0, 1/m)`, or ``"orthonormal"``, the same rows orthonormalised.
            With a given matrix the config records ``"given"``.
        noise_std: standard deviation of the additive Gaussian noise.
        seed: seed of the draw (recorded in the config); a fresh one if both ``seed`` and
            ``generator`` are None. Not with a given matrix.
        generator: source of the draw instead of ``seed``.

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, C, m, ceil(H/b), ceil(W/b))``: ``y[:, c, :, i, j]`` measures block ``(i, j)``
          of channel ``c``, so for ``C = 1`` it is ``conv2d(x_padded, Phi.reshape(m, 1, b, b),
          stride=b)``, and ISTA-Net's ``Phix`` (blocks x m, blocks row-major) is
          ``y[0, 0].flatten(1).T``.

    Example:
        >>> import torch
        >>> op = BlockCS((1, 37, 31), 8, m=12, kind="orthonormal", seed=0)
        >>> op.meas_shape
        (1, 12, 5, 4)
        >>> x = torch.rand(2, 1, 37, 31)
        >>> y = op.A(x)
        >>> bool(torch.allclose(op.A(op.A_dagger(y)), y, atol=1e-5))
        True
    """

    name = "block_cs"
    exact_dagger = True
    config_ignore: ClassVar[tuple[str, ...]] = ("matrix", "generator")

    def __init__(
        self,
        img_size: tuple[int, int, int],
        block: int,
        matrix: Tensor | np.ndarray | str | os.PathLike | None = None,
        *,
        m: int | None = None,
        kind: str = "gaussian",
        noise_std: float = 0.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(img_size, noise_std=noise_std)
        self.block = check_block(block)
        b2 = block * block
        if matrix is None:
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {KINDS} to draw a matrix, got {kind!r}")
            if m is None:
                raise ValueError("BlockCS needs m (measurements per block) or a matrix")
            self._check_m(m, b2)
            generator = self._generator(seed, generator)
            matrix = draw_block_matrix(m, block, kind=kind, generator=generator)
        else:
            if kind not in ("gaussian", "given"):
                raise ValueError(f"kind={kind!r} applies to drawn matrices, not to a given one")
            if seed is not None or generator is not None:
                raise ValueError("seed and generator apply to drawn matrices, not to a given one")
            matrix = self._check_matrix(matrix, m, b2)
            self.register_to_config(m=int(matrix.shape[0]), kind="given", seed=None)
        self.register_buffer("matrix", matrix)
        self._pinv_cache: tuple[tuple, dict[tuple[bool, bool], Tensor]] | None = None

    @staticmethod
    def _check_m(m: int, b2: int) -> None:
        if isinstance(m, bool) or not isinstance(m, int):
            raise TypeError(f"m must be an int, got {type(m).__name__}")
        if not 1 <= m <= b2:
            raise ValueError(
                f"m (measurements per block) must satisfy 1 <= m <= block**2 = {b2}, got m={m}"
            )

    @classmethod
    def _check_matrix(cls, matrix: Any, m: int | None, b2: int) -> Tensor:
        if isinstance(matrix, str | os.PathLike):
            matrix = read_matrix(matrix).to(torch.float32)
        elif isinstance(matrix, np.ndarray):
            matrix = torch.from_numpy(np.ascontiguousarray(matrix)).to(torch.float32)
        elif not isinstance(matrix, Tensor):
            raise TypeError(
                f"matrix must be a tensor, an array or a file path, got {type(matrix).__name__}"
            )
        check_shape(matrix, "matrix", "M N")
        if not matrix.is_floating_point():
            matrix = matrix.to(torch.float32)
        if matrix.shape[1] != b2:
            raise ValueError(
                f"matrix must have block**2 = {b2} columns, got shape {tuple(matrix.shape)}"
            )
        if m is not None and m != matrix.shape[0]:
            raise ValueError(f"m={m} but the matrix has {matrix.shape[0]} rows")
        cls._check_m(int(matrix.shape[0]), b2)
        check_finite(matrix, "matrix")
        rank = int(torch.linalg.matrix_rank(matrix.detach().double()))
        if rank < matrix.shape[0]:
            raise ValueError(
                f"matrix must have full row rank, got rank {rank} < {matrix.shape[0]} rows"
            )
        return matrix.detach().clone()

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        img_size: tuple[int, int, int],
        block: int | None = None,
        *,
        key: str | None = None,
        noise_std: float = 0.0,
        dtype: torch.dtype = torch.float32,
    ) -> BlockCS:
        """An operator with its matrix read from a file (:func:`read_matrix`).

        Args:
            path: a ``.mat`` (read with ``scipy.io.loadmat``), ``.npy`` or ``.safetensors`` file.
            img_size: image shape ``(C, H, W)``.
            block: block side; by default the square root of the number of columns.
            key: the variable or tensor holding the matrix, when the file holds several.
            noise_std: standard deviation of the additive Gaussian noise.
            dtype: dtype of the stored matrix (float64 keeps a ``.mat`` file's values exactly).

        Raises:
            ValueError: if the number of columns is not ``block**2`` (or not a square).
        """
        matrix = read_matrix(path, key=key).to(dtype)
        if block is None:
            side = math.isqrt(matrix.shape[1])
            if side * side != matrix.shape[1]:
                raise ValueError(
                    f"{path}: {matrix.shape[1]} columns is not a square number; pass block="
                )
            block = side
        return cls(img_size, block, matrix, noise_std=noise_std)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BlockCS:
        """Rebuild from :attr:`config`; a given matrix is replaced by a placeholder, to be
        overwritten by the saved buffer."""
        if config.get("kind") != "given":
            return super().from_config(config)
        m, b = config["m"], config["block"]
        rest = {k: v for k, v in config.items() if k not in ("m", "seed")}
        return cls(**rest, matrix=torch.eye(m, b * b))

    # ------------------------------------------------------------------ geometry
    @property
    def grid(self) -> tuple[int, int]:
        """Number of blocks down and across, ``(ceil(H/b), ceil(W/b))``."""
        _, h, w = self.img_size
        return -(-h // self.block), -(-w // self.block)

    @property
    def meas_shape(self) -> tuple[int, ...]:
        return (self.img_size[0], self.matrix.shape[0], *self.grid)

    @property
    def surjective(self) -> bool:
        """Whether :math:`A A^\\dagger = I`: every block, border ones included, has rank ``m``."""
        m = self.matrix.shape[0]
        return all(
            int(torch.linalg.matrix_rank(self._kept_columns(*kind).double())) == m
            for kind in self._block_kinds()
        )

    def _block_kinds(self) -> list[tuple[bool, bool]]:
        """The kinds ``(bottom, right)`` of block present: whether a block is in a last block
        row (column) that padding cuts."""
        _, h, w = self.img_size
        rows = [False] if h % self.block == 0 else ([False, True] if h > self.block else [True])
        cols = [False] if w % self.block == 0 else ([False, True] if w > self.block else [True])
        return [(r, c) for r in rows for c in cols]

    def _kept(self, bottom: bool, right: bool) -> tuple[int, int]:
        """Rows and columns of real pixels in a block of kind ``(bottom, right)``."""
        _, h, w = self.img_size
        b = self.block
        return (
            h - (self.grid[0] - 1) * b if bottom else b,
            w - (self.grid[1] - 1) * b if right else b,
        )

    def _kept_columns(self, bottom: bool, right: bool) -> Tensor:
        """:math:`\\Phi_S`: the columns of the matrix on the real pixels of such a block."""
        rows, cols = self._kept(bottom, right)
        m, b = self.matrix.shape[0], self.block
        return self.matrix.reshape(m, b, b)[:, :rows, :cols].reshape(m, rows * cols)

    # ------------------------------------------------------------------ operator
    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""Block measurements :math:`\Phi\,\mathrm{vec}(\text{block})` (``kwargs`` are ignored)."""
        self.check_x(x)
        self.check_like(x, "x")
        return block_cs(x, self.matrix, self.block)

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`\Phi^\top` on each block, padding cropped (``kwargs`` are ignored)."""
        self.check_y(y)
        self.check_like(y, "y")
        return block_cs_adjoint(y, self.matrix, tuple(self.img_size[1:]))

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        r"""Exact pseudo-inverse :math:`\Phi_{S_k}^\dagger` on each block (``kwargs`` are ignored)."""
        self.check_y(y, finite=True)
        self.check_like(y, "y")
        pinvs = self._pinvs()
        rows, cols = self.grid
        # last block row / column: cut by the padding (bottom / right kind) or not
        row_parts = self._parts(rows, self.img_size[1])
        col_parts = self._parts(cols, self.img_size[2])
        blocks = y.movedim(-3, -1)  # (B, C, rows, cols, m)
        out_rows = []
        for r0, r1, bottom in row_parts:
            out_cols = [
                blocks[..., r0:r1, c0:c1, :] @ pinvs[bottom, right].T for c0, c1, right in col_parts
            ]
            out_rows.append(torch.cat(out_cols, dim=-2) if len(out_cols) > 1 else out_cols[0])
        x_blocks = torch.cat(out_rows, dim=-3) if len(out_rows) > 1 else out_rows[0]
        return from_blocks(x_blocks, tuple(self.img_size[1:]))

    def _parts(self, count: int, size: int) -> list[tuple[int, int, bool]]:
        """``(start, stop, cut)`` ranges of block rows (or columns): the last one alone when
        padding cuts it."""
        if size % self.block == 0:
            return [(0, count, False)]
        return ([(0, count - 1, False)] if count > 1 else []) + [(count - 1, count, True)]

    def _pinvs(self) -> dict[tuple[bool, bool], Tensor]:
        r"""Cached :math:`\Phi_S^\dagger` of each block kind, as ``b*b x m`` matrices with zero rows
        on the padded pixels; recomputed when the matrix, device or dtype change."""
        a = self.matrix
        key = (a.device, a.dtype, a.data_ptr(), a._version)
        if self._pinv_cache is None or self._pinv_cache[0] != key:
            m, b = a.shape[0], self.block
            pinvs = {}
            with torch.no_grad():
                for kind in self._block_kinds():
                    rows, cols = self._kept(*kind)
                    p = torch.linalg.pinv(self._kept_columns(*kind))  # (rows*cols, m)
                    full = a.new_zeros(b, b, m)
                    full[:rows, :cols] = p.reshape(rows, cols, m)
                    pinvs[kind] = full.reshape(b * b, m)
            self._pinv_cache = (key, pinvs)
        return self._pinv_cache[1]
