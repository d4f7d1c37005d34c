"""The misfit model x = G(z) + d, d ~ N(0, Sigma_d), against closed forms.

With a linear generator G(z) = Wz + b, z ~ N(0, I), Sigma_d = diag(v) and y = A x + sigma e, the
pair (x, y) is jointly Gaussian:
  prior      x ~ N(b, P),  P = W W^T + diag(v)
  posterior  x | y ~ N(b + P A^T S^-1 (y - A b),  P - P A^T S^-1 A P),  S = A P A^T + sigma^2 I
  latent     z | y ~ N(mu_z, Sigma_z),  Sigma_z = (I + M^T C^-1 M)^-1,
             mu_z = Sigma_z M^T C^-1 (y - A b),  M = A W,  C = sigma^2 I + A diag(v) A^T.
Monte-Carlo tolerances are 4 standard errors from the effective sample size (as in
tests/test_sampling.py); the linear algebra (fast paths, Matheron's affine map) is checked exactly.
"""

import math

import pytest
import torch

from genprior.operators import GaussianCS, Inpaint, StructuredCS
from genprior.priors.linear import LinearGenerator
from genprior.sampling import (
    MarginalCovariance,
    MisfitCovariance,
    WhitenedOperator,
    fit_misfit,
    langevin,
    marginal_covariance,
    matheron,
    misfit_posterior,
)

D, IMG, M, B, SIGMA = 3, (1, 2, 4), 5, 2, 0.3
N_PIX = math.prod(IMG)
F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, D, generator=g, dtype=F64)
    b = 0.5 * torch.randn(N_PIX, generator=g, dtype=F64)
    prior = LinearGenerator.from_weights(W, b, IMG)
    A = GaussianCS(M, IMG, normalize=False, seed=0).double()
    A.matrix.mul_(1 / 3)
    v = 0.05 + 0.25 * torch.rand(N_PIX, generator=g, dtype=F64)
    misfit = MisfitCovariance(v.reshape(IMG))
    x_true = prior.decode(torch.randn(B, D, generator=g, dtype=F64))
    x_true = x_true + (v.sqrt() * torch.randn(B, N_PIX, generator=g, dtype=F64)).reshape(B, *IMG)
    y = A.A(x_true) + SIGMA * torch.randn(B, M, generator=g, dtype=F64)
    return prior, A, misfit, y


def _closed_form(prior, A, misfit, y):
    """Posterior of x and of z, computed here from the matrices."""
    W, b, Am = prior.W, prior.b, A.matrix
    Sd = torch.diag(misfit.variance.flatten())
    eye_m = torch.eye(Am.shape[0], dtype=F64)
    P = W @ W.T + Sd
    S = Am @ P @ Am.T + SIGMA**2 * eye_m
    gain = P @ Am.T @ torch.linalg.inv(S)
    r = y - b @ Am.T
    mean_x = b + r @ gain.T
    cov_x = P - gain @ Am @ P
    Mat = Am @ W
    C = SIGMA**2 * eye_m + Am @ Sd @ Am.T
    prec_z = torch.eye(D, dtype=F64) + Mat.T @ torch.linalg.solve(C, Mat)
    cov_z = torch.linalg.inv(prec_z)
    mean_z = r @ torch.linalg.solve(C, Mat) @ cov_z
    return mean_x, 0.5 * (cov_x + cov_x.T), mean_z, 0.5 * (cov_z + cov_z.T)


def _check_moments(samples, n_eff, mean, cov):
    """Sample mean and covariance within 4 standard errors (Gaussian 4th moments)."""
    mean_err = (samples.mean(0) - mean).abs()
    assert (mean_err <= 4 * torch.sqrt(cov.diagonal() / n_eff)).all(), (mean_err, n_eff)
    cov_hat = torch.cov(samples.T)
    bound = 4 * torch.sqrt((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / n_eff)
    assert ((cov_hat - cov).abs() <= bound).all(), (cov_hat, cov, n_eff)


# ---------------------------------------------------------------- the marginal covariance
def test_dense_covariance_is_sigma2_plus_A_Sigma_At(problem):
    _, A, misfit, _ = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    Am = A.matrix
    expected = SIGMA**2 * torch.eye(M, dtype=F64) + Am @ torch.diag(misfit.variance.flatten()) @ Am.T
    assert C.structure == "dense" and C.cholesky.dtype == F64  # the operator's dtype
    torch.testing.assert_close(C.dense(), expected, rtol=1e-12, atol=1e-12)


def test_factor_identities(problem):
    _, A, misfit, _ = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    g = torch.Generator().manual_seed(5)
    r = torch.randn(4, M, generator=g, dtype=F64)
    dense = C.dense()
    torch.testing.assert_close(C.unwhiten(C.whiten(r)), r)
    torch.testing.assert_close(C.solve(r), torch.linalg.solve(dense, r.T).T)
    torch.testing.assert_close(C.logdet(), torch.linalg.slogdet(dense).logabsdet)
    u = torch.randn(4, M, generator=g, dtype=F64)
    torch.testing.assert_close((C.whiten(r) * u).sum(), (r * C.whiten_adjoint(u)).sum())
    draws = C.sample(40000, generator=g)
    _check_moments(draws, 40000, torch.zeros(M, dtype=F64), dense)


@pytest.mark.parametrize("case", ["inpaint-scalar", "inpaint-pixel", "structured-scalar",
                                  "gaussian-zero"])
def test_diagonal_paths_equal_the_dense_path(problem, case):
    g = torch.Generator().manual_seed(1)
    img = (2, 3, 5)  # odd sizes catch transpositions
    per_pixel = 0.1 + torch.rand(img, generator=g, dtype=F64)
    if case == "inpaint-scalar":
        A, misfit, kind = Inpaint.random(img, 0.6, generator=g), MisfitCovariance(
            torch.tensor(0.2, dtype=F64)), "scaled identity"
    elif case == "inpaint-pixel":
        A, misfit, kind = Inpaint.random(img, 0.6, generator=g), MisfitCovariance(per_pixel), \
            "diagonal"
    elif case == "structured-scalar":
        A, misfit, kind = StructuredCS(11, img, seed=0).double(), MisfitCovariance(
            torch.tensor(0.2, dtype=F64)), "scaled identity"
    else:
        A, misfit, kind = GaussianCS(11, img, seed=0).double(), MisfitCovariance(
            torch.zeros(img, dtype=F64)), "scaled identity"
    fast = marginal_covariance(A, misfit, sigma=SIGMA, dtype=F64)
    dense = marginal_covariance(A, misfit, sigma=SIGMA, dtype=F64, structured=False, chunk=4)
    assert fast.structure == kind and dense.structure == "dense"
    torch.testing.assert_close(fast.dense(), dense.dense(), rtol=1e-10, atol=1e-12)
    r = torch.randn(3, fast.m, generator=g, dtype=F64)
    for name in ("whiten", "solve"):
        torch.testing.assert_close(getattr(fast, name)(r), getattr(dense, name)(r), rtol=1e-10,
                                   atol=1e-12)
    torch.testing.assert_close(fast.logdet(), dense.logdet(), rtol=1e-10, atol=1e-12)


def test_whitened_operator(problem):
    _, A, misfit, _ = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    Aw = WhitenedOperator(A, C)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, *IMG, generator=g, dtype=F64)
    u = torch.randn(3, M, generator=g, dtype=F64)
    torch.testing.assert_close((Aw.A(x) * u).sum(), (x * Aw.A_adjoint(u)).sum())
    torch.testing.assert_close(Aw.A(Aw.A_dagger(u)), u)
    # the whitened data term is the Gaussian log-likelihood with covariance C
    r = A.A(x) - u
    torch.testing.assert_close(Aw.A(x) - C.whiten(u), C.whiten(r))
    torch.testing.assert_close(C.whiten(r).pow(2).sum(1),
                               (r * torch.linalg.solve(C.dense(), r.T).T).sum(1))


# ---------------------------------------------------------------- Matheron's rule
def _conditional(A, misfit, mu, y):
    """Dense p(x | y) for x ~ N(mu, diag(v)), y = A x + sigma e."""
    Am, Sd = A.matrix, torch.diag(misfit.variance.flatten())
    S = Am @ Sd @ Am.T + SIGMA**2 * torch.eye(M, dtype=F64)
    gain = Sd @ Am.T @ torch.linalg.inv(S)
    mean = mu.flatten(1) + (y - mu.flatten(1) @ Am.T) @ gain.T
    cov = Sd - gain @ Am @ Sd
    return mean, 0.5 * (cov + cov.T)


def test_matheron_is_exactly_the_conditional(problem):
    # Matheron's rule is affine in its noise: x = x0 + K (eps_1, eps_2). Feed unit noise vectors
    # to read K off, then K K^T must be the conditional covariance and x0 its mean.
    _, A, misfit, y = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    mu = torch.randn(1, *IMG, generator=torch.Generator().manual_seed(3), dtype=F64)
    k = N_PIX + M
    eye = torch.eye(k, dtype=F64)
    eps_x, eps_y = eye[:, :N_PIX].reshape(k, *IMG), eye[:, N_PIX:]
    y0 = y[:1].expand(k, M)
    out = matheron(mu.expand(k, *IMG), y0, A, C, noise=(eps_x, eps_y)).flatten(1)
    x0 = matheron(mu, y[:1], A, C, noise=(torch.zeros(1, *IMG, dtype=F64),
                                          torch.zeros(1, M, dtype=F64))).flatten(1)
    K = (out - x0).T  # (n, n + m)
    mean, cov = _conditional(A, misfit, mu, y[:1])
    torch.testing.assert_close(x0, mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(K @ K.T, cov, rtol=1e-10, atol=1e-12)


def test_matheron_draws_match_dense_conditional_draws(problem):
    _, A, misfit, y = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    g = torch.Generator().manual_seed(4)
    n = 40000
    mu = torch.randn(1, *IMG, generator=g, dtype=F64)
    draws = matheron(mu.expand(n, *IMG), y[:1].expand(n, M), A, C, generator=g).flatten(1)
    mean, cov = _conditional(A, misfit, mu, y[:1])
    _check_moments(draws, n, mean[0], cov)
    # the same check passes for direct draws from the dense conditional (the tolerance is fair)
    evals, evecs = torch.linalg.eigh(cov)
    root = evecs * evals.clamp(min=0).sqrt()
    direct = mean + torch.randn(n, N_PIX, generator=g, dtype=F64) @ root.T
    _check_moments(direct, n, mean[0], cov)


# ---------------------------------------------------------------- the sampler
def test_misfit_posterior_matches_closed_form(problem):
    prior, A, misfit, y = problem
    mean_x, cov_x, mean_z, cov_z = _closed_form(prior, A, misfit, y)
    res = misfit_posterior(y, A, prior, misfit, sigma=SIGMA, n_samples=500, n_chains=64,
                           step_size=0.1, burn_in=300, generator=torch.Generator().manual_seed(6))
    assert res.samples.shape == (64 * 500, B, *IMG)
    assert (res.acceptance_rate > 0.3).all()
    for i in range(B):
        n_eff = float(res.ess[i])
        _check_moments(res.z_samples[:, i], n_eff, mean_z[i], cov_z)
        _check_moments(res.samples[:, i].flatten(1), n_eff, mean_x[i], cov_x)
    torch.testing.assert_close(res.mean, res.samples.mean(0))


def test_zero_misfit_is_plain_langevin(problem):
    prior, A, _, y = problem
    zero = MisfitCovariance(torch.tensor(0.0, dtype=F64))
    kw = {"sigma": SIGMA, "n_samples": 20, "n_chains": 3, "burn_in": 30, "method": "mala"}
    res = misfit_posterior(y, A, prior, zero, generator=torch.Generator().manual_seed(7), **kw)
    ref = langevin(y, A, prior, generator=torch.Generator().manual_seed(7), **kw)
    torch.testing.assert_close(res.z_samples, ref.z_samples)
    torch.testing.assert_close(res.samples, ref.samples)  # G(z): no misfit, no perturbation


def test_misfit_posterior_reuses_a_covariance(problem):
    prior, A, misfit, y = problem
    C = marginal_covariance(A, misfit, sigma=SIGMA)
    kw = {"n_samples": 5, "n_chains": 2, "burn_in": 10}
    a = misfit_posterior(y, A, prior, misfit, sigma=SIGMA, generator=torch.Generator(), **kw)
    b = misfit_posterior(y, A, prior, misfit, covariance=C, generator=torch.Generator(), **kw)
    torch.testing.assert_close(a.samples, b.samples)
    with pytest.raises(ValueError, match="sigma"):
        misfit_posterior(y, A, prior, misfit, sigma=0.5, covariance=C, **kw)
    with pytest.raises(ValueError, match="another misfit"):
        misfit_posterior(y, A, prior, MisfitCovariance(torch.tensor(0.1, dtype=F64)),
                         covariance=C, **kw)
    with pytest.raises(TypeError, match="MarginalCovariance"):
        misfit_posterior(y, A, prior, misfit, covariance=C.dense(), **kw)


def test_misfit_posterior_on_device(device):
    g = torch.Generator().manual_seed(0)
    prior = LinearGenerator(torch.randn(16, 2, generator=g), None, (1, 4, 4)).to(device)
    A = Inpaint.center_box((1, 4, 4), 2, noise_std=0.1).to(device)
    misfit = MisfitCovariance(torch.full((1, 4, 4), 0.02))
    y = A.A(prior.decode(torch.randn(3, 2, generator=g).to(device)))
    y = y + 0.1 * torch.randn(y.shape, generator=g).to(device)
    res = misfit_posterior(y, A, prior, misfit, n_samples=4, n_chains=2, burn_in=5, generator=g)
    assert res.samples.device.type == device.type and res.samples.shape == (8, 3, 1, 4, 4)
    assert torch.isfinite(res.samples).all()


# ---------------------------------------------------------------- errors and persistence
def test_bad_misfits_and_covariances(problem):
    _, A, misfit, _ = problem
    with pytest.raises(ValueError, match=">= 0"):
        MisfitCovariance(torch.tensor(-1.0))
    with pytest.raises(ValueError, match="non-finite"):
        MisfitCovariance(torch.full((1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        MisfitCovariance(torch.ones(4))
    with pytest.raises(ValueError, match="JSON"):
        MisfitCovariance(0.1, {"bad": object()})
    with pytest.raises(ValueError, match="per-pixel misfit has shape"):
        marginal_covariance(A, MisfitCovariance(torch.ones(1, 3, 3, dtype=F64)), sigma=SIGMA)
    with pytest.raises(ValueError, match="max_dense"):
        marginal_covariance(A, misfit, sigma=SIGMA, max_dense=M - 1)
    with pytest.raises(ValueError, match="singular|positive definite"):
        marginal_covariance(A, MisfitCovariance(torch.tensor(0.0, dtype=F64)), sigma=0.0)
    with pytest.raises(ValueError, match="positive definite"):  # rank(A Sigma A^T) < m
        marginal_covariance(A, MisfitCovariance(torch.zeros(IMG, dtype=F64).index_fill_(
            2, torch.tensor([0, 1]), 1.0)), sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        marginal_covariance(A, misfit, sigma=-1.0)


@pytest.mark.parametrize("variance", [torch.tensor(0.02), torch.rand(1, 2, 3)])
def test_misfit_save_load_round_trip(tmp_path, variance):
    misfit = MisfitCovariance(variance, {"fitted_by": "test", "n_images": 3})
    path = misfit.save_pretrained(tmp_path)
    assert path.name == "misfit.safetensors" and MisfitCovariance.exists(tmp_path)
    back = MisfitCovariance.from_pretrained(tmp_path)
    assert torch.equal(back.variance, misfit.variance) and back.info == misfit.info
    assert isinstance(back, MisfitCovariance) and isinstance(
        marginal_covariance(Inpaint.center_box((1, 2, 3), 1), back, sigma=0.1),
        MarginalCovariance)
    with pytest.raises(FileNotFoundError):
        MisfitCovariance.from_pretrained(tmp_path / "nowhere")


# ---------------------------------------------------------------- fitting the misfit
def _linear_data(n_images, v, seed=0, img=(1, 8, 8), d=2):
    g = torch.Generator().manual_seed(seed)
    n = math.prod(img)
    W = torch.randn(n, d, generator=g, dtype=F64)
    b = 0.5 * torch.randn(n, generator=g, dtype=F64)
    G = LinearGenerator(W, b, img)
    z = torch.randn(n_images, d, generator=g, dtype=F64)
    noise = v.sqrt() * torch.randn(n_images, n, generator=g, dtype=F64)
    return G, G.decode(z) + noise.reshape(n_images, *img)


def _fit(G, x, **kw):
    return fit_misfit(G, x, restarts=1, steps=300, lr=0.1,
                      generator=torch.Generator().manual_seed(1), **kw)


def test_fit_misfit_in_sample_is_the_least_squares_residual_variance():
    # folds=1, lam=0: z_hat is the least-squares fit, so the variances are those of the exact
    # least-squares residuals (up to Adam's convergence)
    v = torch.full((64,), 0.03, dtype=F64)
    G, x = _linear_data(200, v)
    xf = x.flatten(1) - G.b
    r = xf - torch.linalg.lstsq(G.W, xf.T).solution.T @ G.W.T
    scalar = _fit(G, x, folds=1)
    torch.testing.assert_close(scalar.variance, r.pow(2).mean(), rtol=1e-6, atol=0)
    pixel = _fit(G, x, folds=1, per_pixel=True, batch_size=64)  # 64 + 64 + 64 + 8 images
    torch.testing.assert_close(pixel.variance.flatten(), r.pow(2).mean(0), rtol=1e-6, atol=0)
    assert scalar.info["n_images"] == 200 and scalar.info["folds"] == 1
    assert not scalar.per_pixel and pixel.per_pixel and pixel.variance.shape == (1, 8, 8)


def test_fit_misfit_recovers_a_known_variance():
    # in sample, E[r_i^2] = sum_j (I - H)_ij^2 v_j with H the hat matrix of W: biased low, by
    # (n - d)/n on average; the per-pixel estimate has relative standard error sqrt(2/N)
    g = torch.Generator().manual_seed(2)
    n_images, d, n = 2000, 2, 64
    v = 0.01 + 0.04 * torch.rand(n, generator=g, dtype=F64)
    G, x = _linear_data(n_images, v, seed=3, d=d)
    Q = torch.linalg.qr(G.W).Q
    resid = torch.eye(n, dtype=F64) - Q @ Q.T
    expected = resid.pow(2) @ v
    pixel = _fit(G, x, folds=1, per_pixel=True).variance.flatten()
    assert ((pixel - expected).abs() <= 4.5 * math.sqrt(2 / n_images) * expected).all()
    # scalar misfit: homoscedastic truth s; in sample about s (n - d)/n, out of sample (2 folds)
    # biased high by the error of z_hat fitted on half the pixels (about d/(n/2) here): the
    # stated tolerance is [0.98 s, 1.2 s]
    s = 0.02
    G, x = _linear_data(500, torch.full((n,), s, dtype=F64), seed=4, d=d)
    inside = float(_fit(G, x, folds=1).variance)
    se = s * math.sqrt(2 / (500 * (n - d)))
    assert abs(inside - s * (n - d) / n) <= 4 * se
    held_out = float(_fit(G, x, folds=2).variance)
    assert s * 0.98 <= held_out <= 1.2 * s and held_out > inside


def test_fit_misfit_errors():
    G, x = _linear_data(4, torch.full((64,), 0.01, dtype=F64))
    with pytest.raises(ValueError, match="folds"):
        fit_misfit(G, x, folds=0)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        fit_misfit(G, x[..., :4])
    with pytest.raises(ValueError, match="non-finite"):
        fit_misfit(G, x.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="min_variance"):
        fit_misfit(G, x, min_variance=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        fit_misfit(G, x, batch_size=0)
