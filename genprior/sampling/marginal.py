r"""The Gaussian algebra of the misfit model :math:`x = G(z) + d`, :math:`y = A x + \sigma e`.

Given :math:`z`, the measurements are Gaussian,

.. math::
    y \mid z \sim \mathcal N\big(A\,G(z),\; C\big), \qquad C = \sigma^2 I + A \Sigma_d A^\top,

with a covariance that does not depend on :math:`z`: :func:`marginal_covariance` factorises it
once per (operator, misfit, noise), :math:`C = L L^\top`, and every chain and step of the sampler
reuses the factor through :class:`WhitenedOperator` (:math:`L^{-1} A`, unit noise). Given
:math:`z` and :math:`y`, the image is Gaussian too, and :func:`matheron` draws it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genprior._physics import forward
from genprior._random import randn
from genprior.operators import Inpaint, OrthonormalRows
from genprior.reconstruct._problem import operator_img_size
from genprior.sampling.misfit import MisfitCovariance

__all__ = ["MAX_DENSE", "MarginalCovariance", "WhitenedOperator", "marginal_covariance",
           "matheron"]

#: the largest number of measurements ``m`` for which the dense ``m x m`` factor is built by
#: default (4096: 128 MiB in float64)
MAX_DENSE = 4096


@dataclass(frozen=True, eq=False)
class MarginalCovariance:
    r"""The factorised covariance :math:`C = \sigma^2 I + A \Sigma_d A^\top = L L^\top` of the
    flattened measurements.

    Built by :func:`marginal_covariance`; holds either the diagonal of :math:`C` (when it is
    diagonal) or the dense lower Cholesky factor :math:`L`.

    Attributes:
        sigma: the noise standard deviation :math:`\sigma \ge 0`.
        variance: :math:`\Sigma_d` (``()`` or ``(C, H, W)``) on the factor's device and dtype.
        img_size: ``(C, H, W)`` of the images.
        meas_shape: the shape of one measurement.
        structure: ``"scaled identity"``, ``"diagonal"`` or ``"dense"``.
        diagonal: the diagonal of :math:`C`, ``(m,)``, or ``None`` when dense.
        cholesky: the lower factor :math:`L`, ``(m, m)``, or ``None`` when diagonal.

    Shape:
        - r (any method's input): ``(B, *meas_shape)``; outputs: the same
    """

    sigma: float
    variance: Tensor
    img_size: tuple[int, int, int]
    meas_shape: tuple[int, ...]
    structure: str
    diagonal: Tensor | None = None
    cholesky: Tensor | None = None

    @property
    def m(self) -> int:
        """Number of measurements per image."""
        return math.prod(self.meas_shape)

    def _flat(self, r: Tensor, name: str = "r") -> Tensor:
        if tuple(r.shape[1:]) != tuple(self.meas_shape):
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, self.meas_shape))}),"
                             f" got {tuple(r.shape)}")
        return r.reshape(r.shape[0], self.m)

    def _unflat(self, r: Tensor) -> Tensor:
        return r.reshape(r.shape[0], *self.meas_shape)

    def whiten(self, r: Tensor) -> Tensor:
        r""":math:`L^{-1} r` (then :math:`L^{-1} r \sim \mathcal N(0, I)` for
        :math:`r \sim \mathcal N(0, C)`)."""
        f = self._flat(r)
        if self.cholesky is None:
            return self._unflat(f / self.diagonal.sqrt())
        return self._unflat(torch.linalg.solve_triangular(self.cholesky, f.T, upper=False).T)

    def whiten_adjoint(self, u: Tensor) -> Tensor:
        r""":math:`L^{-\top} u`, the adjoint of :meth:`whiten`."""
        f = self._flat(u, "u")
        if self.cholesky is None:
            return self._unflat(f / self.diagonal.sqrt())
        return self._unflat(torch.linalg.solve_triangular(self.cholesky.T, f.T, upper=True).T)

    def unwhiten(self, u: Tensor) -> Tensor:
        r""":math:`L u`, the inverse of :meth:`whiten`."""
        f = self._flat(u, "u")
        if self.cholesky is None:
            return self._unflat(f * self.diagonal.sqrt())
        return self._unflat(f @ self.cholesky.T)

    def solve(self, r: Tensor) -> Tensor:
        r""":math:`C^{-1} r = L^{-\top} L^{-1} r`."""
        return self.whiten_adjoint(self.whiten(r))

    def logdet(self) -> Tensor:
        r""":math:`\log\det C` (a ``0``-dim tensor)."""
        if self.cholesky is None:
            return self.diagonal.log().sum()
        return 2.0 * self.cholesky.diagonal().log().sum()

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""``n`` draws of :math:`\mathcal N(0, C)`, as :math:`L \epsilon`.

        Shape:
            - output: ``(n, *meas_shape)``
        """
        ref = self.diagonal if self.cholesky is None else self.cholesky
        eps = randn((n, *self.meas_shape), generator=generator, device=ref.device,
                    dtype=ref.dtype)
        return self.unwhiten(eps)

    def dense(self) -> Tensor:
        r"""The matrix :math:`C`, ``(m, m)`` (for checks on small problems)."""
        if self.cholesky is None:
            return torch.diag(self.diagonal)
        return self.cholesky @ self.cholesky.T


def _operator_like(A, misfit: MisfitCovariance) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of the operator's first floating-point buffer, else the misfit's."""
    buffers = A.buffers() if callable(getattr(A, "buffers", None)) else ()
    for buf in buffers:
        if buf.is_floating_point():
            return buf.device, buf.dtype
    return misfit.variance.device, misfit.variance.dtype


def _probe(A, variance: Tensor, img_size: tuple[int, ...], meas_shape: tuple[int, ...],
           chunk: int) -> Tensor:
    r""":math:`A \Sigma_d A^\top` as an ``(m, m)`` matrix, column by column in chunks:
    :math:`A(\Sigma_d A^\top e_j)`, ``m`` applications of ``A`` and ``A_adjoint``."""
    m = math.prod(meas_shape)
    rows = []
    for start in range(0, m, chunk):
        k = min(chunk, m - start)
        e = torch.zeros(k, m, device=variance.device, dtype=variance.dtype)
        idx = torch.arange(k, device=variance.device)
        e[idx, start + idx] = 1.0
        back = A.A_adjoint(e.reshape(k, *meas_shape))
        rows.append(forward(A, back * variance).reshape(k, m))
    K = torch.cat(rows)
    return 0.5 * (K + K.T)


@torch.no_grad()
def marginal_covariance(
    A,
    misfit: MisfitCovariance,
    *,
    sigma: float | None = None,
    structured: bool = True,
    max_dense: int = MAX_DENSE,
    chunk: int = 256,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> MarginalCovariance:
    r"""Build and factorise :math:`C = \sigma^2 I + A \Sigma_d A^\top` once.

    The structure of the operator is used where :math:`C` is diagonal (``structured=True``):

    - :math:`\Sigma_d = 0`: :math:`C = \sigma^2 I` for any operator;
    - a scalar :math:`\Sigma_d = s I` and an operator with orthonormal rows
      (:class:`~genprior.operators.OrthonormalRows`: :class:`~genprior.operators.Inpaint`,
      :class:`~genprior.operators.StructuredCS`): :math:`C = (\sigma^2 + s) I`;
    - :class:`~genprior.operators.Inpaint` and any :math:`\Sigma_d`: :math:`C` is diagonal, with
      :math:`\sigma^2` plus the variances of the observed pixels.

    Otherwise (e.g. :class:`~genprior.operators.GaussianCS`,
    :class:`~genprior.operators.Downsample`, a deepinv operator) :math:`A\Sigma_d A^\top` is
    materialised by applying ``A.A_adjoint`` then ``A.A`` to the ``m`` unit measurement vectors
    (``chunk`` at a time) and :math:`C` is Cholesky-factorised: :math:`O(m^2)` memory,
    :math:`m` operator applications and :math:`m^3/3` flops, once.

    Args:
        A: the linear operator (a genprior operator or any deepinv ``LinearPhysics``; the dense
            path needs ``A_adjoint``), with ``img_size``.
        misfit: :math:`\Sigma_d`.
        sigma: noise standard deviation :math:`\sigma \ge 0`; default ``A.noise_std``.
        structured: use the diagonal fast paths above (``False`` forces the dense path).
        max_dense: refuse a dense factor for more measurements than this.
        chunk: unit vectors per operator application on the dense path.
        device, dtype: where and in which precision to factorise; default those of the
            operator's floating-point buffers (else of ``misfit.variance``).

    Returns:
        :class:`MarginalCovariance`.

    Raises:
        ValueError: ``sigma`` missing or negative, a per-pixel misfit of another size than the
            operator's images, a dense path with ``m > max_dense``, or a singular :math:`C`
            (``sigma = 0`` and a misfit that leaves some measurement direction without variance).
        TypeError: the dense path for an operator without ``A_adjoint``.

    Example:
        >>> from genprior.operators import GaussianCS, Inpaint
        >>> A = Inpaint.center_box((1, 4, 4), 2)
        >>> C = marginal_covariance(A, MisfitCovariance(0.03), sigma=0.1)
        >>> C.structure, round(float(C.diagonal[0]), 4)  # sigma^2 + s
        ('scaled identity', 0.04)
        >>> marginal_covariance(GaussianCS(6, (1, 4, 4), seed=0), MisfitCovariance(0.03),
        ...                     sigma=0.1).structure
        'dense'
    """
    if sigma is None:
        sigma = getattr(A, "noise_std", None)
        if sigma is None:
            raise ValueError("sigma must be given when the operator has no noise_std")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma}")
    img_size = operator_img_size(A)
    misfit.check_img_size(img_size)
    own_device, own_dtype = _operator_like(A, misfit)
    device = own_device if device is None else torch.device(device)
    dtype = own_dtype if dtype is None else dtype
    variance = misfit.variance.to(device=device, dtype=dtype)
    probe = torch.zeros(1, *img_size, device=device, dtype=dtype)
    meas_shape = tuple(forward(A, probe).shape[1:])
    m = math.prod(meas_shape)
    common = {"sigma": sigma, "variance": variance, "img_size": img_size,
              "meas_shape": meas_shape}
    diagonal, structure = None, "dense"
    if structured and not bool(variance.any()):
        diagonal, structure = torch.full((m,), sigma**2, device=device, dtype=dtype), \
            "scaled identity"
    elif structured and not misfit.per_pixel and isinstance(A, OrthonormalRows):
        diagonal = torch.full((m,), sigma**2 + float(variance), device=device, dtype=dtype)
        structure = "scaled identity"
    elif structured and isinstance(A, Inpaint):
        kept = A.A(variance.expand(img_size).unsqueeze(0)).reshape(m)
        diagonal, structure = sigma**2 + kept, "diagonal"
    if diagonal is not None:
        if not bool((diagonal > 0).all()):
            raise ValueError("the marginal covariance sigma^2 I + A Sigma_d A^T is singular: "
                             "give sigma > 0 or a misfit with positive variance")
        return MarginalCovariance(**common, structure=structure, diagonal=diagonal)
    if m > max_dense:
        raise ValueError(
            f"the dense marginal covariance needs an m x m = {m} x {m} matrix, more than "
            f"max_dense = {max_dense}: raise max_dense, or use an operator with a diagonal path "
            f"(Inpaint; or A A^T = I with a scalar misfit)")
    if not callable(getattr(A, "A_adjoint", None)):
        raise TypeError(f"{type(A).__name__} has no A_adjoint: the dense marginal covariance "
                        f"needs one (use a deepinv LinearPhysics)")
    K = _probe(A, variance, img_size, meas_shape, int(chunk))
    C = K + sigma**2 * torch.eye(m, device=device, dtype=dtype)
    L, info = torch.linalg.cholesky_ex(C)
    tiny = m * torch.finfo(dtype).eps * float(C.diagonal().max())
    if int(info) != 0 or float(L.diagonal().pow(2).min()) <= tiny:  # (numerically) singular
        raise ValueError("the marginal covariance sigma^2 I + A Sigma_d A^T is not positive "
                         "definite: give sigma > 0 or a misfit with positive variance")
    return MarginalCovariance(**common, structure="dense", cholesky=L)


class WhitenedOperator:
    r"""The whitened operator :math:`L^{-1} A` of a :class:`MarginalCovariance` :math:`C = LL^\top`.

    :math:`\|L^{-1}(A x - y)\|^2 = (Ax - y)^\top C^{-1} (Ax - y)`, so the Gaussian likelihood
    :math:`\mathcal N(y; A x, C)` is the plain unit-noise data term of the whitened operator and
    the whitened measurements :math:`L^{-1} y`: every sampler and solver that takes an operator
    and :math:`\sigma = 1` uses it unchanged.

    Args:
        A: the operator that :math:`C` was built for.
        covariance: the factorised :math:`C`.

    Shape:
        - x: ``(B, C, H, W)``; y: ``(B, *meas_shape)``
    """

    def __init__(self, A, covariance: MarginalCovariance) -> None:
        self.physics = A
        self.covariance = covariance
        self.img_size = covariance.img_size

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`L^{-1} A x`."""
        return self.covariance.whiten(forward(self.physics, x))

    def A_adjoint(self, u: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`A^\top L^{-\top} u`."""
        return self.physics.A_adjoint(self.covariance.whiten_adjoint(u))

    def A_dagger(self, u: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`(L^{-1}A)^\dagger u = A^\dagger L u` (exact when :math:`A` has full row
        rank)."""
        return self.physics.A_dagger(self.covariance.unwhiten(u))


def matheron(
    x_mean: Tensor,
    y: Tensor,
    A,
    covariance: MarginalCovariance,
    *,
    generator: torch.Generator | None = None,
    noise: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    r"""Draw :math:`x \sim p(x \mid y)` for the prior :math:`x \sim \mathcal N(\mu, \Sigma_d)`
    and :math:`y = A x + \sigma e` by Matheron's rule: perturb, then correct.

    .. math::
        x^* = \mu + \Sigma_d^{1/2}\epsilon_1, \quad y^* = A x^* + \sigma\epsilon_2, \quad
        x = x^* + \Sigma_d A^\top C^{-1} (y - y^*),

    which is exactly :math:`\mathcal N\big(\mu + \Sigma_d A^\top C^{-1}(y - A\mu),\;
    \Sigma_d - \Sigma_d A^\top C^{-1} A \Sigma_d\big)` with one solve with the factorised
    :math:`C` per draw. With :math:`\mu = G(z)` it draws :math:`x \mid z, y` of the misfit model.

    Args:
        x_mean: the prior means :math:`\mu` (e.g. :math:`G(z)`), one per draw.
        y: the measurements, one per draw.
        A: the operator that ``covariance`` was built for.
        covariance: :math:`C`, from :func:`marginal_covariance`.
        generator: source of :math:`\epsilon_1, \epsilon_2`.
        noise: ``(eps_1, eps_2)`` to use instead of drawing them.

    Returns:
        the draws.

    Shape:
        - x_mean: ``(N, C, H, W)``; y: ``(N, *meas_shape)``
        - noise: ``((N, C, H, W), (N, *meas_shape))``
        - output: ``(N, C, H, W)``

    Example:
        >>> from genprior.operators import Inpaint
        >>> A = Inpaint.center_box((1, 4, 4), 2)
        >>> C = marginal_covariance(A, MisfitCovariance(1.0), sigma=1e-4)
        >>> x = matheron(torch.zeros(1, 1, 4, 4), torch.ones(1, 12), A, C,
        ...              generator=torch.Generator().manual_seed(0))
        >>> bool((A.A(x) - 1).abs().max() < 1e-3)  # observed pixels follow y (sigma is tiny)
        True
    """
    if x_mean.shape[0] != y.shape[0]:
        raise ValueError(f"x_mean and y must have the same number of rows, got "
                         f"{x_mean.shape[0]} and {y.shape[0]}")
    if tuple(x_mean.shape[1:]) != tuple(covariance.img_size):
        raise ValueError(f"x_mean must have (C, H, W) = {covariance.img_size}, "
                         f"got {tuple(x_mean.shape[1:])}")
    variance = covariance.variance.to(device=x_mean.device, dtype=x_mean.dtype)
    if noise is None:
        kw = {"generator": generator, "device": x_mean.device, "dtype": x_mean.dtype}
        eps_x = randn(x_mean.shape, **kw)
        eps_y = randn(y.shape, **kw)
    else:
        eps_x, eps_y = noise
    x_star = x_mean + variance.sqrt() * eps_x
    y_star = forward(A, x_star) + covariance.sigma * eps_y
    return x_star + variance * A.A_adjoint(covariance.solve(y - y_star))
