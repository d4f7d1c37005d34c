"""Every operator against the same identities: adjointness, pseudo-inverse, autograd, I/O, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genprior.operators import (
    OPERATORS,
    SPEC_FORMS,
    BlockCS,
    Downsample,
    GaussianCS,
    Inpaint,
    Operator,
    StructuredCS,
    load_operator,
    make_operator,
)
from genprior.operators.block_cs import read_matrix
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
    # a (1, H, W) mask broadcast over the channels of a colour image, as deepinv's Inpainting
    "inpaint_broadcast_mask": lambda: Inpaint(
        (3, 9, 15), (torch.rand(1, 9, 15, generator=_gen(8)) < 0.5).float(), noise_std=0.1
    ),
    # padding on both sides (37 = 4*8 + 5, 31 = 3*8 + 7); every border block keeps >= 35 > m
    # pixels, so A stays surjective (tests/test_projection.py reaches any y)
    "block_cs": lambda: BlockCS((1, 37, 31), 8, m=12, seed=0, noise_std=0.1),
    "block_cs_orthonormal": lambda: BlockCS(
        (3, 11, 14), 4, m=3, kind="orthonormal", generator=_gen(6)
    ),
    "block_cs_given": lambda: BlockCS((2, 8, 9), 3, torch.randn(3, 9, generator=_gen(7))),
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


@pytest.mark.parametrize("shape", [(9, 15), (1, 9, 15), (1, 1, 9, 15), (3, 1, 1), (1, 1, 15)])
def test_inpaint_broadcast_mask_equals_expanded_mask(shape, tmp_path):
    mask = torch.rand(shape, generator=_gen(11)) < 0.6
    mask.view(-1)[0] = True
    expanded = mask.reshape(mask.shape[-3:] if mask.ndim == 4 else mask.shape).expand(3, 9, 15)
    op, ref = Inpaint((3, 9, 15), mask), Inpaint((3, 9, 15), expanded.clone())
    assert op.mask.shape == (3, 9, 15) and torch.equal(op.mask, ref.mask)
    assert op.m == int(expanded.sum())
    op64, ref64 = op.to(torch.float64), ref.to(torch.float64)
    torch.testing.assert_close(_dense(op64), _dense(ref64), rtol=0, atol=0)
    torch.testing.assert_close(_dense_dagger(op64), _dense_dagger(ref64), rtol=0, atol=0)
    # adjointness and A A+ A = A on a colour image, in closed form
    x = torch.randn(2, 3, 9, 15, generator=_gen(12), dtype=torch.float64)
    v = torch.randn(2, op.m, generator=_gen(13), dtype=torch.float64)
    torch.testing.assert_close(_dot(op64.A(x), v), _dot(x, op64.A_adjoint(v)), rtol=1e-12, atol=0)
    torch.testing.assert_close(op64.A(op64.A_dagger(op64.A(x))), op64.A(x), rtol=0, atol=0)
    torch.testing.assert_close(op64.A_dagger(op64.A(x)), x * expanded, rtol=0, atol=0)
    # the file stores the expanded (C, H, W) mask: the same format as before, so old files load
    op.save(tmp_path / "op.safetensors")
    loaded = load_operator(tmp_path / "op.safetensors")
    assert torch.equal(loaded.mask, ref.mask) and loaded.config == ref.config


def test_inpaint_agrees_with_deepinv_inpainting_on_a_broadcast_mask():
    from deepinv.physics import Inpainting

    mask = (torch.rand(1, 9, 15, generator=_gen(14)) < 0.5).float()
    x = torch.rand(2, 3, 9, 15, generator=_gen(15))
    ours = Inpaint((3, 9, 15), mask)
    torch.testing.assert_close(ours.A_adjoint(ours.A(x)), Inpainting((3, 9, 15), mask=mask).A(x))


def _ista_net_block_measurements(image, phi, block):
    """ISTA-Net's test protocol in plain numpy-style loops (``imread_CS_py`` / ``img2col_py`` of
    jianzhangcs/ISTA-Net-PyTorch): zero-pad the bottom/right, walk the blocks row by row, flatten
    each one row-major (``reshape([-1])``) and multiply by phi. Returns ``Phix``, blocks x m."""
    h, w = image.shape
    padded = image.new_zeros(-(-h // block) * block, -(-w // block) * block)
    padded[:h, :w] = image
    columns = []
    for top in range(0, padded.shape[0], block):
        for left in range(0, padded.shape[1], block):
            columns.append(padded[top : top + block, left : left + block].reshape(-1))
    return torch.stack(columns) @ phi.T


def test_block_cs_equals_blockwise_loop():
    """Closed form: every block of every channel, flattened row-major, times the matrix."""
    op = BlockCS((2, 37, 31), 5, m=7, seed=0).to(torch.float64)
    x = torch.rand(3, 2, 37, 31, dtype=torch.float64, generator=_gen(0))
    y = op.A(x)
    assert y.shape == (3, 2, 7, 8, 7)
    for b in range(3):
        for c in range(2):
            phix = _ista_net_block_measurements(x[b, c], op.matrix, 5)
            torch.testing.assert_close(y[b, c].flatten(1).T, phix, rtol=0, atol=1e-13)
    # for one channel it is the strided-convolution sampling layer of CSNet
    padded = F.pad(x, (0, 4, 0, 3))
    conv = F.conv2d(padded.flatten(0, 1)[:, None], op.matrix.reshape(7, 1, 5, 5), stride=5)
    torch.testing.assert_close(y.flatten(0, 1), conv, rtol=0, atol=1e-13)
    # the adjoint puts phi^T y back block by block
    v = torch.randn(1, *op.meas_shape, dtype=torch.float64, generator=_gen(1))
    expected = torch.zeros(2, 40, 35, dtype=torch.float64)
    for c in range(2):
        for i in range(8):
            for j in range(7):
                patch = (op.matrix.T @ v[0, c, :, i, j]).reshape(5, 5)
                expected[c, 5 * i : 5 * i + 5, 5 * j : 5 * j + 5] = patch
    torch.testing.assert_close(op.A_adjoint(v)[0], expected[:, :37, :31], rtol=0, atol=1e-13)
    # a matrix for column-major blocks (MATLAB im2col) converts as docs/operators.md says
    phi_col = torch.randn(7, 25, dtype=torch.float64, generator=_gen(2))
    phi_row = phi_col.reshape(7, 5, 5).transpose(1, 2).reshape(7, 25)
    col_major = BlockCS((1, 10, 5), 5, phi_row)
    image = x[0, :1, :10, :5]
    blocks = [image[0, 5 * i : 5 * i + 5].T.reshape(-1) for i in range(2)]  # column-major
    torch.testing.assert_close(col_major.A(image[None])[0, 0, :, :, 0].T,
                               torch.stack(blocks) @ phi_col.T, rtol=0, atol=1e-13)


def test_block_cs_pads_with_zeros():
    """A x equals the same block matrix applied to the zero-padded image; A^T y is its crop."""
    op = BlockCS((3, 37, 31), 5, m=6, seed=1).to(torch.float64)
    padded_op = BlockCS((3, 40, 35), 5, op.matrix)
    assert padded_op.meas_shape == op.meas_shape
    x = torch.rand(2, 3, 37, 31, dtype=torch.float64, generator=_gen(2))
    x_padded = F.pad(x, (0, 4, 0, 3))
    torch.testing.assert_close(op.A(x), padded_op.A(x_padded), rtol=0, atol=0)
    # any non-zero padding would change the measurements: the border blocks see the padding
    assert not torch.allclose(op.A(x), padded_op.A(F.pad(x, (0, 4, 0, 3), value=1.0)))
    y = torch.randn(2, *op.meas_shape, dtype=torch.float64, generator=_gen(3))
    torch.testing.assert_close(op.A_adjoint(y), padded_op.A_adjoint(y)[..., :37, :31])
    # no padding when the block divides the image
    exact = BlockCS((1, 10, 15), 5, m=4, seed=0)
    assert exact.meas_shape == (1, 4, 2, 3) and exact.surjective


def test_block_cs_dagger_exact_when_border_blocks_are_rank_deficient():
    """Border blocks of a 37 x 31 image with b = 5 keep 10, 5 and 2 pixels < m = 12: A is not
    surjective, and A^+ is still the Moore-Penrose inverse (pinv of the kept columns per block,
    not the crop of the padded operator's pinv)."""
    op = BlockCS((1, 37, 31), 5, m=12, seed=2).to(torch.float64)
    assert not op.surjective
    matrix, dagger = _dense(op), _dense_dagger(op)
    torch.testing.assert_close(dagger, torch.linalg.pinv(matrix), rtol=1e-8, atol=1e-10)
    for a, b in ((matrix @ dagger @ matrix, matrix), (dagger @ matrix @ dagger, dagger)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for sym in (matrix @ dagger, dagger @ matrix):
        torch.testing.assert_close(sym, sym.T, rtol=1e-10, atol=1e-10)
    identity = torch.eye(op.m, dtype=torch.float64)
    assert not torch.allclose(matrix @ dagger, identity, atol=1e-3)
    # the padded operator's blockwise pinv, cropped, is not the pseudo-inverse of A
    padded = BlockCS((1, 40, 35), 5, op.matrix)
    y = op.A(torch.rand(1, 1, 37, 31, dtype=torch.float64, generator=_gen(4)))
    assert not torch.allclose(padded.A_dagger(y)[..., :37, :31], op.A_dagger(y), atol=1e-3)


def test_block_cs_orthonormal_rows_are_the_gaussian_draw_orthonormalised():
    gauss = BlockCS((1, 12, 12), 4, m=6, seed=5).matrix.double()
    orth = BlockCS((1, 12, 12), 4, m=6, kind="orthonormal", seed=5).matrix.double()
    torch.testing.assert_close(orth @ orth.T, torch.eye(6, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    # Gram-Schmidt: gauss = L orth with L lower triangular, positive diagonal
    lower = gauss @ orth.T
    torch.testing.assert_close(lower.triu(1), torch.zeros(6, 6, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    assert bool((lower.diagonal() > 0).all())
    assert abs(float(gauss.var()) * 6 - 1) < 0.25  # entries N(0, 1/m)
    # without padding and with orthonormal rows, A^+ = A^T (up to float32 rounding)
    op = BlockCS((2, 12, 8), 4, m=6, kind="orthonormal", seed=5)
    y = torch.randn(2, *op.meas_shape, generator=_gen(5))
    torch.testing.assert_close(op.A_dagger(y), op.A_adjoint(y), rtol=1e-5, atol=1e-5)


def test_block_cs_reads_npy_and_safetensors_files(tmp_path):
    from safetensors.torch import save_file

    phi = torch.randn(4, 9, dtype=torch.float64, generator=_gen(0))
    np_path, st_path = tmp_path / "phi.npy", tmp_path / "phi.safetensors"
    np.save(np_path, phi.numpy())
    save_file({"phi": phi.float(), "other": torch.zeros(2)}, str(st_path))
    op = BlockCS.from_file(np_path, (1, 8, 7))
    assert op.block == 3 and op.matrix.dtype == torch.float32
    assert op.config == {"img_size": [1, 8, 7], "block": 3, "m": 4, "kind": "given",
                         "noise_std": 0.0, "seed": None}
    torch.testing.assert_close(op.matrix, phi.float())
    assert torch.equal(BlockCS.from_file(np_path, (1, 8, 7), dtype=torch.float64).matrix, phi)
    assert torch.equal(BlockCS((1, 8, 7), 3, str(np_path)).matrix, op.matrix)  # a path argument
    assert torch.equal(BlockCS.from_file(st_path, (1, 8, 7), key="phi").matrix, op.matrix)
    with pytest.raises(ValueError, match="pass key="):
        read_matrix(st_path)
    with pytest.raises(ValueError, match="has no 'nope'"):
        read_matrix(st_path, key="nope")
    spec_op = make_operator(f"block_cs:3:{np_path}", (1, 8, 7), noise_std=0.1)
    assert torch.equal(spec_op.matrix, op.matrix) and spec_op.noise_std == 0.1
    # a file-loaded operator saves its matrix and loads without the file
    op.save(tmp_path / "op.safetensors")
    np_path.unlink()
    loaded = load_operator(tmp_path / "op.safetensors")
    assert loaded.config == op.config and torch.equal(loaded.matrix, op.matrix)
    x = torch.rand(2, 1, 8, 7, generator=_gen(1))
    assert torch.equal(loaded.A(x), op.A(x))


def test_block_cs_reads_matlab_files(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    phi = np.asfortranarray(np.random.default_rng(0).standard_normal((5, 16)))  # as MATLAB
    path = tmp_path / "phi_0_30_16.mat"
    scipy_io.savemat(path, {"phi": phi})
    op = BlockCS.from_file(path, (1, 9, 10), dtype=torch.float64)
    assert op.block == 4 and op.meas_shape == (1, 5, 3, 3)
    assert torch.equal(op.matrix, torch.from_numpy(np.ascontiguousarray(phi)))
    assert torch.equal(make_operator(f"block_cs:4:{path}", (1, 9, 10)).matrix, op.matrix.float())
    x = torch.rand(1, 1, 9, 10, dtype=torch.float64, generator=_gen(0))
    phix = _ista_net_block_measurements(x[0, 0], op.matrix, 4)
    torch.testing.assert_close(op.A(x)[0, 0].flatten(1).T, phix, rtol=0, atol=1e-13)
    scipy_io.savemat(tmp_path / "two.mat", {"phi": phi, "Qinit": phi.T})
    with pytest.raises(ValueError, match=r"\['Qinit', 'phi'\]; pass key="):
        read_matrix(tmp_path / "two.mat")
    assert BlockCS.from_file(tmp_path / "two.mat", (1, 9, 10), key="phi").m == op.m


def test_block_cs_errors(tmp_path):
    with pytest.raises(ValueError, match="1 <= m <= block\\*\\*2 = 9"):
        BlockCS((1, 8, 8), 3, m=10, seed=0)
    with pytest.raises(ValueError, match="needs m"):
        BlockCS((1, 8, 8), 3, seed=0)
    with pytest.raises(TypeError, match="m must be an int"):
        BlockCS((1, 8, 8), 3, m=2.0, seed=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        BlockCS((1, 8, 8), 3, m=2, kind="uniform", seed=0)
    with pytest.raises(ValueError, match="block must be an int >= 1"):
        BlockCS((1, 8, 8), 0, m=1, seed=0)
    with pytest.raises(ValueError, match="9 columns"):
        BlockCS((1, 8, 8), 3, torch.randn(2, 8))
    with pytest.raises(ValueError, match="m=3 but the matrix has 2 rows"):
        BlockCS((1, 8, 8), 3, torch.randn(2, 9), m=3)
    with pytest.raises(ValueError, match="full row rank"):
        BlockCS((1, 8, 8), 3, torch.ones(2, 9))
    with pytest.raises(ValueError, match="non-finite"):
        BlockCS((1, 8, 8), 3, torch.full((2, 9), float("nan")))
    with pytest.raises(ValueError, match="seed and generator"):
        BlockCS((1, 8, 8), 3, torch.randn(2, 9), seed=0)
    with pytest.raises(ValueError, match="applies to drawn matrices"):
        BlockCS((1, 8, 8), 3, torch.randn(2, 9), kind="orthonormal")
    with pytest.raises(TypeError, match="matrix must be"):
        BlockCS((1, 8, 8), 3, [[1.0] * 9])
    np.save(tmp_path / "wide.npy", np.ones((2, 10)))
    with pytest.raises(ValueError, match="not a square number"):
        BlockCS.from_file(tmp_path / "wide.npy", (1, 8, 8))
    (tmp_path / "phi.txt").write_text("1 2")
    with pytest.raises(ValueError, match="unknown matrix file type"):
        read_matrix(tmp_path / "phi.txt")
    with pytest.raises(FileNotFoundError, match="matrix file not found"):
        BlockCS((1, 8, 8), 3, tmp_path / "missing.npy")


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
    for bad in ((8, 7), (2, 8, 8), (4, 8, 8), (3, 8, 8, 1), (2, 3, 8, 8), (1, 1, 3, 8, 8)):
        with pytest.raises(ValueError, match=r"mask must have shape broadcastable to \(C, H, W\)"):
            Inpaint((3, 8, 8), torch.ones(bad))
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
        ("block_cs:4:5", BlockCS, (3, 5, 4, 2)),
        ("block_cs:5:3:orthonormal", BlockCS, (3, 3, 4, 2)),
        ("block_cs:3:9:gaussian", BlockCS, (3, 9, 6, 3)),
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
        "block_cs:4",
        "block_cs:x:5",
        "block_cs:4:five",
        "block_cs:4:5:uniform",
        "block_cs:4:5:gaussian:1",
    ],
)
def test_make_operator_bad_spec(spec):
    with pytest.raises(ValueError, match="valid forms") as info:
        make_operator(spec, (1, 8, 8))
    for form in SPEC_FORMS:
        assert form in str(info.value)
