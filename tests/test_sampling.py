"""Latent posterior sampling against closed forms.

With a linear generator G(z) = Wz + b, a standard normal prior and y = A G(z*) + sigma e, the
latent posterior is N(mu, Sigma) with Sigma = (I + M^T M / sigma^2)^-1, mu = Sigma M^T (y - Ab) /
sigma^2, M = AW. Monte-Carlo tolerances come from the effective sample size the sampler reports
(4 standard errors), never from a guessed tolerance:
  - mean:       |mu_hat_i - mu_i| <= 4 sqrt(C_ii / ESS)
  - covariance: |C_hat_ij - C_ij| <= 4 sqrt((C_ii C_jj + C_ij^2) / ESS)  (Gaussian 4th moments)
where ESS is the smallest per-coordinate ESS (conservative: for a Gaussian AR-type chain the
products z_i z_j decorrelate at least as fast as z_i itself).
"""

import math

import pytest
import torch
from torch import nn

from genprior.operators.gaussian_cs import GaussianCS
from genprior.priors.conditional import ConditionalSR
from genprior.priors.linear import LinearGenerator
from genprior.sampling import (
    coverage,
    credible_interval,
    ess,
    langevin,
    noise_draws,
    sample,
    std_error_correlation,
    summarize,
)
from genprior.sampling.langevin import _stages, laplace_preconditioner

D, IMG, M, B, SIGMA = 3, (1, 2, 4), 5, 2, 0.5


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    n = math.prod(IMG)
    W = torch.randn(n, D, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    prior = LinearGenerator.from_weights(W, b, IMG)
    A = GaussianCS(M, IMG, normalize=False, seed=0).double()
    A.matrix.mul_(1 / 3)  # moderate conditioning: posterior precision eigenvalues ~ 4..60
    z_true = torch.randn(B, D, generator=g, dtype=torch.float64)
    y = A.A(prior.decode(z_true)) + SIGMA * torch.randn(B, M, generator=g, dtype=torch.float64)
    # closed form, computed here independently of LinearGenerator.posterior
    Mat = A.matrix @ W
    precision = torch.eye(D, dtype=torch.float64) + Mat.T @ Mat / SIGMA**2
    cov = torch.linalg.inv(precision)
    mean = (y - b @ A.matrix.T) @ Mat @ cov / SIGMA**2
    return prior, A, y, mean, cov, precision


def _check_moments(z_samples, ess_img, mean, cov):
    """Assert sample mean and covariance within 4 ESS-based standard errors, per image."""
    for i in range(z_samples.shape[1]):
        zs = z_samples[:, i]
        n_eff = float(ess_img[i])
        mean_err = (zs.mean(0) - mean[i]).abs()
        assert (mean_err <= 4 * torch.sqrt(cov.diagonal() / n_eff)).all(), (i, mean_err, n_eff)
        cov_hat = torch.cov(zs.T)
        bound = 4 * torch.sqrt((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / n_eff)
        assert ((cov_hat - cov).abs() <= bound).all(), (i, cov_hat, cov, n_eff)


def test_linear_closed_form_matches_linear_generator(problem):
    prior, A, y, mean, cov, _ = problem
    post = prior.posterior(y, A.matrix, SIGMA)
    torch.testing.assert_close(post.mean, mean)
    torch.testing.assert_close(post.cov, cov)


def test_ula_matches_its_exact_stationary_law(problem):
    # ULA on N(mu, P^-1): z' = z - hP(z - mu) + sqrt(2h) xi. The stationary mean is mu and the
    # covariance C solves C = (I - hP) C (I - hP) + 2h I, i.e. C = (P - h P^2 / 2)^-1.
    prior, A, y, mean, cov, precision = problem
    h = 0.03
    assert h * float(torch.linalg.eigvalsh(precision).max()) < 1.5  # stable, but visibly biased
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=500, n_chains=64, step_size=h,
                   burn_in=300, method="ula", generator=torch.Generator().manual_seed(1))
    cov_ula = torch.linalg.inv(precision - h / 2 * precision @ precision)
    _check_moments(res.z_samples, res.ess, mean, cov_ula)
    # the O(h) bias is real and the ESS bound is sharp enough to see it
    cov_hat = torch.cov(res.z_samples[:, 0].T)
    bound = 4 * torch.sqrt((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / res.ess[0])
    assert ((cov_hat - cov).abs() > bound).any()
    assert torch.isnan(res.acceptance_rate).all()


def test_mala_matches_closed_form_posterior(problem):
    prior, A, y, mean, cov, _ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=500, n_chains=64, step_size=0.1,
                   burn_in=300, method="mala", generator=torch.Generator().manual_seed(2))
    _check_moments(res.z_samples, res.ess, mean, cov)
    assert (res.ess > 500).all()


def test_mala_with_annealing_matches_closed_form_posterior(problem):
    prior, A, y, mean, cov, _ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=400, n_chains=64, step_size=0.1,
                   burn_in=300, method="mala", anneal=[3.0, 1.0],
                   generator=torch.Generator().manual_seed(3))
    _check_moments(res.z_samples, res.ess, mean, cov)


def test_anneal_stages():
    stages = _stages(10, 0.5, [3.0, 1.0])
    assert [n for n, _ in stages] == [3, 3, 4]
    assert [s for _, s in stages] == pytest.approx([math.sqrt(9.25), math.sqrt(1.25), 0.5])
    assert _stages(7, 0.5, None) == [(7, 0.5)]


@pytest.mark.parametrize("target", [0.574, 0.8])
def test_mala_adaptation_reaches_target(problem, target):
    prior, A, y, *_ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=200, n_chains=32, step_size=1.0,
                   burn_in=300, method="mala", target_accept=target,
                   generator=torch.Generator().manual_seed(4))
    assert res.acceptance_rate.shape == (B,)
    assert (res.acceptance_rate - target).abs().max() < 0.05, res.acceptance_rate
    assert (res.step_size < 1.0).all()  # started far too large, was reduced


def test_mala_without_adaptation_keeps_step(problem):
    prior, A, y, *_ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=5, n_chains=2, step_size=0.03,
                   burn_in=10, method="mala", adapt=False, generator=torch.Generator())
    torch.testing.assert_close(res.step_size, torch.full((B,), 0.03, dtype=torch.float64))


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_shapes_and_consistency(problem, method):
    prior, A, y, *_ = problem
    k, s = 3, 5
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=s, n_chains=k, step_size=0.01,
                   burn_in=4, thin=2, method=method, generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (k * s, B, *IMG)
    assert res.z_samples.shape == (k * s, B, D)
    assert res.mean.shape == res.std.shape == (B, *IMG)
    assert res.ess.shape == res.acceptance_rate.shape == res.step_size.shape == (B,)
    assert res.n_chains == k and res.n_samples == k * s
    # every stored image is the decoding of its stored latent (also after MALA rejections)
    x = prior.decode(res.z_samples.reshape(-1, D)).reshape(res.samples.shape)
    torch.testing.assert_close(res.samples, x)
    mean, std = summarize(res.samples)
    torch.testing.assert_close(res.mean, mean)
    torch.testing.assert_close(res.std, std)


def test_reproducible_with_generator(problem):
    prior, A, y, *_ = problem
    kw = {"sigma": SIGMA, "n_samples": 10, "n_chains": 4, "step_size": 0.05, "burn_in": 20,
          "method": "mala"}
    r1 = langevin(y, A, prior, generator=torch.Generator().manual_seed(5), **kw)
    r2 = langevin(y, A, prior, generator=torch.Generator().manual_seed(5), **kw)
    r3 = langevin(y, A, prior, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(r1.z_samples, r2.z_samples) and torch.equal(r1.step_size, r2.step_size)
    assert not torch.equal(r1.z_samples, r3.z_samples)


def test_all_chains_and_images_in_one_batch(problem):
    prior, A, y, *_ = problem
    sizes = []

    class Counting(LinearGenerator):
        def decode(self, z):
            sizes.append(z.shape[0])
            return super().decode(z)

    counting = Counting.from_weights(prior.W, prior.b, IMG)
    k, s, burn = 4, 6, 6
    langevin(y, A, counting, sigma=SIGMA, n_samples=s, n_chains=k, burn_in=burn,
             anneal=[1.0], method="mala", generator=torch.Generator())
    # one shape probe, one initial evaluation per stage (2 burn-in + sampling), one per step
    assert sizes[0] == 1
    assert sizes[1:] == [k * B] * (3 + burn + s)


def test_init_tensor(problem):
    prior, A, y, mean, *_ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=1, n_chains=2, step_size=1e-12,
                   burn_in=0, method="ula", init=mean, generator=torch.Generator())
    torch.testing.assert_close(res.z_samples, mean.expand(2, B, D), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="init must have shape"):
        langevin(y, A, prior, sigma=SIGMA, init=mean[:, :2])
    with pytest.raises(ValueError, match="init must be"):
        langevin(y, A, prior, sigma=SIGMA, init="zeros")


def test_bad_inputs(problem):
    prior, A, y, *_ = problem
    for sigma in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            langevin(y, A, prior, sigma=sigma)
    with pytest.raises(ValueError, match="sigma must be given"):
        langevin(y, A, prior)  # the operator has noise_std = 0
    with pytest.raises(ValueError, match=r"y must have shape \(B, 5\)"):
        langevin(y[:, :4], A, prior, sigma=SIGMA)
    y_nan = y.clone()
    y_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains 1 non-finite"):
        langevin(y_nan, A, prior, sigma=SIGMA)
    with pytest.raises(ValueError, match="method"):
        langevin(y, A, prior, sigma=SIGMA, method="hmc")
    with pytest.raises(ValueError, match="anneal"):
        langevin(y, A, prior, sigma=SIGMA, anneal=[1.0, 2.0])
    with pytest.raises(ValueError, match="step_size"):
        langevin(y, A, prior, sigma=SIGMA, step_size=0.0)
    with pytest.raises(ValueError, match="n_chains"):
        langevin(y, A, prior, sigma=SIGMA, n_chains=0)
    with pytest.raises(TypeError, match="prior"):
        langevin(y, A, nn.Linear(3, 8), sigma=SIGMA)


def test_ess_known_autocorrelation():
    # AR(1) with coefficient rho has integrated autocorrelation time (1 + rho) / (1 - rho)
    g = torch.Generator().manual_seed(0)
    k, n, rho = 8, 4000, 0.8
    e = torch.randn(k, n, 4, generator=g, dtype=torch.float64)
    chains = torch.empty_like(e)
    chains[:, 0] = e[:, 0] / math.sqrt(1 - rho**2)
    for t in range(1, n):
        chains[:, t] = rho * chains[:, t - 1] + e[:, t]
    expected = k * n * (1 - rho) / (1 + rho)
    assert ess(chains).sub(expected).abs().max() / expected < 0.15
    iid = torch.randn(k, n, 4, generator=g, dtype=torch.float64)
    assert ess(iid).sub(k * n).abs().max() / (k * n) < 0.15
    # chains stuck at different values: almost no information
    stuck = torch.arange(k, dtype=torch.float64)[:, None, None].expand(k, n, 1)
    stuck = stuck + 1e-3 * torch.randn(k, n, 1, generator=g, dtype=torch.float64)
    assert ess(stuck).item() < 0.01 * k * n


def test_coverage_and_correlation_known_answers():
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(4000, 2, 1, 8, 8, generator=g, dtype=torch.float64)
    _, hi = credible_interval(samples, level=0.9)
    torch.testing.assert_close(hi, torch.full_like(hi, 1.6449), atol=0.15, rtol=0)
    x = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)  # a draw from the same law
    assert (coverage(x, samples, level=0.9) - 0.9).abs().max() < 4 * math.sqrt(0.09 / 64)
    assert (coverage(torch.full_like(x, 10.0), samples) == 0).all()
    std = torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64)
    x_hat = torch.zeros_like(std)
    torch.testing.assert_close(std_error_correlation(std, x_hat, 3 * std), torch.ones(2).double())
    torch.testing.assert_close(std_error_correlation(std, x_hat, -std), torch.ones(2).double())


def test_sample_dispatch_langevin(problem):
    prior, A, y, *_ = problem
    res = sample("ula", y, A, prior, n=12, sigma=SIGMA, step_size=0.01, burn_in=5,
                 generator=torch.Generator())
    assert res.samples.shape == (12, B, *IMG) and res.n_chains == 4
    with pytest.raises(ValueError, match="multiple of n_chains"):
        sample("mala", y, A, prior, n=10, n_chains=4, sigma=SIGMA)
    with pytest.raises(ValueError, match="method must be one of"):
        sample("gibbs", y, A, prior, n=4)
    with pytest.raises(ValueError, match="n must be"):
        sample("ula", y, A, prior, n=0)


def test_eps_source_range_constrained():
    model = ConditionalSR(img_size=(1, 8, 8), factor=2, width=4, n_blocks=1,
                          noise_channels=2).double()
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    res = sample("eps", y, None, model, n=5, generator=torch.Generator().manual_seed(1))
    assert res.samples.shape == (5, 3, 1, 8, 8) and res.z_samples.shape == (5, 3, 2, 4, 4)
    assert (res.ess == 5).all() and torch.isnan(res.acceptance_rate).all()
    for s in range(5):  # each sample is the model output for its noise draw, consistent with y
        torch.testing.assert_close(res.samples[s], model(y, res.z_samples[s]))
        torch.testing.assert_close(model.operator.A(res.samples[s]), y)
    assert (res.std > 0).any()  # the noise input does produce diversity
    again = noise_draws(y, model, n=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.samples, res.samples)
    with pytest.raises(ValueError, match="eps_shape"):
        noise_draws(y, lambda y, eps: y, n=2)
    # temperature t: the same draws with t * eps, and the same as ConditionalSR.sample's
    hot = sample("eps", y, None, model, n=5, generator=torch.Generator().manual_seed(1),
                 temperature=2.0)
    torch.testing.assert_close(hot.z_samples, 2.0 * res.z_samples, atol=0, rtol=0)
    torch.testing.assert_close(hot.samples, model.sample(
        y, 5, generator=torch.Generator().manual_seed(1), temperature=2.0), atol=0, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        noise_draws(y, model, n=2, temperature=-1.0)


def test_restarts_source_linear_is_the_map(problem):
    # CSGM with lam = sigma^2 / m ("reference" units) minimises the negative log posterior
    # (times 2 sigma^2 / m), which is strictly convex for a linear G: every restart lands on the
    # posterior mean, so the restart "samples" collapse (std ~ 0): restarts are no posterior.
    prior, A, y, mean, *_ = problem
    res = sample("restarts", y, A, prior, n=4, lam=SIGMA**2 / M, steps=1500, lr=0.05,
                 generator=torch.Generator().manual_seed(0))
    assert res.samples.shape == (4, B, *IMG) and (res.ess == 4).all()
    torch.testing.assert_close(res.z_samples, mean.expand(4, B, D), atol=1e-3, rtol=0)


def test_init_csgm_starts_at_map(problem):
    prior, A, y, mean, *_ = problem
    res = langevin(y, A, prior, sigma=SIGMA, n_samples=1, n_chains=2, step_size=1e-12,
                   burn_in=0, init="csgm", generator=torch.Generator(),
                   csgm_options={"lam": SIGMA**2 / M, "steps": 1500, "lr": 0.05,
                                 "restarts": 1})
    torch.testing.assert_close(res.z_samples, mean.expand(2, B, D), atol=1e-3, rtol=0)


def test_laplace_preconditioner_is_exact_for_linear(problem):
    prior, A, y, mean, cov, _ = problem
    L = laplace_preconditioner(y, A, prior, mean, sigma=SIGMA)
    assert L.shape == (B, D, D)
    torch.testing.assert_close(L @ L.transpose(1, 2), cov.expand(B, D, D))


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_preconditioned_langevin_matches_posterior_and_mixes_faster(problem, method):
    # with L L^T = Sigma the whitened target is N(., I): ULA's stationary covariance is
    # L (I - h/2 I)^-1 L^T = Sigma / (1 - h/2), MALA's is Sigma
    prior, A, y, mean, cov, _ = problem
    h = 0.5 if method == "ula" else 1.0
    kw = {"sigma": SIGMA, "n_samples": 200, "n_chains": 16, "step_size": h, "burn_in": 100,
          "method": method, "init": mean}
    # unpreconditioned baseline at a step that is stable for it (h * lambda_max(P) ~ 0.7)
    plain = langevin(y, A, prior, generator=torch.Generator().manual_seed(7),
                     **{**kw, "step_size": 0.02})
    res = langevin(y, A, prior, precondition="laplace",
                   generator=torch.Generator().manual_seed(7), **kw)
    _check_moments(res.z_samples, res.ess, mean, cov / (1 - h / 2) if method == "ula" else cov)
    assert (res.ess > 3 * plain.ess).all(), (res.ess, plain.ess)
    with pytest.raises(ValueError, match="precondition must have shape"):
        langevin(y, A, prior, sigma=SIGMA, precondition=torch.eye(D))
