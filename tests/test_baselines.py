"""Bases, batched FISTA Lasso (checked against scikit-learn), pseudo-inverse and bicubic."""

import deepinv
import numpy as np
import pytest
import torch

from genprior.operators.downsample import Downsample
from genprior.operators.gaussian_cs import GaussianCS
from genprior.reconstruct import bicubic, lasso, pinv
from genprior.reconstruct.bases import BASES, dct2, haar2, haar_levels


@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("size", [(2, 28, 28), (3, 16, 8), (1, 7, 5)])
def test_bases_are_orthonormal(name, size):
    basis = BASES[name]
    x = torch.randn(2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = torch.randn_like(x)
    c = basis.analysis(x)
    torch.testing.assert_close(basis.synthesis(c), x)
    torch.testing.assert_close(c.norm(), x.norm())
    # synthesis is the adjoint of analysis
    torch.testing.assert_close((c * v).sum(), (x * basis.synthesis(v)).sum())


def test_dct_matches_scipy():
    from scipy.fft import dctn

    x = torch.randn(2, 3, 9, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = dctn(x.numpy(), norm="ortho", axes=(-2, -1))
    np.testing.assert_allclose(dct2(x).numpy(), ref, atol=1e-12)


def test_haar_pyramid_known_coefficients():
    assert haar_levels(64, 64) == 6 and haar_levels(28, 28) == 2 and haar_levels(7, 8) == 0
    # a constant image has a single coefficient: mean * sqrt(H W) at the full-depth DC
    c = haar2(torch.full((1, 1, 64, 64), 0.5, dtype=torch.float64))
    assert c[0, 0, 0, 0] == pytest.approx(0.5 * 64)
    assert c.abs().sum() == pytest.approx(0.5 * 64)
    # one level on a 2x2 block: (a+b+c+d)/2, and the three differences
    c = haar2(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64))
    torch.testing.assert_close(c.abs(), torch.tensor([[[[5.0, 1.0], [2.0, 0.0]]]],
                                                     dtype=torch.float64))


@pytest.mark.parametrize("name", ["pixel", "dct", "wavelet"])
def test_fista_matches_sklearn_lasso(name):
    from sklearn.linear_model import Lasso

    img, m, alpha = (1, 4, 4), 10, 0.01
    g = torch.Generator().manual_seed(0)
    A = GaussianCS(m, img, normalize=False, seed=0).to(torch.float64)
    x = torch.rand(3, *img, generator=g, dtype=torch.float64)
    y = A.A(x) + 0.1 * torch.randn(3, m, generator=g, dtype=torch.float64)
    out = lasso(y, A, basis=name, alpha=alpha, steps=20000, tol=1e-14, clip=False, generator=g)
    # sklearn on X = A Psi^T: the same objective (1/(2m))||y - Xw||^2 + alpha ||w||_1
    basis = BASES[name]
    psi_t = basis.synthesis(torch.eye(16, dtype=torch.float64).reshape(16, *img)).reshape(16, -1)
    X = (A.matrix @ psi_t.T).numpy()
    for i in range(3):
        ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
        ref.fit(X, y[i].numpy())
        np.testing.assert_allclose(out.z_hat[i].reshape(-1).numpy(), ref.coef_, atol=1e-7)
        objective = 0.5 / m * np.sum((y[i].numpy() - X @ ref.coef_) ** 2) + alpha * np.abs(
            ref.coef_).sum()
        assert float(out.loss[i]) == pytest.approx(objective, rel=1e-9)
    torch.testing.assert_close(out.x_hat, basis.synthesis(out.z_hat))
    # "sum" units: alpha' = m * alpha gives the same minimiser
    out_sum = lasso(y, A, basis=name, alpha=m * alpha, steps=20000, tol=1e-14, clip=False,
                    loss_reduction="sum", generator=g)
    torch.testing.assert_close(out_sum.z_hat, out.z_hat, atol=1e-8, rtol=0)
    # the objective never increases by more than rounding along FISTA's (non-monotone) path
    assert out.history[-1].le(out.history[0]).all()


def test_lasso_recovers_sparse_image_and_clips():
    img = (1, 8, 8)
    A = GaussianCS(40, img, seed=1)
    x = torch.zeros(2, *img)
    x[0, 0, 2, 3], x[1, 0, 5, 5], x[1, 0, 1, 6] = 1.0, 0.7, 0.4
    out = lasso(A.A(x), A, basis="pixel", alpha=1e-4, steps=3000)
    assert float((out.x_hat - x).abs().max()) < 0.02
    assert out.x_hat.min() >= 0 and out.x_hat.max() <= 1
    assert out.history.shape[1] == 2 and out.history.shape[0] <= 3000


def test_pinv_exact_for_full_rank_cs():
    img = (1, 5, 5)
    A = GaussianCS(25, img, seed=0).to(torch.float64)
    x = torch.rand(2, *img, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = pinv(A.A(x), A)
    torch.testing.assert_close(out.x_hat, x)
    assert float(out.measurement_error.max()) < 1e-20
    # deepinv's own operator and generic A_dagger
    B = deepinv.physics.CompressedSensing(m=10, img_size=img, rng=torch.Generator().manual_seed(0))
    y = B.A(x.float())
    out = pinv(y, B, clip=False)
    torch.testing.assert_close(B.A(out.x_hat), y, atol=1e-4, rtol=1e-4)


def test_bicubic_constant_and_smooth_images():
    A = Downsample((1, 16, 16), 2, kernel="box")
    const = torch.full((1, 1, 16, 16), 0.3)
    out = bicubic(A.A(const), A)
    torch.testing.assert_close(out.x_hat, const)
    assert out.x_hat.shape == (1, 1, 16, 16) and out.history.shape == (0, 1)


def test_baseline_bad_inputs():
    A = GaussianCS(10, (1, 4, 4), seed=0)
    y = A.A(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="y must have shape"):
        lasso(y[:, :5], A)
    with pytest.raises(ValueError, match="non-finite"):
        pinv(y * float("nan"), A)
    with pytest.raises(ValueError, match="image-shaped"):
        bicubic(y, A)
    with pytest.raises(ValueError, match="basis"):
        lasso(y, A, basis="fourier")
    with pytest.raises(ValueError, match="img_size"):
        lasso(y, A, img_size=(1, 5, 5))
