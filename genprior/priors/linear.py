r"""The linear generator :math:`G(z) = Wz + b`: the closed-form test model.

With a linear operator :math:`A` and Gaussian noise, CSGM becomes a (ridge) least-squares problem
and the latent posterior is Gaussian, so :meth:`LinearGenerator.map_estimate` and
:meth:`LinearGenerator.posterior` are exact ground truths for the solvers and the samplers.

It is the only prior whose output is NOT restricted to [0, 1] (no clamp: a clamp would break
linearity and hence the closed forms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from genprior._checks import check_positive, check_shape
from genprior.priors.base import Prior, register_prior

__all__ = ["GaussianPosterior", "LinearGenerator"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class GaussianPosterior(NamedTuple):
    r"""Gaussian :math:`\mathcal N(\mathrm{mean}, \mathrm{cov})`; unpacks as ``(mean, cov)``.

    Shape:
        - mean: ``(B, d)``
        - cov: ``(d, d)`` (the same for every measurement)
    """

    mean: Tensor
    cov: Tensor


@register_prior
class LinearGenerator(Prior):
    r"""Linear prior :math:`x = \mathrm{reshape}(Wz + b)`, :math:`z \sim \mathcal N(0, I_d)`.

    Build it from weights, ``LinearGenerator(W, b, img_shape)`` (tensors or nested lists), or
    empty (zero buffers) from its config, ``LinearGenerator(latent_dim=d, img_shape=...)``,
    which is what :meth:`Prior.from_pretrained` does before loading the weights. The config holds
    only shapes and dtype; ``W`` and ``b`` are buffers saved in ``model.safetensors``.

    Args:
        W: weight matrix.
        b: offset (zeros when ``None``).
        img_shape: ``(C, H, W)`` with :math:`CHW = n`.
        latent_dim: :math:`d`, only when ``W`` is not given.
        dtype: ``"float32"`` or ``"float64"``; default: that of ``W`` (float32 for lists).

    Shape:
        - W: ``(n, d)``
        - b: ``(n,)``
        - z: ``(B, d)``
        - x: ``(B, C, H, W)``, unbounded

    Example:
        >>> G = LinearGenerator.from_weights([[1.0], [2.0]], [0.0, 1.0], (1, 1, 2))
        >>> G.decode(torch.ones(1, 1))
        tensor([[[[1., 3.]]]])
    """

    config_ignore = ("W", "b")  # buffers, saved in model.safetensors

    def __init__(
        self,
        W: Tensor | list | None = None,
        b: Tensor | list | None = None,
        img_shape: Sequence[int] | None = None,
        *,
        latent_dim: int | None = None,
        dtype: str | None = None,
    ) -> None:
        if img_shape is None or len(img_shape) != 3:
            raise ValueError(f"img_shape must be (C, H, W), got {img_shape}")
        img_shape = tuple(int(s) for s in img_shape)
        n = math.prod(img_shape)
        if dtype is None:
            dtype = "float64" if isinstance(W, Tensor) and W.dtype == torch.float64 else "float32"
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        tdtype = _DTYPES[dtype]
        device = W.device if isinstance(W, Tensor) else torch.device("cpu")
        if W is None:
            if latent_dim is None:
                raise ValueError("give either W or latent_dim")
            W = torch.zeros(n, int(latent_dim), dtype=tdtype)
        else:
            W = torch.as_tensor(W, dtype=tdtype, device=device).detach().clone()
            check_shape(W, "W", f"{n} d")
            if latent_dim is not None and latent_dim != W.shape[1]:
                raise ValueError(f"latent_dim={latent_dim} but W has {W.shape[1]} columns")
        d = W.shape[1]
        if b is None:
            b = torch.zeros(n, dtype=tdtype, device=device)
        else:
            b = torch.as_tensor(b, dtype=tdtype, device=device).detach().clone().reshape(-1)
        check_shape(b, "b", str(n))
        super().__init__()
        self.register_to_config(latent_dim=d, dtype=dtype)
        self.img_shape = img_shape
        self.latent_shape = (d,)
        self.register_buffer("W", W)
        self.register_buffer("b", b)

    @classmethod
    def from_weights(
        cls, W: Tensor | list, b: Tensor | list | None, img_shape: Sequence[int]
    ) -> LinearGenerator:
        """Build from weights (same as ``LinearGenerator(W, b, img_shape)``)."""
        return cls(W, b, img_shape)

    def decode(self, z: Tensor) -> Tensor:
        """:math:`\\mathrm{reshape}(Wz + b)`, not clamped.

        Shape:
            - z: ``(B, d)``
            - output: ``(B, C, H, W)``
        """
        check_shape(z, "z", f"B {self.latent_shape[0]}")
        return (z @ self.W.T + self.b).reshape(z.shape[0], *self.img_shape)

    def _system(self, y: Tensor, A_matrix: Tensor) -> tuple[Tensor, Tensor]:
        """``M = A W`` and residuals ``r = y - A b`` (rows per measurement)."""
        check_shape(A_matrix, "A_matrix", f"m {self.W.shape[0]}")
        y = y.reshape(y.shape[0], -1) if y.ndim > 1 else y[None]
        if y.shape[1] != A_matrix.shape[0]:
            raise ValueError(f"y has {y.shape[1]} entries per sample but A_matrix has "
                             f"{A_matrix.shape[0]} rows")
        A_matrix = A_matrix.to(self.W)
        return A_matrix @ self.W, y.to(self.W) - A_matrix @ self.b

    def posterior(self, y: Tensor, A_matrix: Tensor, sigma: float) -> GaussianPosterior:
        r"""Exact posterior of :math:`z` given :math:`y = A(Wz + b) + e`,
        :math:`e \sim \mathcal N(0, \sigma^2 I)`, :math:`z \sim \mathcal N(0, I)`:

        .. math::
            \Sigma = (I + M^\top M / \sigma^2)^{-1}, \quad
            \mu = \Sigma M^\top (y - Ab) / \sigma^2, \quad M = AW.

        Args:
            y: measurements (flattened per sample; a 1-D ``y`` is one sample).
            A_matrix: the operator as a matrix acting on flattened images.
            sigma: noise standard deviation (> 0).

        Returns:
            ``GaussianPosterior(mean, cov)``.

        Shape:
            - y: ``(B, *)`` with ``m`` entries per sample, or ``(m,)``
            - A_matrix: ``(m, n)``
            - mean: ``(B, d)``; cov: ``(d, d)``
        """
        check_positive(sigma, "sigma")
        M, r = self._system(y, A_matrix)
        d = M.shape[1]
        precision = torch.eye(d, dtype=M.dtype, device=M.device) + M.T @ M / sigma**2
        cov = torch.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        mean = (r @ M) @ cov / sigma**2
        return GaussianPosterior(mean=mean, cov=cov)

    def map_estimate(self, y: Tensor, A_matrix: Tensor, *, lam: float) -> Tensor:
        r""":math:`\arg\min_z \|A(Wz + b) - y\|^2 + \lambda \|z\|^2`
        :math:`= (M^\top M + \lambda I)^{-1} M^\top (y - Ab)` with :math:`M = AW`
        (minimum-norm least squares when ``lam == 0``).

        Equals the posterior mean of :meth:`posterior` at ``lam = sigma**2``.

        Args:
            y: measurements (flattened per sample; a 1-D ``y`` is one sample).
            A_matrix: the operator as a matrix acting on flattened images.
            lam: ridge weight (>= 0).

        Shape:
            - y: ``(B, *)`` with ``m`` entries per sample, or ``(m,)``
            - A_matrix: ``(m, n)``
            - output: ``(B, d)``
        """
        check_positive(lam, "lam", allow_zero=True)
        M, r = self._system(y, A_matrix)
        if lam == 0:
            return r @ torch.linalg.pinv(M).T
        d = M.shape[1]
        gram = M.T @ M + lam * torch.eye(d, dtype=M.dtype, device=M.device)
        return torch.linalg.solve(gram, M.T @ r.T).T
