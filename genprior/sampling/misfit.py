r"""The misfit of a generative prior: the part of an image that the generator cannot draw.

A prior :math:`x = G(z)` only draws images on the generator's range; real images lie off it. The
misfit model adds a Gaussian observation term,

.. math::
    x = G(z) + d, \qquad d \sim \mathcal N(0, \Sigma_d), \qquad
    \Sigma_d = s\,I \ \text{(scalar)} \ \text{or} \ \mathrm{diag}(v) \ \text{(per pixel)},

fitted once per prior on held-out images (:func:`fit_misfit`) and stored beside it
(:meth:`MisfitCovariance.save_pretrained` writes ``misfit.safetensors`` into the prior's folder).
:func:`~genprior.sampling.misfit_langevin.misfit_posterior` samples the posterior it implies.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genprior._checks import check_finite, check_positive, check_shape
from genprior._random import rand
from genprior._serialization import MISFIT_NAME, load_tensors, save_tensors
from genprior.operators import Inpaint
from genprior.priors.base import _reference_tensor
from genprior.reconstruct._problem import check_latent_prior
from genprior.reconstruct.csgm import csgm

__all__ = ["MISFIT_NAME", "MisfitCovariance", "fit_misfit"]

#: the file name of a misfit in a prior's folder
_META_KEY = "genprior_misfit"


@dataclass(eq=False)
class MisfitCovariance:
    r"""The diagonal covariance :math:`\Sigma_d` of the misfit :math:`d = x - G(z)`.

    Args:
        variance: a scalar :math:`s \ge 0` (a ``0``-dim tensor, or a float: then of the default
            dtype), or per-pixel variances :math:`v \ge 0` of shape ``(C, H, W)``.
        info: JSON-able notes on how it was fitted (:func:`fit_misfit` fills it).

    Shape:
        - variance: ``()`` or ``(C, H, W)``

    Example:
        >>> misfit = MisfitCovariance(0.01)
        >>> misfit.per_pixel, misfit.variance.dtype  # a float gives the default dtype
        (False, torch.float32)
        >>> misfit.apply(torch.full((1, 1, 2, 2), 100.0))  # Sigma_d x
        tensor([[[[1., 1.],
                  [1., 1.]]]])
    """

    variance: Tensor | float
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.variance
        if not isinstance(v, Tensor):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"variance must be a float or a tensor, got {type(v).__name__}")
            v = torch.tensor(float(v), dtype=torch.get_default_dtype())
        if not v.is_floating_point():
            raise TypeError(f"variance must be a floating-point tensor, got dtype {v.dtype}")
        if v.ndim not in (0, 3):
            raise ValueError(f"variance must be a scalar or have shape (C, H, W), "
                             f"got {tuple(v.shape)}")
        check_finite(v, "variance")
        if bool((v < 0).any()):
            raise ValueError(f"variance must be >= 0, got min {float(v.min()):.4g}")
        try:
            json.dumps(self.info)
        except (TypeError, ValueError) as e:
            raise ValueError(f"info must be JSON-able: {e}") from e
        self.variance = v.detach()

    @property
    def per_pixel(self) -> bool:
        """Whether :math:`\\Sigma_d` has one variance per pixel (else one scalar)."""
        return self.variance.ndim == 3

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> MisfitCovariance:
        """The same misfit with its variance on ``device`` in ``dtype``."""
        return MisfitCovariance(self.variance.to(device=device, dtype=dtype), dict(self.info))

    def check_img_size(self, img_size: tuple[int, ...]) -> None:
        """Raise a clear error unless a per-pixel variance has shape ``img_size``."""
        if self.per_pixel and tuple(self.variance.shape) != tuple(img_size):
            raise ValueError(f"the per-pixel misfit has shape {tuple(self.variance.shape)} but the "
                             f"images have shape {tuple(img_size)}")

    def apply(self, x: Tensor) -> Tensor:
        r""":math:`\Sigma_d x` for images ``x``.

        Shape:
            - x: ``(B, C, H, W)``; output: the same
        """
        self.check_img_size(tuple(x.shape[1:]))
        return x * self.variance.to(device=x.device, dtype=x.dtype)

    def std(self) -> Tensor:
        r"""The standard deviation :math:`\sqrt{\mathrm{variance}}`.

        Shape:
            - output: ``()`` or ``(C, H, W)``
        """
        return self.variance.sqrt()

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``directory / misfit.safetensors`` (the variance; :attr:`info` in its metadata),
        atomically; return the file's path."""
        path = Path(directory) / MISFIT_NAME
        meta = {"per_pixel": self.per_pixel, "info": self.info}
        save_tensors(path, {"variance": self.variance},
                     metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *,
                        device: torch.device | str = "cpu") -> MisfitCovariance:
        """Read ``directory / misfit.safetensors`` written by :meth:`save_pretrained` (or
        ``directory`` itself when it is a file).

        Raises:
            FileNotFoundError: naming the missing file.
            ValueError: a file that is not a genprior misfit.
        """
        from safetensors import safe_open

        path = Path(directory)
        path = path if path.is_file() else path / MISFIT_NAME
        tensors = load_tensors(path, device=device)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if _META_KEY not in meta or set(tensors) != {"variance"}:
            raise ValueError(f"{path} is not a genprior misfit file (no '{_META_KEY}' metadata "
                             f"or tensors other than 'variance')")
        return cls(tensors["variance"], json.loads(meta[_META_KEY])["info"])

    @classmethod
    def exists(cls, directory: str | os.PathLike) -> bool:
        """Whether ``directory`` holds a ``misfit.safetensors``."""
        return (Path(directory) / MISFIT_NAME).is_file()


def _fold_masks(h: int, w: int, folds: int, generator: torch.Generator | None) -> list[Tensor]:
    """``folds`` disjoint random pixel sets covering the ``h x w`` grid (as bool ``(H, W)``)."""
    device = generator.device if generator is not None else "cpu"
    order = rand((h * w,), generator=generator, device=device).argsort().cpu()
    fold_of = torch.empty(h * w, dtype=torch.long)
    fold_of[order] = torch.arange(h * w) % folds
    return [(fold_of == f).reshape(h, w) for f in range(folds)]


def fit_misfit(
    prior,
    x: Tensor,
    *,
    per_pixel: bool = False,
    folds: int = 2,
    min_variance: float = 1e-6,
    steps: int = 1000,
    lr: float = 0.01,
    restarts: int = 4,
    lam: float = 0.0,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    csgm_options: dict | None = None,
) -> MisfitCovariance:
    r"""Fit the misfit covariance :math:`\Sigma_d` of ``prior`` by maximum likelihood on images.

    Every image is projected onto the generator's range by latent optimisation
    (:func:`~genprior.reconstruct.csgm.csgm` with an identity-like operator:
    :math:`\hat z = \arg\min_z \|x - G(z)\|^2/n + \lambda\|z\|^2`), and :math:`\Sigma_d` is the
    maximum-likelihood variance of the residuals :math:`r = x - G(\hat z)`: the mean of
    :math:`r^2` over all images and pixels (scalar), or over images per pixel (``per_pixel``),
    floored at ``min_variance``.

    Use images the prior was **not** trained on (a held-out split of its data): on training images
    the generator's residuals are smaller than on new images.

    Fitting :math:`\hat z` to the very pixels whose residuals are measured (``folds=1``) biases
    the variance low: :math:`\hat z` absorbs part of :math:`d`. For a linear generator with
    :math:`d_z` latents and :math:`n` pixels the expected estimate is
    :math:`s\,(n - d_z)/n`. With ``folds = k >= 2`` (default 2) the pixels are split at random
    into ``k`` sets; :math:`\hat z` is fitted on the other ``k - 1`` sets
    (:class:`~genprior.operators.Inpaint`) and the residual measured on the held-out set, so every
    pixel's residual is out of sample. That estimate is biased *high* instead, by the error of
    :math:`\hat z` (for a linear generator about :math:`s\,d_z/n_\text{fit}`), which errs on the
    side of wider intervals.

    Args:
        prior: a latent :class:`~genprior.priors.Prior`.
        x: held-out images of the prior's size (not checked against [0, 1], so that a linear test
            generator can be fitted).
        per_pixel: fit one variance per pixel (needs many images: each pixel's estimate has a
            relative standard error of about :math:`\sqrt{2/N}`) instead of one scalar.
        folds: ``1`` (in-sample residuals) or the number ``k >= 2`` of pixel folds.
        min_variance: floor of the fitted variance(s) (> 0).
        batch_size: images per :func:`~genprior.reconstruct.csgm.csgm` call (all at once when
            ``None``; every call holds ``batch_size * restarts`` latents).
        steps, lr, restarts, lam: options of :func:`~genprior.reconstruct.csgm.csgm`, solved
            with Adam (``lam`` in its reference units; 0 = maximum likelihood of :math:`z` too).
        generator: source of the folds and of the random restarts.
        csgm_options: further keyword arguments of :func:`~genprior.reconstruct.csgm.csgm`
            (e.g. ``optimizer="lbfgs"`` with its own ``lr``).

    Returns:
        :class:`MisfitCovariance` whose :attr:`~MisfitCovariance.info` records how it was fitted.

    Shape:
        - x: ``(N, C, H, W)``; variance: ``()`` or ``(C, H, W)``

    Raises:
        ValueError: ``x`` of another size than the prior's, with NaN/inf; ``folds`` not an int in
            ``[1, H*W]``; ``min_variance <= 0``.

    Example:
        >>> from genprior.priors.linear import LinearGenerator
        >>> g = torch.Generator().manual_seed(0)
        >>> G = LinearGenerator(torch.randn(64, 2, generator=g), None, (1, 8, 8))
        >>> x = G.decode(torch.randn(50, 2, generator=g)) + 0.1 * torch.randn(50, 1, 8, 8,
        ...                                                                    generator=g)
        >>> misfit = fit_misfit(G, x, steps=300, lr=0.1, restarts=1, generator=g)
        >>> round(float(misfit.std()), 2)  # the true misfit std is 0.1
        0.1
    """
    check_latent_prior(prior)
    img_size = tuple(int(s) for s in prior.img_shape)
    check_shape(x, "x", "N C H W")
    if tuple(x.shape[1:]) != img_size:
        raise ValueError(f"x must have (C, H, W) = {img_size} (the prior's images), "
                         f"got {tuple(x.shape[1:])}")
    check_finite(x, "x")
    c, h, w = img_size
    if isinstance(folds, bool) or not isinstance(folds, int) or not 1 <= folds <= h * w:
        raise ValueError(f"folds must be an int in [1, H*W = {h * w}], got {folds!r}")
    check_positive(min_variance, "min_variance")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be None or an int >= 1, got {batch_size!r}")
    ref = _reference_tensor(prior)
    x = x.detach().to(device=ref.device, dtype=ref.dtype)
    options = {"steps": steps, "lr": lr, "restarts": restarts, "lam": lam, "optimizer": "adam",
               **(csgm_options or {})}
    if folds == 1:
        held_out = [torch.ones(h, w, dtype=torch.bool)]
        fit_on = held_out
    else:
        held_out = _fold_masks(h, w, folds, generator)
        fit_on = [~mask for mask in held_out]
    residual = torch.zeros_like(x)
    step = batch_size or x.shape[0]
    for test, train in zip(held_out, fit_on):
        A = Inpaint(img_size, train).to(ref.device)
        x_hat = torch.cat([csgm(A.A(part), A, prior, generator=generator, **options).x_hat
                           for part in x.split(step)])
        keep = test.to(ref.device).expand(c, h, w)
        residual = torch.where(keep, x - x_hat, residual)
    squares = residual.pow(2)
    variance = (squares.mean(0) if per_pixel else squares.mean()).clamp(min=min_variance)
    info = {"fitted_by": "fit_misfit", "prior": type(prior).__name__, "n_images": int(x.shape[0]),
            "img_size": list(img_size), "per_pixel": bool(per_pixel), "folds": folds,
            "min_variance": float(min_variance), "steps": steps, "lr": lr,
            "restarts": restarts, "lam": lam,
            "rms_residual": math.sqrt(float(squares.mean()))}
    return MisfitCovariance(variance.detach(), info)
