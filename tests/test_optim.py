"""The shared optimisation layer: the data term against deepinv and autograd, the latent problem
against its closed form, the Adam step against torch.optim.Adam, per-row independence."""

import deepinv
import pytest
import torch

from genprior.optim import (
    SGD,
    Adam,
    GaussianLatent,
    LatentProblem,
    NegLogPrior,
    ProxGrad,
    SparseDeviation,
    WeightedL2,
    descend,
    make_step,
    soft_threshold,
)
from genprior.priors.linear import LinearGenerator
from genprior.reconstruct.bases import get_basis

IMG = (1, 5, 3)  # odd sizes catch transposition bugs
N_PIX, D, M = 15, 4, 7


def _setup(dtype=torch.float64, rows=3):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, D, generator=g, dtype=dtype)
    b = torch.randn(N_PIX, generator=g, dtype=dtype)
    G = LinearGenerator(W, b, IMG)
    A = deepinv.physics.CompressedSensing(m=M, img_size=IMG, rng=torch.Generator().manual_seed(1),
                                          dtype=dtype)
    y = torch.randn(rows, M, generator=g, dtype=dtype)
    return G, A, y, W, b


def _matrix(A):
    eye = torch.eye(N_PIX, dtype=torch.float64).reshape(N_PIX, *IMG)
    return A.A(eye).T


def test_weighted_l2_is_deepinv_l2_with_sigma():
    _, A, y, _, _ = _setup()
    x = torch.randn(3, *IMG, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    f = WeightedL2(0.3)
    ref = deepinv.optim.data_fidelity.L2(sigma=(1 / (2 * 0.3)) ** 0.5)
    torch.testing.assert_close(f.fn(x, y, A), ref.fn(x, y, A), rtol=1e-12, atol=0)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f.fn(xr, y, A).sum(), xr)
    torch.testing.assert_close(f.grad(x, y, A), g, rtol=1e-12, atol=1e-12)
    assert isinstance(f, deepinv.optim.DataFidelity)
    with pytest.raises(ValueError, match="weight"):
        WeightedL2(0.0)


def test_latent_problem_gradient_closed_form():
    # f(z) = w ||A(Wz + b) - y||^2 + lam ||z||^2 has gradient 2w W^T A^T (A(Wz+b) - y) + 2 lam z
    G, A, y, W, b = _setup()
    w, lam = 0.2, 0.7
    problem = LatentProblem(y, A, G.decode, data=WeightedL2(w), latent=GaussianLatent(lam))
    z = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    value, gz, gc, x = problem.value_and_grad(z)
    Am = _matrix(A)
    r = (Am @ (W @ z.T + b[:, None])).T - y
    torch.testing.assert_close(value, w * r.pow(2).sum(1) + lam * z.pow(2).sum(1))
    torch.testing.assert_close(gz, 2 * w * (r @ Am @ W) + 2 * lam * z)
    assert gc is None and x.shape == (3, *IMG)
    torch.testing.assert_close(problem.measurement_error(x), r.pow(2).sum(1) / M)


def test_neg_log_prior_term_is_the_posterior():
    G, A, y, _, _ = _setup()
    z = torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    sigma = 0.3
    problem = LatentProblem(y, A, G.decode, data=WeightedL2(1 / (2 * sigma**2)),
                            latent=NegLogPrior(G))
    expected = (A.A(G.decode(z)) - y).pow(2).sum(1) / (2 * sigma**2) - G.log_prior(z)
    torch.testing.assert_close(problem.objective(z), expected)


def test_rows_select_their_measurements():
    G, A, y, _, _ = _setup(rows=4)
    problem = LatentProblem(y, A, G.decode, latent=GaussianLatent(0.1))
    z = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    full = problem.objective(z)
    idx = torch.tensor([3, 1])
    torch.testing.assert_close(problem.objective(z[idx], rows=idx), full[idx])


@pytest.mark.parametrize("lr", [0.01, 0.3])
def test_adam_step_matches_torch_adam_on_one_row(lr):
    g = torch.Generator().manual_seed(6)
    target = torch.randn(1, D, dtype=torch.float64, generator=g)
    v0 = torch.randn(1, D, dtype=torch.float64, generator=g)

    def grad(v):  # a non-quadratic objective, so the moments really vary
        return 4 * (v - target) ** 3 + torch.sin(v)

    p = torch.nn.Parameter(v0.clone())
    opt = torch.optim.Adam([p], lr=lr)
    step = Adam(lr)
    v, state = v0.clone(), step.init_state(v0)
    for _ in range(200):
        opt.zero_grad()
        p.grad = grad(p.detach())
        opt.step()
        v = step.update(v, grad(v), state, slice(None), torch.tensor([True]))
    torch.testing.assert_close(v, p.detach(), rtol=1e-10, atol=1e-12)


def test_frozen_rows_keep_value_and_state():
    step = Adam(0.1)
    v = torch.zeros(3, 2, dtype=torch.float64)
    state = step.init_state(v)
    move = torch.tensor([True, False, True])
    g = torch.ones(3, 2, dtype=torch.float64)
    v1 = step.update(v, g, state, slice(None), move)
    assert torch.equal(v1[1], v[1]) and int(state["k"][1]) == 0
    assert torch.equal(state["m1"][1], torch.zeros(2, dtype=torch.float64))
    # an active subset: rows 2 only
    v2 = step.update(v1[2:], g[2:], state, torch.tensor([2]), torch.tensor([True]))
    assert int(state["k"][2]) == 2 and int(state["k"][0]) == 1
    assert not torch.equal(v2, v1[2:])


def test_sgd_and_prox_steps():
    v = torch.tensor([[1.0, -2.0]])
    g = torch.tensor([[0.5, 0.5]])
    torch.testing.assert_close(SGD(0.1).update(v, g, {}, slice(None), torch.tensor([True])),
                               torch.tensor([[0.95, -2.05]]))
    prox = ProxGrad(1.0, lambda u: soft_threshold(u, 0.6))
    torch.testing.assert_close(prox.update(v, g, {}, slice(None), torch.tensor([True])),
                               torch.tensor([[0.0, -1.9]]))


def test_make_step():
    assert isinstance(make_step("adam", 0.1), Adam) and isinstance(make_step("sgd", 0.1), SGD)
    custom = SGD(0.5)
    assert make_step(custom, 0.1) is custom
    with pytest.raises(ValueError, match="optimizer"):
        make_step("newton", 0.1)
    with pytest.raises(ValueError, match="lr"):
        Adam(-1.0)


def test_descend_reaches_ridge_solution():
    # linear G, lam > 0: the minimiser is (W^T A^T A W w + lam I)^{-1} ...
    G, A, y, W, b = _setup()
    lam = 0.05
    problem = LatentProblem(y, A, G.decode, latent=GaussianLatent(lam))
    run = descend(problem, torch.zeros(3, D, dtype=torch.float64), Adam(0.05), steps=3000)
    AW = _matrix(A) @ W
    rhs = (AW.T @ (y.T - (_matrix(A) @ b)[:, None])).T
    z_star = torch.linalg.solve(AW.T @ AW + lam * torch.eye(D, dtype=torch.float64), rhs.T).T
    torch.testing.assert_close(run.z, z_star, rtol=1e-4, atol=1e-5)
    assert run.history.shape == (3000, 3) and bool((run.n_steps == 3000).all())


def test_descend_with_zero_generator_and_deviation_is_ista():
    # G = 0, pixel basis: the c-update is ISTA on w||Ac - y||^2 + lam_nu ||c||_1
    _, A, y, _, _ = _setup()
    Z = LinearGenerator(torch.zeros(N_PIX, D, dtype=torch.float64), None, IMG)
    Am = _matrix(A)
    L = 2 * torch.linalg.matrix_norm(Am, ord=2) ** 2
    dev = SparseDeviation(basis=get_basis("pixel"), weight=0.05, step=float(1 / L))
    problem = LatentProblem(y, A, Z.decode, deviation=dev)
    run = descend(problem, torch.zeros(3, D, dtype=torch.float64), SGD(0.1), steps=50)
    c = torch.zeros(3, N_PIX, dtype=torch.float64)
    for _ in range(50):
        grad = 2 * (c @ Am.T - y) @ Am
        c = soft_threshold(c - grad / L, 0.05 / L)
    torch.testing.assert_close(run.c.reshape(3, -1), c, rtol=1e-10, atol=1e-12)


def test_weighted_l2_from_sigma_is_the_gaussian_negative_log_likelihood():
    _, A, y, _, _ = _setup()
    x = torch.randn(3, *IMG, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    f = WeightedL2(sigma=0.4)
    assert f.weight == 1 / (2 * 0.4**2)
    torch.testing.assert_close(f.fn(x, y, A), (A.A(x) - y).pow(2).sum(1) / (2 * 0.4**2))
    with pytest.raises(ValueError, match="exactly one"):
        WeightedL2(1.0, sigma=1.0)


def test_fused_adam_matches_the_masked_update_and_falls_back():
    g = torch.Generator().manual_seed(8)
    v0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    fused, plain = Adam(0.05, fused=True), Adam(0.05)
    vf, vp = v0.clone(), v0.clone()
    sf, sp = fused.init_state(v0), plain.init_state(v0)
    every = torch.ones(3, dtype=torch.bool)
    for _ in range(20):
        grad = torch.randn(3, 5, generator=g, dtype=torch.float64)
        vf = fused.update(vf, grad, sf, slice(None), every)
        vp = plain.update(vp, grad, sp, slice(None), every)
    torch.testing.assert_close(vf, vp, rtol=1e-10, atol=1e-12)
    # a frozen row takes the masked path: that row keeps value and state
    some = torch.tensor([True, False, True])
    v1 = fused.update(vf, torch.ones(3, 5, dtype=torch.float64), sf, slice(None), some)
    assert torch.equal(v1[1], vf[1]) and int(sf["k"][1]) == 20 and int(sf["k"][0]) == 21
