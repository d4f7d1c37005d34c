"""IAGAN (image-adaptive reconstruction): the stage-2 closed form with a linear generator,
exact back-projection for every operator, no leakage between images' weights, the discrepancy
stopping rule, batched equals per-image, and every prior family."""

import deepinv
import pytest
import torch

from genprior.operators import make_operator
from genprior.priors.conv_vae import ConvVAE
from genprior.priors.dcgan import DCGANGenerator
from genprior.priors.linear import LinearGenerator
from genprior.priors.vae_mlp import MLPVAE
from genprior.reconstruct import adapt_weights, adaptive, back_project, reconstruct

IMG = (1, 5, 3)
N_PIX, D, M = 15, 3, 8


def _linear_problem(batch=3, noise=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    G = LinearGenerator(torch.randn(N_PIX, D, generator=g, dtype=dtype),
                        torch.randn(N_PIX, generator=g, dtype=dtype), IMG)
    A = deepinv.physics.CompressedSensing(m=M, img_size=IMG, rng=torch.Generator().manual_seed(1),
                                          dtype=dtype)
    x = torch.randn(batch, *IMG, generator=g, dtype=dtype)  # off the generator's range
    y = A.A(x) + noise * torch.randn(batch, M, generator=g, dtype=dtype)
    return G, A, x, y


def _matrix(A, n=N_PIX):
    return A.A(torch.eye(n, dtype=torch.float64).reshape(n, *IMG)).T


def test_stage2_matches_ridge_closed_form_for_the_offset():
    # adapt only b, z fixed: min_b w||A(Wz + b) - y||^2 + lt ||b - b0||^2 is ridge regression
    G, A, _, y = _linear_problem()
    z = torch.randn(3, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    lt, w = 0.05, 1.0 / M
    x, z_out, history, n = adapt_weights(y, A, G, z, lam_theta=lt, steps=4000, lr_theta=0.02,
                                         lr_z=0.0, adapt=["b"])
    Am = _matrix(A)
    lhs = w * Am.T @ Am + lt * torch.eye(N_PIX, dtype=torch.float64)
    rhs = w * (y - (Am @ G.W @ z.T).T) @ Am + lt * G.b
    b_star = torch.linalg.solve(lhs, rhs.T).T
    x_star = (G.W @ z.T).T + b_star
    torch.testing.assert_close(x.reshape(3, -1), x_star, rtol=1e-5, atol=1e-6)
    assert torch.equal(z_out, z) and bool((n == 4000).all())
    assert bool((history[-1] < history[0]).all())


@pytest.mark.parametrize("spec", ["gaussian_cs:8", "structured_cs:8", "inpaint:random:0.5",
                                  "downsample:2"])
def test_exact_back_projection_makes_ax_equal_y(spec):
    img = (1, 6, 4)
    A = make_operator(spec, img, seed=0).double()
    x = torch.rand(2, *img, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = A.A(torch.rand(2, *img, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    xb = back_project(x, y, A)
    assert float((A.A(xb) - y).norm() / y.norm()) <= 1e-10


def test_regularized_back_projection_closed_form():
    _, A, x, y = _linear_problem(noise=0.1)
    x0 = torch.zeros_like(x)
    Am = _matrix(A)
    for eps in (1e-3, 0.5):
        expected = (Am.T @ torch.linalg.solve(Am @ Am.T + eps * torch.eye(M, dtype=torch.float64),
                                              y.T)).T
        torch.testing.assert_close(back_project(x0, y, A, eps=eps).reshape(3, -1), expected,
                                   rtol=1e-6, atol=1e-8)


def test_images_do_not_share_weights():
    G, A, _, y = _linear_problem()
    z0 = torch.randn(3, 1, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    kw = {"adapt_steps": 30, "lr_theta": 1e-2, "restarts": 1, "steps": 20, "z_init": z0,
          "back_projection": None}
    a = adaptive(y, A, G, **kw)
    y2 = y.clone()
    y2[1] += 1.0
    b = adaptive(y2, A, G, **kw)
    assert torch.equal(a.x_hat[0], b.x_hat[0]) and torch.equal(a.x_hat[2], b.x_hat[2])
    assert not torch.equal(a.x_hat[1], b.x_hat[1])
    # the prior itself is left unchanged
    assert torch.equal(G.b, _linear_problem()[0].b)


def test_discrepancy_rule_stops_at_the_first_step_below_threshold():
    G, A, _, y = _linear_problem(noise=0.0)
    z = torch.zeros(3, D, dtype=torch.float64)
    kw = {"steps": 60, "lr_theta": 0.01, "lr_z": 0.0, "adapt": ["b"]}
    _, _, free, _ = adapt_weights(y, A, G, z, **kw)  # history[t] = ||Ax_t - y||^2/m here
    sigma = 1.0
    thr = float(free[25, 0] + free[26, 0]) / 2  # between steps 25 and 26 of image 0
    _, _, _, n = adapt_weights(y, A, G, z, noise_std=sigma, tau=thr, **kw)
    expected = [int((free[:, i] <= thr).nonzero()[0]) if (free[:, i] <= thr).any() else 60
                for i in range(3)]
    assert n.tolist() == expected and expected[0] == 26


def _conv_vae():
    return ConvVAE(img_shape=(3, 16, 16), latent_dim=6, base_channels=4).eval()


def _dcgan():
    G = DCGANGenerator(nz=8, ngf=4, nc=3, img_size=28).eval()
    return G


@pytest.mark.parametrize("make", [lambda: MLPVAE(img_shape=(1, 6, 5), hidden=7, latent_dim=3),
                                  _dcgan, _conv_vae], ids=["MLPVAE", "DCGAN", "ConvVAE"])
def test_batched_weights_equal_per_image_runs_for_every_prior(make):
    torch.manual_seed(0)  # test-only: the random init of the tiny nets
    G = make()
    img = tuple(G.img_shape)
    A = make_operator("gaussian_cs:20", img, seed=0)
    x = torch.rand(3, *img, generator=torch.Generator().manual_seed(1))
    y = A.A(x)
    z = G.sample_latent(3, generator=torch.Generator().manual_seed(2))
    kw = {"steps": 5, "lr_theta": 1e-3, "lr_z": 1e-3}
    xb, _zb, hist, _ = adapt_weights(y, A, G, z, **kw)
    for i in range(3):
        xi, _zi, _, _ = adapt_weights(y[i:i + 1], A, G, z[i:i + 1], **kw)
        torch.testing.assert_close(xb[i:i + 1], xi, rtol=1e-4, atol=1e-5)
    assert bool((hist[-1] < hist[0]).all())


def test_autoencoder_kl_prior_adapts(tmp_path):
    from diffusers import AutoencoderKL

    from genprior.priors.autoencoder_kl import AutoencoderKLPrior

    torch.manual_seed(0)  # test-only: the random init of the tiny net
    vae = AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
                        norm_num_groups=8, sample_size=16,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2).eval()
    vae.save_pretrained(tmp_path)
    G = AutoencoderKLPrior.from_diffusers(tmp_path)
    img = tuple(G.img_shape)
    A = make_operator("inpaint:random:0.5", img, seed=0)
    y = A.A(torch.rand(2, *img, generator=torch.Generator().manual_seed(1)))
    z = G.sample_latent(2, generator=torch.Generator().manual_seed(2))
    _, _, hist, _ = adapt_weights(y, A, G, z, steps=5, lr_theta=1e-3, lr_z=1e-3)
    assert bool((hist[-1] < hist[0]).all())


def test_adaptive_through_reconstruct_and_consistency():
    G, A, _x, y = _linear_problem()
    g = torch.Generator().manual_seed(0)
    out = reconstruct("adaptive", y, A, prior=G, restarts=2, steps=50, lr=0.1, generator=g,
                      adapt_steps=50, lr_theta=1e-2)
    assert float(out.measurement_error.max()) < 1e-20  # exact back-projection, noise-free
    assert bool((out.csgm.measurement_error > 1e-3).all())  # x is off the range: CSGM misses


def test_bad_options():
    G, A, _, y = _linear_problem()
    with pytest.raises(ValueError, match="back_projection"):
        adaptive(y, A, G, back_projection="soft", steps=1)
    with pytest.raises(ValueError, match="noise_std"):
        adaptive(y, A, G, tau=1.0, steps=1, adapt_steps=1)
    with pytest.raises(ValueError, match="adapt names"):
        adaptive(y, A, G, adapt=["nope"], steps=1, adapt_steps=1)
    with pytest.raises(ValueError, match="lr_theta"):
        adaptive(y, A, G, lr_theta=float("inf"), steps=1, adapt_steps=1)


def test_callback_sees_every_step_and_the_frozen_rows():
    G, A, _, y = _linear_problem(noise=0.0)
    z = torch.zeros(3, D, dtype=torch.float64)
    seen = []
    kw = {"steps": 40, "lr_theta": 0.01, "lr_z": 0.0, "adapt": ["b"]}
    _, _, free, _ = adapt_weights(y, A, G, z, **kw)
    thr = float(free[10, 0] + free[11, 0]) / 2
    _, _, _, n = adapt_weights(y, A, G, z, noise_std=1.0, tau=thr,
                               callback=lambda t, x: seen.append((t, x)), **kw)
    assert [t for t, _ in seen] == list(range(len(seen)))
    # the measurement error of what the callback sees is the objective recorded before the step
    err = ((A.A(seen[5][1]) - y) ** 2).sum(1) / M
    torch.testing.assert_close(err, free[5])
    stop = int(n[0])
    assert torch.equal(seen[-1][1][0], seen[stop][1][0])  # image 0 frozen after it stopped
