"""Where CSGM's restarts start: random draws from the latent prior, given latents (``z_init``),
or the encoder mean of a first estimate as every image's first restart (``init="encoder"``)."""

from __future__ import annotations

import torch
from torch import Tensor

from genprior._checks import check_finite

__all__ = ["INITS", "check_init", "encoder_latent", "initial_latents"]

#: values of ``init``: every start drawn from the latent prior, or the first restart of every
#: image at the encoder mean of ``x_init``
INITS = ("random", "encoder")


def check_init(prior, init: str, z_init: Tensor | None, x_init: Tensor | None) -> None:
    """Refuse starts that contradict each other, or ``init="encoder"`` without an encoder."""
    if init == "encoder" and z_init is not None:
        raise ValueError("z_init and init='encoder' exclude each other: pass the starting "
                         "latents (z_init) or let the encoder give the first restart's")
    if init != "encoder" and x_init is not None:
        raise ValueError(f"x_init is only used with init='encoder', got init={init!r}")
    if init == "encoder" and not callable(getattr(prior, "encode", None)):
        raise ValueError(f"init='encoder' needs a prior with an encoder (encode); "
                         f"{type(prior).__name__} has none: use init='random'")


def encoder_latent(prior, x: Tensor) -> Tensor:
    r"""The encoder mean :math:`\mu(x)` of :math:`q(z \mid x)`, where ``init="encoder"`` starts.

    ``prior.encode`` runs without gradients, in eval mode (the prior's mode is restored
    afterwards). A VAE's ``encode`` returns ``(mu, logvar)``, of which ``mu`` is kept; an
    ``encode`` that returns one tensor (the mean, as
    :class:`~genprior.priors.autoencoder_kl.AutoencoderKLPrior`'s) is taken as it is.

    Args:
        prior: a prior with ``encode``, for images of ``x``'s size.
        x: images in [0, 1].

    Returns:
        the detached means.

    Shape:
        - x: ``(B, C, H, W)``
        - output: ``(B, *latent_shape)``

    Raises:
        ValueError: a prior without ``encode``.
    """
    check_init(prior, "encoder", None, None)
    was_training = prior.training
    prior.eval()
    try:
        with torch.no_grad():
            out = prior.encode(x)
    finally:
        prior.train(was_training)
    mu = out[0] if isinstance(out, tuple) else out
    return mu.detach()


def _start_images(x_init: Tensor | None, y: Tensor, A, img_size: tuple[int, ...],
                  ref: Tensor) -> Tensor:
    """``x_init`` checked (shape, finite) on the prior's device and dtype, or by default
    ``A.A_dagger(y).clamp(0, 1)``."""
    if x_init is None:
        with torch.no_grad():
            return A.A_dagger(y).clamp(0, 1)
    if not isinstance(x_init, Tensor):
        raise TypeError(f"x_init must be a torch.Tensor, got {type(x_init).__name__}")
    if tuple(x_init.shape) != (y.shape[0], *img_size):
        raise ValueError(f"x_init must have shape (B, C, H, W) = {(y.shape[0], *img_size)}, "
                         f"got {tuple(x_init.shape)}")
    check_finite(x_init, "x_init")
    return x_init.detach().to(device=ref.device, dtype=ref.dtype)


def initial_latents(prior, opts: dict, y: Tensor, A, ref: Tensor) -> Tensor:
    """``(B * R, *latent)`` starts, image-major: row ``i * R + r`` is restart ``r`` of image
    ``i``. Drawn as ``prior.sample_latent(B * R, generator=generator)`` unless ``z_init``; with
    ``init="encoder"`` row ``i * R`` is then replaced by the encoder mean of image ``i`` of
    ``x_init``, so the other rows and the generator's state are those of ``init="random"``."""
    batch, restarts = y.shape[0], opts["restarts"]
    if opts["z_init"] is not None:
        return _given_latents(prior, opts["z_init"], batch, restarts, ref)
    z0 = prior.sample_latent(batch * restarts, generator=opts["generator"]).detach()
    if opts["init"] == "encoder":
        x = _start_images(opts["x_init"], y, A, tuple(prior.img_shape), ref)
        z0.view(batch, restarts, *prior.latent_shape)[:, 0] = encoder_latent(prior, x)
    return z0


def _given_latents(prior, z_init: Tensor, batch: int, restarts: int, ref: Tensor) -> Tensor:
    """``z_init`` checked and flattened to ``(B * R, *latent)``, image-major."""
    latent = tuple(prior.latent_shape)
    if not isinstance(z_init, Tensor):
        raise TypeError(f"z_init must be a torch.Tensor, got {type(z_init).__name__}")
    if restarts == 1 and tuple(z_init.shape) == (batch, *latent):
        z_init = z_init.unsqueeze(1)
    if tuple(z_init.shape) != (batch, restarts, *latent):
        raise ValueError(
            f"z_init must have shape (B, restarts, *latent_shape) = "
            f"{(batch, restarts, *latent)}, got {tuple(z_init.shape)}"
        )
    check_finite(z_init, "z_init")
    return z_init.detach().to(device=ref.device, dtype=ref.dtype).reshape(-1, *latent).clone()
