r"""A Gaussian denoiser :math:`D_\sigma`, and the score of the noised image density it gives.

:class:`Denoiser` is trained (``genprior train denoiser``, :mod:`genprior.training.denoiser`) to
minimise :math:`\mathbb E \|D_\sigma(x + \sigma n) - x\|^2` over high-resolution images
:math:`x`, :math:`n \sim \mathcal N(0, I)`, so that it approximates the MMSE estimate
:math:`D_\sigma(\tilde x) = \mathbb E[x \mid \tilde x]`. Tweedie's formula (Efron 2011;
Alain & Bengio 2014 for denoising autoencoders) then gives the score of the noised density
:math:`p_\sigma = p * \mathcal N(0, \sigma^2 I)`:

.. math::
    \nabla_{\tilde x} \log p_\sigma(\tilde x) = \frac{D_\sigma(\tilde x) - \tilde x}{\sigma^2},

which AffDG (:mod:`genprior.training.affgan`, ``--loss affdg``) follows to push the
super-resolution network's outputs towards high density (Sønderby et al. 2017).

A denoiser is a deterministic conditional model (its measurements are the noisy images
:math:`\tilde x`, its noise input is empty), so it is a
:class:`~genprior.priors.conditional_base.ConditionalPrior`: ``save_pretrained`` writes it and
:func:`genprior.load_prior` loads it like every prior.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genprior._random import make_generator
from genprior.priors._layers import ResBlock, conv3x3
from genprior.priors.conditional import init_weights_
from genprior.priors.conditional_base import ConditionalPrior, register_conditional_prior

__all__ = ["Denoiser", "tweedie_score"]


def tweedie_score(denoise: Callable[[Tensor], Tensor], x: Tensor, sigma: float) -> Tensor:
    r"""The score :math:`s(x) = (D_\sigma(x) - x) / \sigma^2` of the noised density
    :math:`p_\sigma` given by an MMSE Gaussian denoiser :math:`D_\sigma` (Tweedie's formula).

    For Gaussian data :math:`x \sim \mathcal N(\mu, c^2 I)` the MMSE denoiser is
    :math:`D_\sigma(x) = \mu + \frac{c^2}{c^2 + \sigma^2}(x - \mu)` and the score is that of
    :math:`\mathcal N(\mu, (c^2 + \sigma^2) I)`, :math:`(\mu - x) / (c^2 + \sigma^2)`.

    Args:
        denoise: :math:`D_\sigma`, images to images.
        x: where the score is evaluated.
        sigma: the noise std :math:`\sigma > 0` that ``denoise`` removes.

    Returns:
        :math:`s(x)`, the shape of ``x``.

    Shape:
        - x, output: ``(B, C, H, W)`` (any shape ``denoise`` keeps)

    Raises:
        ValueError: ``sigma`` not positive.

    Example:
        >>> x = torch.tensor([[1.0, 2.0]])
        >>> tweedie_score(lambda t: 0.5 * t, x, 1.0)   # mu = 0, c^2 = sigma^2 = 1: -x / 2
        tensor([[-0.5000, -1.0000]])
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return (denoise(x) - x) / sigma**2


@register_conditional_prior
class Denoiser(ConditionalPrior):
    r"""A residual convolutional Gaussian denoiser :math:`D_\sigma(\tilde x) = \tilde x +
    g(\tilde x) \approx \mathbb E[x \mid \tilde x]`, :math:`\tilde x = x + \sigma n`.

    :math:`g` is a convolution to ``width`` channels, ``n_blocks`` residual blocks (as in
    :class:`~genprior.priors.conditional.ConditionalGenerator`) and a convolution back to ``C``
    channels, at full resolution; the weights are initialised by
    :func:`~genprior.priors.conditional.init_weights_`, so a fresh denoiser is close to the
    identity. As a conditional prior its measurements are the noisy images (``meas_shape =
    img_shape``) and its noise input is empty (``latent_shape = (0,)``): :meth:`denoise`,
    ``model(y)`` and ``model.sample(y, n)`` (``n`` equal copies) draw nothing.

    Args:
        img_size: image shape ``(C, H, W)``.
        width: channels of the body.
        n_blocks: residual blocks.
        sigma: the noise std :math:`\sigma` (images in [0, 1]) it is trained to remove; used
            by :meth:`score`.

    Shape:
        - y (noisy images), output: ``(B, C, H, W)``

    Example:
        >>> import torch
        >>> model = Denoiser(img_size=(1, 8, 8), width=4, n_blocks=1, sigma=0.1)
        >>> x = torch.rand(2, 1, 8, 8)
        >>> model(x).shape, model.score(x).shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(self, *, img_size: tuple[int, int, int] | list[int] = (3, 64, 64),
                 width: int = 32, n_blocks: int = 4, sigma: float = 0.1) -> None:
        img_size = tuple(int(s) for s in img_size)
        if len(img_size) != 3 or min(img_size) < 1:
            raise ValueError(f"img_size must be (C, H, W) with positive sizes, got {img_size}")
        for name, value, low in (("width", width, 1), ("n_blocks", n_blocks, 0)):
            if int(value) < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not 0 < float(sigma) < float("inf"):
            raise ValueError(f"sigma must be positive and finite, got {sigma}")
        super().__init__()
        self.img_shape = self.meas_shape = img_size
        self.latent_shape = (0,)
        self.sigma = float(sigma)
        c = img_size[0]
        self.net = nn.Sequential(conv3x3(c, width), *[ResBlock(width) for _ in range(n_blocks)],
                                 nn.ReLU(inplace=True), conv3x3(width, c, small=True))
        self.reset_parameters(generator=make_generator(0))

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Re-draw the weights from ``generator`` (see
        :func:`~genprior.priors.conditional.init_weights_`)."""
        init_weights_(self.net, generator=generator)

    def generate(self, y: Tensor, eps: Tensor) -> Tensor:
        r""":math:`D_\sigma(y) = y + g(y)` (``eps`` is empty).

        Shape:
            - y, output: ``(B, C, H, W)``
            - eps: ``(B, 0)``
        """
        return y + self.net(y)

    def denoise(self, y: Tensor) -> Tensor:
        r""":math:`D_\sigma(y)`, ``y`` checked as by ``model(y)``, with the empty noise input given
        (nothing drawn).

        Shape:
            - y, output: ``(B, C, H, W)``
        """
        return self(y, y.new_empty(y.shape[0], 0))

    def score(self, x: Tensor) -> Tensor:
        r"""The score :math:`(D_\sigma(x) - x) / \sigma^2` of the noised image density at ``x``
        (:func:`tweedie_score`).

        Shape:
            - x, output: ``(B, C, H, W)``
        """
        return tweedie_score(self.denoise, x, self.sigma)
