r"""Orthonormal image bases :math:`\Psi` for sparse recovery: pixel, 2-D DCT and 2-D Haar wavelet.

Each basis maps images ``(B, C, H, W)`` to coefficients of the same shape, channel by channel:
``analysis`` computes :math:`c = \Psi x` and ``synthesis`` computes :math:`x = \Psi^\top c`.
All three are orthonormal, so ``synthesis`` is the exact inverse and the adjoint of ``analysis``
(both preserve the Euclidean norm), which is what the proximal solvers rely on.

- ``"dct"``: the separable 2-D DCT-II with orthonormal scaling, identical to
  ``scipy.fft.dctn(x, norm="ortho", axes=(-2, -1))`` and to ``dct2`` of the CSGM reference code.
- ``"wavelet"``: the 2-D Haar (``db1``) pyramid: at each level one Haar step along rows and
  columns of the current approximation block, repeated while both its sides are even (full depth
  for 64x64: 6 levels; 2 levels for 28x28), as ``pywt.wavedec2(x, "db1")`` which built the
  reference code's ``wavelet_basis.npy``. Coefficients agree with pywt's up to sign and order,
  which an :math:`\ell_1` penalty does not see.
- ``"pixel"``: the identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

__all__ = [
    "BASES",
    "Basis",
    "dct2",
    "dct_matrix",
    "get_basis",
    "haar2",
    "haar_levels",
    "idct2",
    "ihaar2",
]


@lru_cache(maxsize=32)
def _dct_matrix_cached(n: int, dtype: torch.dtype, device: str) -> Tensor:
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    c = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= math.sqrt(2.0)
    return c.to(device=device, dtype=dtype)


def dct_matrix(n: int, *, dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> Tensor:
    r"""The orthonormal DCT-II matrix :math:`C_{ki} = \sqrt{2/n}\,\alpha_k
    \cos(\pi (2i+1) k / 2n)`, :math:`\alpha_0 = 1/\sqrt 2`, :math:`\alpha_{k>0} = 1`.

    Shape:
        output: ``(n, n)``, with :math:`C C^\top = I`.
    """
    return _dct_matrix_cached(int(n), dtype, str(torch.device(device)))


def dct2(x: Tensor) -> Tensor:
    r"""Orthonormal 2-D DCT-II over the last two dims: :math:`C_H\, x\, C_W^\top`.

    Shape:
        - x: ``(..., H, W)``
        - output: ``(..., H, W)``
    """
    ch = dct_matrix(x.shape[-2], dtype=x.dtype, device=x.device)
    cw = dct_matrix(x.shape[-1], dtype=x.dtype, device=x.device)
    return ch @ x @ cw.T


def idct2(c: Tensor) -> Tensor:
    r"""Inverse (= adjoint) of :func:`dct2`: :math:`C_H^\top c\, C_W`.

    Shape:
        - c: ``(..., H, W)``
        - output: ``(..., H, W)``
    """
    ch = dct_matrix(c.shape[-2], dtype=c.dtype, device=c.device)
    cw = dct_matrix(c.shape[-1], dtype=c.dtype, device=c.device)
    return ch.T @ c @ cw


def haar_levels(h: int, w: int) -> int:
    """Number of levels of the full-depth Haar pyramid: halvings while both sides are even."""
    levels = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, levels = h // 2, w // 2, levels + 1
    return levels


def _haar_step(x: Tensor, dim: int) -> Tensor:
    dim = dim % x.ndim
    even, odd = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
    return torch.cat([(even + odd), (even - odd)], dim=dim) / math.sqrt(2.0)


def _ihaar_step(c: Tensor, dim: int) -> Tensor:
    dim = dim % c.ndim
    a, d = c.chunk(2, dim=dim)
    even, odd = (a + d) / math.sqrt(2.0), (a - d) / math.sqrt(2.0)
    return torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)


def haar2(x: Tensor) -> Tensor:
    r"""Orthonormal full-depth 2-D Haar pyramid over the last two dims.

    The approximation block of level :math:`\ell` sits in the top-left
    ``(H / 2^l, W / 2^l)`` corner; details fill the rest.

    Shape:
        - x: ``(..., H, W)``
        - output: ``(..., H, W)``
    """
    h, w = x.shape[-2:]
    out = x.clone()
    for _ in range(haar_levels(h, w)):
        block = out[..., :h, :w]
        block = _haar_step(_haar_step(block, -2), -1)
        out = out.clone()
        out[..., :h, :w] = block
        h, w = h // 2, w // 2
    return out


def ihaar2(c: Tensor) -> Tensor:
    r"""Inverse (= adjoint) of :func:`haar2`.

    Shape:
        - c: ``(..., H, W)``
        - output: ``(..., H, W)``
    """
    h0, w0 = c.shape[-2:]
    levels = haar_levels(h0, w0)
    out = c.clone()
    for level in reversed(range(levels)):
        h, w = h0 >> level, w0 >> level
        block = _ihaar_step(_ihaar_step(out[..., :h, :w], -1), -2)
        out = out.clone()
        out[..., :h, :w] = block
    return out


def _identity(x: Tensor) -> Tensor:
    return x


@dataclass(frozen=True)
class Basis:
    r"""An orthonormal basis :math:`\Psi` of image space.

    Attributes:
        name: ``"pixel"``, ``"dct"`` or ``"wavelet"``.
        analysis: :math:`x \mapsto \Psi x` (coefficients).
        synthesis: :math:`c \mapsto \Psi^\top c` (image), the inverse and adjoint of ``analysis``.
    """

    name: str
    analysis: Callable[[Tensor], Tensor]
    synthesis: Callable[[Tensor], Tensor]


BASES: dict[str, Basis] = {
    "pixel": Basis("pixel", _identity, _identity),
    "dct": Basis("dct", dct2, idct2),
    "wavelet": Basis("wavelet", haar2, ihaar2),
}


def get_basis(name: str | Basis) -> Basis:
    """Look up a basis by name (a :class:`Basis` is returned unchanged).

    Raises:
        ValueError: unknown name; lists the known ones.
    """
    if isinstance(name, Basis):
        return name
    if name not in BASES:
        raise ValueError(f"basis must be one of {sorted(BASES)}, got {name!r}")
    return BASES[name]

