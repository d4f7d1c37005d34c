"""recalibrate_batchnorm: BatchNorm running statistics from the generator's own draws."""

import copy

import pytest
import torch
from torch import nn

from genprior.priors.dcgan import DCGANGenerator
from genprior.priors.linear import LinearGenerator
from genprior.priors.standing_stats import recalibrate_batchnorm
from genprior.training.ema import EMA


def _generator(seed: int) -> DCGANGenerator:
    G = DCGANGenerator(nz=6, ngf=4, img_size=16).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the convolutions' weights from the seed (BatchNorm's stay 1, 0)
        for m in G.modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.copy_(0.2 * torch.randn(m.weight.shape, generator=g, dtype=torch.float64))
    return G


def _batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_running_statistics_are_the_average_of_the_batch_statistics():
    G = _generator(0)
    weights = {k: v.clone() for k, v in G.state_dict().items()
               if "running" not in k and "num_batches" not in k}
    G.eval()
    assert recalibrate_batchnorm(G, n_batches=3, batch_size=5,
                                 generator=torch.Generator().manual_seed(1)) == 2
    # the same draws through a copy in training mode, each layer's input recorded
    ref = copy.deepcopy(G).train()
    seen = {i: [] for i in range(2)}
    for i, m in enumerate(_batchnorms(ref)):
        m.register_forward_pre_hook(lambda mod, inp, i=i: seen[i].append(inp[0]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(3):
            ref.decode(ref.sample_latent(5, generator=g))
    for i, m in enumerate(_batchnorms(G)):
        means = torch.stack([a.mean((0, 2, 3)) for a in seen[i]])
        variances = torch.stack([a.var((0, 2, 3), unbiased=True) for a in seen[i]])
        torch.testing.assert_close(m.running_mean, means.mean(0), atol=1e-12, rtol=0)
        torch.testing.assert_close(m.running_var, variances.mean(0), atol=1e-12, rtol=0)
        assert m.momentum == 0.1  # restored
    assert not G.training  # mode restored
    for k, v in G.state_dict().items():  # weights untouched
        if k in weights:
            assert torch.equal(v, weights[k])


def test_an_ema_generator_gets_statistics_of_its_own_activations():
    # EMA copies the raw generator's buffers: after averaging two different generators, the
    # copied statistics are not those of the averaged weights; recalibration makes them so, and
    # then a large batch normalised by them is (close to) zero-mean, unit-variance.
    raw = _generator(0)
    ema = EMA(raw, decay=0.5)
    other = _generator(1)
    with torch.no_grad():
        other.net[0].weight.mul_(3)  # a generator far from the first: larger activations
        other.train().decode(other.sample_latent(64, generator=torch.Generator().manual_seed(0)))
    ema.update(other)
    G = ema.module
    first = _batchnorms(G)[0]
    assert torch.equal(first.running_mean, _batchnorms(other)[0].running_mean)  # copied
    z = G.sample_latent(4096, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = G.net[0](z.reshape(*z.shape, 1, 1))  # the first BatchNorm's input
    mean, var = a.mean((0, 2, 3)), a.var((0, 2, 3))
    copied = (first.running_var / var - 1).abs().max()
    recalibrate_batchnorm(G, n_batches=50, batch_size=64,
                          generator=torch.Generator().manual_seed(2))
    assert copied > 1  # the copied variances are off by more than 100 %, now within 10 %:
    assert (first.running_var / var - 1).abs().max() < 0.1
    assert (first.running_mean - mean).abs().max() < 0.01


def test_no_batchnorm_changes_nothing_and_bad_settings_are_refused():
    prior = LinearGenerator(torch.eye(4, 2, dtype=torch.float64), None, (1, 2, 2))
    assert recalibrate_batchnorm(prior, n_batches=1, batch_size=2) == 0
    G = _generator(0)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        recalibrate_batchnorm(G, batch_size=1)
    with pytest.raises(ValueError, match="n_batches"):
        recalibrate_batchnorm(G, n_batches=0)
