r"""Split-conformal calibration of per-pixel intervals from any sampler.

A sampler's per-pixel intervals (centre :math:`c`, half-width :math:`h`, from its samples) are
rescaled by one factor :math:`\hat s` fitted on a calibration set of ``N`` images with known truth
:math:`x`: the scores :math:`|x - c| / h` of all :math:`NP` calibration pixels (:math:`P = CHW`)
are pooled and :math:`\hat s` is their :math:`k`-th smallest, :math:`k = \lceil (1 - \alpha)(N + 1)P
\rceil`. The calibrated interval is :math:`c \pm \hat s\,h`.

**The guarantee.** If the calibration images and a new image are exchangeable (drawn i.i.d. from
the same distribution), with their measurements and samples produced in the same *setting* (same
prior, operator, noise level and sampler with the same options), then the expected fraction of the
new image's pixels inside their calibrated intervals is at least :math:`1 - \alpha`:

.. math::
    \mathbb E\Big[\tfrac1P \#\{j : |x_j - c_j| \le \hat s\, h_j\}\Big] \ge 1 - \alpha,

and, for continuous scores, at most about :math:`1 - \alpha + 1/(N + 1)`. It is *marginal*: an
average over pixels and over images, not a statement about each pixel or each image (some pixels,
e.g. edges, are covered less, others more). It says nothing for another prior, operator, noise
level, sampler setting or image distribution: refit the factor there. (Proof: with
:math:`k` over the :math:`(N+1)P` pooled scores of all ``N + 1`` images, :math:`\hat s` is at least
their :math:`k`-th smallest, which covers at least :math:`k` of them; by exchangeability of the
images the new image's expected share is at least :math:`k / ((N + 1)P) \ge 1 - \alpha`.)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genprior._checks import check_finite, check_shape
from genprior._serialization import load_config, save_config
from genprior.sampling.summary import credible_interval

__all__ = ["SCORES", "ConformalScale", "conformal_scores", "fit_conformal", "interval_base"]

#: how a sampler's intervals are built before scaling: ``"interval"`` = the central
#: ``level`` credible interval of the samples (midpoint ± half its width; factor 1 gives the
#: credible interval itself), ``"std"`` = sample mean ± sample standard deviation
SCORES = ("interval", "std")
_FORMAT = "genprior_conformal"


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return float(level)


def _check_samples(samples: Tensor) -> None:
    check_shape(samples, "samples", "S B C H W")
    if samples.shape[0] < 2:
        raise ValueError(f"samples must hold at least 2 samples per image, got {samples.shape[0]}")
    check_finite(samples, "samples")


def interval_base(samples: Tensor, *, level: float = 0.9, score: str = "interval",
                  ) -> tuple[Tensor, Tensor]:
    r"""The centre :math:`c` and half-width :math:`h` of every pixel's uncalibrated interval.

    Args:
        samples: a sampler's samples.
        level: credible level of the ``"interval"`` base.
        score: one of :data:`SCORES`.

    Returns:
        ``(centre, halfwidth)``.

    Shape:
        - samples: ``(S, B, C, H, W)``, ``S >= 2``
        - outputs: ``(B, C, H, W)`` each
    """
    level = _check_level(level)
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    _check_samples(samples)
    if score == "std":
        return samples.mean(0), samples.std(0, correction=1)
    lo, hi = credible_interval(samples, level=level)
    return 0.5 * (lo + hi), 0.5 * (hi - lo)


def conformal_scores(x: Tensor, samples: Tensor, *, level: float = 0.9,
                     score: str = "interval") -> Tensor:
    r"""Per-pixel scores :math:`|x - c| / h` (0 where :math:`x = c` and :math:`h = 0`,
    ``inf`` where only :math:`h = 0`).

    Args:
        x: the true images.
        samples: a sampler's samples for their measurements.
        level: credible level of the ``"interval"`` base.
        score: one of :data:`SCORES`.

    Shape:
        - x: ``(B, C, H, W)``; samples: ``(S, B, C, H, W)``
        - output: ``(B, C, H, W)``

    Example:
        >>> x = torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1)
        >>> samples = torch.tensor([[0.0, 0.0], [2.0, 4.0]]).reshape(2, 2, 1, 1, 1)
        >>> conformal_scores(x, samples, score="std").flatten()  # |x - mean| / std
        tensor([0.0000, 0.3536])
    """
    check_shape(x, "x", "B C H W")
    check_finite(x, "x")
    if tuple(samples.shape[1:]) != tuple(x.shape):
        raise ValueError(f"samples must have shape (S, {', '.join(map(str, x.shape))}) to match "
                         f"x, got {tuple(samples.shape)}")
    centre, half = interval_base(samples, level=level, score=score)
    err = (x - centre).abs()
    ratio = err / torch.where(half > 0, half, torch.ones_like(half))
    return torch.where(half > 0, ratio, torch.where(err > 0, math.inf, 0.0).to(err))


@dataclass
class ConformalScale:
    r"""A split-conformal factor for a sampler's per-pixel intervals, and the setting it holds for.

    The interval :math:`c \pm \mathrm{factor}\cdot h` (see :func:`interval_base`) covers, on
    average over the pixels of a new image from the calibration distribution, at least ``level``
    of them, **only** in the setting it was fitted in (see the module docstring): record that
    setting in ``setting`` and check it before use.

    Attributes:
        factor: :math:`\hat s`.
        level: the target coverage :math:`1 - \alpha` (and the credible level of the
            ``"interval"`` base).
        score: one of :data:`SCORES`.
        n_images: calibration images ``N``.
        n_pixels: pixels per image ``P``.
        setting: JSON-able description of the setting (prior, operator spec, noise, sampler and
            its options, data split).
    """

    factor: float
    level: float
    score: str = "interval"
    n_images: int = 0
    n_pixels: int = 0
    setting: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.level = _check_level(self.level)
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        self.factor = float(self.factor)
        if not (math.isfinite(self.factor) and self.factor >= 0):
            raise ValueError(f"factor must be finite and >= 0, got {self.factor}")
        try:
            json.dumps(self.setting)
        except (TypeError, ValueError) as e:
            raise ValueError(f"setting must be JSON-able: {e}") from e

    def apply(self, samples: Tensor) -> tuple[Tensor, Tensor]:
        """The calibrated per-pixel intervals ``(lower, upper)`` for new samples (of the same
        setting).

        Shape:
            - samples: ``(S, B, C, H, W)``, ``S >= 2``
            - outputs: ``(B, C, H, W)`` each
        """
        centre, half = interval_base(samples, level=self.level, score=self.score)
        return centre - self.factor * half, centre + self.factor * half

    def save(self, path: str | os.PathLike) -> None:
        """Write the factor, level, score, counts and setting as JSON (atomically)."""
        save_config(path, {"format": _FORMAT, **asdict(self)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> ConformalScale:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: naming the missing file.
            ValueError: a file that is not a genprior conformal scale.
        """
        data = load_config(path)
        if data.pop("format", None) != _FORMAT:
            raise ValueError(f"{Path(path)} is not a genprior conformal scale "
                             f"(no format {_FORMAT!r})")
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"{Path(path)} is not a genprior conformal scale: {e}") from e


def fit_conformal(
    x: Tensor,
    samples: Tensor,
    *,
    level: float = 0.9,
    score: str = "interval",
    setting: dict[str, Any] | None = None,
) -> ConformalScale:
    r"""Fit the split-conformal factor on calibration images (see the module docstring for the
    guarantee and when it applies).

    :math:`\hat s` is the :math:`k`-th smallest of the :math:`NP` pooled scores
    (:func:`conformal_scores`), :math:`k = \lceil \mathrm{level}\,(N + 1) P \rceil`: the
    finite-sample correction for a new image of :math:`P` pixels. Pixels of one image need not be
    independent, so the correction is one whole image: the expected coverage lies between
    ``level`` and about ``level + 1/(N + 1)`` (near ``level * (N + 1) / N`` when the pixel scores
    are independent), so use some 100 calibration images or more to keep the excess small.

    Args:
        x: the calibration images (truth), exchangeable with the images the factor will serve,
            and not used to build the sampler or the prior.
        samples: the sampler's samples for their measurements.
        level: target coverage :math:`1 - \alpha`, in ``(0, 1)``.
        score: one of :data:`SCORES`.
        setting: JSON-able description of the setting (prior, operator spec, noise, sampler).

    Returns:
        :class:`ConformalScale`.

    Shape:
        - x: ``(N, C, H, W)``; samples: ``(S, N, C, H, W)``

    Raises:
        ValueError: ``level`` outside ``(0, 1)``, shapes that do not match, NaN/inf, fewer
            than 2 samples, too few calibration images for ``level`` (:math:`k > NP`, i.e.
            :math:`N < \mathrm{level}/(1-\mathrm{level})`), or an infinite factor (too many
            pixels with zero spread but an error).

    Example:
        >>> x = torch.zeros(3, 1, 1, 2)
        >>> samples = torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1, 1).expand(2, 3, 1, 1, 2)
        >>> x = x + torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 0.2]).reshape(3, 1, 1, 2)
        >>> round(fit_conformal(x, samples, level=0.5, score="std").factor * 2**0.5, 6)  # 4th of 6
        1.0
    """
    level = _check_level(level)
    scores = conformal_scores(x, samples, level=level, score=score)
    n, p = x.shape[0], math.prod(x.shape[1:])
    k = math.ceil(level * (n + 1) * p)
    if k > n * p:
        raise ValueError(f"too few calibration images for level {level}: need "
                         f"N >= {math.ceil(level / (1 - level))}, got N = {n}")
    factor = float(scores.flatten().kthvalue(k).values)
    if not math.isfinite(factor):
        raise ValueError("the conformal factor is infinite: too many calibration pixels have "
                         "zero spread in the samples but a nonzero error")
    return ConformalScale(factor=factor, level=level, score=score, n_images=n, n_pixels=p,
                          setting=dict(setting or {}))
