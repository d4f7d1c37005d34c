"""ConvVAE's ex-post latent Gaussian: exact re-parametrisation identities, the whitening of the
fitted codes, persistence and refusals."""

import pytest
import torch

from genprior.priors import Prior
from genprior.priors.conv_vae import ConvVAE, with_latent_gaussian


@pytest.fixture
def vae() -> ConvVAE:
    torch.manual_seed(0)  # test-level: initial weights only
    return ConvVAE(img_shape=(1, 28, 28), latent_dim=4, base_channels=4).double().eval()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1),
                      dtype=torch.float64)


def test_codes_of_the_fitted_images_are_white_and_decoding_is_the_affine_map(vae, x):
    new = with_latent_gaussian(vae, x, batch_size=16)
    assert new.latent_gaussian and new.config["latent_gaussian"]
    with torch.no_grad():
        mu_z, logvar_z = vae.encode(x)
        mu_u, logvar_u = new.encode(x)
    # the fitted codes: mean 0, covariance I (the whitening is exact)
    assert torch.allclose(mu_u.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(torch.cov(mu_u.T), torch.eye(4, dtype=torch.float64), atol=1e-10)
    m, L = new.latent_loc, new.latent_scale_tril
    assert torch.allclose(m, mu_z.mean(0), atol=1e-14)
    assert torch.allclose(L @ L.T, torch.cov(mu_z.T), atol=1e-12)
    # decode(u) = old decode(m + L u), and u = L^{-1}(z - m) inverts it
    u = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(new.decode(u), vae.decode(m + u @ L.T), atol=1e-14)
    assert torch.allclose(m + mu_u @ L.T, mu_z, atol=1e-12)
    # q(u | x)'s variances: the diagonal of L^{-1} diag(var_z) L^{-T}
    L_inv = torch.linalg.inv(L)
    for i in range(3):
        cov_u = L_inv @ torch.diag(logvar_z[i].exp()) @ L_inv.T
        assert torch.allclose(logvar_u[i].exp(), torch.diagonal(cov_u), atol=1e-12)


def test_identity_buffers_change_nothing(vae, x):
    same = ConvVAE(**{**vae.config, "latent_gaussian": True}).double().eval()
    same.load_state_dict({**vae.state_dict(), "latent_loc": same.latent_loc,
                          "latent_scale_tril": same.latent_scale_tril})
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(same.decode(z), vae.decode(z), atol=1e-15)
        for a, b in zip(same.encode(x[:3]), vae.encode(x[:3]), strict=True):
            assert torch.allclose(a, b, atol=1e-14)


def test_save_and_load_round_trip(vae, x, tmp_path):
    new = with_latent_gaussian(vae.float(), x.float())
    new.save_pretrained(tmp_path / "p")
    back = Prior.from_pretrained(tmp_path / "p")
    assert back.config == new.config
    assert torch.equal(back.latent_scale_tril, new.latent_scale_tril)
    z = torch.randn(2, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(back.decode(z), new.decode(z))


def test_refusals(vae, x):
    with pytest.raises(ValueError, match="more than 4 images, got 4"):
        with_latent_gaussian(vae, x[:4])
    with pytest.raises(ValueError, match="already has a latent Gaussian"):
        with_latent_gaussian(with_latent_gaussian(vae, x), x)
