r"""The interface of conditional generators :math:`x = f(y, \varepsilon)`, and their registry.

A conditional prior maps measurements ``y`` and noise :math:`\varepsilon \sim \mathcal N(0, I)`
to images: it is not a :class:`~genprior.priors.base.Prior` (no :math:`x = G(z)` to optimise
over, no ``decode(z)``), so the latent-space solvers and samplers do not take it. It shares
config capture and persistence (``save_pretrained`` / ``from_pretrained``) with the priors
through :class:`~genprior.priors.base.PretrainedMixin`, so :func:`genprior.load_prior` loads
both kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from genprior._checks import check_finite, check_positive, check_shape
from genprior._config import Registry
from genprior._random import randn
from genprior.priors.base import PretrainedMixin, draw_latent

__all__ = ["CONDITIONAL_PRIORS", "ConditionalPrior", "conditional_draws",
           "register_conditional_prior"]

#: every :class:`ConditionalPrior` class by class name (see :class:`~genprior._config.Registry`)
CONDITIONAL_PRIORS: Registry[type[ConditionalPrior]] = Registry("conditional prior")


def register_conditional_prior(cls: type[ConditionalPrior]) -> type[ConditionalPrior]:
    """Class decorator adding a conditional prior class to :data:`CONDITIONAL_PRIORS`.

    Raises:
        ValueError: if the name is already registered.
    """
    return CONDITIONAL_PRIORS.register(cls)


def conditional_draws(
    model: Callable[[Tensor, Tensor], Tensor], y: Tensor, n: int, eps_shape: Sequence[int], *,
    generator: torch.Generator | None = None, temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""``n`` outputs per input of a conditional generator ``model(y, eps)``, each with a fresh
    :math:`\varepsilon \sim \mathcal N(0, t^2 I)`, in one batched call.

    The one place where genprior draws the noise of a conditional generator:
    :meth:`ConditionalPrior.sample` and :func:`genprior.sampling.noise_draws` both call it, so
    the same generator state gives them the same draws.

    Args:
        model: called as ``model(y, eps)`` on ``n * B`` inputs (``y`` repeated ``n`` times).
        y: measurements of ``B`` inputs.
        n: outputs per input (checked by the callers).
        eps_shape: shape of one :math:`\varepsilon`.
        generator: source of the noise.
        temperature: :math:`t` (checked by the callers).

    Returns:
        ``(x, eps)``: the outputs and the noise that gave them, draw-major.

    Shape:
        - y: ``(B, *meas_shape)``
        - x: ``(n, B, C, H, W)``; eps: ``(n, B, *eps_shape)``
    """
    b, eps_shape = y.shape[0], tuple(int(s) for s in eps_shape)
    eps = temperature * randn((n * b, *eps_shape), generator=generator, device=y.device,
                              dtype=y.dtype)
    x = model(y.repeat(n, *([1] * (y.ndim - 1))), eps)
    return x.reshape(n, b, *x.shape[1:]), eps.reshape(n, b, *eps_shape)


class ConditionalPrior(PretrainedMixin, nn.Module):
    r"""A conditional generator :math:`x = f(y, \varepsilon)`, :math:`\varepsilon \sim \mathcal N(0, I)`.

    Subclasses set ``img_shape``, ``meas_shape`` and ``latent_shape`` (the shape of one
    :math:`\varepsilon`), implement :meth:`generate`, call ``super().__init__()`` and are
    registered with :func:`register_conditional_prior`; their constructor arguments are
    captured as :attr:`config` (see :class:`~genprior._config.ConfigMixin`).

    - ``model(y, eps=None, *, generator=None)``: one output per input;
    - ``model.sample(y, n, *, generator=None)``: ``n`` outputs per input;
    - ``model.sample_latent(B, generator=None)``: noise :math:`\varepsilon`.

    Shape:
        - y: ``(B, *meas_shape)``
        - eps: ``(B, *latent_shape)``
        - x: ``(B, C, H, W)``
    """

    registry = CONDITIONAL_PRIORS
    #: tells :func:`~genprior.priors.conditional.is_conditional` (duck-typed) the kinds apart
    conditional: ClassVar[bool] = True
    img_shape: tuple[int, int, int]
    meas_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]

    # ------------------------------------------------------------------ model
    def generate(self, y: Tensor, eps: Tensor) -> Tensor:
        """The model proper on checked ``y`` and ``eps`` (what subclasses implement).

        Shape:
            - y: ``(B, *meas_shape)``
            - eps: ``(B, *latent_shape)``
            - output: ``(B, C, H, W)``
        """
        raise NotImplementedError

    @property
    def latent_dim(self) -> int:
        """Number of noise entries per output."""
        return math.prod(self.latent_shape)

    def check_y(self, y: Tensor, name: str = "y") -> None:
        """Raise a clear error unless ``y`` is a finite float ``(B, *meas_shape)`` tensor."""
        check_shape(y, name, "B " + " ".join(map(str, self.meas_shape)))
        if not y.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {y.dtype}")
        check_finite(y, name)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw ``n`` noise inputs :math:`\varepsilon \sim \mathcal N(0, I)` on the model's
        device and dtype.

        Shape:
            output: ``(n, *latent_shape)``
        """
        return draw_latent(self, self.latent_shape, n, generator=generator)

    def forward(self, y: Tensor, eps: Tensor | None = None, *,
                generator: torch.Generator | None = None) -> Tensor:
        r"""One output per input, :math:`f(y, \varepsilon)`.

        Args:
            y: measurements.
            eps: noise :math:`\varepsilon`; drawn from ``generator`` when ``None``.
            generator: source of ``eps`` when it is not given.

        Shape:
            - y: ``(B, *meas_shape)``
            - eps: ``(B, *latent_shape)``
            - output: ``(B, C, H, W)``

        Raises:
            ValueError: ``y`` or ``eps`` has the wrong shape or non-finite values.
            TypeError: ``y`` is not a floating-point tensor.
        """
        self.check_y(y)
        if eps is None:
            eps = self.sample_latent(y.shape[0], generator=generator).to(y.dtype)
        check_shape(eps, "eps", f"{y.shape[0]} " + " ".join(map(str, self.latent_shape)))
        return self.generate(y, eps)

    def decode(self, y: Tensor, eps: Tensor | None = None) -> Tensor:
        """Alias of :meth:`forward` (it needs ``y`` besides the noise ``eps``)."""
        return self.forward(y, eps)

    @torch.no_grad()
    def sample(self, y: Tensor, n: int = 1, *,
               generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        r"""Draw ``n`` outputs per input, each with a fresh :math:`\varepsilon`.

        Args:
            y: measurements.
            n: samples per input.
            generator: source of the noise (same generator state, same samples).
            temperature: scale of the noise, :math:`\varepsilon \sim \mathcal N(0, t^2 I)`:
                1 is the training distribution; above 1 the draws spread further apart (the
                outputs stay consistent with ``y``), 0 gives one deterministic output.

        Returns:
            ``n`` outputs per input.

        Shape:
            - y: ``(B, *meas_shape)``
            - output: ``(n, B, C, H, W)``

        Raises:
            ValueError: ``n < 1``, a negative or non-finite ``temperature``, or a bad ``y``.
        """
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        check_positive(temperature, "temperature", allow_zero=True)
        self.check_y(y)
        return conditional_draws(self.forward, y, int(n), self.latent_shape, generator=generator,
                                 temperature=temperature)[0]
