"""Every operator against the same identities: adjointness, pseudo-inverse, autograd, I/O, devices."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genprior.operators import (
    OPERATORS,
    SPEC_FORMS,
    Downsample,
    GaussianCS,
    Inpaint,
    Operator,
    StructuredCS,
    load_operator,
    make_operator,
)
from genprior.operators.structured_cs import dct3, dct_ortho, idct3, idct_ortho


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# One registry of operator factories, on odd (and non-square) image sizes.
OPERATOR_FACTORIES = {
    "gaussian_cs": lambda: GaussianCS(300, (1, 37, 31), seed=0, noise_std=0.1),
    "gaussian_cs_unscaled": lambda: GaussianCS(100, (3, 9, 15), normalize=False, generator=_gen(1)),
    "structured_cs": lambda: StructuredCS(400, (1, 37, 31), seed=2, noise_std=0.05),
    "structured_cs_rgb": lambda: StructuredCS(150, (3, 9, 15), generator=_gen(3)),
    "downsample_box": lambda: Downsample((3, 21, 15), 3, noise_std=0.1),
    "downsample_bicubic": lambda: Downsample((3, 21, 15), 3, kernel="bicubic"),
    "downsample_bicubic_even": lambda: Downsample((2, 16, 12), 2, kernel="bicubic"),
    "downsample_bicubic_wrap": lambda: Downsample((1, 6, 6), 2, kernel="bicubic"),
    "inpaint_center": lambda: Inpaint.center_box((3, 9, 15), 5, noise_std=0.1),
    "inpaint_random": lambda: Inpaint.random((1, 37, 31), 0.3, generator=_gen(4)),
    "inpaint_channel_mask": lambda: Inpaint(
        (3, 9, 15), torch.rand(3, 9, 15, generator=_gen(5)) < 0.5
    ),
}


def test_registry_covers_every_operator_type():
    built = {type(make()).name for make in OPERATOR_FACTORIES.values()}
    assert built == set(OPERATORS)


def _dense(op: Operator) -> torch.Tensor:
    """The m x n matrix of A, materialised by applying A to the identity basis."""
    basis = torch.eye(op.n, dtype=torch.float64).reshape(op.n, *op.img_size)
    return op.A(basis).reshape(op.n, op.m).T


def _dense_dagger(op: Operator) -> torch.Tensor:
    basis = torch.eye(op.m, dtype=torch.float64).reshape(op.m, *op.meas_shape)
    return op.A_dagger(basis).reshape(op.m, op.n).T


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


@pytest.fixture(params=sorted(OPERATOR_FACTORIES))
def op(request) -> Operator:
    return OPERATOR_FACTORIES[request.param]()


@pytest.fixture
def op64(op) -> Operator:
    return op.to(torch.float64)


class TestOperator:
    def test_shapes(self, op):
        x = torch.rand(2, *op.img_size, generator=_gen(0))
        y = op.A(x)
        assert y.shape == (2, *op.meas_shape)
        assert op.m == y[0].numel() and op.n == x[0].numel()
        assert op.A_adjoint(y).shape == x.shape
        assert op.A_dagger(y).shape == x.shape
        assert op.exact_dagger is True

    def test_adjointness(self, op64):
        x = torch.randn(3, *op64.img_size, generator=_gen(1), dtype=torch.float64)
        v = torch.randn(3, *op64.meas_shape, generator=_gen(2), dtype=torch.float64)
        lhs, rhs = _dot(op64.A(x), v), _dot(x, op64.A_adjoint(v))
        assert torch.allclose(lhs, rhs, rtol=1e-5, atol=0)
        assert ((lhs - rhs).abs() / lhs.abs()).max() < 1e-10

    def test_deepinv_adjointness_test(self, op64):
        err = op64.adjointness_test(dtype=torch.float64, num_samples=3)
        assert float(err) < 1e-5

    def test_pseudo_inverse_identities(self, op64):
        x = torch.randn(2, *op64.img_size, generator=_gen(3), dtype=torch.float64)
        y = torch.randn(2, *op64.meas_shape, generator=_gen(4), dtype=torch.float64)
        ax = op64.A(x)
        torch.testing.assert_close(op64.A(op64.A_dagger(ax)), ax, rtol=1e-10, atol=1e-10)
        x_dag = op64.A_dagger(y)
        torch.testing.assert_close(op64.A_dagger(op64.A(x_dag)), x_dag, rtol=1e-10, atol=1e-10)

    def test_dagger_equals_dense_pinv(self, op64):
        matrix = _dense(op64)
        expected = torch.linalg.pinv(matrix)
        torch.testing.assert_close(_dense_dagger(op64), expected, rtol=1e-8, atol=1e-10)

    def test_adjoint_equals_dense_transpose(self, op64):
        basis = torch.eye(op64.m, dtype=torch.float64).reshape(op64.m, *op64.meas_shape)
        adjoint = op64.A_adjoint(basis).reshape(op64.m, op64.n)  # rows = A^T e_i
        torch.testing.assert_close(adjoint, _dense(op64), rtol=1e-10, atol=1e-12)

    def test_batch_independence(self, op64):
        x = torch.rand(3, *op64.img_size, generator=_gen(5), dtype=torch.float64)
        y = op64.A(x)
        torch.testing.assert_close(op64.A(x[1:2]), y[1:2], rtol=1e-12, atol=1e-12)

    def test_gradcheck(self, op64):
        x = torch.randn(2, *op64.img_size, dtype=torch.float64, requires_grad=True)
        y = torch.randn(2, *op64.meas_shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(op64.A, (x,), fast_mode=True)
        assert torch.autograd.gradcheck(op64.A_adjoint, (y,), fast_mode=True)
        assert torch.autograd.gradcheck(op64.A_dagger, (y,), fast_mode=True)

    def test_save_load_round_trip(self, op, tmp_path):
        path = tmp_path / "op.safetensors"
        op.save(path)
        loaded = load_operator(path)
        assert type(loaded) is type(op)
        assert loaded.config() == op.config()
        assert loaded.state_dict().keys() == op.state_dict().keys()
        for key, value in op.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
        x = torch.rand(2, *op.img_size, generator=_gen(6))
        y = op.measure(x, generator=_gen(7))
        assert torch.equal(loaded.measure(x, generator=_gen(7)), y)
        assert torch.equal(loaded.A_dagger(y), op.A_dagger(y))
        if op.noise_std > 0:
            assert not torch.equal(y, op.A(x))

    def test_same_construction_same_operator(self, op, request):
        name = request.node.callspec.params["op"]
        again = OPERATOR_FACTORIES[name]()
        for key, value in op.state_dict().items():
            assert torch.equal(again.state_dict()[key], value), key

    def test_device_move(self, op, device):
        x = torch.rand(2, *op.img_size, generator=_gen(8))
        y = op.A(x)
        moved = op.to(device)
        y_dev = moved.A(x.to(device))
        assert y_dev.device.type == device.type
        torch.testing.assert_close(y_dev.cpu(), y, rtol=1e-4, atol=1e-4)
        x_dag = moved.A_dagger(y_dev).cpu()
        torch.testing.assert_close(x_dag, op.to("cpu").A_dagger(y), rtol=1e-4, atol=1e-4)

    def test_float64(self, op):
        op64 = op.to(torch.float64)
        for buf in op64.buffers():
            if buf.is_floating_point():
                assert buf.dtype == torch.float64
        x = torch.rand(2, *op.img_size, dtype=torch.float64, generator=_gen(9))
        for out in (op64.A(x), op64.A_dagger(op64.A(x)), op64.A_adjoint(op64.A(x))):
            assert out.dtype == torch.float64

    def test_rejects_wrong_image_shape(self, op):
        c, h, w = op.img_size
        for bad in (torch.zeros(1, c + 1, h, w), torch.zeros(1, c, h + 1, w), torch.zeros(c, h, w)):
            with pytest.raises(ValueError, match="x must have"):
                op.A(bad)
        with pytest.raises(TypeError, match="floating-point"):
            op.A(torch.zeros(1, c, h, w, dtype=torch.int64))

    def test_rejects_bad_y(self, op):
        y = torch.zeros(2, *op.meas_shape)
        y[0].view(-1)[0] = float("nan")
        with pytest.raises(ValueError, match="non-finite"):
            op.A_dagger(y)  # A_adjoint skips the value check: it is on the solvers' hot path
        for method in (op.A_adjoint, op.A_dagger):
            with pytest.raises(ValueError, match="y must have shape"):
                method(torch.zeros(2, op.m + 1))

    def test_measure_checks_range(self, op):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            op.measure(torch.full((1, *op.img_size), 2.0))


# ---------------------------------------------------------------------- per-operator facts
def test_dct_is_orthonormal_and_matches_definition():
    n = 7
    basis = torch.eye(n, dtype=torch.float64)
    matrix = dct_ortho(basis).T  # column j = DCT of e_j
    k, j = torch.meshgrid(*2 * [torch.arange(n, dtype=torch.float64)], indexing="ij")
    scale = ((2 - (k == 0).double()) / n).sqrt()
    expected = scale * torch.cos(torch.pi * k * (2 * j + 1) / (2 * n))
    torch.testing.assert_close(matrix, expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(idct_ortho(dct_ortho(basis)), basis, rtol=0, atol=1e-14)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=_gen(0))
    torch.testing.assert_close(idct3(dct3(x)), x, rtol=0, atol=1e-13)


def test_gaussian_cs_normalisation():
    m, n_side = 64, 32
    scaled = GaussianCS(m, (1, n_side, n_side), seed=0).matrix
    unscaled = GaussianCS(m, (1, n_side, n_side), normalize=False, seed=0).matrix
    # 65536 entries: the relative std of the variance estimate is sqrt(2/65536) = 0.55%.
    assert abs(float(scaled.var()) * m - 1) < 0.03
    assert abs(float(unscaled.var()) - 1) < 0.03
    assert abs(float(scaled.mean())) < 0.02 / m**0.5
    torch.testing.assert_close(unscaled / m**0.5, scaled)  # same seed, same draw


def test_seed_recorded_when_not_given():
    op = GaussianCS(5, (1, 4, 4))
    again = GaussianCS(5, (1, 4, 4), seed=op.config()["seed"])
    assert torch.equal(op.matrix, again.matrix)
    assert GaussianCS(5, (1, 4, 4), generator=_gen(0)).config()["seed"] is None


def test_gaussian_cs_dagger_cache_follows_matrix():
    op = GaussianCS(10, (1, 5, 5), seed=0).to(torch.float64)
    y = torch.randn(1, 10, dtype=torch.float64, generator=_gen(0))
    op.A_dagger(y)
    with torch.no_grad():
        op.matrix.copy_(GaussianCS(10, (1, 5, 5), seed=1).matrix)
    torch.testing.assert_close(op.A(op.A_dagger(y)), y, rtol=1e-10, atol=1e-10)


def test_structured_cs_rows_orthonormal():
    op = StructuredCS(100, (3, 9, 15), seed=0).to(torch.float64)
    matrix = _dense(op)
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(100, dtype=torch.float64))


def test_structured_cs_large_image_without_dense_matrix():
    op = StructuredCS(20000, (3, 256, 256), seed=0)
    assert max(b.numel() for b in op.buffers()) <= op.n
    y = torch.randn(1, 20000, generator=_gen(0))
    torch.testing.assert_close(op.A(op.A_adjoint(y)), y, rtol=1e-5, atol=1e-5)


def test_downsample_box_is_block_average():
    op = Downsample((1, 4, 6), 2)
    x = torch.arange(24.0).reshape(1, 1, 4, 6)
    expected = torch.tensor([[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]])
    torch.testing.assert_close(op.A(x)[0, 0], expected)
    torch.testing.assert_close(op.A_dagger(op.A(x))[0, 0, :2, :2], torch.full((2, 2), 3.5))


@pytest.mark.parametrize("factor", [2, 4])
def test_downsample_bicubic_matches_torch_antialiased_bicubic(factor):
    """Away from the (periodic) border, even factors reproduce torch's antialiased bicubic."""
    op = Downsample((2, 32, 24), factor, kernel="bicubic").to(torch.float64)
    x = torch.rand(1, 2, 32, 24, dtype=torch.float64, generator=_gen(0))
    expected = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True)
    border = 8 // factor
    torch.testing.assert_close(
        op.A(x)[..., border:-border, border:-border],
        expected[..., border:-border, border:-border],
        rtol=0,
        atol=1e-12,
    )


def test_downsample_bicubic_preserves_constants():
    op = Downsample((1, 12, 9), 3, kernel="bicubic")
    torch.testing.assert_close(op.A(torch.full((1, 1, 12, 9), 0.3)), torch.full((1, 1, 4, 3), 0.3))


def test_inpaint_measures_kept_pixels():
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]])
    op = Inpaint((2, 2, 3), mask)
    x = torch.arange(12.0).reshape(1, 2, 2, 3)
    torch.testing.assert_close(op.A(x), torch.tensor([[0.0, 2.0, 5.0, 6.0, 8.0, 11.0]]))
    torch.testing.assert_close(op.A_dagger(op.A(x)), x * mask)
    center = Inpaint.center_box((1, 9, 15), 5)
    assert center.m == 9 * 15 - 25
    assert not center.mask[0, 2:7, 5:10].any()
    assert Inpaint.random((3, 10, 10), 0.25, generator=_gen(0)).m == 3 * 25


def test_deepinv_prox_l2_agrees_with_closed_form():
    """deepinv's own CG-based prox_l2 runs on our operator and matches the dense closed form."""
    op = GaussianCS(30, (1, 7, 9), seed=0).to(torch.float64)
    z = torch.rand(2, 1, 7, 9, dtype=torch.float64, generator=_gen(1))
    y = torch.randn(2, 30, dtype=torch.float64, generator=_gen(2))
    gamma = torch.tensor(0.7, dtype=torch.float64)  # deepinv makes a float32 tensor of a float
    x = op.prox_l2(z, y, gamma, solver="CG", max_iter=200, tol=1e-10)
    matrix = _dense(op)
    lhs = torch.eye(op.n, dtype=torch.float64) + gamma * matrix.T @ matrix
    rhs = z.flatten(1).T + gamma * matrix.T @ y.T
    expected = torch.linalg.solve(lhs, rhs).T.reshape_as(z)
    # deepinv's CG divides by (residual + 1e-8), which limits its accuracy to ~1e-6.
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert float((x - expected).norm() / expected.norm()) < 1e-5


def test_deepinv_physics_forward_adds_noise():
    op = Downsample((1, 8, 8), 2, noise_std=0.5)
    x = torch.rand(4, 1, 8, 8, generator=_gen(0))
    residual = op(x) - op.A(x)
    assert 0.3 < float(residual.std()) < 0.7


# ---------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(ValueError, match="m"):
        GaussianCS(17, (1, 4, 4), seed=0)
    with pytest.raises(ValueError, match="m"):
        StructuredCS(17, (1, 4, 4), seed=0)
    with pytest.raises(ValueError, match="m"):
        GaussianCS(0, (1, 4, 4), seed=0)
    with pytest.raises(TypeError, match="m must be an int"):
        StructuredCS(2.5, (1, 4, 4), seed=0)
    with pytest.raises(ValueError, match="img_size"):
        GaussianCS(3, (4, 4), seed=0)
    with pytest.raises(ValueError, match="must divide"):
        Downsample((3, 21, 15), 2)
    with pytest.raises(ValueError, match="factor must be an int >= 2"):
        Downsample((3, 8, 8), 1)
    with pytest.raises(ValueError, match="kernel must be one of"):
        Downsample((3, 8, 8), 2, kernel="lanczos")
    with pytest.raises(ValueError, match="noise_std"):
        Downsample((3, 8, 8), 2, noise_std=-1.0)
    with pytest.raises(ValueError, match="mask must have shape"):
        Inpaint((3, 8, 8), torch.ones(8, 7))
    with pytest.raises(ValueError, match="only 0 and 1"):
        Inpaint((3, 8, 8), torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="keeps no entry"):
        Inpaint((3, 8, 8), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="hides the whole"):
        Inpaint.center_box((1, 8, 8), 8)
    with pytest.raises(ValueError, match="keep_fraction"):
        Inpaint.random((1, 8, 8), 1.5)
    with pytest.raises(TypeError, match="generator"):
        GaussianCS(3, (1, 4, 4), generator=0)


def test_dtype_and_device_mismatch_errors():
    op = GaussianCS(3, (1, 4, 4), seed=0)
    with pytest.raises(TypeError, match="op.to"):
        op.A(torch.zeros(1, 1, 4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="op.to"):
        op.A_dagger(torch.zeros(1, 3, dtype=torch.float64))


# ---------------------------------------------------------------------- factory
@pytest.mark.parametrize(
    "spec, cls, meas_shape",
    [
        ("gaussian_cs:20", GaussianCS, (20,)),
        ("gaussian_cs_unscaled:20", GaussianCS, (20,)),
        ("structured_cs:30", StructuredCS, (30,)),
        ("downsample:4", Downsample, (3, 4, 2)),
        ("downsample:2:bicubic", Downsample, (3, 8, 4)),
        ("downsample:2:box", Downsample, (3, 8, 4)),
        ("inpaint:center:4", Inpaint, (3 * (16 * 8 - 16),)),
        ("inpaint:random:0.5", Inpaint, (3 * 64,)),
    ],
)
def test_make_operator(spec, cls, meas_shape):
    op = make_operator(spec, (3, 16, 8), noise_std=0.1, seed=3)
    assert type(op) is cls
    assert op.meas_shape == meas_shape
    assert op.noise_std == 0.1
    again = make_operator(spec, (3, 16, 8), noise_std=0.1, seed=3)
    for key, value in op.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_make_operator_conventions():
    scaled = make_operator("gaussian_cs:20", (1, 8, 8), seed=0)
    unscaled = make_operator("gaussian_cs_unscaled:20", (1, 8, 8), seed=0)
    assert scaled.config()["normalize"] is True and unscaled.config()["normalize"] is False
    assert make_operator("downsample:2:bicubic", (1, 8, 8)).kernel == "bicubic"
    assert make_operator("downsample:2", (1, 8, 8)).kernel == "box"


@pytest.mark.parametrize(
    "spec",
    [
        "gaussian_cs",
        "gaussian_cs:abc",
        "blur:3",
        "downsample:2:lanczos",
        "inpaint:box:3",
        "inpaint:random:x",
        "structured_cs:1:2",
        "",
    ],
)
def test_make_operator_bad_spec(spec):
    with pytest.raises(ValueError, match="valid forms") as info:
        make_operator(spec, (1, 8, 8))
    for form in SPEC_FORMS:
        assert form in str(info.value)
