"""Successive halving of restarts (which rows stop, when, and that images stay independent) and
a low-precision generator (bfloat16 autocast) with the data term in the measurements' dtype."""

import deepinv
import pytest
import torch

from genprior.optim import GaussianLatent, Halving, LatentProblem, autocast_decode
from genprior.priors.linear import LinearGenerator
from genprior.reconstruct import csgm

IMG, N_PIX, D, M = (1, 6, 6), 36, 5, 12


def _problem(*, dtype=torch.float64, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    G = LinearGenerator(torch.randn(N_PIX, D, generator=g, dtype=dtype),
                        0.1 * torch.randn(N_PIX, generator=g, dtype=dtype), IMG)
    A = deepinv.physics.CompressedSensing(m=M, img_size=IMG, dtype=dtype,
                                          rng=torch.Generator().manual_seed(seed + 1))
    y = A.A(G.decode(torch.randn(batch, D, generator=g, dtype=dtype)))
    return G, A, y + 0.1 * torch.randn(y.shape, generator=g, dtype=dtype)


def test_halving_keeps_the_better_half_of_each_group():
    h = Halving(group=4, every=1)
    value = torch.tensor([3.0, 1.0, 2.0, 0.5, 9.0, 9.0, 1.0, 5.0])
    stopped = torch.zeros(8, dtype=torch.bool)
    first = h.stop(value, stopped)  # keeps rows 1, 3 and (tie at 9.0 broken by the row) 6, 7
    assert first.tolist() == [True, False, True, False, True, True, False, False]
    second = h.stop(value, first)
    assert second.tolist() == [False, True, False, False, False, False, False, True]
    assert h.stop(value, first | second).sum() == 0  # min_keep = 1 is never stopped
    with pytest.raises(ValueError, match="Halving.every"):
        Halving(group=4, every=0)


def test_csgm_halving_schedule_and_per_image_independence():
    G, A, y = _problem()
    R, k = 8, 5
    z_init = G.sample_latent(3 * R, generator=torch.Generator().manual_seed(5)).view(3, R, D)
    kw = {"lam": 0.05, "restarts": R, "steps": 40, "lr": 0.05, "halving_every": k,
          "optimizer": "adam"}
    out = csgm(y, A, G, z_init=z_init, **kw)
    # 8 restarts -> 4 after 5 steps -> 2 after 10 -> 1 after 15; the survivor runs to the end
    assert sorted(out.n_steps[0].tolist()) == [5, 5, 5, 5, 10, 10, 15, 40]
    assert int(out.n_steps.sum()) == 3 * (4 * 5 + 2 * 10 + 15 + 40)
    assert out.best_restart.tolist() == out.n_steps.argmax(dim=1).tolist()
    for i in range(3):  # an image's answer does not depend on the others in the batch
        single = csgm(y[i:i + 1], A, G, z_init=z_init[i:i + 1], **kw)
        assert torch.equal(single.n_steps[0], out.n_steps[i])
        torch.testing.assert_close(single.z_hat[0], out.z_hat[i], rtol=1e-10, atol=1e-10)
    off = csgm(y, A, G, z_init=z_init, **{**kw, "halving_every": 0})
    assert off.n_steps.eq(40).all()  # 0 switches halving off
    with pytest.raises(ValueError, match="halving_every"):
        csgm(y, A, G, restarts=2, steps=5, halving_every=-1)


def test_autocast_decode_runs_the_generator_low_and_the_data_term_in_float32():
    G, A, y = _problem(dtype=torch.float32, batch=2)
    low = autocast_decode(G.decode, torch.bfloat16)
    z = G.sample_latent(2, generator=torch.Generator().manual_seed(1))
    assert G.decode(z).dtype == torch.float32 and low(z).dtype == torch.float32
    # the output is the generator's bfloat16 result, cast back
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = G.decode(z)
    assert torch.equal(low(z), ref.float()) and not torch.equal(ref.float(), G.decode(z))
    # a generator whose output stays bfloat16 is cast by the problem before the float32 operator
    problem = LatentProblem(y, A, lambda v: G.decode(v).to(torch.bfloat16),
                            latent=GaussianLatent(0.1))
    value, grad, _, x = problem.value_and_grad(z)
    assert value.dtype == grad.dtype == x.dtype == torch.float32


def test_csgm_with_bfloat16_autocast_is_close_to_float32():
    G, A, y = _problem(dtype=torch.float32, batch=2)
    kw = {"lam": 0.05, "restarts": 2, "steps": 200, "lr": 0.05, "optimizer": "adam"}
    full = csgm(y, A, G, generator=torch.Generator().manual_seed(3), **kw)
    low = csgm(y, A, G, generator=torch.Generator().manual_seed(3), autocast=torch.bfloat16,
               **kw)
    assert low.x_hat.dtype == torch.float32 and low.z_hat.dtype == torch.float32
    assert not torch.equal(low.x_hat, full.x_hat)  # the generator really ran in bfloat16
    rel = (low.x_hat - full.x_hat).norm() / full.x_hat.norm()
    assert rel < 0.05
    with pytest.raises(ValueError, match="autocast"):
        csgm(y, A, G, restarts=1, steps=2, autocast="bf16")
