"""The shipped priors load offline from pretrained/ and behave like trained models."""

import json

import pytest
import torch

import genprior
from genprior.data import load_samples
from genprior.priors import available_priors, pretrained_dir

SHIPPED = ["mnist-vae", "celeba-dcgan", "celeba-dcgan-plain", "celeba-dcgan-vaegan", "celeba-vae",
           "celeba-sr4-affgan", "celeba-sr4-mse", "celeba-sr4-affgan-r1", "celeba-sr4-affgan-avg",
           "celeba-sr4-affgan-wide", "celeba-sr4-affgan-w96", "natural-vae"]
#: blends that reference shipped members by name: config and card, no weights of their own
SHIPPED_BLENDS = ["celeba-sr4-affgan-blend", "celeba-sr4-mse-affgan-blend"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_prior_has_weights_config_and_card(name):
    assert name in available_priors()
    folder = pretrained_dir() / name
    for f in ("config.json", "model.safetensors", "MODEL_CARD.md"):
        assert (folder / f).is_file(), f"{folder / f} is missing"


@pytest.mark.parametrize("name", SHIPPED_BLENDS)
def test_shipped_blend_has_config_and_card_and_no_weights(name):
    folder = pretrained_dir() / name
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "config.json"]


def test_mnist_vae_reconstructs_test_digits():
    vae = genprior.load_prior("mnist-vae")
    x = load_samples("mnist")
    mu, _ = vae.encode(x)
    mse = (vae.decode(mu) - x).pow(2).mean().item()
    # a randomly initialised MLPVAE scores ~0.26; the trained one ~0.009 on these digits
    assert mse < 0.02
    elbo = vae.elbo(x, generator=torch.Generator().manual_seed(0)).mean().item()
    assert elbo > -110  # nats per digit; a random model is below -500


@pytest.mark.parametrize("name", ["celeba-dcgan", "celeba-dcgan-plain", "celeba-dcgan-vaegan"])
def test_celeba_dcgan_samples_are_varied_faces(name):
    G = genprior.load_prior(name)
    x = G.sample(16, generator=torch.Generator().manual_seed(0))
    assert x.shape == (16, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    # diversity across samples comparable to real faces (real: ~0.20 mean per-pixel std)
    assert x.std(0).mean() > 0.1
    again = G.sample(16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_celeba_vae_reconstructs_held_out_faces():
    vae = genprior.load_prior("celeba-vae")
    x = load_samples("celeba")  # ids 008985..009000: held out from training
    mu, _ = vae.encode(x)
    mse = (vae.decode(mu) - x).pow(2).mean().item()
    assert mse < 0.01  # random ConvVAE: ~0.086; the shipped one: ~0.003


def test_natural_vae_reconstructs_held_out_natural_images_of_any_size():
    from genprior.metrics import psnr

    vae = genprior.load_prior("natural-vae")
    x = load_samples("natural")  # BSD68 test crops, never seen in training (Train400)
    for crop in [(72, 88), (37, 53)]:
        x_c = x[..., : crop[0], : crop[1]]
        G = vae.resized((1, *crop))
        with torch.no_grad():
            mu, _ = G.encode(x_c)
            x_r = G.decode(mu)
        assert x_r.shape == x_c.shape
        # a randomly initialised SpatialVAE of this size: 10-13 dB; the shipped one: 24-29 dB
        assert psnr(x_r, x_c, data_range=1.0).min() > 22


SHIPPED_SR = [name for name in SHIPPED + SHIPPED_BLENDS if name.startswith("celeba-sr4-")]


@pytest.mark.parametrize("name", SHIPPED_SR)
def test_shipped_sr_outputs_are_consistent(name):
    model = genprior.load_prior(name)
    x = load_samples("celeba")[:4]
    y = model.operator.A(x)
    samples = model.sample(y, 3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, 4, 3, 64, 64)
    for s in samples:
        assert ((model.operator.A(s) - y).norm() / y.norm()).item() <= 1e-5


def test_sample_cli_on_shipped_mnist_vae(tmp_path):
    import numpy as np

    from genprior.cli import main

    assert main(["measure", "--images", "mnist", "--num-images", "2", "--operator",
                 "gaussian_cs_unscaled:100", "--noise-std", "0.1", "--out", str(tmp_path)]) == 0
    assert main(["sample", "--prior", "mnist-vae", "--measurements", str(tmp_path / "y.npz"),
                 "--operator", str(tmp_path / "operator.safetensors"), "-n", "4",
                 "--burn-in", "20", "--chains", "2", "--steps", "100",
                 "--out", str(tmp_path / "s")]) == 0
    with np.load(tmp_path / "s" / "samples.npz", allow_pickle=False) as f:
        samples, x = f["samples"], np.load(tmp_path / "y.npz")["x"]
    assert samples.shape == (4, 2, 1, 28, 28)
    # samples are plausible digits near the truth, not noise (random images: error ~0.2)
    assert ((samples.mean(0) - x) ** 2).mean() < 0.05


@pytest.mark.parametrize("name, variance", [("celeba-dcgan", 0.00509), ("celeba-dcgan-plain", 0.00499),
                                             ("celeba-dcgan-vaegan", 0.00412)])
def test_shipped_face_gans_carry_their_misfit_variance(name, variance):
    from genprior.sampling.misfit import MisfitCovariance

    misfit = MisfitCovariance.from_pretrained(pretrained_dir() / name)
    # the scalar variance each card reports (scripts/fit_misfit.py on held-out faces)
    assert not misfit.per_pixel
    assert misfit.variance.item() == pytest.approx(variance, abs=5e-6)
    assert misfit.info["prior_name"] == name


@pytest.mark.parametrize("name,count", [("celeba-sr4-affgan", 289_315),
                                        ("celeba-sr4-affgan-wide", 505_395),
                                        ("celeba-sr4-affgan-w96", 1_131_339)])
def test_shipped_sr_parameter_counts_are_those_the_docs_state(name, count):
    model = genprior.load_prior(name)
    assert sum(p.numel() for p in model.parameters()) == count


def test_celeba_dcgan_vaegan_config_records_its_parents():
    meta = json.loads((pretrained_dir() / "celeba-dcgan-vaegan" / "config.json").read_text())
    record = meta["training"]["interpolated"]
    assert (record["A"], record["t"]) == ("celeba-dcgan-plain", 0.65)
    assert record["B_training"]["recon_weight"] == 4.0
    assert record["B_training"]["steps"] == [4000, 4500, 5000, 5500, 6000]
    assert meta["config"] == json.loads(
        (pretrained_dir() / "celeba-dcgan-plain" / "config.json").read_text())["config"]
