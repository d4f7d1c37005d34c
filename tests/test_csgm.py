"""CSGM and Sparse-Gen: closed forms with a linear generator, restarts, batching, early stopping,
reproducibility, deepinv interop and input errors."""

import deepinv
import pytest
import torch

from genprior.priors.linear import LinearGenerator
from genprior.reconstruct import csgm, lasso, sparse_gen
from genprior.reconstruct.bases import idct2

IMG = (1, 6, 6)


N_PIX, D, M = 36, 5, 12


def _problem(device, *, dtype=torch.float64, batch=4, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(N_PIX, D, generator=g, dtype=dtype)
    b = 0.1 * torch.randn(N_PIX, generator=g, dtype=dtype)
    G = LinearGenerator(W, b, IMG).to(device)
    A = deepinv.physics.CompressedSensing(
        m=M, img_size=IMG, rng=torch.Generator().manual_seed(seed + 1), dtype=dtype
    ).to(device)
    z = torch.randn(batch, D, generator=g, dtype=dtype).to(device)
    y = A.A(G.decode(z))
    y = y + noise * torch.randn(y.shape, generator=g, dtype=dtype).to(device)
    return G, A, y


def _matrix(A):
    """The operator as an (m, n) matrix, from its action on the pixel basis."""
    eye = torch.eye(N_PIX, dtype=torch.float64, device=A._A.device).reshape(N_PIX, *IMG)
    return A.A(eye).T


@pytest.mark.parametrize("loss_reduction", ["reference", "sum"])
def test_linear_generator_matches_closed_form(device, loss_reduction):
    # G(z) = Wz + b makes CSGM ridge least squares: the reference units put 1/m on the data term,
    # so the closed form's ridge weight is m * lam; "sum" takes the ridge weight itself.
    G, A, y = _problem(device)
    lam = 0.1
    lam_closed = lam * M if loss_reduction == "reference" else lam
    z_star = G.map_estimate(y, _matrix(A), lam=lam_closed)
    lr = 0.1 if loss_reduction == "reference" else 0.1 / M
    out = csgm(y, A, G, lam=lam, restarts=2, steps=500, lr=lr, optimizer="sgd",
               loss_reduction=loss_reduction, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.z_hat, z_star, atol=1e-9, rtol=0)
    # Adam (the default) reaches the same point to its own, looser precision
    out = csgm(y, A, G, lam=lam, restarts=1, steps=600, lr=0.1,
               loss_reduction=loss_reduction, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.z_hat, z_star, atol=1e-7, rtol=0)
    # the reported numbers are the objective and the residual at z_hat
    x = G.decode(z_star)
    meas = (A.A(x) - y).pow(2).mean(1)
    torch.testing.assert_close(out.measurement_error, meas, atol=1e-8, rtol=1e-5)
    scale = 1 / M if loss_reduction == "reference" else 1.0
    torch.testing.assert_close(out.loss, scale * M * meas + lam * z_star.pow(2).sum(1),
                               atol=1e-8, rtol=1e-5)


def test_restart_selection_by_measurement_or_loss():
    # W has a zero column: moving z along it leaves x unchanged and only costs lam * z_4^2.
    g = torch.Generator().manual_seed(0)
    W = torch.randn(N_PIX, D, generator=g, dtype=torch.float64)
    W[:, -1] = 0
    G = LinearGenerator(W, None, IMG)
    A = deepinv.physics.CompressedSensing(m=M, img_size=IMG, rng=g, dtype=torch.float64)
    z_true = torch.randn(2, D, generator=g, dtype=torch.float64)
    z_true[:, -1] = 0
    y = A.A(G.decode(z_true))
    null = torch.zeros(D, dtype=torch.float64)
    null[-1] = 5.0
    other = torch.zeros(D, dtype=torch.float64)
    other[0] = 0.01
    # image 0: restart 1 is exact but far along the null direction; restart 2 is slightly off
    # image 1: the same restarts in another order
    z_init = torch.stack([
        torch.stack([z_true[0] + 1.0, z_true[0] + null, z_true[0] + other]),
        torch.stack([z_true[1] + other, z_true[1] + 1.0, z_true[1] + null]),
    ])
    kw = {"lam": 0.1, "restarts": 3, "steps": 1, "lr": 1e-12, "optimizer": "sgd",
          "z_init": z_init}
    by_meas = csgm(y, A, G, select="measurement", **kw)
    by_loss = csgm(y, A, G, select="loss", **kw)
    assert by_meas.best_restart.tolist() == [1, 2]
    assert by_loss.best_restart.tolist() == [2, 0]
    torch.testing.assert_close(by_meas.z_hat, z_init[[0, 1], [1, 2]])
    torch.testing.assert_close(by_meas.x_hat, G.decode(z_init[[0, 1], [1, 2]]))
    torch.testing.assert_close(by_meas.measurement_error,
                               by_meas.restart_measurement_error.min(1).values)
    torch.testing.assert_close(by_loss.loss, by_loss.restart_loss.min(1).values)


def test_batched_equals_per_image_runs():
    G, A, y = _problem("cpu", batch=3)
    R = 4
    z_init = G.sample_latent(3 * R, generator=torch.Generator().manual_seed(5)).view(3, R, D)
    kw = {"lam": 0.05, "restarts": R, "steps": 60, "lr": 0.05}
    batched = csgm(y, A, G, z_init=z_init, **kw)
    for i in range(3):
        single = csgm(y[i:i + 1], A, G, z_init=z_init[i:i + 1], **kw)
        torch.testing.assert_close(single.restart_loss[0], batched.restart_loss[i],
                                   atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(single.z_hat[0], batched.z_hat[i], atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(single.history[:, 0], batched.history[:, i],
                                   atol=1e-10, rtol=1e-10)
    # the default starts are prior.sample_latent(B * R, generator) in image-major order
    drawn = csgm(y, A, G, generator=torch.Generator().manual_seed(5), **kw)
    torch.testing.assert_close(drawn.z_hat, batched.z_hat)


def test_reproducible_with_generator():
    G, A, y = _problem("cpu", dtype=torch.float32)
    kw = {"restarts": 3, "steps": 20, "lr": 0.05}
    a = csgm(y, A, G, generator=torch.Generator().manual_seed(7), **kw)
    b = csgm(y, A, G, generator=torch.Generator().manual_seed(7), **kw)
    c = csgm(y, A, G, generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a.z_hat, b.z_hat) and torch.equal(a.history, b.history)
    assert not torch.equal(a.history, c.history)


class _CountingGenerator(LinearGenerator):
    """Records the batch size of every decode call."""

    def decode(self, z):
        self.sizes.append(z.shape[0])
        return super().decode(z)


def test_early_stopping_freezes_converged_restarts():
    G, A, y = _problem("cpu", batch=2)
    G = _CountingGenerator(G.W, G.b, IMG)
    G.sizes = []
    out = csgm(y, A, G, lam=0.1, restarts=3, steps=3000, lr=0.02, optimizer="sgd",
               early_stop_tol=1e-10, patience=5, generator=torch.Generator().manual_seed(0))
    # a quadratic solved by gradient descent stalls long before 3000 steps
    assert int(out.n_steps.max()) < 3000
    assert out.history.shape[0] < 3000
    # once a restart stops, its objective stops changing (z frozen)
    for i in range(2):
        for r in range(3):
            k = int(out.n_steps[i, r])
            tail = out.history[k:, i, r]
            assert torch.all(tail == tail[0])
    z_star = G.map_estimate(y, _matrix(A), lam=0.1 * M)
    torch.testing.assert_close(out.z_hat, z_star, atol=1e-5, rtol=0)
    # stopped restarts leave the batch (at the next 10-step compaction): they stop costing
    steps_run = out.history.shape[0]
    assert G.sizes[:steps_run] == sorted(G.sizes[:steps_run], reverse=True)
    assert sum(G.sizes[:steps_run]) < 6 * steps_run
    n_steps = sorted(out.n_steps.flatten().tolist())
    assert sum(G.sizes[:steps_run]) <= sum(min(steps_run, k + 10) for k in n_steps)
    # without early stopping every restart takes every step
    full = csgm(y, A, G, lam=0.1, restarts=3, steps=50, lr=0.02, optimizer="sgd")
    assert full.n_steps.eq(50).all() and full.history.shape == (50, 2, 3)


def test_deepinv_interop_float32():
    # deepinv's own CompressedSensing (float32 buffers) as the operator
    g = torch.Generator().manual_seed(0)
    G = LinearGenerator(torch.randn(N_PIX, D, generator=g), None, IMG)
    A = deepinv.physics.CompressedSensing(m=30, img_size=IMG, rng=g)
    y = A.A(G.decode(torch.randn(2, D, generator=g)))
    out = csgm(y, A, G, restarts=2, steps=400, lr=0.05, generator=g)
    assert out.x_hat.dtype == torch.float32 and out.x_hat.shape == (2, *IMG)
    assert float(out.measurement_error.max()) < 1e-6


def test_batchnorm_prior_is_decoded_in_eval_mode():
    # a DCGAN generator left in train mode: its BatchNorm would couple the rows of the batch.
    # CSGM decodes in eval mode (so batched == per image) and restores the mode.
    from genprior.priors.dcgan import DCGANGenerator

    G = DCGANGenerator(nz=4, ngf=4, nc=1, img_size=16)
    G.train()
    A = deepinv.physics.CompressedSensing(m=20, img_size=(1, 16, 16),
                                          rng=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = A.A(G.eval().sample(2, generator=torch.Generator().manual_seed(1)))
    G.train()
    z_init = G.sample_latent(4, generator=torch.Generator().manual_seed(2)).view(2, 2, 4)
    batched = csgm(y, A, G, restarts=2, steps=5, lr=0.05, z_init=z_init)
    single = csgm(y[1:], A, G, restarts=2, steps=5, lr=0.05, z_init=z_init[1:])
    assert G.training
    torch.testing.assert_close(single.restart_loss[0], batched.restart_loss[1])
    assert all(p.grad is None for p in G.parameters())


def test_sparse_gen_with_zero_generator_is_lasso():
    # G = 0: Sparse-Gen's nu solves (1/m)||A nu - y||^2 + lam_nu ||Psi nu||_1, i.e. the Lasso
    # (1/(2m))||.||^2 + alpha ||.||_1 with alpha = lam_nu / 2.
    g = torch.Generator().manual_seed(0)
    G = LinearGenerator(torch.zeros(N_PIX, 2, dtype=torch.float64), None, IMG)
    A = deepinv.physics.CompressedSensing(m=20, img_size=IMG, rng=g, dtype=torch.float64)
    c = torch.zeros(2, *IMG, dtype=torch.float64)
    c[0, 0, 1, 2], c[1, 0, 4, 4], c[1, 0, 0, 3] = 0.8, 0.6, 0.3
    y = A.A(idct2(c))  # sparse in the DCT basis
    alpha = 1e-3
    ref = lasso(y, A, basis="dct", alpha=alpha, steps=3000, tol=1e-13, clip=False)
    out = sparse_gen(y, A, G, lam_nu=2 * alpha, basis="dct", restarts=1, steps=3000,
                     generator=g)
    torch.testing.assert_close(out.nu_hat, ref.x_hat, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.x_hat, out.x_gen + out.nu_hat)
    assert torch.all(out.x_gen == 0)
    torch.testing.assert_close(out.loss, 2 * ref.loss, atol=1e-9, rtol=1e-6)


def test_sparse_gen_recovers_off_range_image():
    # x = G(z) + sparse deviation; with enough measurements Sparse-Gen recovers it while CSGM
    # stays at the generator's representation error.
    g = torch.Generator().manual_seed(0)
    G = LinearGenerator(torch.randn(N_PIX, 2, generator=g, dtype=torch.float64), None, IMG)
    A = deepinv.physics.CompressedSensing(m=30, img_size=IMG, rng=g, dtype=torch.float64)
    nu = torch.zeros(1, *IMG, dtype=torch.float64)
    nu[0, 0, 2, 3], nu[0, 0, 5, 1] = 1.0, -0.7
    x = G.decode(torch.randn(1, 2, generator=g, dtype=torch.float64)) + nu
    y = A.A(x)
    plain = csgm(y, A, G, restarts=1, steps=2000, lr=0.05, generator=g)
    sparse = sparse_gen(y, A, G, lam_nu=1e-4, restarts=1, steps=4000, lr=0.05, generator=g)
    err_plain = (plain.x_hat - x).pow(2).mean()
    err_sparse = (sparse.x_hat - x).pow(2).mean()
    assert err_sparse < 1e-3 * err_plain


def test_bad_inputs():
    G, A, y = _problem("cpu")
    with pytest.raises(ValueError, match="y must have shape"):
        csgm(y[:, :-1], A, G, steps=1)
    bad = y.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        csgm(bad, A, G, steps=1)
    other = LinearGenerator(torch.zeros(49, D, dtype=torch.float64), None, (1, 7, 7))
    with pytest.raises(ValueError, match="prior generates images of shape"):
        csgm(y, A, other, steps=1)
    with pytest.raises(ValueError, match="z_init must have shape"):
        csgm(y, A, G, restarts=2, steps=1, z_init=torch.zeros(4, D, dtype=torch.float64))
    with pytest.raises(ValueError, match="select"):
        csgm(y, A, G, steps=1, select="best")
    with pytest.raises(ValueError, match="lam"):
        csgm(y, A, G, steps=1, lam=-1.0)
    with pytest.raises(TypeError, match="prior"):
        csgm(y, A, torch.nn.Linear(2, 2), steps=1)
    with pytest.raises(ValueError, match="lam_nu"):
        sparse_gen(y, A, G, steps=1, lam_nu=-1.0)
