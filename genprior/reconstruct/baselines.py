r"""Non-iterative baselines in the common result API: pseudo-inverse and bicubic upsampling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from genprior.operators.base import operator_signature
from genprior.reconstruct._problem import check_measurements, measurement_error, operator_img_size
from genprior.reconstruct.result import ReconstructionResult

__all__ = ["bicubic", "conditional", "pinv"]


def _result(x_hat: Tensor, y: Tensor, A) -> ReconstructionResult:
    err = measurement_error(x_hat, y, A)
    return ReconstructionResult(
        x_hat=x_hat, z_hat=x_hat, measurement_error=err, loss=err.clone(),
        history=x_hat.new_empty(0, x_hat.shape[0]),
    )


def _prepare(y: Tensor, A, img_size: Sequence[int] | None) -> tuple[Tensor, tuple[int, int, int]]:
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    size = operator_img_size(A, img_size)
    dtype = y.dtype if y.is_floating_point() else torch.float32
    return check_measurements(y, A, size, device=y.device, dtype=dtype), size


def pinv(y: Tensor, A, *, clip: bool = True,
         img_size: Sequence[int] | None = None) -> ReconstructionResult:
    r"""Minimum-norm least squares :math:`\hat x = A^\dagger y` (``A.A_dagger``).

    Exact for genprior's operators; deepinv's generic ``A_dagger`` solves the least-squares
    problem iteratively.

    Args:
        y: measurements.
        A: any ``deepinv.physics.LinearPhysics``.
        clip: clamp ``x_hat`` to [0, 1] (``measurement_error`` is that of the clamped image).
        img_size: ``(C, H, W)``; default ``A.img_size``.

    Returns:
        :class:`~genprior.reconstruct.result.ReconstructionResult`, ``z_hat = x_hat``.

    Shape:
        - y: ``(B, *meas_shape)``; x_hat: ``(B, C, H, W)``

    Example:
        >>> import deepinv
        >>> A = deepinv.physics.CompressedSensing(m=16, img_size=(1, 4, 4),
        ...                                       rng=torch.Generator().manual_seed(0))
        >>> x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1))
        >>> bool((pinv(A.A(x), A).x_hat - x).abs().max() < 1e-3)
        True
    """
    y, _ = _prepare(y, A, img_size)
    with torch.no_grad():
        x_hat = A.A_dagger(y)
    if clip:
        x_hat = x_hat.clamp(0, 1)
    return _result(x_hat, y, A)


def bicubic(y: Tensor, A, *, clip: bool = True,
            img_size: Sequence[int] | None = None) -> ReconstructionResult:
    r"""Bicubic upsampling of low-resolution measurements (super-resolution baseline).

    ``y`` must be image-shaped, ``(B, C, h, w)`` (e.g. from
    :class:`genprior.operators.Downsample`). It is divided by the operator's gain on a constant
    image, :math:`g = \mathrm{mean}(A\mathbf 1)`, so that operators scaled to preserve norms
    (gain :math:`\ne 1`) are handled, then resized to ``(H, W)`` with
    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``.

    Args:
        y: low-resolution measurements.
        A: the downsampling operator.
        clip: clamp ``x_hat`` to [0, 1].
        img_size: ``(C, H, W)``; default ``A.img_size``.

    Shape:
        - y: ``(B, C, h, w)``; x_hat: ``(B, C, H, W)``

    Raises:
        ValueError: ``y`` is not image-shaped with the operator's channels.

    Example:
        >>> import deepinv
        >>> A = deepinv.physics.Downsampling(img_size=(1, 8, 8), factor=2, filter=None)
        >>> out = bicubic(A.A(torch.full((1, 1, 8, 8), 0.5)), A, img_size=(1, 8, 8))
        >>> bool((out.x_hat - 0.5).abs().max() < 1e-5)
        True
    """
    y, size = _prepare(y, A, img_size)
    if y.ndim != 4 or y.shape[1] != size[0]:
        raise ValueError(
            f"bicubic needs image-shaped measurements (B, {size[0]}, h, w) such as a "
            f"Downsample operator produces; got y of shape {tuple(y.shape)}"
        )
    with torch.no_grad():
        gain = A.A(torch.ones(1, *size, dtype=y.dtype, device=y.device)).mean()
        if float(gain) == 0:
            raise ValueError(f"{type(A).__name__} maps a constant image to 0; cannot rescale y")
        x_hat = F.interpolate(y / gain, size=size[1:], mode="bicubic", align_corners=False)
    if clip:
        x_hat = x_hat.clamp(0, 1)
    return _result(x_hat, y, A)


def conditional(y: Tensor, A, model, *, generator: torch.Generator | None = None
                ) -> ReconstructionResult:
    r"""One draw of a range-constrained conditional generator (e.g. ``celeba-sr4-affgan``).

    ``x_hat = A^+ y + (I - A^+ A) f(y, eps)`` with ``eps`` from ``generator``: one network
    evaluation, consistent with ``y`` by construction. ``A`` must be the operator the model was
    trained for (same type, factor and kernel); ``x_hat`` is not clamped (clamping would break
    the consistency).

    Args:
        y: measurements.
        A: the operator, checked against ``model.operator``.
        model: a conditional prior (:func:`genprior.priors.conditional.is_conditional`).
        generator: source of the noise input ``eps``.

    Returns:
        :class:`~genprior.reconstruct.result.ReconstructionResult` with ``z_hat = eps``.

    Shape:
        - y: ``(B, *meas_shape)``; x_hat: ``(B, C, H, W)``
    """
    own = getattr(model, "operator", None)
    if own is None or not hasattr(own, "config") or not hasattr(A, "config"):
        raise TypeError("conditional reconstruction needs a conditional model with an operator")
    mine, theirs = operator_signature(A), operator_signature(own)
    if mine != theirs:
        raise ValueError(f"the model was trained for the operator {theirs}, got {mine}")
    y, _ = _prepare(y, A, None)
    y = y.to(next(model.parameters()).dtype)
    with torch.no_grad():
        eps = model.sample_latent(y.shape[0], generator=generator)
        x_hat = model(y, eps)
    result = _result(x_hat, y, A)
    result.z_hat = eps
    return result
