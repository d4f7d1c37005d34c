r"""Image-adaptive reconstruction (IAGAN; Abu Hussein, Tirer and Giryes, AAAI 2020).

CSGM can only return images the generator draws. IAGAN leaves the generator's range in three
stages:

1. **CSGM**: :math:`\hat z = \arg\min_z \frac1m\|A G_{\theta_0}(z) - y\|^2 + \lambda\|z\|^2`
   (:func:`~genprior.reconstruct.csgm.csgm`, all its options).
2. **Adaptation**: from :math:`(\hat z, \theta_0)`, optimise the latent *and the generator's
   weights* of every image :math:`i` on its own measurements,

   .. math::
       \min_{z_i, \theta_i}\; \frac1m\|A G_{\theta_i}(z_i) - y_i\|^2 + \lambda\|z_i\|^2
       + \lambda_\theta \|\theta_i - \theta_0\|^2,

   with Adam (separate rates for :math:`z` and :math:`\theta`). Every image has its own copy of
   the weights, and all copies run in **one** batched forward/backward: the generator is called
   through ``torch.func.functional_call`` under ``torch.func.vmap`` over the stacked weights
   (convolutions become grouped convolutions), never a Python loop over images.
3. **Back-projection**: :math:`x \leftarrow x + A^\top(AA^\top + \varepsilon I)^{-1}(y - Ax)`
   (:func:`~genprior.reconstruct.back_projection.back_project`; exact :math:`A^\dagger` for
   :math:`\varepsilon = 0`).

Fitting :math:`\theta` also fits noise. Two controls: the anchor :math:`\lambda_\theta`, and the
discrepancy principle: a row stops adapting once :math:`\|A x - y\|^2 / m \le \tau\sigma^2`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call, vmap
from typing_extensions import Unpack

from genprior._checks import check_positive
from genprior._physics import forward
from genprior.optim import Adam, sum_sq
from genprior.optim.data_fidelity import WeightedL2
from genprior.optim.latent_problem import GaussianLatent, LatentProblem
from genprior.reconstruct._problem import check_latent_prior, fit_prior_to
from genprior.reconstruct.back_projection import back_project
from genprior.reconstruct.csgm import CSGMOptions, csgm
from genprior.reconstruct.result import CSGMResult, ReconstructionResult

__all__ = ["AdaptiveResult", "adapt_weights", "adaptable_tensors", "adaptive"]


@dataclass
class AdaptiveResult(ReconstructionResult):
    r"""IAGAN output.

    Attributes:
        x_csgm: stage 1, :math:`G_{\theta_0}(\hat z)`.
        x_adapted: stage 2, :math:`G_{\hat\theta_i}(\hat z_i)`, before back-projection.
        n_steps: adaptation steps each image took (fewer when the discrepancy rule stopped it).
        csgm: the full stage-1 result.

    ``x_hat`` is the back-projected image (or ``x_adapted`` without back-projection),
    ``history[t, i]`` the stage-2 objective of image ``i`` before step ``t``,
    ``measurement_error`` that of ``x_hat``.

    Shape:
        - x_csgm, x_adapted: ``(B, C, H, W)``; n_steps: ``(B,)``; history: ``(T, B)``
    """

    x_csgm: Tensor
    x_adapted: Tensor
    n_steps: Tensor
    csgm: CSGMResult


def adaptable_tensors(prior, names: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The generator tensors that stage 2 adapts, by name.

    Default: every parameter that ``decode`` uses (a VAE's encoder is left out; found with one
    probe through ``decode``); for a model without parameters (the
    :class:`~genprior.priors.linear.LinearGenerator`, whose ``W`` and ``b`` are buffers) every
    floating-point buffer. With ``names``, exactly those parameters or buffers.

    Raises:
        ValueError: an unknown name, or nothing to adapt.
    """
    tensors = dict(prior.named_parameters())
    if names is None and tensors:
        with torch.enable_grad():
            probe = prior.decode(prior.sample_latent(1, generator=torch.Generator()))
            grads = torch.autograd.grad(probe.sum(), list(tensors.values()), allow_unused=True)
        tensors = {k: v for (k, v), g in zip(tensors.items(), grads) if g is not None}
    if names is None and not tensors:
        tensors = {k: v for k, v in prior.named_buffers() if v.is_floating_point()}
    if names is not None:
        every = {**dict(prior.named_buffers()), **dict(prior.named_parameters())}
        unknown = [n for n in names if n not in every]
        if unknown:
            raise ValueError(f"adapt names {unknown} are not tensors of {type(prior).__name__}; "
                             f"it has {sorted(every)[:8]}...")
        tensors = {n: every[n] for n in names}
    if not tensors:
        raise ValueError(f"{type(prior).__name__} has no weights to adapt")
    return {k: v.detach() for k, v in tensors.items()}


def _batched_decoder(prior, theta: dict[str, Tensor]):
    """``decode(z)`` with row ``i`` of ``z`` decoded by the weights ``theta[k][i]``."""

    def one(weights: dict[str, Tensor], z: Tensor) -> Tensor:
        return functional_call(prior, weights, (z.unsqueeze(0),)).squeeze(0)

    def decode(z: Tensor) -> Tensor:
        return vmap(one)(theta, z)

    return decode


def adapt_weights(
    y: Tensor,
    A,
    prior,
    z: Tensor,
    *,
    lam: float = 0.0,
    lam_theta: float = 0.0,
    steps: int = 300,
    lr_theta: float = 1e-4,
    lr_z: float = 1e-4,
    adapt: Sequence[str] | None = None,
    noise_std: float | None = None,
    tau: float | None = None,
    loss_reduction: str = "reference",
    callback: Callable[[int, Tensor], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Stage 2 of IAGAN: adapt :math:`(z_i, \theta_i)` of every image, all in one batch.

    A prior with ``resized`` is first fitted to ``A.img_size``
    (:func:`~genprior.reconstruct.fit_prior`), as in :func:`adaptive`.

    Args:
        y: measurements (already checked, on the prior's device and dtype).
        A: the operator.
        prior: the generator (``forward`` = ``decode``); left unchanged, run in eval mode.
        z: stage-1 latents, one per image.
        lam: latent weight :math:`\lambda`.
        lam_theta: anchor :math:`\lambda_\theta \ge 0` on :math:`\|\theta_i - \theta_0\|^2`.
        steps: adaptation steps (the maximum, with the discrepancy rule).
        lr_theta: Adam rate for the weights.
        lr_z: Adam rate for the latent (0: the latent stays fixed).
        adapt: names of the tensors to adapt (default: :func:`adaptable_tensors`).
        noise_std: :math:`\sigma` for the discrepancy rule.
        tau: :math:`\tau`; a row stops once :math:`\|Ax - y\|^2/m \le \tau\sigma^2`
            (``None``: off).
        loss_reduction: ``"reference"`` (mean over the measurements, as CSGM) or ``"sum"``.
        callback: called as ``callback(t, x)`` before every step with the current images of
            all rows (detached; a stopped row shows its frozen image), e.g. to record an
            error-vs-steps curve.

    Returns:
        ``(x, z, history, n_steps)``: adapted images ``(B, C, H, W)``, latents, the objective
        before every step ``(T, B)`` and the steps per row ``(B,)``.
    """
    check_positive(lam_theta, "lam_theta", allow_zero=True)
    check_positive(lr_theta, "lr_theta")
    check_positive(lr_z, "lr_z", allow_zero=True)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if tau is not None:
        check_positive(tau, "tau")
        if noise_std is None or noise_std <= 0:
            raise ValueError("the discrepancy rule (tau) needs noise_std > 0")
    check_latent_prior(prior)
    prior = fit_prior_to(prior, A)
    was_training = prior.training
    prior.eval()  # BatchNorm uses its running statistics; restored below
    try:
        return _adapt(y, A, prior, z, lam=lam, lam_theta=lam_theta, steps=steps,
                      lr_theta=lr_theta, lr_z=lr_z, adapt=adapt, noise_std=noise_std, tau=tau,
                      loss_reduction=loss_reduction, callback=callback)
    finally:
        prior.train(was_training)


def _adapt(y, A, prior, z, *, lam, lam_theta, steps, lr_theta, lr_z, adapt, noise_std, tau,
           loss_reduction, callback):
    b, m = y.shape[0], y[0].numel()
    theta0 = adaptable_tensors(prior, adapt)
    theta = {k: v.unsqueeze(0).expand(b, *v.shape).clone() for k, v in theta0.items()}
    z = z.detach().clone()
    scale = 1.0 / m if loss_reduction == "reference" else 1.0
    problem = LatentProblem(y, A, _batched_decoder(prior, theta), data=WeightedL2(scale),
                            latent=GaussianLatent(float(lam)))
    z_step = Adam(lr_z) if lr_z > 0 else None
    theta_step = Adam(lr_theta, fused=True)
    z_state = z_step.init_state(z) if z_step else {}
    states = {k: theta_step.init_state(v) for k, v in theta.items()}
    n_steps = torch.zeros(b, dtype=torch.long, device=z.device)
    stopped = torch.zeros(b, dtype=torch.bool, device=z.device)
    history = torch.empty(steps, b, dtype=z.dtype, device=z.device)
    last = torch.zeros(b, dtype=z.dtype, device=z.device)
    threshold = None if tau is None else float(tau) * float(noise_std) ** 2
    t = -1
    frozen = None if callback is None else torch.zeros(b, *prior.img_shape, dtype=z.dtype,
                                                       device=z.device)
    for t in range(steps):
        rows = (~stopped).nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        rows_: Tensor | slice = slice(None) if rows.numel() == b else rows
        active = {k: v[rows_].requires_grad_(True) for k, v in theta.items()}
        zs = z[rows_].requires_grad_(lr_z > 0)
        problem.decode = _batched_decoder(prior, active)
        with torch.enable_grad():
            value, x = problem.smooth(zs, None, rows_)
            if lam_theta > 0:
                value = value + lam_theta * sum(
                    sum_sq(active[k] - theta0[k].unsqueeze(0)) for k in active)
            inputs = list(active.values()) + ([zs] if lr_z > 0 else [])
            grads = torch.autograd.grad(value.sum(), inputs)
        with torch.no_grad():
            if frozen is not None:
                frozen[rows_] = x.detach()
                callback(t, frozen.clone())
            value = value.detach()
            move = torch.ones(value.shape[0], dtype=torch.bool, device=z.device)
            if threshold is not None:
                err = sum_sq(forward(A, x.detach()) - y[rows_]) / m
                move = err > threshold
            for (k, v), g in zip(active.items(), grads):
                new = theta_step.update(v.detach(), g, states[k], rows_, move)
                if new.data_ptr() != theta[k].data_ptr():  # the fused step works in place
                    theta[k][rows_] = new
            if z_step is not None:
                z[rows_] = z_step.update(zs.detach(), grads[-1], z_state, rows_, move)
            n_steps[rows_] += move.long()
            last[rows_] = value
            history[t] = last
            stopped[rows_] |= ~move
    with torch.no_grad():
        x = _batched_decoder(prior, theta)(z)
    return x, z, history[: t + 1], n_steps


def adaptive(
    y: Tensor,
    A,
    prior,
    *,
    adapt_steps: int = 300,
    lr_theta: float = 1e-4,
    lr_z: float = 1e-4,
    lam_theta: float = 0.0,
    adapt: Sequence[str] | None = None,
    tau: float | None = None,
    noise_std: float | None = None,
    back_projection: str | None = "exact",
    bp_eps: float | None = None,
    **options: Unpack[CSGMOptions],
) -> AdaptiveResult:
    r"""IAGAN: CSGM, then per-image adaptation of latent and weights, then back-projection.

    A prior with ``resized`` (:class:`~genprior.priors.spatial_vae.SpatialVAE`) is fitted to the
    operator's ``img_size`` first (:func:`~genprior.reconstruct.fit_prior`), so images
    of any size work; a prior whose size matches is used as it is.

    Args:
        y: measurements.
        A: the operator (any deepinv ``LinearPhysics``; ``A_dagger`` for exact back-projection).
        prior: a latent :class:`~genprior.priors.Prior` (left unchanged: every image adapts its
            own copy of the weights).
        adapt_steps: stage-2 Adam steps.
        lr_theta: stage-2 learning rate of the weights.
        lr_z: stage-2 learning rate of the latent (0 keeps stage 1's latent).
        lam_theta: anchor weight :math:`\lambda_\theta` on :math:`\|\theta_i - \theta_0\|^2`.
        adapt: names of the generator tensors to adapt (default: all parameters).
        tau: discrepancy-rule factor :math:`\tau` (``None``: off); needs ``noise_std``.
        noise_std: :math:`\sigma` of ``y`` (default ``A.noise_std`` when it has one).
        back_projection: ``"exact"`` (:math:`A^\dagger`), ``"regularized"`` (:math:`\varepsilon
            = ` ``bp_eps``, default :math:`\sigma^2`) or ``None``.
        bp_eps: :math:`\varepsilon` of the regularised back-projection.
        **options: stage 1: the keyword arguments of :func:`~genprior.reconstruct.csgm.csgm`
            (``lam`` is also stage 2's latent weight; ``loss_reduction`` its units; ``init``
            and ``x_init`` choose stage 1's starts), except that ``optimizer`` defaults to
            ``"adam"``, the IAGAN paper's stage 1.

    Returns:
        :class:`AdaptiveResult`.

    Shape:
        - y: ``(B, *meas_shape)``; x_hat, x_csgm, x_adapted: ``(B, C, H, W)``

    Example:
        >>> import deepinv
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> G = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4))
        >>> A = deepinv.physics.Inpainting(img_size=(1, 4, 4), mask=0.5, rng=g)
        >>> x = torch.rand(2, 1, 4, 4, generator=g)  # off the generator's range
        >>> out = adaptive(A.A(x), A, G, adapt_steps=50, lr_theta=1e-2, restarts=2,
        ...                steps=100, lr=0.1, generator=g, back_projection=None)
        >>> bool(out.measurement_error.max() < out.csgm.measurement_error.max())
        True
    """
    if back_projection not in ("exact", "regularized", None):
        raise ValueError(f"back_projection must be 'exact', 'regularized' or None, "
                         f"got {back_projection!r}")
    check_latent_prior(prior)
    prior = fit_prior_to(prior, A)
    stage1 = csgm(y, A, prior, **{"optimizer": "adam", **options})
    if noise_std is None:
        noise_std = getattr(A, "noise_std", None)
    ref = stage1.x_hat
    y = y.to(device=ref.device, dtype=ref.dtype)
    x_adapted, z, history, n_steps = adapt_weights(
        y, A, prior, stage1.z_hat, lam=float(options.get("lam", 0.0)), lam_theta=lam_theta,
        steps=adapt_steps, lr_theta=lr_theta, lr_z=lr_z, adapt=adapt, noise_std=noise_std,
        tau=tau, loss_reduction=options.get("loss_reduction", "reference"))
    if not torch.isfinite(x_adapted).all():
        raise ValueError("the adaptation diverged (non-finite images): lower lr_theta / lr_z")
    if back_projection == "exact":
        x_hat = back_project(x_adapted, y, A)
    elif back_projection == "regularized":
        eps = bp_eps if bp_eps is not None else float(noise_std or 0.0) ** 2
        if eps <= 0:
            raise ValueError("regularized back-projection needs bp_eps > 0 (or noise_std > 0)")
        x_hat = back_project(x_adapted, y, A, eps=eps)
    else:
        x_hat = x_adapted
    with torch.no_grad():
        meas = sum_sq(forward(A, x_hat) - y) / y[0].numel()
    final = history[-1] if len(history) else stage1.loss
    return AdaptiveResult(x_hat=x_hat, z_hat=z, measurement_error=meas, loss=final.clone(),
                          history=history, x_csgm=stage1.x_hat, x_adapted=x_adapted,
                          n_steps=n_steps, csgm=stage1)
