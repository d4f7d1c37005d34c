"""Shared input checks and linear-algebra helpers of the reconstruction solvers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genprior._checks import check_finite
from genprior._physics import forward
from genprior._random import randn
from genprior.optim.data_fidelity import soft_threshold, sum_sq
from genprior.priors.conditional import is_conditional

__all__ = [
    "check_latent_prior",
    "check_measurements",
    "fit_prior",
    "fit_prior_to",
    "measurement_error",
    "operator_img_size",
    "operator_norm_sq",
    "soft_threshold",
    "sum_sq",
]


def operator_img_size(A, img_size: Sequence[int] | None = None) -> tuple[int, int, int]:
    """The image shape ``(C, H, W)`` an operator acts on: ``img_size`` if given (checked
    against ``A.img_size`` when the operator has one), else ``A.img_size``.

    Raises:
        ValueError: neither is known, or they disagree.
    """
    own = getattr(A, "img_size", None)
    if img_size is None and own is None:
        raise ValueError(f"{type(A).__name__} has no img_size attribute; pass img_size=(C, H, W)")
    if img_size is not None and own is not None and tuple(own) != tuple(img_size):
        raise ValueError(
            f"img_size {tuple(img_size)} does not match the operator's img_size {tuple(own)}"
        )
    size = tuple(int(s) for s in (img_size if img_size is not None else own))
    if len(size) != 3:
        raise ValueError(f"img_size must be (C, H, W), got {size}")
    return size


def fit_prior(prior, img_size: Sequence[int]):
    """``prior`` for images of ``img_size``: the prior itself when it already generates that
    size, else ``prior.resized(img_size)`` (the same weights, shared, not copied) when it has
    ``resized`` (e.g. :class:`~genprior.priors.spatial_vae.SpatialVAE`).

    Args:
        prior: a latent :class:`~genprior.priors.Prior`.
        img_size: ``(C, H, W)`` of the images wanted (e.g. the operator's ``img_size``).

    Returns:
        ``prior`` (the same object) or a resized view of it.

    Raises:
        ValueError: another size and a fixed-size prior (no ``resized``), or a size the prior
            cannot be resized to (e.g. another number of channels).

    Example:
        >>> from genprior.priors.spatial_vae import SpatialVAE
        >>> vae = SpatialVAE(img_shape=(1, 16, 16), latent_channels=2, base_channels=4)
        >>> fit_prior(vae, (1, 16, 16)) is vae, fit_prior(vae, (1, 37, 41)).latent_shape
        (True, (2, 10, 11))
    """
    size = tuple(int(s) for s in img_size)
    own = tuple(int(s) for s in prior.img_shape)
    if size == own:
        return prior
    resized = getattr(prior, "resized", None)
    if resized is None:
        raise ValueError(
            f"the prior generates images of shape {own} but the operator expects img_size "
            f"{size}: {type(prior).__name__} has a fixed size (only a prior with resized(), "
            f"such as SpatialVAE, fits another image size)")
    try:
        return resized(size)
    except ValueError as e:
        raise ValueError(f"the prior generates images of shape {own} and cannot be resized "
                         f"to the operator's img_size {size}: {e}") from e


def fit_prior_to(prior, A):
    """``prior`` fitted (:func:`fit_prior`) to the images the operator ``A`` acts on
    (:func:`operator_img_size`); unchanged when ``A`` has no ``img_size`` (a plain callable,
    or a deepinv operator without one), whose images the solvers then take from the prior.

    Raises:
        ValueError: as :func:`fit_prior`, or an ``img_size`` that is not ``(C, H, W)``.
    """
    if getattr(A, "img_size", None) is None:
        return prior
    return fit_prior(prior, operator_img_size(A))


def check_latent_prior(prior) -> None:
    """Raise a clear error unless ``prior`` is a latent generative prior (``decode``,
    ``latent_shape``, ``img_shape``); a conditional generator is named as such.

    Raises:
        TypeError: a conditional generator, or an object without the :class:`Prior` interface.
    """
    if is_conditional(prior):
        raise TypeError(
            f"{type(prior).__name__} is a conditional generator x = f(y, eps); latent methods "
            f"(csgm, sparse-gen, langevin) need a latent prior x = G(z). Use it with "
            f"method='conditional' (or the sampler's 'eps' method)")
    for attr in ("decode", "latent_shape", "img_shape"):
        if not hasattr(prior, attr):
            raise TypeError(
                f"prior must be a genprior Prior (with decode, latent_shape, img_shape); "
                f"{type(prior).__name__} has no {attr!r}"
            )


def check_measurements(y: Tensor, A, img_size: Sequence[int], *, device: torch.device,
                       dtype: torch.dtype) -> Tensor:
    """Check ``y`` against what ``A`` produces from ``(C, H, W) = img_size`` images and return
    it on ``device`` in ``dtype``.

    Raises:
        TypeError: ``y`` is not a tensor.
        ValueError: NaN/inf in ``y``, no batch dimension, a device other than ``device``, a
            shape other than ``(B, *A(x).shape[1:])``, or an operator that rejects such images.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.is_complex():
        raise TypeError("y is complex: genprior's operators are real; pass y.real (or stack "
                        "the real and imaginary parts) explicitly")
    if y.ndim < 2 or y.shape[0] < 1:
        raise ValueError(f"y must have shape (B, *meas_shape) with B >= 1, got {tuple(y.shape)}")
    check_finite(y, "y")
    if y.device != device:
        raise ValueError(f"y is on {y.device} but the solver works on {device}; move y there")
    probe = torch.zeros(1, *img_size, device=device, dtype=dtype)
    try:
        with torch.no_grad():
            meas_shape = tuple(forward(A, probe).shape[1:])
    except (RuntimeError, ValueError) as e:
        raise ValueError(
            f"{type(A).__name__} cannot be applied to images of shape (B, {', '.join(map(str, img_size))}): {e}"
        ) from e
    if tuple(y.shape[1:]) != meas_shape:
        raise ValueError(
            f"y must have shape (B, {', '.join(map(str, meas_shape))}) for {type(A).__name__} "
            f"on images {tuple(img_size)}, got {tuple(y.shape)}"
        )
    return y.to(dtype)


def measurement_error(x: Tensor, y: Tensor, A) -> Tensor:
    r""":math:`\|A x - y\|^2 / m` per image (mean squared residual over the measurements).

    Shape:
        - x: ``(B, C, H, W)``; y: ``(B, *meas_shape)``
        - output: ``(B,)``
    """
    with torch.no_grad():
        return sum_sq(A.A(x) - y) / y[0].numel()


def operator_norm_sq(
    A,
    img_size: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    iters: int = 100,
    rtol: float = 1e-6,
) -> float:
    r"""Largest eigenvalue of :math:`A^\top A` (:math:`\|A\|_2^2`) by power iteration.

    Power iteration approaches the value from below; callers that need a Lipschitz bound
    multiply it by a small safety factor.

    Args:
        A: a linear operator with ``A`` and ``A_adjoint``.
        img_size: ``(C, H, W)`` of its input.
        device: where to iterate.
        dtype: precision of the iteration.
        generator: source of the random start.
        iters: maximum number of iterations.
        rtol: stop when the estimate changes by less than this (relative).
    """
    v = randn((1, *img_size), generator=generator, device=device, dtype=dtype)
    v = v / v.norm()
    value = 0.0
    with torch.no_grad():
        for _ in range(iters):
            w = A.A_adjoint(A.A(v))
            new = float((v * w).sum())
            norm = w.norm()
            if float(norm) == 0.0:
                return 0.0
            v = w / norm
            if abs(new - value) <= rtol * abs(new):
                return new
            value = new
    return value
