r"""Inpainting: observe only the entries of ``x`` that a fixed binary mask keeps."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genprior._random import rand
from genprior.operators.base import Operator, OrthonormalRows, register_operator

__all__ = ["Inpaint"]


@register_operator
class Inpaint(OrthonormalRows, Operator):
    r"""Inpainting :math:`y = S\,\mathrm{vec}(x)`: the list of the ``k`` kept entries.

    :math:`S \in \{0, 1\}^{k \times n}` keeps the entries where ``mask`` is true (row-major over
    ``(C, H, W)``). As in deepinv's ``Inpainting`` (which multiplies ``x * mask``), the mask is
    broadcast to the image: a ``(H, W)`` or ``(1, H, W)`` mask applies to every channel, and the
    operator equals the one built from ``mask.expand(C, H, W)``, which is what it stores. ``y``
    holds only the kept entries, shape ``(B, k)``, rather than ``x * mask``: then :math:`A` is
    surjective, its rows are orthonormal and

    .. math::
        A A^\top = I_k, \qquad A^\dagger = A^\top

    (put ``y`` back in place, zeros elsewhere), so :math:`A A^\dagger = I` and any ``y`` is
    reached exactly; ``m = k`` is the true number of measurements. Use :meth:`A_adjoint` to view
    ``y`` as an image.

    Args:
        img_size: image shape ``(C, H, W)``.
        mask: bool or 0/1 tensor of a shape broadcastable to ``(C, H, W)``, such as ``(H, W)``,
            ``(1, H, W)`` or ``(C, H, W)`` (deepinv's ``(1, C, H, W)`` is accepted too); true =
            observed. At least one entry must be kept.
        noise_std: standard deviation of the additive Gaussian noise.

    Shape:
        - x: ``(B, C, H, W)``
        - y: ``(B, k)``, ``k = mask.expand(C, H, W).sum()``

    Example:
        >>> import torch
        >>> op = Inpaint.center_box((3, 8, 8), 4)
        >>> op.m
        144
        >>> x = torch.rand(1, 3, 8, 8)
        >>> x_hat = op.A_dagger(op.A(x))
        >>> bool((x_hat[..., 2:6, 2:6] == 0).all())
        True
        >>> Inpaint((3, 8, 8), op.mask[:1]).m  # a (1, H, W) mask, broadcast over channels
        144
    """

    name = "inpaint"
    config_ignore = ("mask",)  # a buffer, saved with the weights

    def __init__(
        self, img_size: tuple[int, int, int], mask: Tensor, *, noise_std: float = 0.0
    ) -> None:
        super().__init__(img_size, noise_std=noise_std)
        self.register_buffer("mask", self._check_mask(mask))
        self._rows_cache: tuple[tuple, Tensor] | None = None

    def _check_mask(self, mask: Tensor) -> Tensor:
        c, h, w = self.img_size
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        shape = tuple(mask.shape)
        if mask.ndim == 4 and shape[0] == 1:  # deepinv's batched (1, C, H, W) form
            mask = mask[0]
        try:
            fits = mask.ndim <= 3 and torch.broadcast_shapes(mask.shape, (c, h, w)) == (c, h, w)
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"mask must have shape broadcastable to (C, H, W) = ({c}, {h}, {w}), such as "
                f"(H, W), (1, H, W) or (C, H, W); got {shape}"
            )
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask must be boolean or contain only 0 and 1")
            mask = mask != 0
        mask = mask.expand(c, h, w).clone()
        if not bool(mask.any()):
            raise ValueError("mask keeps no entry; at least one must be observed")
        return mask

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Inpaint:
        """Rebuild from :attr:`config` with a placeholder mask (overwritten by the saved buffer)."""
        img_size = tuple(config["img_size"])
        return cls(img_size, torch.ones(img_size, dtype=torch.bool), noise_std=config["noise_std"])

    @classmethod
    def center_box(
        cls, img_size: tuple[int, int, int], size: int, *, noise_std: float = 0.0
    ) -> Inpaint:
        """Hide a centred ``size x size`` square (in every channel), observe the rest.

        Raises:
            ValueError: unless ``1 <= size`` and the square leaves some pixel visible.
        """
        _, h, w = (int(s) for s in img_size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        if size >= h and size >= w:
            raise ValueError(f"a centred {size}x{size} box hides the whole {h}x{w} image")
        mask = torch.ones(h, w, dtype=torch.bool)
        top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
        mask[top : top + size, left : left + size] = False
        return cls(img_size, mask, noise_std=noise_std)

    @classmethod
    def random(
        cls,
        img_size: tuple[int, int, int],
        keep_fraction: float,
        *,
        generator: torch.Generator | None = None,
        noise_std: float = 0.0,
    ) -> Inpaint:
        """Observe a uniformly random set of ``round(keep_fraction * H * W)`` pixels (all channels).

        Raises:
            ValueError: unless ``0 < keep_fraction <= 1`` and at least one pixel is kept.
        """
        _, h, w = (int(s) for s in img_size)
        if not 0 < keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        keep = round(keep_fraction * h * w)
        if keep < 1:
            raise ValueError(f"keep_fraction {keep_fraction} keeps no pixel of a {h}x{w} image")
        device = generator.device if generator is not None else "cpu"
        order = rand((h * w,), generator=generator, device=device).argsort()
        mask = torch.zeros(h * w, dtype=torch.bool, device=device)
        mask[order[:keep]] = True
        return cls(img_size, mask.reshape(h, w).cpu(), noise_std=noise_std)

    # ------------------------------------------------------------------ operator
    @property
    def meas_shape(self) -> tuple[int, ...]:
        return (self._rows().shape[0],)

    def _rows(self) -> Tensor:
        """Cached flat indices of the kept entries; recomputed when the mask changes or moves."""
        mask = self.mask
        key = (mask.device, mask.data_ptr(), mask._version)
        if self._rows_cache is None or self._rows_cache[0] != key:
            self._rows_cache = (key, mask.flatten().nonzero().squeeze(1))
        return self._rows_cache[1]

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        r"""Kept entries :math:`S\,\mathrm{vec}(x)` (``kwargs`` are ignored, for deepinv)."""
        self.check_x(x)
        self.check_like(x, "x")
        return x.flatten(1).index_select(1, self._rows())

    def A_adjoint(self, y: Tensor, **kwargs: Any) -> Tensor:
        r""":math:`S^\top y`: kept entries back in place, zeros elsewhere."""
        self.check_y(y)
        self.check_like(y, "y")
        full = y.new_zeros(y.shape[0], self.n).index_copy(1, self._rows(), y)
        return full.reshape(y.shape[0], *self.img_size)
