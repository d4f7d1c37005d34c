"""Batched L-BFGS against torch.optim.LBFGS, the ridge closed form, per-row independence, frozen
rows, the Armijo line search and the evaluation counts."""

import deepinv
import pytest
import torch

from genprior.optim import GaussianLatent, LatentProblem, WeightedL2, descend
from genprior.optim.lbfgs import LBFGS, lbfgs_direction
from genprior.priors.linear import LinearGenerator

IMG = (1, 5, 3)  # odd sizes catch transposition bugs
N_PIX, D, M = 15, 4, 7
F64 = torch.float64


def _operator():
    return deepinv.physics.CompressedSensing(m=M, img_size=IMG, dtype=F64,
                                             rng=torch.Generator().manual_seed(1))


def _sigmoid_problem(rows=1, weight=1.0, lam=0.1, device="cpu"):
    """A nonlinear generator G(z) = sigmoid(Wz + b), so the curvature pairs really vary."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, D, generator=g, dtype=F64).to(device)
    b = torch.randn(N_PIX, generator=g, dtype=F64).to(device)

    def decode(z):
        return torch.sigmoid(z @ W.T + b).reshape(z.shape[0], *IMG)

    y = torch.rand(rows, M, generator=g, dtype=F64).to(device)
    return LatentProblem(y, _operator().to(device), decode, data=WeightedL2(weight),
                         latent=GaussianLatent(lam))


def _start(rows, seed=2):
    return torch.randn(rows, D, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("lr,history_size", [(1.0, 10), (0.5, 3)])
def test_matches_torch_lbfgs_without_line_search(lr, history_size):
    problem = _sigmoid_problem()
    z0 = _start(1)
    p = torch.nn.Parameter(z0.clone())
    opt = torch.optim.LBFGS([p], lr=lr, history_size=history_size, max_iter=1,
                            line_search_fn=None, tolerance_grad=0, tolerance_change=0)

    def closure():
        opt.zero_grad()
        loss = problem.objective(p).sum()
        loss.backward()
        return loss

    step = LBFGS(lr, history_size=history_size, line_search=None)
    z, state = z0.clone(), step.init_state(z0)
    every = torch.ones(1, dtype=torch.bool)
    for _ in range(15):  # more steps than pairs: the oldest pairs are dropped
        opt.step(closure)
        z = step.advance(problem, z, state, slice(None), every).z
        # relative 1e-10: float64 rounding grows over 15 steps and differs by CPU
        torch.testing.assert_close(z, p.detach(), rtol=1e-10, atol=1e-10)
    assert int(state["count"][0]) == history_size and int(state["k"][0]) == 15


def test_reaches_ridge_solution_on_a_linear_generator():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, D, generator=g, dtype=F64)
    b = torch.randn(N_PIX, generator=g, dtype=F64)
    G, A = LinearGenerator(W, b, IMG), _operator()
    y = torch.randn(3, M, generator=g, dtype=F64)
    lam = 0.05
    problem = LatentProblem(y, A, G.decode, latent=GaussianLatent(lam))
    run = descend(problem, torch.zeros(3, D, dtype=F64), LBFGS(), steps=30)
    Am = A.A(torch.eye(N_PIX, dtype=F64).reshape(N_PIX, *IMG)).T
    AW = Am @ W
    rhs = AW.T @ (y.T - (Am @ b)[:, None])
    z_star = torch.linalg.solve(AW.T @ AW + lam * torch.eye(D, dtype=F64), rhs).T
    torch.testing.assert_close(run.z, z_star, rtol=0, atol=1e-8)


@pytest.mark.parametrize("line_search,lr", [(None, 0.5), ("armijo", 1.0)])
def test_rows_are_independent(line_search, lr):
    # (a larger fixed step makes one row's trajectory chaotic: the batched and the single-row
    # matmuls round differently, and that difference, not the rows, then grows past 1e-12)
    problem = _sigmoid_problem(rows=4)
    z0 = _start(4, seed=3)
    step = LBFGS(lr, history_size=4, line_search=line_search)
    batch = descend(problem, z0, step, steps=12)
    for i in range(4):
        alone = LatentProblem(problem.y[i:i + 1], problem.A, problem.decode, data=problem.data,
                              latent=problem.latent)
        one = descend(alone, z0[i:i + 1], step, steps=12)
        torch.testing.assert_close(batch.z[i:i + 1], one.z, rtol=0, atol=1e-12)
        torch.testing.assert_close(batch.history[:, i:i + 1], one.history, rtol=0, atol=1e-12)
        assert torch.equal(batch.evaluations[i:i + 1], one.evaluations)


def test_frozen_rows_keep_latent_and_state():
    problem = _sigmoid_problem(rows=3)
    step = LBFGS(0.5, history_size=3)
    z, state = _start(3), step.init_state(_start(3))
    for _ in range(3):
        z = step.advance(problem, z, state, slice(None), torch.ones(3, dtype=torch.bool)).z
    before = {key: val.clone() for key, val in state.items()}
    move = torch.tensor([True, False, True])
    out = step.advance(problem, z, state, slice(None), move)
    assert torch.equal(out.z[1], z[1]) and int(out.evaluations[1]) == 0
    assert not torch.equal(out.z[0], z[0]) and int(state["k"][0]) == 4
    for key, val in state.items():
        assert torch.equal(val[1], before[key][1]), key
    # an active subset given as full-batch indices: rows 2 and 0 move, row 1 is untouched
    z = out.z
    before = {key: val.clone() for key, val in state.items()}
    idx = torch.tensor([2, 0])
    sub = step.advance(problem, z[idx], state, idx, torch.tensor([True, False]))
    assert torch.equal(sub.z[1], z[0]) and not torch.equal(sub.z[0], z[2])
    assert int(state["k"][2]) == 5 and int(state["k"][0]) == 4
    for key, val in state.items():
        assert torch.equal(val[:2], before[key][:2]), key


def test_armijo_backtracks_where_the_step_overshoots():
    problem = _sigmoid_problem(rows=3, weight=20.0)
    z0 = _start(3, seed=4)
    steps = 15
    plain = descend(problem, z0, LBFGS(8.0, line_search=None), steps=steps)
    assert bool((plain.history.diff(dim=0) > 0).any())  # the fixed step overshoots
    run = descend(problem, z0, LBFGS(8.0), steps=steps)
    assert bool((run.history.diff(dim=0) <= 0).all())  # every accepted step decreases f
    assert bool((run.evaluations > 2 * steps).all())  # some trials were rejected
    assert bool((run.history[-1] < run.history[0]).all())


class _Wall(LatentProblem):
    """Every trial point is infinitely bad: each line search fails."""

    def objective(self, z, c=None, rows=slice(None)):
        return torch.full((z.shape[0],), torch.inf, dtype=z.dtype, device=z.device)


def test_failed_line_search_takes_no_step_and_forgets_the_pairs():
    base = _sigmoid_problem(rows=2)
    wall = _Wall(base.y, base.A, base.decode, latent=base.latent)
    step = LBFGS(1.0, max_ls=3, history_size=3)
    z, state = _start(2), step.init_state(_start(2))
    every = torch.ones(2, dtype=torch.bool)
    for _ in range(6):  # some history first, on the real problem
        z = step.advance(base, z, state, slice(None), every).z
    assert bool((state["count"] > 0).all())
    out = step.advance(wall, z, state, slice(None), every)
    assert torch.equal(out.z, z) and torch.equal(out.evaluations, torch.full((2,), 4))
    assert torch.equal(state["count"], torch.zeros(2, dtype=torch.long))
    assert bool((state["prev_t"] == 0).all()) and bool((state["rho"] == 0).all())
    # the next step starts fresh: steepest descent with t = min(1, 1/|g|_1), no pair stored
    # (taken without a line search, by a step that shares the state layout, to see t itself)
    g = base.value_and_grad(z)[1]
    nxt = LBFGS(1.0, line_search=None, history_size=3).advance(base, z, state, slice(None),
                                                              every)
    t = (1 / g.abs().sum(1)).clamp(max=1)
    torch.testing.assert_close(nxt.z, z - t[:, None] * g, rtol=0, atol=1e-14)
    assert torch.equal(state["count"], torch.zeros(2, dtype=torch.long))


def test_one_evaluation_per_step_without_line_search():
    problem = _sigmoid_problem(rows=3)
    run = descend(problem, _start(3), LBFGS(0.5, line_search=None), steps=7)
    assert torch.equal(run.evaluations, torch.full((3,), 7))
    assert run.evaluations.dtype == torch.long


def test_direction_with_one_pair_is_the_bfgs_update_of_gamma_identity():
    g = torch.Generator().manual_seed(5)
    grad, s, y = (torch.randn(2, 3, generator=g, dtype=F64) for _ in range(3))
    y = y + 2 * s  # y's > 0
    ys = (y * s).sum(1)
    pad = torch.zeros(2, 1, 3, dtype=F64)  # a second, unused slot
    d = lbfgs_direction(grad, torch.cat([s[:, None], pad], 1), torch.cat([y[:, None], pad], 1),
                        torch.stack([1 / ys, torch.zeros(2, dtype=F64)], 1),
                        torch.tensor([1, 1]))
    for i in range(2):
        rho, gamma, eye = 1 / ys[i], ys[i] / y[i].dot(y[i]), torch.eye(3, dtype=F64)
        V = eye - rho * torch.outer(y[i], s[i])
        H = gamma * V.T @ V + rho * torch.outer(s[i], s[i])
        torch.testing.assert_close(d[i], -H @ grad[i], rtol=1e-12, atol=1e-12)
    none = lbfgs_direction(grad, torch.zeros(2, 2, 3, dtype=F64), torch.zeros(2, 2, 3, dtype=F64),
                           torch.zeros(2, 2, dtype=F64), torch.tensor([0, 0]))
    assert torch.equal(none, -grad)


@pytest.mark.parametrize("kwargs,match", [({"lr": 0.0}, "lr"), ({"history_size": 0}, "history"),
                                          ({"line_search": "wolfe"}, "line_search"),
                                          ({"max_ls": 0}, "max_ls"), ({"c1": 1.0}, "c1"),
                                          ({"shrink": 0.0}, "shrink")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LBFGS(**kwargs)


def test_device_and_dtype(device):
    problem = _sigmoid_problem(rows=2, device=device)
    step = LBFGS()
    z = _start(2).to(device)
    state = step.init_state(z)
    assert all(v.device.type == device.type for v in state.values())
    assert state["s"].dtype == F64 and state["count"].dtype == torch.long
    move = torch.ones(2, dtype=torch.bool, device=device)
    for _ in range(3):
        out = step.advance(problem, z, state, slice(None), move)
        assert out.z.device.type == device.type and out.z.dtype == F64
        assert bool((problem.objective(out.z) <= out.value).all())
        z = out.z
