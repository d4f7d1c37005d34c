"""The affine projection x = f + A_dagger(y - A f) and the RangeConstrained wrapper."""

from __future__ import annotations

import pytest
import torch
from deepinv.physics import CompressedSensing
from test_operators import OPERATOR_FACTORIES, _gen
from torch import nn

from genprior.operators import Downsample, RangeConstrained, affine_projection

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


EXACT = sorted(name for name, make in OPERATOR_FACTORIES.items() if make().exact_dagger)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max())


@pytest.fixture(params=EXACT)
def name(request) -> str:
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projection_is_consistent(name, dtype):
    op = OPERATOR_FACTORIES[name]().to(dtype)
    f = torch.rand(3, *op.img_size, generator=_gen(0), dtype=dtype)
    x0 = torch.rand(3, *op.img_size, generator=_gen(1), dtype=dtype)
    y_range = op.A(x0)
    y_any = torch.randn(3, *op.meas_shape, generator=_gen(2), dtype=dtype)
    # Every registered operator is surjective, so any y is reachable (not only A x0).
    for y in (y_range, y_any):
        x = affine_projection(f, y, op)
        assert _rel(op.A(x), y) <= TOLERANCE[dtype]


def test_projection_idempotent_and_fixes_consistent_f(name):
    op = OPERATOR_FACTORIES[name]().to(torch.float64)
    f = torch.rand(2, *op.img_size, generator=_gen(3), dtype=torch.float64)
    y = torch.randn(2, *op.meas_shape, generator=_gen(4), dtype=torch.float64)
    x = affine_projection(f, y, op)
    assert _rel(affine_projection(x, y, op), x) <= 1e-12
    consistent = torch.rand(2, *op.img_size, generator=_gen(5), dtype=torch.float64)
    assert _rel(affine_projection(consistent, op.A(consistent), op), consistent) <= 1e-12
    # Both forms of the projection agree: A^+ y + (I - A^+ A) f.
    other = op.A_dagger(y) + f - op.A_dagger(op.A(f))
    assert _rel(x, other) <= 1e-12


def test_projection_gradient_is_null_space_projector(name):
    """d<w, x>/df = (I - A^+ A) w, since A^+ A is an orthogonal projector for the exact A^+."""
    op = OPERATOR_FACTORIES[name]().to(torch.float64)
    f = torch.rand(2, *op.img_size, generator=_gen(6), dtype=torch.float64, requires_grad=True)
    y = op.A(torch.rand(2, *op.img_size, generator=_gen(7), dtype=torch.float64))
    w = torch.randn(2, *op.img_size, generator=_gen(8), dtype=torch.float64)
    affine_projection(f, y, op).backward(w)
    expected = w - op.A_dagger(op.A(w))
    assert _rel(f.grad, expected) <= 1e-10


class LinearNet(nn.Module):
    """f = W vec(y) + b (+ eps): a tiny network for RangeConstrained."""

    def __init__(self, m: int, img_size: tuple[int, int, int]) -> None:
        super().__init__()
        self.img_size = img_size
        self.linear = nn.Linear(m, img_size[0] * img_size[1] * img_size[2])

    def forward(self, y: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        f = self.linear(y.flatten(1)).reshape(y.shape[0], *self.img_size)
        return f if eps is None else f + eps


def test_range_constrained_forward_and_gradient(name):
    op = OPERATOR_FACTORIES[name]()
    model = RangeConstrained(LinearNet(op.m, op.img_size), op)
    y = op.A(torch.rand(2, *op.img_size, generator=_gen(9)))
    eps = torch.randn(2, *op.img_size, generator=_gen(10))
    x = model(y, eps)
    assert _rel(op.A(x), y) <= 1e-5
    torch.testing.assert_close(x, affine_projection(model.network(y, eps), y, op))
    assert not torch.allclose(model(y), x)  # eps reaches the output (null-space part)
    x.square().sum().backward()
    grads = [p.grad for p in model.network.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_range_constrained_moves_with_to():
    model = RangeConstrained(LinearNet(12, (1, 4, 12)), Downsample((1, 4, 12), 2, kernel="bicubic"))
    model = model.to(torch.float64)
    assert model.operator.filter.dtype == torch.float64
    y = torch.rand(1, 1, 2, 6, dtype=torch.float64)
    assert model(y).dtype == torch.float64


def test_range_constrained_refuses_inexact_operators():
    class Approximate(Downsample):
        exact_dagger = False

    net = LinearNet(16, (1, 8, 8))
    with pytest.raises(ValueError, match="exact_dagger=False"):
        RangeConstrained(net, Approximate((1, 8, 8), 2))
    deepinv_op = CompressedSensing(m=16, img_size=(1, 8, 8), rng=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="allow_iterative_dagger"):
        RangeConstrained(net, deepinv_op)
    model = RangeConstrained(net, deepinv_op, allow_iterative_dagger=True)
    assert model.operator is deepinv_op
    with pytest.raises(TypeError, match="LinearPhysics"):
        RangeConstrained(net, nn.Identity())


def test_range_constrained_checks_network_output():
    op = Downsample((1, 8, 8), 2)
    model = RangeConstrained(LinearNet(16, (1, 8, 6)), op)
    with pytest.raises(ValueError, match="network output"):
        model(torch.rand(2, 1, 4, 4))


def test_affine_projection_errors():
    op = Downsample((1, 8, 8), 2)
    with pytest.raises(ValueError, match="batch size"):
        affine_projection(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 4, 4), op)
    with pytest.raises(ValueError, match="f must have shape"):
        affine_projection(torch.rand(1, 8, 8), torch.rand(1, 1, 4, 4), op)
    with pytest.raises(TypeError, match="LinearPhysics"):
        affine_projection(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 4, 4), nn.Identity())
    with pytest.raises(ValueError, match="non-finite"):
        affine_projection(torch.rand(1, 1, 8, 8), torch.full((1, 1, 4, 4), float("inf")), op)
