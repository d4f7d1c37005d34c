r"""Back-projection: move an estimate onto (or towards) the measurements' affine set.

.. math::
    x_{\rm BP} = x + A^\top (A A^\top + \varepsilon I)^{-1} (y - A x),

which for :math:`\varepsilon = 0` is :math:`x + A^\dagger(y - Ax)`, the orthogonal projection of
:math:`x` onto :math:`\{x : Ax = y\}` (Abu Hussein, Tirer and Giryes 2020, IAGAN, stage 3). For
noisy :math:`y` the exact projection also copies the noise into the image; the regularised form
(:math:`\varepsilon > 0`, of the order of the noise variance times :math:`\|A\|^2`) trades
consistency for less noise.
"""

from __future__ import annotations

import torch
from deepinv.optim.utils import conjugate_gradient
from torch import Tensor

from genprior._checks import check_positive
from genprior._physics import forward

__all__ = ["back_project"]


@torch.no_grad()
def back_project(x: Tensor, y: Tensor, A, *, eps: float = 0.0, max_iter: int = 200,
                 tol: float | None = None) -> Tensor:
    r""":math:`x + A^\top (A A^\top + \varepsilon I)^{-1}(y - A x)`.

    With ``eps = 0`` this uses ``A.A_dagger`` (exact for every genprior operator; deepinv's
    generic ``A_dagger`` solves least squares iteratively); with ``eps > 0`` the
    :math:`m \times m` system is solved by conjugate gradients (deepinv's
    ``conjugate_gradient``) with ``A.A`` and ``A.A_adjoint`` only.

    Args:
        x: the estimate.
        y: the measurements.
        A: a linear operator (``A``, ``A_adjoint``, and ``A_dagger`` for ``eps = 0``).
        eps: :math:`\varepsilon \ge 0`.
        max_iter: CG iterations (``eps > 0``).
        tol: CG relative tolerance (``eps > 0``; default 1e-10 in float64, 1e-6 otherwise).

    Shape:
        - x: ``(B, C, H, W)``; y: ``(B, *meas_shape)``; output: ``(B, C, H, W)``

    Example:
        >>> import deepinv
        >>> A = deepinv.physics.Downsampling(img_size=(1, 4, 4), factor=2, filter=None)
        >>> x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> y = A.A(torch.ones(1, 1, 4, 4))
        >>> bool((A.A(back_project(x, y, A)) - y).abs().max() < 1e-5)
        True
    """
    check_positive(eps, "eps", allow_zero=True)
    residual = y - forward(A, x)
    if eps == 0:
        return x + A.A_dagger(residual)
    if tol is None:
        tol = 1e-10 if residual.dtype == torch.float64 else 1e-6
    # eps=tiny: deepinv's default 1e-8 in the step denominators biases small systems
    u = conjugate_gradient(lambda v: A.A(A.A_adjoint(v)) + eps * v, residual,
                           max_iter=max_iter, tol=tol, eps=torch.finfo(residual.dtype).tiny)
    return x + A.A_adjoint(u)
