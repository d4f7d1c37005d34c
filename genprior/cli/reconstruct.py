"""Reconstruct images from measurements written by ``genprior measure``.

``genprior reconstruct --prior mnist-vae --method csgm --measurements DIR/y.npz
--operator DIR/operator.safetensors --out OUT`` writes to OUT:

- ``x_hat.npz``: the reconstructions (key ``x``, clamped to [0, 1]);
- ``grid.png``: a labelled figure of the first 8 images, one row per image and one column per
  image set, left to right: the ground truth (when ``y.npz`` holds ``x``), the pseudo-inverse
  ``A_dagger(y)`` (clamped; not repeated for ``--method pinv``) and ``x_hat``, every panel titled
  with its method and, when the truth is known, its PSNR;
- ``metrics.csv``: per image ``mse_per_pixel``, ``psnr``, ``ssim`` (when the truth is known),
  ``residual`` (``||A x_hat - y|| / ||y||``) and ``measurement_error`` (``||A x_hat - y||^2 / m``),
  then rows ``mean`` and ``ci95``.

Under ``torchrun --nproc_per_node N -m genprior reconstruct ...`` the images are split into N
contiguous shards, one per process (gloo on CPU, NCCL on CUDA, ``cuda:LOCAL_RANK`` per
process), and rank 0 gathers the results and writes the files. CSGM and Sparse-Gen draw the
starting latents of the whole batch on every rank and keep their shard's, so the result equals a
single-process run up to float rounding (with ``--init encoder`` each rank computes the first
estimates of its own images, ``A_dagger y`` or TV, and replaces their first restart by the
encoder means, as a single process does); the conditional method draws its noise per rank
(``--seed`` + rank).

A prior that fits any image size (one with ``resized``, e.g. a SpatialVAE) is fitted to the
operator's image size (``genprior.reconstruct.fit_prior``); a fixed-size prior of another size
is refused before any work. ``--init encoder`` starts the first restart of every image at the
prior's encoder mean of a first estimate, the other restarts at random latents as with
``--init random``; ``--init-from`` chooses that estimate: ``pinv`` (the default),
``clamp(A_dagger y, 0, 1)``, or ``tv``, the TV estimate of ``--method tv`` with the ``--tv-*``
flags (clamped to [0, 1]). A natural-image prior such as ``natural-vae`` needs the TV start:
``--method csgm --init encoder --init-from tv --restarts 1 --steps 100 --lr 0.01 --lam 1e-7
--back-projection exact``. ``--init-from tv`` without ``--init encoder`` is refused.

Units are those of the CSGM reference code: ``--lam`` is its ``zprior_weight``, ``--alpha`` its
Lasso ``lmbd`` (sklearn's ``alpha``) or Sparse-Gen's ``sparse_gen_weight``. ``--method adaptive``
(IAGAN) runs CSGM with these flags, then adapts latent and weights per image (``--adapt-steps``,
``--lr-theta``, ``--lr-z``, ``--lam-theta``, ``--tau``). ``--method tv`` minimises
``0.5 ||A x - y||^2 + lambda TV(x)`` (``genprior.reconstruct.tv``: deepinv's TV prior in
deepinv's proximal gradient from ``A_dagger y``, the weight decreasing geometrically from
``--tv-lambda-start`` to ``--tv-lambda`` over ``--tv-steps`` iterations; lambda multiplies the
isotropic TV of an image in [0, 1] against the sum over the measurements).

``--back-projection`` is the last step of ``csgm``, ``sparse-gen`` and ``adaptive``:
``exact`` moves ``x_hat`` onto ``{x : A x = y}`` (``x + A_dagger(y - A x)``, the orthogonal
projection), ``regularized`` only towards it (``x + A^T (A A^T + eps I)^{-1} (y - A x)`` with
``eps`` the measurements' noise variance, which must be > 0), ``none`` keeps the method's
estimate. The default is ``exact`` for ``adaptive`` and ``none`` for ``csgm`` and ``sparse-gen``;
the flag is refused with the other methods. ``measurement_error`` is that of the back-projected
image, before the clamping of ``x_hat.npz`` (so ``exact`` gives about 0 there, while
``residual``, computed on the clamped image, need not be).

Every input is read and checked before any work: the measurements (their operator record, when
``genprior measure`` wrote them, must match ``--operator``; a spec is rebuilt with the recorded
seed and noise level), the prior (a conditional generator only with ``--method conditional``,
a latent prior only with the latent methods), the device and OUT. The files appear together or
not at all; a non-empty OUT is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

HELP = ("reconstruct images from measurements (CSGM, Sparse-Gen, IAGAN, Lasso, TV, pinv, "
        "bicubic, range-constrained conditional generator)")

#: methods that end with ``--back-projection`` (default exact for adaptive, none for the others)
BACK_PROJECTION_METHODS = ("csgm", "sparse-gen", "adaptive")
#: first estimates whose encoder mean ``--init encoder`` starts from
INIT_FROM = ("pinv", "tv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from genprior.reconstruct.csgm import INITS, OPTIMIZERS
    from genprior.reconstruct.methods import METHODS
    from genprior.reconstruct.tv import TV_DEFAULTS

    parser.add_argument("--method", default=None, choices=METHODS,
                        help="default: conditional for a conditional prior (celeba-sr4-affgan), "
                        "else csgm")
    parser.add_argument("--prior", default=None, metavar="NAME_OR_DIR",
                        help="shipped prior name (e.g. mnist-vae) or folder; needed by csgm, "
                        "sparse-gen, adaptive and conditional")
    parser.add_argument("--measurements", required=True, metavar="Y_NPZ",
                        help="npz file with key y (and optionally x), e.g. from genprior measure")
    parser.add_argument("--operator", required=True, metavar="OP_FILE_OR_SPEC",
                        help="operator file written by genprior measure, or a spec such as "
                        "downsample:4 (image size from a fixed-size prior, else from the "
                        "measurements; seed and noise level from the measurements' operator "
                        "record)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in a non-empty --out")
    parser.add_argument("--lam", type=float, default=0.0,
                        help="latent weight lambda (the CSGM reference's zprior_weight)")
    parser.add_argument("--alpha", type=float, default=0.1,
                        help="l1 weight: Lasso alpha (reference lmbd) or Sparse-Gen lam_nu")
    parser.add_argument("--basis", default="pixel", choices=("pixel", "dct", "wavelet"),
                        help="Sparse-Gen sparsity basis")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None,
                        help="optimiser steps (default: the optimizer's, lbfgs 300, adam 1000)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate (default: the optimizer's, adam 0.01; lbfgs: the "
                        "first trial step of its line search, 1.0)")
    parser.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                        help="latent solver: lbfgs (batched, Armijo line search; csgm's "
                        "default), adam (the CSGM reference's; sparse-gen's and adaptive's "
                        "default), sgd or gauss-newton (Levenberg-Marquardt); sparse-gen: adam "
                        "or sgd")
    parser.add_argument("--halving-every", type=int, default=None,
                        help="successive halving: every so many steps each image keeps the "
                        "better half of its restarts (0: off; default: the optimizer's, lbfgs "
                        "30, others off)")
    parser.add_argument("--autocast", default=None, choices=("bf16",),
                        help="run the generator in bfloat16 under torch.autocast, the data term "
                        "in float32 (default: off)")
    parser.add_argument("--select", default="measurement", choices=("measurement", "loss"),
                        help="keep the restart with the lowest measurement error or objective")
    parser.add_argument("--early-stop-tol", type=float, default=None,
                        help="relative tolerance of per-restart early stopping (default: off)")
    parser.add_argument("--init", default="random", choices=INITS,
                        help="csgm, sparse-gen, adaptive: every restart at random latents, or "
                        "the first restart of every image at the encoder mean of the "
                        "--init-from estimate (a prior with an encoder, e.g. a VAE)")
    parser.add_argument("--init-from", default="pinv", choices=INIT_FROM,
                        help="with --init encoder: the image whose encoder mean starts the first "
                        "restart, clamp(A_dagger y, 0, 1) or the TV estimate (the --tv-* flags, "
                        "clamped); natural-vae needs tv")
    parser.add_argument("--back-projection", default=None,
                        choices=("exact", "regularized", "none"),
                        help="csgm, sparse-gen, adaptive: final step onto {x: Ax = y}, exact "
                        "(A_dagger), regularised (eps = noise variance) or none (default: "
                        "exact for adaptive, none for csgm and sparse-gen)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random restarts")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    iagan = parser.add_argument_group("adaptive (IAGAN) stages 2 and 3")
    iagan.add_argument("--adapt-steps", type=int, default=300,
                       help="Adam steps adapting latent and weights per image")
    iagan.add_argument("--lr-theta", type=float, default=1e-4,
                       help="learning rate of the generator weights")
    iagan.add_argument("--lr-z", type=float, default=1e-4,
                       help="learning rate of the latent (0 keeps CSGM's latent)")
    iagan.add_argument("--lam-theta", type=float, default=0.0,
                       help="weight of the anchor ||theta - theta_0||^2")
    iagan.add_argument("--tau", type=float, default=None,
                       help="discrepancy-rule factor: stop an image once its residual is below "
                       "tau * noise level (default: off)")
    tv = parser.add_argument_group("TV (--method tv, --init-from tv)")
    tv.add_argument("--tv-lambda", type=float, default=TV_DEFAULTS["lam"],
                    help="final TV weight lambda (against 0.5 ||Ax - y||^2, images in [0, 1])")
    tv.add_argument("--tv-lambda-start", type=float, default=TV_DEFAULTS["lam_start"],
                    help="first TV weight, >= --tv-lambda (equal: constant weight); it decreases "
                    "geometrically to --tv-lambda")
    tv.add_argument("--tv-steps", type=int, default=TV_DEFAULTS["steps"],
                    help="proximal-gradient iterations")


def reconstruction_figure(method: str, x_hat, y, A, x=None, psnr=None, *, title=None):
    """The figure of ``grid.png``: columns ``[x,] clamp(A_dagger y), x_hat`` (the pseudo-inverse
    column left out for ``method == "pinv"``), one row per image (the first 8), each panel
    titled with its method and PSNR (``psnr``: the method's per-image values, else computed)."""
    from genprior.cli._figures import MAX_ROWS, comparison_figure

    k = min(MAX_ROWS, x_hat.shape[0])
    columns = {}
    if method != "pinv":
        with torch.no_grad():
            columns[r"$A^\dagger y$ (pinv)"] = A.A_dagger(y[:k]).clamp(0, 1)
    columns[method] = x_hat[:k]
    return comparison_figure(None if x is None else x[:k], columns, title=title,
                             psnr=None if psnr is None else {method: psnr[:k]})


def _gather(parts: list[torch.Tensor], info) -> list[torch.Tensor]:
    """Concatenate every rank's tensors in rank order (all ranks get the result)."""
    if not info.distributed:
        return parts
    import torch.distributed as dist

    everyone: list = [None] * info.world_size
    dist.all_gather_object(everyone, [t.detach().cpu() for t in parts])
    return [torch.cat([r[i] for r in everyone]) for i in range(len(parts))]


def _solve_shard(args, y, A, prior, info, device) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous shard of the batch: ``(x_hat, measurement_error)`` on the CPU."""
    from genprior._random import make_generator
    from genprior.cli._inputs import LATENT_METHODS
    from genprior.optim import sum_sq
    from genprior.reconstruct.methods import reconstruct

    n = y.shape[0]
    bounds = [n * r // info.world_size for r in range(info.world_size + 1)]
    lo, hi = bounds[info.rank], bounds[info.rank + 1]
    generator = make_generator(args.seed, device)
    z_init = None
    if info.distributed and args.method in LATENT_METHODS["reconstruct"]:
        z_all = prior.sample_latent(n * args.restarts, generator=generator)
        z_init = z_all.view(n, args.restarts, *prior.latent_shape)[lo:hi]
    elif info.distributed:
        generator = make_generator(args.seed + info.rank, device)
    if hi == lo:  # more processes than images
        shape = (0, *(prior.img_shape if prior is not None else A.img_size))
        return torch.zeros(shape), torch.zeros(0)
    y = y[lo:hi]
    init, x_init = args.init, None
    if init == "encoder" and args.init_from == "tv":
        x_init = tv_estimate(args, y, A, device)
    if z_init is not None and init == "encoder":
        z_init, init, x_init = _encoder_starts(z_init, y, A, prior, x_init), "random", None
    result = reconstruct(
        args.method, y, A, prior=prior, lam=args.lam, alpha=args.alpha, basis=args.basis,
        restarts=args.restarts, steps=args.steps, lr=args.lr, optimizer=args.optimizer,
        halving_every=args.halving_every,
        autocast=torch.bfloat16 if args.autocast == "bf16" else None, select=args.select,
        early_stop_tol=args.early_stop_tol, generator=generator, z_init=z_init, init=init,
        x_init=x_init, **method_options(args),
    )
    x_hat, measurement_error = result.x_hat.detach(), result.measurement_error.detach()
    if args.method in ("csgm", "sparse-gen") and back_projection(args) != "none":
        x_hat = _back_projected(x_hat, y, A, back_projection(args))
        measurement_error = sum_sq(A.A(x_hat) - y.to(x_hat.dtype)) / y[0].numel()
    return x_hat.clamp(0, 1).cpu(), measurement_error.cpu()


def tv_estimate(args: argparse.Namespace, y: torch.Tensor, A, device) -> torch.Tensor:
    """The TV estimate of ``y`` with the ``--tv-*`` flags, clamped to [0, 1] (the power
    iteration seeded with ``--seed``, apart from the restarts' generator)."""
    from genprior._random import make_generator
    from genprior.reconstruct import tv

    return tv(y, A, lam=args.tv_lambda, lam_start=args.tv_lambda_start, steps=args.tv_steps,
              generator=make_generator(args.seed, device)).x_hat


def _back_projected(x: torch.Tensor, y: torch.Tensor, A, mode: str) -> torch.Tensor:
    """``x`` moved onto (``exact``) or towards (``regularized``, eps = the noise variance)
    ``{x : A x = y}``, as ``adaptive``'s last stage does."""
    from genprior.reconstruct import back_project

    eps = 0.0 if mode == "exact" else float(getattr(A, "noise_std", 0.0) or 0.0) ** 2
    return back_project(x, y.to(x.dtype), A, eps=eps)


def _encoder_starts(z_init: torch.Tensor, y: torch.Tensor, A, prior,
                    x_init: torch.Tensor | None = None) -> torch.Tensor:
    """A shard's drawn starts ``(b, R, *latent)`` with restart 0 replaced by the encoder mean
    of ``x_init`` (default ``clamp(A_dagger y, 0, 1)``): what ``init="encoder"`` starts from in
    one process."""
    from genprior.reconstruct import encoder_latent

    if x_init is None:
        with torch.no_grad():
            x_init = A.A_dagger(y.to(z_init.dtype)).clamp(0, 1)
    z_init = z_init.clone()
    z_init[:, 0] = encoder_latent(prior, x_init.to(z_init.dtype))
    return z_init


def check_flags(args: argparse.Namespace, A) -> None:
    """Refuse flags that contradict each other or ``--method``, before any work:
    ``--init-from tv`` without ``--init encoder``, unusable ``--tv-*`` values (with ``--method
    tv`` or ``--init-from tv``), ``--back-projection`` with a method that has no such step, and
    a regularised back-projection of noise-free measurements.

    Raises:
        ValueError: one line naming the flag.
    """
    from genprior.reconstruct.tv import check_tv_options

    if args.init_from != "pinv" and args.init != "encoder":
        raise ValueError(f"--init-from {args.init_from} chooses the image whose encoder mean "
                         f"starts --init encoder; add --init encoder (or leave --init-from out)")
    if args.method == "tv" or args.init_from == "tv":
        check_tv_options(lam=args.tv_lambda, lam_start=args.tv_lambda_start,
                         steps=args.tv_steps, names={"lam": "--tv-lambda",
                                                     "lam_start": "--tv-lambda-start",
                                                     "steps": "--tv-steps"})
    if args.back_projection is not None and args.method not in BACK_PROJECTION_METHODS:
        raise ValueError(f"--back-projection applies to --method "
                         f"{', '.join(BACK_PROJECTION_METHODS)}, not {args.method}")
    if back_projection(args) == "regularized" and not float(getattr(A, "noise_std", 0) or 0) > 0:
        raise ValueError("--back-projection regularized uses eps = the measurements' noise "
                         "variance, but their noise level is 0: use --back-projection exact")


def back_projection(args: argparse.Namespace) -> str:
    """``--back-projection`` resolved for ``--method``: the flag when given, else ``exact`` for
    adaptive and ``none`` for the other methods."""
    if args.back_projection is not None:
        return args.back_projection
    return "exact" if args.method == "adaptive" else "none"


def check_init(args: argparse.Namespace, prior) -> None:
    """Refuse ``--init encoder`` for a method without latent restarts or a prior without an
    encoder, before any work.

    Raises:
        ValueError: naming the flag, the method or prior and what to use instead.
    """
    from genprior.cli._inputs import LATENT_METHODS

    if args.init != "encoder":
        return
    latent = LATENT_METHODS["reconstruct"]
    if args.method not in latent:
        raise ValueError(f"--init encoder applies to --method {', '.join(latent)}, "
                         f"not {args.method}")
    if getattr(prior, "encode", None) is None:
        raise ValueError(f"--init encoder needs a prior with an encoder; --prior {args.prior} "
                         f"({type(prior).__name__}) has none: use --init random")


def method_options(args: argparse.Namespace) -> dict:
    """The method-specific keyword arguments of ``reconstruct(...)``: ``--method adaptive``'s
    stages and ``--method tv``'s weights and steps (the one conversion; ``{}`` for the other
    methods)."""
    if args.method == "tv":
        return {"tv_lam": args.tv_lambda, "tv_lam_start": args.tv_lambda_start,
                "tv_steps": args.tv_steps}
    if args.method != "adaptive":
        return {}
    bp = back_projection(args)
    return {"adapt_steps": args.adapt_steps, "lr_theta": args.lr_theta, "lr_z": args.lr_z,
            "lam_theta": args.lam_theta, "tau": args.tau,
            "back_projection": None if bp == "none" else bp}


def run(args: argparse.Namespace) -> int:
    from genprior.cli._inputs import check_threads, parse_device
    from genprior.cli._output import check_output
    from genprior.training.distributed import cleanup_distributed, init_distributed

    parse_device(args.device)
    check_threads(args.threads)
    check_output(args.out, args.overwrite)
    info = init_distributed(args.device)
    try:
        return _run(args, info)
    finally:
        cleanup_distributed()


def _run(args: argparse.Namespace, info) -> int:
    from genprior._io import save_images_npz
    from genprior.cli._figures import save_figure
    from genprior.cli._inputs import (
        LATENT_METHODS,
        check_prior_kind,
        fit_prior_arg,
        load_prior_arg,
        read_measurements,
        resolve_operator,
    )
    from genprior.cli._output import transactional_output
    from genprior.metrics import MetricsTable, image_metrics, measurement_residual
    from genprior.priors.conditional import is_conditional
    from genprior.reconstruct.methods import PRIOR_METHODS

    device = info.device if info.distributed else torch.device(args.device)
    meas = read_measurements(args.measurements)
    prior = None if args.prior is None else load_prior_arg(args.prior, device)
    if args.method is None:
        args.method = "conditional" if is_conditional(prior) else "csgm"
    if args.method in PRIOR_METHODS and prior is None:
        raise ValueError(f"--method {args.method} needs --prior NAME_OR_DIR")
    check_prior_kind(prior, args.method, "reconstruct", args.prior)
    A = resolve_operator(args.operator, meas, args.measurements, prior=prior, device=device)
    if args.method in LATENT_METHODS["reconstruct"]:
        prior = fit_prior_arg(prior, A, args.prior)
    check_init(args, prior)
    check_flags(args, A)
    dtype = next((b.dtype for b in A.buffers() if b.is_floating_point()), torch.float32)
    y = meas.y.to(device=device, dtype=dtype)
    try:
        A.check_y(y)
    except ValueError as e:
        raise ValueError(f"--measurements {args.measurements} do not fit --operator "
                         f"{args.operator}: {e}") from e
    x_hat, measurement_error = _gather(list(_solve_shard(args, y, A, prior, info, device)), info)
    if not info.is_main:
        return 0
    x_hat = x_hat.to(device)
    x = None if meas.x is None else meas.x.to(device)
    if x is not None:
        metrics = image_metrics(x_hat, x, data_range=1.0, y=y, A=A)
    else:
        metrics = {"residual": measurement_residual(x_hat, y, A)}
    metrics["measurement_error"] = measurement_error
    table = MetricsTable.from_metrics(metrics)
    figure = reconstruction_figure(args.method, x_hat, y, A, x, metrics.get("psnr"),
                                   title=f"genprior reconstruct --method {args.method}: "
                                   f"{Path(args.measurements).name}, {type(A).__name__}")
    with transactional_output(args.out, args.overwrite) as tmp:
        save_images_npz(tmp / "x_hat.npz", x_hat.cpu())
        save_figure(tmp / "grid.png", figure)
        table.to_csv(tmp / "metrics.csv")
    out = Path(args.out)
    print(f"{args.method}: {x_hat.shape[0]} images {tuple(x_hat.shape[1:])}, {A!r}")
    print(table)
    print(f"wrote {out / 'x_hat.npz'}, {out / 'grid.png'}, {out / 'metrics.csv'}")
    return 0
