r"""CSGM: compressed sensing with a generative prior by latent optimisation (Bora et al. 2017).

.. math::
    \hat z = \arg\min_z \; \frac{1}{m}\|A\,G(z) - y\|_2^2 + \lambda \|z\|_2^2,
    \qquad \hat x = G(\hat z),

solved by Adam from ``restarts`` random starts :math:`z_0 \sim \mathcal N(0, I)` per image
(with ``init="encoder"`` the first one is the encoder mean :math:`\mu(x_{\rm init})` of a
VAE prior instead), keeping for each image the restart with the lowest measurement error (or
objective).

Units of :math:`\lambda` (``loss_reduction="reference"``, the default) are exactly those of the
CSGM reference code (``AshishBora/csgm``, ``src/mnist_estimators.py`` and
``src/celebA_estimators.py``): its per-image loss is
``mloss2_weight * reduce_mean((y - y_hat)**2, 1) + zprior_weight * reduce_sum(z**2, 1)``, a mean
over the ``m`` measurements plus a sum over the latent entries, so with ``mloss2_weight = 1`` (the
value of all its experiment scripts) ``lam = zprior_weight`` (e.g. 0.1 for "VAE+Reg" on MNIST,
0.001 for "DCGAN+Reg" on CelebA; with another ``mloss2_weight`` use
``lam = zprior_weight / mloss2_weight``). With ``loss_reduction="sum"`` the objective is the plain
ridge form :math:`\|A G(z) - y\|^2 + \lambda_{\rm sum}\|z\|^2`; the two agree (same minimiser,
objectives differing by the factor :math:`m`) when :math:`\lambda_{\rm sum} = m\,\lambda`.

Two deliberate differences from the reference: the per-row objectives of all images and
restarts are *summed* (the reference averages over its batch), so every image's and restart's
Adam update is independent of the batch it is solved in (for Adam the two differ only through
``eps``); and all restarts run at once in one batch instead of one after another.
"""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import TypedDict

from genprior._checks import check_positive
from genprior.optim import (
    GaussianLatent,
    Halving,
    LatentProblem,
    LatentStep,
    ProblemStep,
    SparseDeviation,
    WeightedL2,
    autocast_decode,
    descend,
    make_step,
)
from genprior.optim.factory import OPTIMIZERS
from genprior.priors.base import _reference_tensor
from genprior.reconstruct._problem import (
    check_latent_prior,
    check_measurements,
    fit_prior_to,
    operator_norm_sq,
)
from genprior.reconstruct.result import CSGMResult, SparseGenResult
from genprior.reconstruct.starts import INITS, check_init, encoder_latent, initial_latents

__all__ = ["CSGM_DEFAULTS", "INITS", "LOSS_REDUCTIONS", "OPTIMIZERS", "SELECT", "SOLVER_DEFAULTS",
           "CSGMOptions", "csgm", "encoder_latent", "lipschitz_step", "resolve_solver",
           "solve_latent"]

SELECT = ("measurement", "loss")
LOSS_REDUCTIONS = ("reference", "sum")
#: what ``steps``, ``lr`` and ``halving_every`` left at ``None`` mean for each optimizer
#: (``halving_every=0``: no halving); a step object given as ``optimizer`` gets ``"custom"``.
#: L-BFGS's row is the fastest setting that matches Adam 1000 x 10's error on both problems of
#: ``scripts/bench_solvers.py`` (MNIST VAE and CelebA DCGAN; docs/csgm.md, "Solvers").
SOLVER_DEFAULTS: dict[str, dict[str, float | int]] = {
    "lbfgs": {"steps": 300, "lr": 1.0, "halving_every": 30},
    "adam": {"steps": 1000, "lr": 0.01, "halving_every": 0},
    "sgd": {"steps": 1000, "lr": 0.01, "halving_every": 0},
    "gauss-newton": {"steps": 20, "lr": 1.0, "halving_every": 0},
    "custom": {"steps": 1000, "lr": 1.0, "halving_every": 0},
}


class CSGMOptions(TypedDict, total=False):
    """The keyword arguments that :func:`csgm` and every latent method built on it share."""

    lam: float
    restarts: int
    steps: int | None
    lr: float | None
    optimizer: str | LatentStep | ProblemStep
    select: str
    early_stop_tol: float | None
    patience: int
    generator: torch.Generator | None
    z_init: Tensor | None
    loss_reduction: str
    init: str
    x_init: Tensor | None
    autocast: torch.dtype | None
    halving_every: int | None


def _check_options(*, lam, restarts, steps, lr, optimizer, select, early_stop_tol, patience,
                   loss_reduction, init, halving_every, autocast) -> None:
    check_positive(lam, "lam", allow_zero=True)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    check_positive(lr, "lr")
    if not isinstance(optimizer, LatentStep | ProblemStep) and optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, a LatentStep or a "
                         f"ProblemStep, got {optimizer!r}")
    if select not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {select!r}")
    if loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}")
    if early_stop_tol is not None:
        check_positive(early_stop_tol, "early_stop_tol", allow_zero=True)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an int >= 1, got {patience!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if isinstance(halving_every, bool) or not isinstance(halving_every, int) or halving_every < 0:
        raise ValueError(f"halving_every must be None or an int >= 0 (0: off), "
                         f"got {halving_every!r}")
    if autocast is not None and not (isinstance(autocast, torch.dtype)
                                     and autocast.is_floating_point):
        raise ValueError(f"autocast must be None or a floating dtype such as torch.bfloat16, "
                         f"got {autocast!r}")


def _select(
    objective: Tensor, meas_err: Tensor, select: str
) -> Tensor:
    """Index of the kept restart per image: lowest measurement error or lowest objective.

    Shape:
        - objective, meas_err: ``(B, R)``
        - output: ``(B,)``
    """
    score = meas_err if select == "measurement" else objective
    bad = ~torch.isfinite(score).any(dim=1)
    if bad.any():  # only possible when every restart of an image diverged (see solve_latent)
        raise ValueError(_diverged_message(bad))
    return score.argmin(dim=1)


def _diverged_message(bad: Tensor) -> str:
    images = bad.nonzero().squeeze(1).tolist()
    return (f"every restart diverged (non-finite latent or objective) for image(s) {images}: "
            f"lower lr (or lam), or use optimizer='adam'")


def csgm(
    y: Tensor,
    A,
    prior,
    *,
    lam: float = 0.0,
    restarts: int = 10,
    steps: int | None = None,
    lr: float | None = None,
    optimizer: str | LatentStep | ProblemStep = "lbfgs",
    select: str = "measurement",
    early_stop_tol: float | None = None,
    patience: int = 50,
    generator: torch.Generator | None = None,
    z_init: Tensor | None = None,
    loss_reduction: str = "reference",
    init: str = "random",
    x_init: Tensor | None = None,
    autocast: torch.dtype | None = None,
    halving_every: int | None = None,
) -> CSGMResult:
    r"""Reconstruct images from :math:`y = A x + e` by optimising the latent of ``prior``.

    Minimises, for every image and every restart independently,

    .. math::
        f(z) = \frac{1}{m}\|A\,G(z) - y\|_2^2 + \lambda\|z\|_2^2
        \quad(\texttt{loss\_reduction="reference"}), \qquad
        f(z) = \|A\,G(z) - y\|_2^2 + \lambda\|z\|_2^2 \quad(\texttt{"sum"}),

    with ``m = y[0].numel()``. The ``"reference"`` units are exactly those of the CSGM reference
    code: ``lam`` equals its ``zprior_weight`` when ``mloss2_weight = 1`` (in general
    ``lam = zprior_weight / mloss2_weight``). To pass a plain ridge weight
    :math:`\lambda_{\rm sum}` either use ``loss_reduction="sum"`` or ``lam = lambda_sum / m``.

    All ``B`` images times ``R`` restarts run in one batch: ``z`` has shape ``(B * R, *latent)``
    and every step is one forward and one backward pass of the generator. Restart ``r`` of
    image ``i`` is row ``i * R + r``; the starting latents are
    ``prior.sample_latent(B * R, generator=generator)`` in that order (or ``z_init``).
    With ``init="encoder"`` they are drawn the same way and restart 0 of every image is then
    replaced by the encoder mean :math:`\mu(x_{\rm init})` (:func:`encoder_latent`), so
    restarts ``1 .. R-1`` start exactly where they start with ``init="random"`` and the
    generator is left in the same state.
    Adam's state is per row, so a row's trajectory does not depend on the other rows.

    A prior with ``resized`` (:class:`~genprior.priors.spatial_vae.SpatialVAE`) is fitted to
    the operator's ``img_size`` first (:func:`~genprior.reconstruct.fit_prior`: the
    same weights for the operator's image size), so it reconstructs images of any size; a
    prior whose size already matches is used as it is.

    The prior is evaluated in eval mode (its mode is restored afterwards); only ``z`` receives
    gradients. ``x_hat = G(z_hat)`` is returned as the prior produces it (in [0, 1] for every
    shipped prior), without clamping.

    Args:
        y: measurements (on the prior's device; cast to the prior's dtype).
        A: the forward operator: any ``deepinv.physics.LinearPhysics`` (genprior's operators
            or deepinv's own, e.g. ``deepinv.physics.CompressedSensing``). Only ``A.A`` is used.
        prior: a :class:`genprior.priors.Prior` (``decode``, ``latent_shape``, ``img_shape``).
        lam: :math:`\lambda \ge 0`, in the units of ``loss_reduction``.
        restarts: random starts per image (``R``).
        steps: optimiser steps (the maximum, with early stopping); ``None``: the optimizer's
            default (:data:`SOLVER_DEFAULTS`: L-BFGS 300, Adam 1000).
        lr: learning rate (L-BFGS: the first trial step of its line search); ``None``: the
            optimizer's default (L-BFGS 1.0, Adam 0.01).
        optimizer: ``"lbfgs"`` (the default: batched per-row L-BFGS with an Armijo line
            search, :class:`~genprior.optim.LBFGS`), ``"adam"`` (``torch.optim.Adam``'s update
            with its default betas and eps, one state per row; the CSGM reference's solver),
            ``"sgd"`` (plain gradient steps), ``"gauss-newton"`` (Levenberg-Marquardt on the
            latent, :class:`~genprior.optim.GaussNewton`; latents of at most 4096 entries), or
            any :class:`~genprior.optim.LatentStep` / :class:`~genprior.optim.ProblemStep`
            (then ``lr`` is the step's own). The default and its step budget are the fastest
            setting that matched Adam 1000 x 10's error in ``scripts/bench_solvers.py``
            (docs/csgm.md); pass ``optimizer="adam"`` for the reference's solver.
        select: keep per image the restart with the lowest ``"measurement"`` error
            :math:`\|A G(z) - y\|^2/m` or the lowest objective ``"loss"`` (the reference's
            ``BestKeeper`` criterion; the two agree when ``lam == 0``).
        early_stop_tol: ``None`` (default, always run ``steps`` steps, as the reference) or a
            relative tolerance: a restart stops when its objective has not decreased by more than
            this fraction of its best value for ``patience`` consecutive steps. A stopped restart's
            ``z`` stops changing at once and it leaves the batch within 10 steps (so it stops
            costing compute).
        patience: steps without sufficient improvement before a restart stops.
        generator: source of the random starts.
        z_init: starting latents instead of random ones (not with ``init="encoder"``).
        loss_reduction: ``"reference"`` (mean over measurements) or ``"sum"``.
        init: ``"random"`` (every start drawn from the latent prior) or ``"encoder"`` (the
            first restart of every image at the encoder mean of ``x_init``, the others
            random; needs a prior with ``encode``, e.g. a VAE).
        x_init: the images whose encoder means start ``init="encoder"``; default
            ``A.A_dagger(y).clamp(0, 1)``.
        autocast: ``None`` (the prior's own precision) or a low-precision dtype
            (``torch.bfloat16``) in which the generator runs under ``torch.autocast``; its
            output is cast back, so the data term, the latent and the optimiser stay in the
            prior's dtype (:func:`~genprior.optim.autocast_decode`).
        halving_every: ``k >= 1``: successive halving (:class:`~genprior.optim.Halving`):
            every ``k`` steps each image keeps the better half of its running restarts (lowest
            objective) and stops the others, so ``R`` restarts cost about ``2 k R`` steps plus
            the survivor's remaining ones instead of ``R * steps``; ``0``: every restart runs
            to the end; ``None``: the optimizer's default (L-BFGS 30, the others 0).

    Returns:
        :class:`~genprior.reconstruct.result.CSGMResult`; its ``loss`` is :math:`f(\hat z)`,
        its ``history[t, i, r]`` the objective of restart ``r`` of image ``i`` before step ``t``.

    Shape:
        - y: ``(B, *meas_shape)``
        - z_init: ``(B, R, *latent_shape)`` (or ``(B, *latent_shape)`` when ``R == 1``)
        - x_init: ``(B, C, H, W)``, the operator's image size
        - x_hat: ``(B, C, H, W)``; z_hat: ``(B, *latent_shape)``
        - measurement_error, loss, best_restart: ``(B,)``
        - restart_measurement_error, restart_loss, n_steps: ``(B, R)``; history: ``(T, B, R)``

    Raises:
        ValueError: ``y`` with NaN/inf or a shape the operator does not produce, a fixed-size
            prior whose images the operator does not accept, bad hyperparameters,
            ``init="encoder"`` with ``z_init`` or with a prior without ``encode``, ``x_init``
            without ``init="encoder"`` or of another shape.
        TypeError: a prior without the :class:`Prior` interface.

    Example:
        >>> import deepinv
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> G = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4))
        >>> A = deepinv.physics.CompressedSensing(m=8, img_size=(1, 4, 4), rng=g)
        >>> y = A.A(G.decode(torch.randn(3, 2, generator=g)))
        >>> out = csgm(y, A, G, restarts=2, steps=300, lr=0.1, generator=g)
        >>> out.x_hat.shape, bool(out.measurement_error.max() < 1e-6)
        (torch.Size([3, 1, 4, 4]), True)
    """
    options = {"lam": lam, "restarts": restarts, "steps": steps, "lr": lr,
               "optimizer": optimizer, "select": select, "early_stop_tol": early_stop_tol,
               "patience": patience, "generator": generator, "z_init": z_init,
               "loss_reduction": loss_reduction, "init": init, "x_init": x_init,
               "autocast": autocast, "halving_every": halving_every}
    return solve_latent(y, A, prior, options)


#: the defaults of :class:`CSGMOptions`, as in :func:`csgm`'s signature (``None``: the
#: optimizer's own, :data:`SOLVER_DEFAULTS`)
CSGM_DEFAULTS: CSGMOptions = {
    "lam": 0.0, "restarts": 10, "steps": None, "lr": None, "optimizer": "lbfgs",
    "select": "measurement", "early_stop_tol": None, "patience": 50, "generator": None,
    "z_init": None, "loss_reduction": "reference", "init": "random", "x_init": None,
    "autocast": None, "halving_every": None,
}


def solve_latent(y: Tensor, A, prior, options: CSGMOptions, *,
                 lam_nu: float | None = None, basis=None) -> CSGMResult:
    r"""Check the inputs, build the :class:`~genprior.optim.LatentProblem` of all images ×
    restarts, descend, and keep one restart per image: the body of :func:`csgm` and
    :func:`~genprior.reconstruct.sparse_gen.sparse_gen` (a deviation when ``basis`` is given).

    Args:
        y: measurements.
        A: the operator.
        prior: a latent :class:`~genprior.priors.Prior`.
        options: :class:`CSGMOptions`; missing keys take :data:`CSGM_DEFAULTS`.
        lam_nu: the deviation's :math:`\ell_1` weight (with ``basis``).
        basis: a :class:`~genprior.reconstruct.bases.Basis` for a sparse deviation, or ``None``.

    The prior is first fitted to ``A.img_size`` (:func:`~genprior.reconstruct.fit_prior`);
    ``x_hat`` has the operator's image size.

    Raises:
        TypeError: an unknown option.
    """
    unknown = set(options) - set(CSGM_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}; "
                        f"known: {sorted(CSGM_DEFAULTS)}")
    opts = resolve_solver({**CSGM_DEFAULTS, **options})
    check_latent_prior(prior)
    _check_options(**{k: opts[k] for k in ("lam", "restarts", "steps", "lr", "optimizer",
                                            "select", "early_stop_tol", "patience",
                                            "loss_reduction", "init", "halving_every",
                                            "autocast")})
    check_init(prior, opts["init"], opts["z_init"], opts["x_init"])
    prior = fit_prior_to(prior, A)
    img_size = tuple(int(s) for s in prior.img_shape)
    ref = _reference_tensor(prior)
    y = check_measurements(y, A, img_size, device=ref.device, dtype=ref.dtype)
    batch, m, restarts = y.shape[0], y[0].numel(), opts["restarts"]
    scale = 1.0 / m if opts["loss_reduction"] == "reference" else 1.0
    z0 = initial_latents(prior, opts, y, A, ref)
    deviation = None
    if basis is not None:
        step = lipschitz_step(A, img_size, scale=scale, ref=ref, generator=opts["generator"])
        deviation = SparseDeviation(basis=basis, weight=float(lam_nu), step=step)
    decode = autocast_decode(prior.decode, opts["autocast"])
    problem = LatentProblem(y.repeat_interleave(restarts, dim=0), A, decode,
                            data=WeightedL2(scale), latent=GaussianLatent(float(opts["lam"])),
                            deviation=deviation)
    was_training = prior.training
    prior.eval()
    try:
        halving = (None if opts["halving_every"] == 0 or restarts == 1
                   else Halving(group=restarts, every=opts["halving_every"]))
        run = descend(problem, z0, make_step(opts["optimizer"], opts["lr"]),
                      steps=opts["steps"], early_stop_tol=opts["early_stop_tol"],
                      patience=opts["patience"], halving=halving)
        with torch.no_grad():
            x_gen = problem.image(run.z)
            nu = None if deviation is None else deviation.synthesis(run.c)
            x_all = x_gen if nu is None else x_gen + nu
            meas_err = problem.measurement_error(x_all).view(batch, restarts)
            objective = problem.objective(run.z, run.c).view(batch, restarts)
    finally:
        prior.train(was_training)
    finite = (torch.isfinite(run.z.reshape(len(run.z), -1)).all(1)
              & torch.isfinite(x_all.reshape(len(x_all), -1)).all(1)).view(batch, restarts)
    finite &= torch.isfinite(meas_err) & torch.isfinite(objective)
    if not finite.any(dim=1).all():
        raise ValueError(_diverged_message(~finite.any(dim=1)))
    inf = torch.tensor(float("inf"), dtype=meas_err.dtype, device=meas_err.device)
    meas_err = torch.where(finite, meas_err, inf)
    objective = torch.where(finite, objective, inf)
    best = _select(objective, meas_err, opts["select"])
    pick = torch.arange(batch, device=best.device) * restarts + best
    fields = {
        "x_hat": x_all[pick],
        "z_hat": run.z[pick],
        "measurement_error": meas_err.gather(1, best[:, None]).squeeze(1),
        "loss": objective.gather(1, best[:, None]).squeeze(1),
        "history": run.history.view(-1, batch, restarts),
        "best_restart": best,
        "restart_measurement_error": meas_err,
        "restart_loss": objective,
        "n_steps": run.n_steps.view(batch, restarts),
        "evaluations": run.evaluations.view(batch, restarts),
    }
    if deviation is None:
        return CSGMResult(**fields)
    return SparseGenResult(**fields, nu_hat=nu[pick], x_gen=x_gen[pick])


def resolve_solver(options: CSGMOptions) -> CSGMOptions:
    """``options`` with ``steps``, ``lr`` and ``halving_every`` that are ``None`` replaced by the
    optimizer's :data:`SOLVER_DEFAULTS` (a step object counts as ``"custom"``; an unknown name is
    left for the option checks to refuse).

    Example:
        >>> resolve_solver({"optimizer": "adam", "steps": None, "lr": None,
        ...                 "halving_every": None})
        {'optimizer': 'adam', 'steps': 1000, 'lr': 0.01, 'halving_every': 0}
        >>> resolve_solver({"optimizer": "lbfgs", "steps": 50, "lr": None,
        ...                 "halving_every": 0})["lr"]
        1.0
    """
    name = options.get("optimizer", CSGM_DEFAULTS["optimizer"])
    name = "custom" if isinstance(name, LatentStep | ProblemStep) else name
    defaults = SOLVER_DEFAULTS.get(name, SOLVER_DEFAULTS["custom"])
    return {**options, **{k: defaults[k] for k in ("steps", "lr", "halving_every")
                          if options.get(k) is None}}


def lipschitz_step(A, img_size, *, scale: float, ref: Tensor,
                   generator: torch.Generator | None = None) -> float:
    r"""Step :math:`1/L` for the smooth term ``scale * ||A x - y||^2`` in ``x``:
    :math:`L = 2\,\mathrm{scale}\,\|A\|_2^2`, with 1% margin on the power-iteration estimate."""
    norm_sq = operator_norm_sq(A, img_size, device=ref.device, dtype=ref.dtype,
                               generator=generator)
    if norm_sq <= 0:
        raise ValueError(f"{type(A).__name__} is the zero operator; nothing to reconstruct")
    return 1.0 / (2.0 * scale * norm_sq * 1.01)
