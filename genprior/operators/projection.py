r"""Affine projection onto the measurement-consistent set :math:`\{x : A x = y\}` (AffGAN)."""

from __future__ import annotations

from deepinv.physics import LinearPhysics
from torch import Tensor, nn

from genprior._checks import check_shape

__all__ = ["RangeConstrained", "affine_projection"]


def affine_projection(f: Tensor, y: Tensor, A: LinearPhysics) -> Tensor:
    r"""Project ``f`` onto the affine subspace of images consistent with ``y``.

    .. math::
        x = A^\dagger y + (I - A^\dagger A) f = f + A^\dagger (y - A f),

    computed in the second (equivalent, one :math:`A^\dagger` call) form. When
    :math:`A^\dagger` is the exact pseudo-inverse, :math:`A x = A A^\dagger y`, which equals ``y``
    whenever ``y`` is in the range of :math:`A` (always, for a surjective :math:`A`); the map
    :math:`f \mapsto x` is idempotent, leaves consistent ``f`` unchanged and is differentiable in
    ``f`` and ``y``. With deepinv's iterative :math:`A^\dagger` the result is only approximate.

    Args:
        f: images to project, e.g. a network output.
        y: measurements.
        A: the linear operator (any deepinv ``LinearPhysics``).

    Returns:
        the projected images, same shape as ``f``.

    Shape:
        - f: ``(B, C, H, W)``
        - y: ``(B, *meas_shape)``
        - output: ``(B, C, H, W)``

    Example:
        >>> import torch
        >>> from genprior.operators import Downsample
        >>> A = Downsample((1, 8, 8), 2)
        >>> y = torch.rand(3, 1, 4, 4)
        >>> x = affine_projection(torch.rand(3, 1, 8, 8), y, A)
        >>> bool(torch.allclose(A.A(x), y, atol=1e-6))
        True
    """
    if not isinstance(A, LinearPhysics):
        raise TypeError(f"A must be a deepinv LinearPhysics, got {type(A).__name__}")
    check_shape(f, "f", "B C H W")
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape[0] != f.shape[0]:
        raise ValueError(
            f"f and y must have the same batch size, got f {tuple(f.shape)} and y {tuple(y.shape)}"
        )
    return f + A.A_dagger(y - A.A(f))


class RangeConstrained(nn.Module):
    r"""A network whose output is projected onto :math:`\{x : A x = y\}` (AffGAN's affine layer).

    ``forward(y, eps)`` returns :math:`A^\dagger y + (I - A^\dagger A)\,\mathrm{network}(y, \varepsilon)`
    (see :func:`affine_projection`). The network therefore only learns the null-space
    component; the output is consistent with ``y`` exactly. The operator is registered as a
    submodule, so ``.to()`` moves it with the network (and its buffers are in ``state_dict``).

    Args:
        network: module called as ``network(y, eps)`` returning ``(B, C, H, W)`` images.
        operator: the measurement operator; its ``A_dagger`` must be exact
            (``exact_dagger = True``, as for all genprior operators).
        allow_iterative_dagger: accept a deepinv ``LinearPhysics`` without an ``exact_dagger``
            attribute (its iterative ``A_dagger`` makes the projection approximate).

    Raises:
        TypeError: if ``operator`` is not a deepinv ``LinearPhysics``.
        ValueError: if ``operator.exact_dagger`` is False, or missing and not allowed.

    Shape:
        - y: ``(B, *meas_shape)``
        - output: ``(B, C, H, W)``

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from genprior.operators import Downsample
        >>> class Up(nn.Module):
        ...     def forward(self, y, eps=None):
        ...         return nn.functional.interpolate(y, scale_factor=2)
        >>> model = RangeConstrained(Up(), Downsample((1, 8, 8), 2))
        >>> y = torch.rand(2, 1, 4, 4)
        >>> bool(torch.allclose(model.operator.A(model(y)), y, atol=1e-6))
        True
    """

    def __init__(
        self,
        network: nn.Module,
        operator: LinearPhysics,
        *,
        allow_iterative_dagger: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(operator, LinearPhysics):
            raise TypeError(
                f"operator must be a deepinv LinearPhysics, got {type(operator).__name__}"
            )
        exact = getattr(operator, "exact_dagger", None)
        if exact is False:
            raise ValueError(
                f"operator {type(operator).__name__} has exact_dagger=False: its A_dagger is not "
                "the exact pseudo-inverse, so the projection would not satisfy A x = y"
            )
        if exact is None and not allow_iterative_dagger:
            raise ValueError(
                f"operator {type(operator).__name__} does not declare exact_dagger; its A_dagger "
                "may be iterative and approximate. Pass allow_iterative_dagger=True to accept it"
            )
        self.network = network
        self.operator = operator

    def forward(self, y: Tensor, eps: Tensor | None = None) -> Tensor:
        """Project ``network(y, eps)`` onto the images consistent with ``y``."""
        f = self.network(y, eps)
        check_shape(f, "network output", "B C H W")
        img_size = getattr(self.operator, "img_size", None)
        if img_size is not None and tuple(f.shape[1:]) != tuple(img_size):
            raise ValueError(
                f"network output must have (C, H, W) = {tuple(img_size)} to match the operator, "
                f"got {tuple(f.shape[1:])}"
            )
        return affine_projection(f, y, self.operator)
