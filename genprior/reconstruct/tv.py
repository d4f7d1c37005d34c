r"""Total-variation regularised least squares, with deepinv's TV prior and proximal gradient.

.. math::
    \hat x = \arg\min_x\; \tfrac12\|A x - y\|_2^2 + \lambda\,\mathrm{TV}(x),
    \qquad \mathrm{TV}(x) = \sum_{c,i,j} \sqrt{(x_{c,i+1,j} - x_{c,i,j})^2
    + (x_{c,i,j+1} - x_{c,i,j})^2},

the isotropic TV of deepinv's ``TVPrior.fn`` (forward differences, zero past the last row and
column), summed over channels and pixels. Units: :math:`\lambda` multiplies the TV of an image
in [0, 1] against the *sum* :math:`\frac12\|Ax - y\|^2` over all ``m`` measurements (not the
mean over them, unlike :func:`~genprior.reconstruct.lasso.lasso`'s default units).

Nothing here is rewritten from deepinv: the solver is ``deepinv.optim.optim_builder`` with
``iteration="PGD"``, ``deepinv.optim.data_fidelity.L2()`` and ``deepinv.optim.TVPrior``, whose
proximal map is deepinv's ``TVDenoiser`` (Condat's primal-dual iterations, ``inner_steps`` of
them per proximal step, warm-started from the previous step's dual variable). The iterations
start from :math:`A^\dagger y`, with step :math:`1/L`, :math:`L = \|A\|_2^2` by power iteration.

Continuation: the weight decreases geometrically from ``lam_start`` to ``lam`` over the
iterations; a large early weight flattens the null-space artefacts of :math:`A^\dagger y`
quickly, so plain proximal gradient from :math:`A^\dagger y` reaches a good estimate in far
fewer steps than with the small weight throughout (``tests/test_tv.py`` measures both).

This is the ``TV`` method of ``scripts/bench_set11.py`` (there with step 1, which is
:math:`1/L` for the benchmark's orthonormal-row matrices): a measured stand-in for TVAL3, the
classic TV solver of the ReconNet Set11 tables, not TVAL3 itself (no augmented Lagrangian, no
nonnegativity constraint). It is also the start that makes the natural-image
prior work: the encoder mean of the TV estimate starts CSGM (``csgm(..., init="encoder",
x_init=tv(y, A).x_hat)``; ``genprior reconstruct --init encoder --init-from tv``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from genprior._checks import check_positive
from genprior.reconstruct._problem import measurement_error, operator_norm_sq, sum_sq
from genprior.reconstruct.baselines import _prepare
from genprior.reconstruct.result import ReconstructionResult

__all__ = ["TV_DEFAULTS", "check_tv_options", "tv", "tv_weights"]

#: the defaults of :func:`tv` (and of ``genprior reconstruct``'s ``--tv-*`` flags): the settings
#: of ``scripts/bench_set11.py``'s TV on Set11 block CS
TV_DEFAULTS = {"lam": 0.01, "lam_start": 0.3, "steps": 300, "inner_steps": 20}


def _check_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check_tv_options(*, lam: float, lam_start: float | None, steps: int, inner_steps: int = 20,
                     names: dict[str, str] | None = None) -> None:
    """Raise a one-line ``ValueError`` unless :func:`tv`'s options are usable.

    Args:
        lam, lam_start, steps, inner_steps: as :func:`tv`.
        names: how to call each option in the message (e.g. ``{"lam": "--tv-lambda"}``, for a
            command line); default: the argument names.

    Raises:
        ValueError: ``lam`` not finite and > 0, ``lam_start`` neither None nor a finite number
            >= ``lam``, or ``steps`` / ``inner_steps`` not an int >= 1.

    Example:
        >>> check_tv_options(lam=0.01, lam_start=None, steps=1)
        >>> check_tv_options(lam=0.1, lam_start=0.01, steps=1)
        Traceback (most recent call last):
        ValueError: lam_start must be >= lam = 0.1 (the weight decreases from lam_start to lam), got 0.01
    """
    name = {k: k for k in ("lam", "lam_start", "steps", "inner_steps")} | (names or {})
    check_positive(lam, name["lam"])
    if lam_start is not None:
        check_positive(lam_start, name["lam_start"])
        if lam_start < lam:
            raise ValueError(f"{name['lam_start']} must be >= {name['lam']} = {lam} (the weight "
                             f"decreases from {name['lam_start']} to {name['lam']}), "
                             f"got {lam_start}")
    _check_int(steps, name["steps"])
    _check_int(inner_steps, name["inner_steps"])


def tv_weights(lam: float, lam_start: float | None, steps: int) -> list[float]:
    r"""The weight of every iteration: geometric from ``lam_start`` down to ``lam``
    (``numpy.geomspace``), ``lam`` throughout when ``lam_start`` is None or equal to ``lam``
    or when there is one step (the last iteration always uses ``lam``).

    Example:
        >>> [round(w, 6) for w in tv_weights(0.01, 1.0, 3)]
        [1.0, 0.1, 0.01]
        >>> tv_weights(0.01, None, 2)
        [0.01, 0.01]
    """
    if lam_start is None or lam_start == lam or steps == 1:
        return [float(lam)] * steps
    return np.geomspace(lam_start, lam, steps).tolist()


def tv(
    y: Tensor,
    A,
    *,
    lam: float = 0.01,
    lam_start: float | None = 0.3,
    steps: int = 300,
    inner_steps: int = 20,
    clip: bool = True,
    img_size: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> ReconstructionResult:
    r"""TV-regularised least squares :math:`\arg\min_x \frac12\|Ax-y\|^2 + \lambda\,\mathrm{TV}(x)`
    by deepinv's proximal gradient from :math:`A^\dagger y`, with a decreasing weight.

    ``steps`` iterations :math:`x \leftarrow \mathrm{prox}_{\gamma\lambda_k \mathrm{TV}}(x -
    \gamma A^\top(Ax - y))`, :math:`\gamma = 1/L`, :math:`L = \|A\|_2^2` by power iteration
    (PGD converges for any :math:`\gamma < 2/L`, so the estimate's small shortfall is harmless),
    :math:`\lambda_k` from ``lam_start`` down to ``lam`` (:func:`tv_weights`); no early stop.
    Runs under ``torch.no_grad()`` in ``y``'s device and floating dtype.

    Args:
        y: measurements.
        A: any ``deepinv.physics.LinearPhysics`` (``A``, ``A_adjoint``, ``A_dagger``).
        lam: the final weight :math:`\lambda > 0` (the TV of an image in [0, 1] against
            :math:`\frac12\|Ax - y\|^2`, a sum over the measurements).
        lam_start: the first iteration's weight, ``>= lam``; ``None`` (or ``lam``): constant.
        steps: proximal-gradient iterations.
        inner_steps: iterations of deepinv's TV proximal solver per step (``TVPrior(n_it_max)``).
        clip: clamp ``x_hat`` to [0, 1] (``measurement_error`` is that of the clamped image).
        img_size: ``(C, H, W)``; default ``A.img_size``.
        generator: source of the power iteration's random start.

    Returns:
        :class:`~genprior.reconstruct.result.ReconstructionResult` with ``z_hat = x_hat``,
        ``loss`` the objective :math:`\frac12\|Ax-y\|^2 + \lambda\,\mathrm{TV}(x)` at the
        unclamped solution with the final weight, and an empty ``history`` ``(0, B)``.

    Shape:
        - y: ``(B, *meas_shape)``; x_hat, z_hat: ``(B, C, H, W)``; loss: ``(B,)``

    Raises:
        ValueError: an option :func:`check_tv_options` refuses, measurements that do not fit
            ``A``, or the zero operator.

    Example:
        >>> from genprior.operators import Inpaint
        >>> A = Inpaint((1, 6, 6), torch.ones(6, 6))  # every pixel observed
        >>> x = torch.zeros(1, 1, 6, 6); x[..., 2:5, 1:4] = 0.5
        >>> out = tv(A.A(x), A, lam=1e-6, lam_start=None, steps=5)
        >>> bool((out.x_hat - x).abs().max() < 1e-4)
        True
    """
    check_tv_options(lam=lam, lam_start=lam_start, steps=steps, inner_steps=inner_steps)
    import deepinv  # deferred: building deepinv's solver is the only use

    y, size = _prepare(y, A, img_size)
    norm_sq = operator_norm_sq(A, size, device=y.device, dtype=y.dtype, generator=generator)
    if not norm_sq > 0 or not math.isfinite(norm_sq):
        raise ValueError(f"{type(A).__name__} is the zero operator; nothing to reconstruct")
    weights = tv_weights(lam, lam_start, steps)
    prior = deepinv.optim.TVPrior(n_it_max=inner_steps)
    model = deepinv.optim.optim_builder(
        iteration="PGD", prior=prior, data_fidelity=deepinv.optim.data_fidelity.L2(),
        params_algo={"stepsize": 1.0 / norm_sq, "lambda": weights}, max_iter=steps,
        custom_init=lambda y_, physics: {"est": (physics.A_dagger(y_),)})
    with torch.no_grad():
        x = model(y, A)
        loss = 0.5 * sum_sq(A.A(x) - y) + lam * prior.fn(x)
        x_hat = x.clamp(0, 1) if clip else x
        err = measurement_error(x_hat, y, A)
    return ReconstructionResult(x_hat=x_hat, z_hat=x_hat, measurement_error=err, loss=loss,
                                history=x_hat.new_empty(0, x_hat.shape[0]))
