"""Bad and unusual inputs, one row per case: the call, the error it must raise and the words its
message must contain. Covers non-finite numbers, diverging solvers and wrong data types; the
command-line cases live in the CLI table below the API table."""

import deepinv
import pytest
import torch

from genprior.metrics import mse_per_pixel, psnr, ssim
from genprior.priors.linear import LinearGenerator
from genprior.reconstruct import csgm, lasso, sparse_gen
from genprior.sampling import langevin

IMG = (1, 4, 3)
N_PIX, D, M = 12, 3, 6


class _NaNAbove(LinearGenerator):
    """A linear generator that returns NaN images where z[:, 0] > 100 (a diverging region)."""

    def decode(self, z):
        x = super().decode(z)
        bad = (z[:, 0] > 100).view(-1, 1, 1, 1)
        return torch.where(bad, torch.full_like(x, float("nan")), x)


def _problem():
    g = torch.Generator().manual_seed(0)
    G = _NaNAbove(torch.randn(N_PIX, D, generator=g, dtype=torch.float64), None, IMG)
    A = deepinv.physics.CompressedSensing(m=M, img_size=IMG, rng=torch.Generator().manual_seed(1),
                                          dtype=torch.float64)
    y = A.A(G.decode(torch.randn(2, D, generator=g, dtype=torch.float64)))
    return G, A, y


def _nan_z_init(G, A, y):
    z = torch.zeros(2, 1, D, dtype=torch.float64)
    z[1, 0, 1] = float("nan")
    return csgm(y, A, G, restarts=1, steps=2, z_init=z)


def _all_restarts_diverge(G, A, y):
    z = torch.zeros(2, 2, D, dtype=torch.float64)
    z[1, :, 0] = 1000.0  # both restarts of image 1 start in the NaN region
    return csgm(y, A, G, restarts=2, steps=3, z_init=z)


API_CASES = [
    # (id, call, exception, words in the message)
    ("csgm lam=inf", lambda G, A, y: csgm(y, A, G, lam=float("inf"), steps=1), ValueError,
     "lam must be finite"),
    ("csgm lam=nan", lambda G, A, y: csgm(y, A, G, lam=float("nan"), steps=1), ValueError, "lam"),
    ("csgm lr=inf", lambda G, A, y: csgm(y, A, G, lr=float("inf"), steps=1), ValueError,
     "lr must be finite"),
    ("csgm z_init NaN", _nan_z_init, ValueError, "z_init contains 1 non-finite"),
    ("csgm every restart diverges", _all_restarts_diverge, ValueError,
     "every restart diverged"),
    ("sparse-gen lam_nu=inf", lambda G, A, y: sparse_gen(y, A, G, lam_nu=float("inf"), steps=1),
     ValueError, "lam_nu must be finite"),
    ("sparse-gen unknown option", lambda G, A, y: sparse_gen(y, A, G, step=3), TypeError,
     "unexpected keyword"),
    ("csgm complex y", lambda G, A, y: csgm(y.to(torch.complex128), A, G, steps=1), TypeError,
     "y is complex"),
    ("lasso alpha=inf", lambda G, A, y: lasso(y, A, alpha=float("inf")), ValueError,
     "alpha must be finite"),
    ("langevin step_size=inf",
     lambda G, A, y: langevin(y, A, G, sigma=0.1, step_size=float("inf")), ValueError,
     "step_size must be finite"),
    ("langevin sigma=inf", lambda G, A, y: langevin(y, A, G, sigma=float("inf")), ValueError,
     "sigma must be finite"),
    ("langevin init NaN",
     lambda G, A, y: langevin(y, A, G, sigma=0.1, init=torch.full((2, D), float("nan"),
                                                                  dtype=torch.float64)),
     ValueError, "init contains"),
    ("langevin diverges",
     lambda G, A, y: langevin(y, A, G, sigma=0.01, step_size=10.0, method="ula", burn_in=50,
                              n_samples=5, generator=torch.Generator().manual_seed(0)),
     ValueError, "chains diverged"),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_api_bad_input(call, error, words):
    G, A, y = _problem()
    with pytest.raises(error, match=words):
        call(G, A, y)


def test_one_diverging_restart_is_not_chosen():
    G, A, y = _problem()
    z = torch.zeros(2, 2, D, dtype=torch.float64)
    z[:, 0, 0] = 1000.0  # restart 0 of every image diverges, restart 1 does not
    out = csgm(y, A, G, restarts=2, steps=3, z_init=z)
    assert out.best_restart.tolist() == [1, 1]
    assert torch.isfinite(out.x_hat).all()
    assert torch.isinf(out.restart_measurement_error[:, 0]).all()


_X = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))

METRIC_CASES = [
    ("psnr 0-255 floats with data_range 1",
     lambda: psnr(_X * 255, _X * 255, data_range=1.0), ValueError, "divide by 255"),
    ("mse 0-255 floats", lambda: mse_per_pixel(_X * 255, _X * 255), ValueError, "divide by 255"),
    ("ssim 0-255 floats", lambda: ssim(_X * 255, _X * 255, data_range=1.0), ValueError,
     "divide by 255"),
    ("psnr complex", lambda: psnr(_X.to(torch.complex64), _X.to(torch.complex64), data_range=1.0),
     TypeError, "complex"),
]


@pytest.mark.parametrize("call, error, words", [c[1:] for c in METRIC_CASES],
                         ids=[c[0] for c in METRIC_CASES])
def test_metric_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_metrics_accept_the_documented_ranges():
    assert torch.isinf(psnr(_X, _X, data_range=1.0)).all()
    x255 = _X * 255
    assert torch.isinf(psnr(x255, x255, data_range=255.0)).all()
    xpm = 2 * _X - 1
    assert float(mse_per_pixel(xpm, xpm).max()) == 0.0
