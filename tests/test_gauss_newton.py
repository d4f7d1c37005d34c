"""The Gauss-Newton / Levenberg-Marquardt step: one step to the ridge solution of a linear
generator, its Jacobian against autograd, convergence on a nonlinear generator, rejected trials,
per-row independence, frozen rows, refused problems and the evaluation count."""

import deepinv
import pytest
import torch

from genprior.optim import (
    GaussianLatent,
    LatentProblem,
    NegLogPrior,
    SparseDeviation,
    WeightedL2,
    descend,
)
from genprior.optim.gauss_newton import GaussNewton, latent_jacobian
from genprior.priors.linear import LinearGenerator
from genprior.reconstruct.bases import get_basis

IMG = (1, 5, 3)  # odd sizes catch transposition bugs
N_PIX, D = 15, 4


def _linear(m, d=D, rows=3, device="cpu"):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, d, generator=g, dtype=torch.float64)
    b = torch.randn(N_PIX, generator=g, dtype=torch.float64)
    G = LinearGenerator(W.to(device), b.to(device), IMG)
    A = deepinv.physics.CompressedSensing(m=m, img_size=IMG, rng=torch.Generator().manual_seed(1),
                                          dtype=torch.float64, device=device)
    y = torch.randn(rows, m, generator=g, dtype=torch.float64).to(device)
    return G, A, y, W.to(device), b.to(device)


def _matrix(A):
    eye = torch.eye(N_PIX, dtype=torch.float64, device=A._A.device).reshape(N_PIX, *IMG)
    return A.A(eye).T


class _Sigmoid:
    """A small nonlinear generator :math:`G(z) = \\mathrm{sigmoid}(Wz + b)`."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def decode(self, z):
        return torch.sigmoid(z.reshape(z.shape[0], -1) @ self.W.T + self.b).reshape(
            z.shape[0], *IMG)


def _nonlinear(m=10, rows=4, *, lam=0.0, d=D):
    g = torch.Generator().manual_seed(5)
    W = torch.randn(N_PIX, d, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(N_PIX, generator=g, dtype=torch.float64)
    G = _Sigmoid(W, b)
    A = deepinv.physics.CompressedSensing(m=m, img_size=IMG, rng=torch.Generator().manual_seed(6),
                                          dtype=torch.float64)
    z_true = torch.randn(rows, d, generator=g, dtype=torch.float64)
    y = A.A(G.decode(z_true))
    problem = LatentProblem(y, A, G.decode, data=WeightedL2(0.5),
                            latent=GaussianLatent(lam) if lam else None)
    return problem, z_true, g


@pytest.mark.parametrize("m, lam", [(9, 0.0), (9, 0.4), (3, 0.4)])
def test_one_gauss_newton_step_reaches_the_ridge_solution(m, lam, device):
    G, A, y, W, b = _linear(m, device=device)
    w = 0.2
    problem = LatentProblem(y, A, G.decode, data=WeightedL2(w),
                            latent=GaussianLatent(lam) if lam else None)
    z0 = 5 * torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    run = descend(problem, z0.to(device), GaussNewton(0.0), steps=1)
    M = _matrix(A) @ W
    gram = w * M.T @ M + lam * torch.eye(D, dtype=torch.float64, device=device)
    z_star = torch.linalg.solve(gram, w * M.T @ (y - _matrix(A) @ b).T).T
    torch.testing.assert_close(run.z, z_star, rtol=0, atol=1e-10)
    torch.testing.assert_close(run.history[0], problem.objective(z0.to(device)), rtol=1e-12,
                               atol=0)


def test_a_float32_latent_stays_float32():
    # a float32 generator with float64 measurements: the problem works in y's precision
    _, A, y, W, b = _linear(9)
    G32 = LinearGenerator(W.float(), b.float(), IMG)
    problem = LatentProblem(y, A, G32.decode)
    run = descend(problem, torch.zeros(3, D), GaussNewton(0.0), steps=1)
    M = _matrix(A) @ W
    z_star = torch.linalg.lstsq(M, (y - _matrix(A) @ b).T).solution.T
    assert run.z.dtype == torch.float32
    torch.testing.assert_close(run.z, z_star.float(), rtol=0, atol=1e-4)


def test_rank_deficient_gauss_newton_takes_the_minimum_norm_step():
    # lambda = mu = 0 and d > m: J^T J is singular, the step is -pinv(M) r
    G, A, y, W, b = _linear(m=3, d=6)
    problem = LatentProblem(y, A, G.decode, data=WeightedL2(0.7))
    z0 = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    step = GaussNewton(0.0)
    out = step.advance(problem, z0, step.init_state(z0), slice(None), torch.ones(3, dtype=bool))
    M = _matrix(A) @ W
    r0 = (M @ z0.T).T + _matrix(A) @ b - y
    torch.testing.assert_close(out.z - z0, -r0 @ torch.linalg.pinv(M).T, rtol=0, atol=1e-10)
    assert problem.objective(out.z).max() < 1e-20


def test_complex_measurements_are_least_squares_in_the_real_latent():
    # A = unitary FFT (complex): the solution is that of A = identity
    G, _, _, W, b = _linear(m=3)
    target = torch.randn(2, *IMG, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    fft = lambda x: torch.fft.fft2(x, norm="ortho")
    w, lam = 0.3, 0.2
    problem = LatentProblem(fft(target), fft, G.decode, data=WeightedL2(w),
                            latent=GaussianLatent(lam))
    run = descend(problem, torch.zeros(2, D, dtype=torch.float64), GaussNewton(0.0), steps=1)
    gram = w * W.T @ W + lam * torch.eye(D, dtype=torch.float64)
    z_star = torch.linalg.solve(gram, w * W.T @ (target.reshape(2, -1) - b).T).T
    torch.testing.assert_close(run.z, z_star, rtol=0, atol=1e-10)


class _SigmoidFn(torch.autograd.Function):
    """sigmoid with a JVP but no vmap rule: ``vmap`` refuses it."""

    @staticmethod
    def forward(x):
        return torch.sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(output)

    @staticmethod
    def jvp(ctx, x_t):
        (s,) = ctx.saved_tensors
        return x_t * s * (1 - s)


@pytest.mark.parametrize("latent_shape", [(6,), (2, 3)])
@pytest.mark.parametrize("chunk", [None, 4])
def test_latent_jacobian_matches_autograd(latent_shape, chunk):
    problem, _, g = _nonlinear(d=6)
    z = torch.randn(3, *latent_shape, dtype=torch.float64, generator=g)
    rows = torch.tensor([2, 0, 3])
    lin = latent_jacobian(problem, z, rows, chunk=chunk)
    for i in range(3):
        J = torch.autograd.functional.jacobian(
            lambda u: problem.A.A(problem.decode(u[None]))[0], z[i])
        torch.testing.assert_close(lin.jacobian[i], J.reshape(J.shape[0], -1), rtol=0,
                                   atol=1e-10)
    r = problem.A.A(problem.decode(z)) - problem.y[rows]
    torch.testing.assert_close(lin.residual, r, rtol=0, atol=1e-14)
    assert lin.jacobian.shape == (3, 10, 6) and lin.measured.shape == (3, 10)


def test_latent_jacobian_falls_back_to_a_loop_when_vmap_fails():
    problem, _, g = _nonlinear()
    W, b = problem.decode.__self__.W, problem.decode.__self__.b  # the _Sigmoid generator's

    def decode(z):
        return _SigmoidFn.apply(z @ W.T + b).reshape(z.shape[0], *IMG)

    z = torch.randn(3, D, dtype=torch.float64, generator=g)
    with pytest.raises(RuntimeError):  # the loop path is really taken
        torch.func.vmap(lambda e: torch.func.jvp(decode, (z,), (e.expand(3, D),)))(torch.eye(D))
    looped = LatentProblem(problem.y, problem.A, decode)
    expected = latent_jacobian(problem, z, slice(0, 3)).jacobian
    for chunk in (None, 3):
        torch.testing.assert_close(latent_jacobian(looped, z, slice(0, 3), chunk=chunk).jacobian,
                                   expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("lam", [0.0, 1e-3])
def test_levenberg_marquardt_converges_on_a_nonlinear_generator(lam):
    problem, z_true, g = _nonlinear(lam=lam)
    z0 = z_true + 0.3 * torch.randn(z_true.shape, dtype=torch.float64, generator=g)
    run = descend(problem, z0, GaussNewton(), steps=20)
    assert (run.history.diff(dim=0) <= 0).all()
    if lam == 0:
        assert (problem.objective(run.z) < 1e-20).all()
        torch.testing.assert_close(run.z, z_true, rtol=0, atol=1e-8)
    else:  # the minimiser moved off z_true: the gradient vanishes there (to float64 rounding,
        # which differs by CPU: 6e-12 seen on CI's machine)
        _, grad, _, _ = problem.value_and_grad(run.z)
        assert grad.abs().max() < 1e-10


def _cube(y_value=1.0):
    """f(z) = (z^3 - y)^2: from z = 0.1 the Gauss-Newton step overshoots to z = 33.4."""
    A = deepinv.physics.Inpainting(img_size=(1, 1, 1), mask=torch.ones(1, 1, 1))
    y = torch.full((1, 1, 1, 1), y_value, dtype=torch.float64)
    return LatentProblem(y, A, lambda z: z.pow(3).reshape(-1, 1, 1, 1))


def test_rejected_trial_keeps_z_and_raises_the_damping():
    problem = _cube()
    z0 = torch.full((1, 1), 0.1, dtype=torch.float64)
    step = GaussNewton(1e-4)
    state = step.init_state(z0)
    out = step.advance(problem, z0, state, slice(None), torch.ones(1, dtype=bool))
    assert torch.equal(out.z, z0)
    torch.testing.assert_close(out.value, problem.objective(z0), rtol=1e-15, atol=0)
    torch.testing.assert_close(state["mu"], torch.tensor([1e-3], dtype=torch.float64))
    run = descend(problem, z0, step, steps=40)
    assert (run.history.diff(dim=0) <= 0).all()
    assert (run.history.diff(dim=0) == 0).any()  # some steps were rejected
    torch.testing.assert_close(run.z, torch.ones(1, 1, dtype=torch.float64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("lam, steps", [(0.0, 20), (1e-3, 4)])
def test_rows_are_independent(lam, steps):
    # (with lam > 0 the minimum has a residual; once a row reaches the objective's rounding
    # floor, accepting a step compares values equal up to rounding, so only the first steps)
    problem, z_true, g = _nonlinear(lam=lam)
    z0 = z_true + torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)[:, None] * torch.randn(
        z_true.shape, dtype=torch.float64, generator=g)
    step = GaussNewton()
    run = descend(problem, z0, step, steps=steps)
    assert (run.history[1:] == run.history[:-1]).any()  # some rows rejected a trial
    for i in range(4):
        alone = LatentProblem(problem.y[i:i + 1], problem.A, problem.decode, data=problem.data,
                              latent=problem.latent)
        one = descend(alone, z0[i:i + 1], step, steps=steps)
        torch.testing.assert_close(one.z[0], run.z[i], rtol=0, atol=1e-12)
        torch.testing.assert_close(one.history[:, 0], run.history[:, i], rtol=1e-12, atol=1e-14)


def test_frozen_rows_keep_latent_and_state():
    problem, z_true, _ = _nonlinear(lam=1e-2)
    rows = torch.tensor([0, 2, 3])
    z = z_true[rows] + 0.3
    step = GaussNewton()
    state = {"mu": torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)}
    move = torch.tensor([True, False, True])
    out = step.advance(problem, z, state, rows, move)
    assert torch.equal(out.z[1], z[1]) and not torch.equal(out.z[0], z[0])
    assert state["mu"][1] == 2.0 and state["mu"][2] == 3.0  # row 1 untouched, row 2 frozen
    assert state["mu"][0] != 1.0 and state["mu"][3] != 4.0
    assert out.evaluations.tolist() == [D + 1, 0, D + 1] and out.evaluations.dtype == torch.long
    torch.testing.assert_close(out.value, problem.objective(z, None, rows), rtol=1e-14, atol=0)


def test_refused_problems():
    G, A, y, _, _ = _linear(m=9)
    z = torch.zeros(3, D, dtype=torch.float64)
    on = torch.ones(3, dtype=bool)
    step = GaussNewton()
    neg_log = LatentProblem(y, A, G.decode, latent=NegLogPrior(G))
    with pytest.raises(ValueError, match="NegLogPrior"):
        step.advance(neg_log, z, step.init_state(z), slice(None), on)
    with pytest.raises(ValueError, match="NegLogPrior"):
        descend(neg_log, z, step, steps=1)
    with pytest.raises(ValueError, match=r"d=4 exceeds max_dim=3.*L-BFGS or Adam"):
        GaussNewton(max_dim=3).advance(LatentProblem(y, A, G.decode), z, {"mu": z[:, 0]},
                                       slice(None), on)
    deviation = SparseDeviation(get_basis("pixel"), 0.1, 1.0)
    with pytest.raises(ValueError, match="deviation"):
        step.advance(LatentProblem(y, A, G.decode, deviation=deviation), z,
                     step.init_state(z), slice(None), on)
    for kwargs, name in [({"damping": -1.0}, "damping"), ({"increase": 1.0}, "increase"),
                         ({"decrease": 1.0}, "decrease"), ({"min_damping": -1e-3}, "min_damping"),
                         ({"max_dim": 0}, "max_dim"), ({"chunk": 0}, "chunk")]:
        with pytest.raises(ValueError, match=name):
            GaussNewton(**kwargs)


@pytest.mark.parametrize("chunk", [None, 3])
def test_evaluations_count_d_jvps_and_one_trial_per_step(chunk):
    problem, z_true, _ = _nonlinear()
    run = descend(problem, z_true + 0.2, GaussNewton(chunk=chunk), steps=5)
    assert run.evaluations.tolist() == [5 * (D + 1)] * 4
    assert run.n_steps.tolist() == [5] * 4
