"""SpatialGenerator and PatchDiscriminator: any image size from one set of weights (exact crop
identities), per-sample decoding, persistence, CSGM at another size, and training on npz
patches that resumes where it stopped."""

import pytest
import torch

from genprior.operators import GaussianCS
from genprior.priors import Prior
from genprior.priors.spatial_gan import PatchDiscriminator, SpatialGenerator
from genprior.reconstruct import csgm
from genprior.training import GANTrainConfig, train_gan


@pytest.fixture
def G() -> SpatialGenerator:
    torch.manual_seed(0)  # test-level: initial weights only
    return SpatialGenerator(img_shape=(1, 16, 16), latent_channels=2, base_channels=4).double()


def test_resized_shares_weights_and_decodes_the_crop_of_the_padded_size(G, draw_latent):
    small, big = G.resized((1, 37, 31)), G.resized((1, 40, 32))
    assert small.latent_shape == big.latent_shape == (2, 10, 8) and G.img_shape == (1, 16, 16)
    for p, q in zip(G.parameters(), small.parameters(), strict=True):
        assert p is q
    z = draw_latent(small)
    with torch.no_grad():
        assert torch.equal(small.decode(z), big.decode(z)[..., :37, :31])
    with pytest.raises(ValueError, match=r"img_shape must be \(1, H, W\)"):
        G.resized((3, 16, 16))


def test_decode_is_tanh_mapped_the_same_in_train_and_eval_and_per_sample(G, draw_latent):
    z = draw_latent(G, b=3)
    with torch.no_grad():
        out = G.eval().decode(z)
        torch.testing.assert_close(out, (G.decode_tanh(z) + 1) / 2, rtol=0, atol=0)
        assert torch.equal(G.train().decode(z), out)
        one = torch.cat([G.decode(z[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(one, out, rtol=0, atol=1e-14)
    assert 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="z"):
        G.decode(torch.zeros(1, 2, 5, 4, dtype=torch.float64))


def test_save_and_load_round_trip(G, tmp_path, draw_latent):
    G.save_pretrained(tmp_path / "g")
    loaded = Prior.from_pretrained(tmp_path / "g").double()
    assert isinstance(loaded, SpatialGenerator)
    view = G.resized((1, 20, 12))
    z = draw_latent(view)
    with torch.no_grad():
        assert torch.equal(loaded.resized((1, 20, 12)).decode(z), view.decode(z))


def test_patch_discriminator_is_the_mean_of_its_patch_logits_at_any_size():
    torch.manual_seed(0)  # test-level: initial weights only
    D = PatchDiscriminator(nc=1, ndf=4, spectral_norm=False).double().eval()
    x = torch.rand(3, 1, 40, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        logits = D(x)
        patches = D.net(2 * x - 1)
    assert logits.shape == (3,) and patches.shape[-2:] == (5, 3)
    torch.testing.assert_close(logits, patches.mean(dim=(1, 2, 3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="x"):
        D(torch.rand(1, 3, 16, 16, dtype=torch.float64))


def test_csgm_fits_the_generator_to_another_size_and_recovers_its_own_image(G, draw_latent):
    view = G.resized((1, 12, 20))
    z_true = 0.5 * draw_latent(view, b=1, seed=3)
    with torch.no_grad():
        x = view.decode(z_true)
    A = GaussianCS(200, (1, 12, 20), seed=2).double()
    out = csgm(A.A(x), A, G, restarts=1, steps=400, lr=0.05, z_init=z_true + 0.05,
               loss_reduction="sum")
    assert out.x_hat.shape == (1, 1, 12, 20)
    assert float((out.x_hat - x).abs().max()) < 1e-3


def _config(data, out, **kw):
    return GANTrainConfig(data=data, out=out, arch="spatial", nz=2, ngf=4, ndf=4,
                          spectral_norm=True, batch_size=8, epochs=2, seed=0, threads=1, **kw)


def test_trains_on_npz_patches_and_resumes_to_the_same_weights(tmp_path, ramp_patches):
    data = ramp_patches(16)
    whole = train_gan(_config(data, tmp_path / "whole")).model
    assert isinstance(whole, SpatialGenerator) and whole.img_shape == (1, 16, 16)
    assert (tmp_path / "whole" / "final" / "config.json").is_file()
    train_gan(_config(data, tmp_path / "split", max_steps=5))
    resumed = train_gan(_config(data, tmp_path / "split", resume="auto")).model
    for p, q in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)
