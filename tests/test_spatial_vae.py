"""SpatialVAE: one set of weights for every image size, exact identities of resizing, padding and
cropping, a closed-form likelihood, persistence, and training from npz patches."""

import math

import pytest
import torch

from genprior.priors import Prior
from genprior.priors.spatial_vae import SpatialVAE
from genprior.training import VAETrainConfig, train_vae


@pytest.fixture
def vae() -> SpatialVAE:
    torch.manual_seed(0)  # test-level: initial weights only
    model = SpatialVAE(img_shape=(1, 16, 16), latent_channels=2, base_channels=8).double()
    with torch.no_grad():
        model.log_sigma.fill_(math.log(0.2))
    return model.eval()


def test_resized_shares_weights_and_rounds_the_latent_up(vae):
    view = vae.resized((1, 37, 31))
    assert view.img_shape == (1, 37, 31) and view.latent_shape == (2, 10, 8)
    assert vae.img_shape == (1, 16, 16)  # the original is untouched
    for p, q in zip(vae.parameters(), view.parameters(), strict=True):
        assert p is q
    with pytest.raises(ValueError, match=r"img_shape must be \(1, H, W\)"):
        vae.resized((3, 16, 16))


def test_decode_at_any_size_is_the_crop_of_the_padded_size(vae, draw_latent):
    small, big = vae.resized((1, 37, 31)), vae.resized((1, 40, 32))
    assert small.latent_shape == big.latent_shape
    z = draw_latent(small)
    with torch.no_grad():  # equal up to the last bit of the (vectorised) sigmoid
        torch.testing.assert_close(small.decode(z), big.decode(z)[..., :37, :31], rtol=0,
                                   atol=1e-15)


def test_encode_of_a_multiple_of_the_factor_needs_no_padding(vae):
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        ref_mu, ref_logvar = vae.encoder(2 * x - 1).chunk(2, dim=1)
    assert torch.equal(mu, ref_mu) and torch.equal(logvar, ref_logvar)
    with pytest.raises(ValueError):
        vae.encode(torch.rand(2, 1, 15, 16, dtype=torch.float64))  # the view must be resized


def test_decode_is_the_same_in_train_and_eval_and_per_sample(vae, draw_latent):
    z = draw_latent(vae, b=3)
    with torch.no_grad():
        eval_out = vae.decode(z)
        vae.train()
        train_out = vae.decode(z)
        one = torch.cat([vae.decode(z[i:i + 1]) for i in range(3)])
    assert torch.equal(eval_out, train_out)
    torch.testing.assert_close(one, eval_out, rtol=0, atol=1e-14)


def test_log_likelihood_is_the_gaussian_closed_form(vae, draw_latent):
    z = draw_latent(vae, b=2)
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        mean = vae.decode(z)
        ll = vae.log_likelihood(x, z)
    s = 0.2
    ref = (-0.5 * ((x - mean) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)).sum((1, 2, 3))
    torch.testing.assert_close(ll, ref, rtol=1e-12, atol=1e-10)


def test_sample_is_reproducible_and_in_range(vae):
    view = vae.resized((1, 21, 13))
    a = view.sample(3, generator=torch.Generator().manual_seed(4))
    b = view.sample(3, generator=torch.Generator().manual_seed(4))
    assert a.shape == (3, 1, 21, 13) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_save_and_load_round_trip(vae, tmp_path, draw_latent):
    vae.save_pretrained(tmp_path / "m")
    loaded = Prior.from_pretrained(tmp_path / "m").double().eval()
    assert isinstance(loaded, SpatialVAE) and loaded.img_shape == (1, 16, 16)
    z = draw_latent(vae.resized((1, 24, 20)))
    with torch.no_grad():
        assert torch.equal(loaded.resized((1, 24, 20)).decode(z),
                           vae.resized((1, 24, 20)).decode(z))


def test_trains_on_npz_patches_and_the_loss_falls(tmp_path, ramp_patches):
    data = ramp_patches(12)
    cfg = VAETrainConfig(data=data, out=tmp_path / "run", arch="spatial", latent_dim=2,
                         base_channels=4, batch_size=8, epochs=6, lr=3e-3, seed=0, threads=1)
    result = train_vae(cfg)
    model = result.model
    assert isinstance(model, SpatialVAE) and model.img_shape == (1, 12, 12)
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    first, last = float(log[0].split(",")[-1]), float(log[-1].split(",")[-1])
    assert last < first  # minus ELBO per patch falls
    assert (tmp_path / "run" / "final" / "config.json").is_file()
