r"""Differentiable augmentation of a GAN discriminator's inputs (DiffAugment; Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training").

The same random transformation family :math:`T` is applied to the real and to the generated
images every time the discriminator sees them, in the discriminator's and in the generator's
step, each call drawing fresh randomness: D learns :math:`D(T(x))` vs :math:`D(T(G(z)))`, and
since :math:`T` is differentiable the generator's gradient flows through it. On small training
sets this keeps D from memorising the real images while G still learns the un-augmented
distribution (T is never applied to what G outputs as samples).

Policies, each drawn independently per image, on images in [0, 1] (the paper works in [-1, 1];
the amounts below are the paper's converted to [0, 1], where :math:`x_{[-1,1]} = 2x - 1`):

- ``"color"``: brightness :math:`x + (u - 1/2)/2` (the paper's :math:`\pm 0.5` in [-1, 1] is
  :math:`\pm 0.25` here), then saturation :math:`\bar x_c + 2u\,(x - \bar x_c)` (mean over
  channels) and contrast :math:`\bar x + (u + 1/2)(x - \bar x)` (mean over the image), with a
  fresh :math:`u \sim U[0, 1)` each. Saturation and contrast are affine-equivariant, so they are
  the paper's own.
- ``"translation"``: an integer shift of :math:`(\delta_y, \delta_x)`, each uniform in
  :math:`\{-s, \dots, s\}` with :math:`s = \mathrm{round}(\text{size}/8)`; pixels shifted in
  from outside take ``fill``.
- ``"cutout"``: a rectangle of ``(H // 2, W // 2)`` pixels (a square on square images) at a
  uniformly random position *inside* the image is set to ``fill``.

``fill`` is 0 (black in [0, 1]). The authors' implementation fills with 0 in [-1, 1] units,
i.e. mid grey; pass ``fill=0.5`` for that. It also lets its cutout square overlap the border (and
be clipped); here it always lies inside, so exactly ``(H // 2) * (W // 2)`` pixels are cut.
Nothing is clamped: augmented images may leave [0, 1], as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genprior._checks import check_shape
from genprior._random import rand

__all__ = ["POLICIES", "diff_augment", "parse_policy"]

#: the policies :func:`diff_augment` knows, in the paper's order
POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """The policies of a comma-separated string (``"color,translation"``) or a sequence,
    checked; blanks around names and empty items are ignored.

    Raises:
        ValueError: naming the unknown policy and the known ones.

    Example:
        >>> parse_policy("color, translation,cutout")
        ('color', 'translation', 'cutout')
        >>> parse_policy("")
        ()
    """
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    out = tuple(p.strip() for p in names if p.strip())
    for p in out:
        if p not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {p!r}; choose from "
                             f"{', '.join(POLICIES)} (comma-separated)")
    return out


def _uniform(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """``u ~ U[0, 1)`` of shape ``(B, 1, 1, 1)``, drawn in float32 (so the same seed gives the same
    draws at any dtype) on the generator's device, then cast and moved to ``x``'s."""
    u = rand((x.shape[0], 1, 1, 1), generator=generator, device=x.device, dtype=torch.float32)
    return u.to(x.dtype)


def _randint(low: int, high: int, n: int, x: Tensor,
             generator: torch.Generator | None) -> Tensor:
    """``n`` integers uniform in ``[low, high)`` drawn on the generator's device, on ``x``'s."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=device).to(x.device)


def _color(x: Tensor, generator: torch.Generator | None) -> Tensor:
    x = x + (_uniform(x, generator) - 0.5) / 2
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * _uniform(x, generator)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def _translation(x: Tensor, generator: torch.Generator | None, fill: float) -> Tensor:
    b, c, h, w = x.shape
    sh, sw = int(h / 8 + 0.5), int(w / 8 + 0.5)
    dy = _randint(-sh, sh + 1, b, x, generator)
    dx = _randint(-sw, sw + 1, b, x, generator)
    # output pixel (i, j) reads input pixel (i - dy, j - dx): content moves by (+dy, +dx)
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None]  # (B, W)
    out = torch.gather(x, 2, rows.clamp(0, h - 1)[:, None, :, None].expand(b, c, h, w))
    out = torch.gather(out, 3, cols.clamp(0, w - 1)[:, None, None, :].expand(b, c, h, w))
    inside = (((rows >= 0) & (rows < h))[:, None, :, None]
              & ((cols >= 0) & (cols < w))[:, None, None, :])
    return torch.where(inside, out, torch.full_like(out, fill))


def _cutout(x: Tensor, generator: torch.Generator | None, fill: float) -> Tensor:
    b, _, h, w = x.shape
    ch, cw = h // 2, w // 2
    top = _randint(0, h - ch + 1, b, x, generator)
    left = _randint(0, w - cw + 1, b, x, generator)
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    cut = (((r >= top[:, None]) & (r < top[:, None] + ch))[:, None, :, None]
           & ((c >= left[:, None]) & (c < left[:, None] + cw))[:, None, None, :])
    return torch.where(cut, torch.full_like(x, fill), x)


def diff_augment(x: Tensor, policy: str | Sequence[str], *, generator: torch.Generator | None,
                 fill: float = 0.0) -> Tensor:
    r"""DiffAugment :math:`T(x)`: the policies in order, each drawn independently per image
    from ``generator`` (see the module's docstring for the exact transformations).

    Differentiable in ``x`` (arithmetic, ``gather`` and ``where``; ``x`` is not modified).
    Draws are made in float32 on the generator's device (the CPU for ``None`` on a CPU ``x``),
    so a seed gives the same transformation on every device and dtype.

    Args:
        x: images in [0, 1].
        policy: names from :data:`POLICIES`, or one comma-separated string; empty: ``x``
            itself is returned and nothing is drawn.
        generator: the source of every random draw.
        fill: value of the pixels translated in from outside and of the cutout.

    Returns:
        the augmented images (not clamped to [0, 1]).

    Shape:
        - x, output: ``(B, C, H, W)``

    Raises:
        ValueError: an unknown policy (named), or ``x`` not ``(B, C, H, W)``.

    Example:
        >>> x = torch.ones(2, 3, 8, 8)
        >>> y = diff_augment(x, "cutout", generator=torch.Generator().manual_seed(0))
        >>> (y == 0).sum(dim=(1, 2, 3)).tolist()   # a 4x4 square in each of the 3 channels
        [48, 48]
        >>> diff_augment(x, "", generator=None) is x
        True
    """
    names = parse_policy(policy)
    if not names:
        return x
    check_shape(x, "x", "B C H W")
    for name in names:
        if name == "color":
            x = _color(x, generator)
        elif name == "translation":
            x = _translation(x, generator, fill)
        else:
            x = _cutout(x, generator, fill)
    return x
