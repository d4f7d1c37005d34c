"""One entry point for every reconstruction method, by name (used by the CLI and the scripts)."""

from __future__ import annotations

import torch
from torch import Tensor

from genprior.reconstruct.adaptive import adaptive
from genprior.reconstruct.baselines import bicubic, conditional, pinv
from genprior.reconstruct.csgm import csgm
from genprior.reconstruct.lasso import lasso
from genprior.reconstruct.result import ReconstructionResult
from genprior.reconstruct.sparse_gen import sparse_gen
from genprior.reconstruct.tv import TV_DEFAULTS, tv

__all__ = ["METHODS", "PRIOR_METHODS", "reconstruct"]

#: method names accepted by :func:`reconstruct`
METHODS = ("csgm", "sparse-gen", "adaptive", "lasso-dct", "lasso-wavelet", "lasso-pixel", "tv", "pinv",
           "bicubic", "conditional")
#: the methods that need a generative prior (``conditional``: a range-constrained generator)
PRIOR_METHODS = ("csgm", "sparse-gen", "adaptive", "conditional")


def reconstruct(
    method: str,
    y: Tensor,
    A,
    *,
    prior=None,
    lam: float = 0.0,
    alpha: float = 0.1,
    basis: str = "pixel",
    restarts: int = 10,
    steps: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    halving_every: int | None = None,
    autocast: torch.dtype | None = None,
    select: str = "measurement",
    early_stop_tol: float | None = None,
    lasso_steps: int = 1000,
    tv_lam: float = TV_DEFAULTS["lam"],
    tv_lam_start: float | None = TV_DEFAULTS["lam_start"],
    tv_steps: int = TV_DEFAULTS["steps"],
    generator: torch.Generator | None = None,
    z_init: Tensor | None = None,
    init: str = "random",
    x_init: Tensor | None = None,
    adapt_steps: int = 300,
    lr_theta: float = 1e-4,
    lr_z: float = 1e-4,
    lam_theta: float = 0.0,
    tau: float | None = None,
    back_projection: str | None = "exact",
) -> ReconstructionResult:
    r"""Run one method by name with CSGM-reference units throughout.

    Args:
        method: one of :data:`METHODS`.
        y: measurements.
        A: the operator (any ``deepinv.physics.LinearPhysics``).
        prior: the generative prior, for ``"csgm"``, ``"sparse-gen"`` and ``"adaptive"``; the conditional
            generator for ``"conditional"``.
        lam: latent weight :math:`\lambda` (``zprior_weight``) of CSGM / Sparse-Gen.
        alpha: :math:`\ell_1` weight: Lasso's ``alpha`` (sklearn / reference ``lmbd``) or
            Sparse-Gen's :math:`\lambda_\nu` (``sparse_gen_weight``).
        basis: Sparse-Gen's sparsity basis.
        restarts: CSGM / Sparse-Gen random restarts.
        steps: CSGM / Sparse-Gen optimiser steps (``None``: the optimizer's default).
        lr: CSGM / Sparse-Gen learning rate (L-BFGS: the first trial step; ``None``: the
            optimizer's default).
        optimizer: CSGM / adaptive stage 1: ``"lbfgs"``, ``"adam"``, ``"sgd"`` or
            ``"gauss-newton"`` (Sparse-Gen: ``"adam"`` or ``"sgd"``); ``None``: the method's
            default (CSGM L-BFGS, Sparse-Gen and adaptive Adam).
        halving_every: CSGM / Sparse-Gen / adaptive stage 1: successive halving of the
            restarts every so many steps (``0``: off; ``None``: the optimizer's default).
        autocast: CSGM / Sparse-Gen / adaptive stage 1: run the generator under
            ``torch.autocast`` in this dtype (``None``: off).
        select: restart selection rule.
        early_stop_tol: CSGM / Sparse-Gen early stopping (``None``: off).
        lasso_steps: maximum FISTA iterations.
        tv_lam, tv_lam_start, tv_steps: ``"tv"``'s final weight, first weight and iterations
            (``lam``, ``lam_start``, ``steps`` of :func:`~genprior.reconstruct.tv.tv`).
        generator: randomness (restarts, power iteration).
        z_init: CSGM / Sparse-Gen starting latents ``(B, R, *latent_shape)`` instead of
            random ones (used to shard a batch over processes with the same starts).
        init: CSGM / Sparse-Gen / adaptive starts: ``"random"`` or ``"encoder"`` (the first
            restart of every image at the encoder mean of ``x_init``; see
            :func:`~genprior.reconstruct.csgm.csgm`).
        x_init: images for ``init="encoder"`` (default ``A.A_dagger(y).clamp(0, 1)``).
        adapt_steps, lr_theta, lr_z, lam_theta, tau, back_projection: the image-adaptive
            stages of ``"adaptive"`` (:func:`~genprior.reconstruct.adaptive.adaptive`).

    Returns:
        the method's result (:class:`ReconstructionResult` or a subclass).

    Raises:
        ValueError: unknown method, or a prior method without a prior.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method in PRIOR_METHODS and prior is None:
        raise ValueError(f"method {method!r} needs a prior")
    common = {"restarts": restarts, "steps": steps, "lr": lr,
              "halving_every": halving_every, "autocast": autocast, "select": select,
              "early_stop_tol": early_stop_tol, "generator": generator, "z_init": z_init,
              "init": init, "x_init": x_init}
    if optimizer is not None:
        common["optimizer"] = optimizer
    if method == "csgm":
        return csgm(y, A, prior, lam=lam, **common)
    if method == "adaptive":
        return adaptive(y, A, prior, lam=lam, adapt_steps=adapt_steps, lr_theta=lr_theta,
                        lr_z=lr_z, lam_theta=lam_theta, tau=tau,
                        back_projection=back_projection, **common)
    if method == "sparse-gen":
        return sparse_gen(y, A, prior, lam=lam, lam_nu=alpha, basis=basis, **common)
    if method.startswith("lasso-"):
        return lasso(y, A, basis=method.removeprefix("lasso-"), alpha=alpha, steps=lasso_steps,
                     generator=generator)
    if method == "tv":
        return tv(y, A, lam=tv_lam, lam_start=tv_lam_start, steps=tv_steps, generator=generator)
    if method == "pinv":
        return pinv(y, A)
    if method == "conditional":
        return conditional(y, A, prior, generator=generator)
    return bicubic(y, A)
