"""Generative priors: round trips, ranges, randomness, closed forms and reference architectures."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from genprior._serialization import load_tensors, save_tensors
from genprior.priors import PRIORS, Prior
from genprior.priors.autoencoder_kl import AutoencoderKLPrior
from genprior.priors.conv_vae import ConvVAE, gaussian_log_likelihood
from genprior.priors.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_, dcgan_layout
from genprior.priors.linear import LinearGenerator
from genprior.priors.vae_mlp import MLPVAE, gaussian_kl


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tiny_diffusers_vae(tmp_path_factory):
    """A tiny random AutoencoderKL written with diffusers' own save_pretrained."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=8,
        sample_size=16, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    ).eval()
    path = tmp_path_factory.mktemp("diffusers_vae")
    vae.save_pretrained(path)
    return vae, path


def _linear() -> LinearGenerator:
    g = _gen(1)
    W = torch.randn(2 * 5 * 3, 4, generator=g, dtype=torch.float64)
    return LinearGenerator(W, torch.randn(30, generator=g, dtype=torch.float64), (2, 5, 3))


def _dcgan(img_size: int) -> DCGANGenerator:
    G = dcgan_init_(DCGANGenerator(nz=8, ngf=4, nc=3, img_size=img_size), generator=_gen(2))
    with torch.no_grad():  # move the BatchNorm running statistics away from their defaults
        G.train().decode(G.sample_latent(4, generator=_gen(3)))
    return G.eval()


FACTORIES = {
    "MLPVAE": lambda: MLPVAE(img_shape=(1, 6, 5), hidden=7, latent_dim=3),
    "DCGAN64": lambda: _dcgan(64),
    "DCGAN28": lambda: _dcgan(28),
    "ConvVAE": lambda: ConvVAE(img_shape=(3, 16, 16), latent_dim=6, base_channels=4),
    "Linear": _linear,
}


@pytest.fixture(params=[*FACTORIES, "AutoencoderKL"])
def prior(request, tiny_diffusers_vae) -> Prior:
    if request.param == "AutoencoderKL":
        return AutoencoderKLPrior.from_diffusers(tiny_diffusers_vae[1])
    return FACTORIES[request.param]().eval()


def test_every_registered_prior_of_this_module_is_covered():
    mine = {"MLPVAE", "DCGANGenerator", "ConvVAE", "LinearGenerator", "AutoencoderKLPrior"}
    assert mine <= set(PRIORS)


def test_save_load_round_trip(prior, tmp_path):
    prior.save_pretrained(tmp_path)
    loaded = Prior.from_pretrained(tmp_path)
    assert type(loaded) is type(prior)
    assert loaded.config == json.loads((tmp_path / "config.json").read_text())["config"]
    assert loaded.latent_shape == prior.latent_shape and loaded.img_shape == prior.img_shape
    z = prior.sample_latent(3, generator=_gen(0))
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), prior.decode(z))
    # dispatch through the subclass works too
    assert type(type(prior).from_pretrained(tmp_path)) is type(prior)


def test_decode_shape_and_range(prior):
    z = 5 * prior.sample_latent(4, generator=_gen(0))  # large latents stress the output range
    with torch.no_grad():
        x = prior.decode(z)
    assert x.shape == (4, *prior.img_shape)
    if isinstance(prior, LinearGenerator):  # the only prior allowed to leave [0, 1]
        assert x.min() < 0 or x.max() > 1
    else:
        assert x.min() >= 0 and x.max() <= 1


def test_sample_reproducible(prior):
    a = prior.sample(2, generator=_gen(7))
    b = prior.sample(2, generator=_gen(7))
    c = prior.sample(2, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_sample_on_device(device):
    G = FACTORIES["DCGAN28"]().to(device)
    x = G.sample(2, generator=_gen(0))
    assert x.device.type == device.type
    assert torch.allclose(x.cpu(), FACTORIES["DCGAN28"]().sample(2, generator=_gen(0)),
                          atol=1e-5)


def test_log_prior_closed_form(prior):
    z = prior.sample_latent(3, generator=_gen(0))
    normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    expected = normal.log_prob(z).reshape(3, -1).sum(1)
    assert prior.log_prior(z).shape == (3,)
    torch.testing.assert_close(prior.log_prior(z), expected)


def test_from_pretrained_mismatched_architecture_names_file(tmp_path):
    MLPVAE(img_shape=(1, 4, 4), hidden=5, latent_dim=2).save_pretrained(tmp_path)
    cfg_path = tmp_path / "config.json"
    meta = json.loads(cfg_path.read_text())
    meta["config"]["hidden"] = 6
    cfg_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="model.safetensors"):
        Prior.from_pretrained(tmp_path)


def test_from_pretrained_wrong_subclass(tmp_path):
    _linear().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="LinearGenerator"):
        MLPVAE.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------- MLPVAE
def test_mlpvae_matches_reference_architecture():
    vae = MLPVAE()
    n, h, d = 784, 500, 20
    enc = [vae.enc1, vae.enc2, vae.fc_mu, vae.fc_logvar]
    dec = [vae.dec1, vae.dec2, vae.dec_out]
    count = lambda mods: sum(p.numel() for m in mods for p in m.parameters())
    assert count(enc) == n * h + h + h * h + h + h * 2 * d + 2 * d == 663040
    assert count(dec) == d * h + h + h * h + h + h * n + n == 653784
    assert sum(p.numel() for p in vae.parameters()) == 663040 + 653784
    assert vae.latent_shape == (20,) and vae.img_shape == (1, 28, 28)
    # reference init: Xavier-uniform weights, zero biases
    for m in enc + dec:
        bound = math.sqrt(6 / (m.in_features + m.out_features))
        assert m.weight.abs().max() <= bound and torch.all(m.bias == 0)


def test_mlpvae_elbo_by_hand():
    vae = MLPVAE(img_shape=(1, 1, 2), hidden=3, latent_dim=2).double()
    vae.reset_parameters(generator=_gen(0))
    with torch.no_grad():
        for p in vae.parameters():  # non-zero biases so they are exercised
            if p.ndim == 1:
                p.copy_(0.1 * torch.arange(p.numel(), dtype=p.dtype))
    x = torch.tensor([[[[0.0, 1.0]]], [[[0.3, 0.8]]]], dtype=torch.float64)

    def lin(m, v):
        return v @ m.weight.T + m.bias

    sp = lambda t: torch.log1p(torch.exp(t))
    h = sp(lin(vae.enc2, sp(lin(vae.enc1, x.reshape(2, 2)))))
    mu, logvar = lin(vae.fc_mu, h), lin(vae.fc_logvar, h)
    eps = torch.randn(2, 2, generator=_gen(5), dtype=torch.float64)
    z = mu + torch.exp(logvar / 2) * eps
    p = 1 / (1 + torch.exp(-lin(vae.dec_out, sp(lin(vae.dec2, sp(lin(vae.dec1, z)))))))
    xf = x.reshape(2, 2)
    log_lik = (xf * torch.log(p) + (1 - xf) * torch.log(1 - p)).sum(1)
    kl = 0.5 * (mu**2 + torch.exp(logvar) - 1 - logvar).sum(1)
    expected = log_lik - kl

    elbo = vae.elbo(x, generator=_gen(5))
    torch.testing.assert_close(elbo, expected)
    torch.testing.assert_close(vae.loss(x, generator=_gen(5)), -expected.mean())
    torch.testing.assert_close(vae.decode(z), p.reshape(2, 1, 1, 2))
    torch.testing.assert_close(vae.encode(x), (mu, logvar))


def test_gaussian_kl_matches_torch():
    g = _gen(0)
    mu, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(logvar / 2))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(gaussian_kl(mu, logvar),
                               torch.distributions.kl_divergence(q, p).sum(1))


# ----------------------------------------------------------------------------------- DCGAN
@pytest.mark.parametrize(("img_size", "layout"), [(64, (4, 4)), (32, (4, 3)), (28, (7, 2))])
def test_dcgan_layout(img_size, layout):
    assert dcgan_layout(img_size) == layout


@pytest.mark.parametrize("img_size", [7, 27, 1])
def test_dcgan_layout_rejects(img_size):
    with pytest.raises(ValueError, match="img_size"):
        dcgan_layout(img_size)


@pytest.mark.parametrize("img_size", [64, 28])
def test_dcgan_generator_shapes(img_size):
    G = DCGANGenerator(nz=8, ngf=4, nc=3, img_size=img_size).eval()
    z = G.sample_latent(2, generator=_gen(0))
    assert G.decode(z).shape == (2, 3, img_size, img_size)
    assert G.decode_tanh(z).shape == (2, 3, img_size, img_size)
    torch.testing.assert_close(G.decode(z), (G.decode_tanh(z) + 1) / 2)
    first = G.net[0]
    base = 4 if img_size == 64 else 7
    assert first.kernel_size == (base, base)
    assert first.out_channels == 4 * (8 if img_size == 64 else 2)  # ngf * 2**(n_up - 1)
    with pytest.raises(ValueError, match="z"):
        G.decode(torch.zeros(2, 9))


@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("img_size", [64, 28])
def test_dcgan_discriminator(img_size, spectral_norm, tmp_path):
    D = DCGANDiscriminator(ndf=4, nc=3, img_size=img_size, spectral_norm=spectral_norm)
    dcgan_init_(D, generator=_gen(0))
    assert D.config == {"ndf": 4, "nc": 3, "img_size": img_size,
                        "spectral_norm": spectral_norm, "batch_norm": not spectral_norm}
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert has_bn is not spectral_norm
    x = torch.rand(5, 3, img_size, img_size, generator=_gen(1))
    D.eval()
    logits = D(x)
    assert logits.shape == (5,)
    # persistence as the checkpoint module does it: config + state dict in safetensors
    save_tensors(tmp_path / "d.safetensors", D.state_dict())
    D2 = DCGANDiscriminator(**{k: D.config[k] for k in ("ndf", "nc", "img_size")},
                            spectral_norm=D.config["spectral_norm"],
                            batch_norm=D.config["batch_norm"])
    D2.load_state_dict(load_tensors(tmp_path / "d.safetensors"))
    assert torch.equal(D2.eval()(x), logits)
    with pytest.raises(ValueError, match="x"):
        D(torch.rand(5, 1, img_size, img_size))


def test_dcgan_init_statistics_and_reproducibility():
    G1 = dcgan_init_(DCGANGenerator(nz=16, ngf=16, nc=3, img_size=32), generator=_gen(0))
    G2 = dcgan_init_(DCGANGenerator(nz=16, ngf=16, nc=3, img_size=32), generator=_gen(0))
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)
    w = G1.net[0].weight  # 16 * 64 * 4 * 4 = 16384 entries
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = G1.net[1]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and torch.all(bn.bias == 0)
    D = dcgan_init_(DCGANDiscriminator(ndf=16, nc=3, img_size=32, spectral_norm=True),
                    generator=_gen(0))
    original = D.net[2].parametrizations.weight.original
    assert abs(original.std().item() - 0.02) < 2e-3


# ----------------------------------------------------------------------------------- ConvVAE
@pytest.mark.parametrize("img_shape", [(3, 64, 64), (1, 28, 28)])
def test_conv_vae_shapes(img_shape):
    vae = ConvVAE(img_shape=img_shape, latent_dim=5, base_channels=4)
    x = torch.rand(2, *img_shape, generator=_gen(0))
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (2, 5)
    assert vae.decode(mu).shape == (2, *img_shape)
    elbo = vae.elbo(x, generator=_gen(1))
    assert elbo.shape == (2,) and torch.isfinite(elbo).all()
    torch.testing.assert_close(vae.loss(x, generator=_gen(1)), -elbo.mean())


def test_conv_vae_rejects_non_square():
    with pytest.raises(ValueError, match="img_shape"):
        ConvVAE(img_shape=(3, 32, 16))


def test_conv_vae_decode_is_per_sample_and_mode_independent():
    vae = ConvVAE(img_shape=(3, 16, 16), latent_dim=6, base_channels=4)
    z = vae.sample_latent(3, generator=_gen(0))
    with torch.no_grad():
        x_train = vae.train().decode(z)
        x_eval = vae.eval().decode(z)
        x_one = vae.decode(z[1:2])
    torch.testing.assert_close(x_train, x_eval)
    torch.testing.assert_close(x_one, x_eval[1:2])


def test_conv_vae_elbo_by_hand():
    vae = ConvVAE(img_shape=(1, 8, 8), latent_dim=3, base_channels=2).double()
    with torch.no_grad():
        vae.log_sigma.fill_(math.log(0.2))
    x = torch.rand(2, 1, 8, 8, generator=_gen(0), dtype=torch.float64)
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(logvar / 2) * torch.randn(2, 3, generator=_gen(4), dtype=torch.float64)
    lik = torch.distributions.Normal(vae.decode(z), 0.2).log_prob(x).reshape(2, -1).sum(1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(vae.elbo(x, generator=_gen(4)), lik - kl)


def test_gaussian_log_likelihood_matches_torch():
    g = _gen(0)
    x, mean = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    log_sigma = torch.tensor(-0.7)
    expected = torch.distributions.Normal(mean, log_sigma.exp()).log_prob(x).reshape(2, -1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(x, mean, log_sigma), expected)


# ----------------------------------------------------------------------------------- AutoencoderKL
def test_autoencoder_kl_matches_diffusers_decode(tiny_diffusers_vae):
    vae, path = tiny_diffusers_vae
    prior = AutoencoderKLPrior.from_diffusers(path)
    assert prior.latent_shape == (4, 8, 8) and prior.img_shape == (3, 16, 16)
    assert prior.scaling_factor == pytest.approx(0.18215)
    z = prior.sample_latent(2, generator=_gen(0))
    with torch.no_grad():
        expected = ((vae.decode(z / 0.18215).sample + 1) / 2).clamp(0, 1)
        torch.testing.assert_close(prior.decode(z), expected)
        x = prior.decode(z)
        expected_z = vae.encode(2 * x - 1).latent_dist.mean * 0.18215
        torch.testing.assert_close(prior.encode(x), expected_z)
    assert "_class_name" not in prior.config["vae_config"]
    json.dumps(prior.config)  # JSON-able


def test_autoencoder_kl_custom_latent_shape_and_scaling(tiny_diffusers_vae):
    _, path = tiny_diffusers_vae
    prior = AutoencoderKLPrior.from_diffusers(path, latent_shape=(4, 3, 5), scaling_factor=1.0)
    assert prior.img_shape == (3, 6, 10)
    assert prior.sample(1, generator=_gen(0)).shape == (1, 3, 6, 10)
    with pytest.raises(ValueError, match="latent_channels"):
        AutoencoderKLPrior(prior.config["vae_config"], (3, 4, 4))


# ----------------------------------------------------------------------------------- Linear
def _linear_problem(sigma: float):
    G = _linear()
    g = _gen(11)
    A = torch.randn(7, 30, generator=g, dtype=torch.float64)
    z = torch.randn(3, 4, generator=g, dtype=torch.float64)
    y = G.decode(z).reshape(3, -1) @ A.T + sigma * torch.randn(3, 7, generator=g,
                                                               dtype=torch.float64)
    return G, A, y


def test_linear_decode_is_affine():
    G = LinearGenerator.from_weights([[1.0, 0.0], [2.0, -1.0]], [0.5, -3.0], (1, 1, 2))
    torch.testing.assert_close(G.decode(torch.tensor([[2.0, 1.0]])),
                               torch.tensor([[[[2.5, 0.0]]]]))
    assert G.config == {"latent_dim": 2, "img_shape": [1, 1, 2], "dtype": "float32"}
    empty = LinearGenerator(latent_dim=2, img_shape=(1, 1, 2))
    assert torch.all(empty.W == 0) and empty.W.shape == (2, 2)
    with pytest.raises(ValueError, match="W"):
        LinearGenerator([[1.0, 0.0]], None, (1, 1, 2))


def test_linear_posterior_brute_force():
    sigma = 0.3
    G, A, y = _linear_problem(sigma)
    mean, cov = G.posterior(y, A, sigma)
    # conditioning the joint Gaussian of (z, y): the "dual" (measurement-space) formula
    M = A @ G.W
    cov_yy = M @ M.T + sigma**2 * torch.eye(7, dtype=torch.float64)
    gain = M.T @ torch.linalg.inv(cov_yy)
    torch.testing.assert_close(mean, (y - A @ G.b) @ gain.T)
    torch.testing.assert_close(cov, torch.eye(4, dtype=torch.float64) - gain @ M)
    # the posterior mean is the MAP at lam = sigma**2
    torch.testing.assert_close(mean, G.map_estimate(y, A, lam=sigma**2))


def test_linear_map_estimate_is_stationary():
    G, A, y = _linear_problem(0.1)
    lam = 0.05
    z = G.map_estimate(y, A, lam=lam).requires_grad_(True)
    objective = ((G.decode(z).reshape(3, -1) @ A.T - y) ** 2).sum() + lam * (z**2).sum()
    (grad,) = torch.autograd.grad(objective, z)
    assert grad.abs().max() < 1e-8
    # lam = 0 is ordinary least squares (M = AW has full column rank here)
    z0 = G.map_estimate(y, A, lam=0)
    expected = torch.linalg.lstsq(A @ G.W, (y - A @ G.b).T).solution.T
    torch.testing.assert_close(z0, expected)


def test_linear_posterior_checks_arguments():
    G, A, y = _linear_problem(0.1)
    with pytest.raises(ValueError, match="sigma"):
        G.posterior(y, A, 0.0)
    with pytest.raises(ValueError, match="A_matrix"):
        G.posterior(y, A[:, :-1], 0.1)
    with pytest.raises(ValueError, match="y"):
        G.map_estimate(y[:, :-1], A, lam=0.1)


def test_linear_round_trip_keeps_float64(tmp_path):
    G = _linear()
    G.save_pretrained(tmp_path)
    loaded = Prior.from_pretrained(tmp_path)
    assert loaded.W.dtype == torch.float64 and torch.equal(loaded.W, G.W)


def test_bernoulli_elbo_uses_bce(generator):
    vae = MLPVAE(img_shape=(1, 2, 2), hidden=3, latent_dim=2)
    x = torch.rand(2, 1, 2, 2, generator=generator)
    mu, logvar = vae.encode(x)
    z = mu + torch.exp(logvar / 2) * torch.randn(2, 2, generator=_gen(9))
    bce = F.binary_cross_entropy(vae.decode(z), x, reduction="none").reshape(2, -1).sum(1)
    torch.testing.assert_close(vae.elbo(x, generator=_gen(9)), -bce - gaussian_kl(mu, logvar))
