"""Priors of any image size without user plumbing (``fit_prior`` at every solver's entry),
encoder starts for CSGM (``init="encoder"``), and ``genprior measure`` on image files."""

import numpy as np
import pytest
import torch
from PIL import Image

from genprior._io import load_images_npz, load_measurements
from genprior._random import make_generator
from genprior.cli import main
from genprior.cli.measure import load_images
from genprior.operators import BlockCS, GaussianCS, load_operator
from genprior.optim import LatentStep
from genprior.priors import load_prior
from genprior.priors.linear import LinearGenerator
from genprior.priors.spatial_vae import SpatialVAE
from genprior.priors.vae_mlp import MLPVAE
from genprior.reconstruct import (
    adaptive,
    csgm,
    encoder_latent,
    fit_prior,
    reconstruct,
    sparse_gen,
)
from genprior.sampling import langevin

IMG = (1, 16, 16)  # the size the prior is built for
BIG = (1, 37, 41)  # the size of the measured images: odd, not a multiple of the block


def _vae(dtype: torch.dtype = torch.float64) -> SpatialVAE:
    with torch.random.fork_rng():
        torch.manual_seed(0)  # test-level: the initial weights only
        return SpatialVAE(img_shape=IMG, latent_channels=2, base_channels=4).to(dtype).eval()


def _problem(b: int = 2):
    """A float64 BlockCS of 37 x 41 images and its measurements of random images."""
    A = BlockCS(BIG, 8, m=24, seed=0).double()
    x = torch.rand(b, *BIG, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return A, A.A(x), x


class _Stay(LatentStep):
    """A step that leaves every latent where it is: the result is the start itself."""

    def update(self, v, g, state, rows, move):
        return v


def _mean(prior, x):
    with torch.no_grad():
        return prior.encode(x)[0]


# ----------------------------------------------------------------------------- fit_prior


def test_fit_prior_same_object_shared_view_or_a_clear_error():
    vae = _vae()
    assert fit_prior(vae, IMG) is vae
    view = fit_prior(vae, BIG)
    assert view is not vae and view.img_shape == BIG and view.latent_shape == (2, 10, 11)
    assert vae.img_shape == IMG and vae.latent_shape == (2, 4, 4)  # the original keeps its size
    pairs = list(zip(view.parameters(), vae.parameters(), strict=True))
    assert pairs and all(p is q for p, q in pairs)  # shared, not copied
    mlp = MLPVAE(img_shape=(1, 8, 8), hidden=4, latent_dim=2)
    assert fit_prior(mlp, (1, 8, 8)) is mlp
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\) but the operator expects img_size "
                       r"\(1, 37, 41\): MLPVAE has a fixed size"):
        fit_prior(mlp, BIG)
    with pytest.raises(ValueError, match=r"cannot be resized to the operator's img_size "
                       r"\(3, 37, 41\)"):
        fit_prior(vae, (3, 37, 41))


def test_fixed_size_prior_of_another_size_is_refused_by_csgm():
    A, y, _ = _problem()
    mlp = MLPVAE(img_shape=IMG, hidden=4, latent_dim=2).double()
    with pytest.raises(ValueError, match=r"\(1, 16, 16\).*\(1, 37, 41\).*fixed size"):
        csgm(y, A, mlp, steps=1)


# ------------------------------------------------------------------ solvers at any size


def test_csgm_fits_the_prior_bit_identically_to_an_explicit_resize():
    vae = _vae()
    A, y, _ = _problem()
    kw = {"restarts": 2, "steps": 5, "lr": 0.05}
    out = csgm(y, A, vae, generator=torch.Generator().manual_seed(3), **kw)
    ref = csgm(y, A, vae.resized(BIG), generator=torch.Generator().manual_seed(3), **kw)
    assert out.x_hat.shape == (2, *BIG) and out.z_hat.shape == (2, 2, 10, 11)
    for name in ("x_hat", "z_hat", "history", "restart_loss", "restart_measurement_error"):
        assert torch.equal(getattr(out, name), getattr(ref, name)), name
    assert vae.img_shape == IMG and not vae.training  # the caller's prior is left as it was


@pytest.mark.parametrize("method", ["sparse-gen", "adaptive"])
def test_methods_on_csgm_fit_the_prior_like_an_explicit_resize(method):
    vae = _vae()
    A, y, _ = _problem()
    solve = sparse_gen if method == "sparse-gen" else adaptive
    extra = ({"lam_nu": 1e-3} if method == "sparse-gen"
             else {"adapt_steps": 3, "lr_theta": 1e-3, "back_projection": None})
    kw = {"restarts": 1, "steps": 3, "lr": 0.05, **extra}
    out = solve(y, A, vae, generator=torch.Generator().manual_seed(3), **kw)
    ref = solve(y, A, vae.resized(BIG), generator=torch.Generator().manual_seed(3), **kw)
    assert out.x_hat.shape == (2, *BIG)
    assert torch.equal(out.x_hat, ref.x_hat) and torch.equal(out.z_hat, ref.z_hat)


def test_langevin_fits_the_prior_like_an_explicit_resize():
    vae = _vae()
    A, y, _ = _problem(b=1)
    kw = {"sigma": 0.1, "n_samples": 2, "n_chains": 2, "burn_in": 2, "step_size": 1e-4,
          "method": "mala"}
    out = langevin(y, A, vae, generator=torch.Generator().manual_seed(3), **kw)
    ref = langevin(y, A, vae.resized(BIG), generator=torch.Generator().manual_seed(3), **kw)
    assert out.samples.shape == (4, 1, *BIG)
    assert torch.equal(out.samples, ref.samples) and torch.equal(out.z_samples, ref.z_samples)


# -------------------------------------------------------------------------- encoder starts


def test_encoder_start_is_the_encoder_mean_of_the_pseudo_inverse():
    vae = _vae()
    A, y, x = _problem()
    view = vae.resized(BIG)
    mu = _mean(view, A.A_dagger(y).clamp(0, 1))
    out = csgm(y, A, vae, init="encoder", restarts=1, steps=1, optimizer=_Stay(),
               generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.z_hat, mu)
    with torch.no_grad():
        assert torch.equal(out.x_hat, view.decode(mu))
    assert torch.equal(encoder_latent(view, A.A_dagger(y).clamp(0, 1)), mu)
    # a given x_init (here the truth) and the reconstruct(...) dispatch
    given = reconstruct("csgm", y, A, prior=vae, init="encoder", x_init=x, restarts=1, steps=1,
                        generator=torch.Generator().manual_seed(0))
    one_step = csgm(y, A, vae, z_init=_mean(view, x)[:, None], restarts=1, steps=1)
    assert torch.equal(given.x_hat, one_step.x_hat)


def test_encoder_start_keeps_the_random_draws_of_the_other_restarts():
    vae = _vae()
    A, y, _ = _problem()
    g_enc, g_rand = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    kw = {"restarts": 3, "steps": 1, "optimizer": _Stay()}
    enc = csgm(y, A, vae, init="encoder", generator=g_enc, **kw)
    rand = csgm(y, A, vae, generator=g_rand, **kw)
    # restarts 1 and 2 start (and, not moving, end) exactly where init="random" puts them
    assert torch.equal(enc.restart_loss[:, 1:], rand.restart_loss[:, 1:])
    assert not torch.equal(enc.restart_loss[:, 0], rand.restart_loss[:, 0])
    # restart 0 is the encoder start; the generators are left in the same state
    alone = csgm(y, A, vae, init="encoder", restarts=1, steps=1, optimizer=_Stay())
    torch.testing.assert_close(enc.restart_loss[:, 0], alone.restart_loss[:, 0])
    assert torch.equal(torch.randn(4, generator=g_enc), torch.randn(4, generator=g_rand))


def test_init_errors():
    vae = _vae()
    A, y, x = _problem()
    z = torch.zeros(2, 1, 2, 10, 11, dtype=torch.float64)
    with pytest.raises(ValueError, match="z_init and init='encoder' exclude each other"):
        csgm(y, A, vae, init="encoder", z_init=z, restarts=1, steps=1)
    with pytest.raises(ValueError, match=r"init must be one of \('random', 'encoder'\)"):
        csgm(y, A, vae, init="csgm", steps=1)
    with pytest.raises(ValueError, match="x_init is only used with init='encoder'"):
        csgm(y, A, vae, x_init=x, steps=1)
    with pytest.raises(ValueError, match=r"x_init must have shape .*\(2, 1, 37, 41\), got "
                       r"\(2, 1, 16, 16\)"):
        csgm(y, A, vae, init="encoder", x_init=x[..., :16, :16], steps=1)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x_init"):
        csgm(y, A, vae, init="encoder", x_init=bad, steps=1)
    G = LinearGenerator(torch.ones(16, 2, dtype=torch.float64), None, (1, 4, 4))
    B = GaussianCS(6, (1, 4, 4), seed=0).double()
    with pytest.raises(ValueError, match="init='encoder' needs a prior with an encoder"):
        csgm(B.A(torch.zeros(1, 1, 4, 4, dtype=torch.float64)), B, G, init="encoder", steps=1)
    # z_init alone keeps working as before (the scripts' warm start)
    assert csgm(y, A, vae, z_init=z[:, 0], restarts=1, steps=1).z_hat.shape == (2, 2, 10, 11)


# ------------------------------------------------------------------------------------ CLI


def _png(path, h: int, w: int, seed: int = 0, mode: str = "L") -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(h, w) if mode == "L" else (h, w, len(mode)), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return a


def test_cli_measure_a_png_then_reconstruct_it_with_a_resizable_prior(tmp_path):
    a = _png(tmp_path / "img.png", 36, 44)
    m = tmp_path / "m"
    assert main(["measure", "--images", str(tmp_path / "img.png"), "--operator", "block_cs:8:20",
                 "--out", str(m)]) == 0
    meas = load_measurements(m / "y.npz")
    assert torch.equal(meas.x, torch.from_numpy(a).float()[None, None] / 255)
    _vae(torch.float32).save_pretrained(tmp_path / "prior")
    base = ["reconstruct", "--prior", str(tmp_path / "prior"), "--method", "csgm", "--init",
            "encoder", "--steps", "3", "--restarts", "2", "--measurements", str(m / "y.npz")]
    assert main([*base, "--operator", str(m / "operator.safetensors"),
                 "--out", str(tmp_path / "r")]) == 0
    x_hat = load_images_npz(tmp_path / "r" / "x_hat.npz")
    assert x_hat.shape == (1, 1, 36, 44)
    assert (tmp_path / "r" / "metrics.csv").is_file()
    res = csgm(meas.y, load_operator(m / "operator.safetensors"), load_prior(tmp_path / "prior"),
               init="encoder", restarts=2, steps=3, generator=make_generator(0))
    torch.testing.assert_close(x_hat, res.x_hat.clamp(0, 1))
    # a spec is built for the measurements' image size, not the prior's 16 x 16
    assert main([*base, "--operator", "block_cs:8:20", "--out", str(tmp_path / "r2")]) == 0
    assert torch.equal(load_images_npz(tmp_path / "r2" / "x_hat.npz"), x_hat)


def test_cli_prior_and_init_errors_exit_2(tmp_path, capsys):
    _png(tmp_path / "img.png", 12, 12)
    m = tmp_path / "m"
    assert main(["measure", "--images", str(tmp_path / "img.png"), "--operator", "block_cs:4:8",
                 "--out", str(m)]) == 0
    MLPVAE(img_shape=(1, 8, 8), hidden=4, latent_dim=2).save_pretrained(tmp_path / "mlp")
    LinearGenerator(torch.ones(144, 2), None, (1, 12, 12)).save_pretrained(tmp_path / "lin")
    base = ["reconstruct", "--measurements", str(m / "y.npz"), "--operator",
            str(m / "operator.safetensors"), "--steps", "1", "--restarts", "1"]
    capsys.readouterr()
    assert main([*base, "--prior", str(tmp_path / "mlp"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--prior" in err and "(1, 8, 8)" in err
    assert "(1, 12, 12)" in err and "MLPVAE has a fixed size" in err
    assert main([*base, "--prior", str(tmp_path / "lin"), "--init", "encoder",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--init encoder needs a prior with an encoder" in err and "LinearGenerator" in err
    assert main([*base, "--method", "pinv", "--init", "encoder", "--out", str(tmp_path / "c")]) == 2
    assert "--init encoder applies to --method csgm" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


def test_cli_measure_folder_of_two_sizes_exits_2_naming_the_sizes(tmp_path, capsys):
    d = tmp_path / "imgs"
    d.mkdir()
    _png(d / "a.png", 36, 44)
    _png(d / "b.png", 20, 30, seed=1)
    (d / "notes.txt").write_text("not an image")
    capsys.readouterr()
    assert main(["measure", "--images", str(d), "--operator", "block_cs:4:8",
                 "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--images" in err
    assert "a.png 1x36x44" in err and "b.png 1x20x30" in err
    assert not (tmp_path / "m").exists()


def test_image_files_modes_folders_and_samples(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    grey = [_png(d / f"{i}.png", 6, 5, seed=i) for i in (2, 1)]
    x = load_images(str(d))  # sorted by name: 1.png, 2.png
    assert torch.equal(x, torch.from_numpy(np.stack(grey[::-1])).float()[:, None] / 255)
    rgb = _png(tmp_path / "c.bmp", 6, 5, mode="RGB")
    x = load_images(str(tmp_path / "c.bmp"))
    assert torch.equal(x[0], torch.from_numpy(rgb).float().permute(2, 0, 1) / 255)
    luma = np.array(Image.fromarray(rgb).convert("L"))
    assert torch.equal(load_images(str(tmp_path / "c.bmp"), grey=True)[0, 0],
                       torch.from_numpy(luma).float() / 255)
    rgba = _png(tmp_path / "a.png", 6, 5, mode="RGBA")  # alpha dropped: the RGB channels
    assert torch.equal(load_images(str(tmp_path / "a.png"))[0],
                       torch.from_numpy(rgba[..., :3]).float().permute(2, 0, 1) / 255)
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")  # a palette image: RGB
    assert load_images(str(tmp_path / "p.png")).shape == (1, 3, 6, 5)
    Image.fromarray(np.full((4, 3), 65535, np.uint16)).save(tmp_path / "w16.tif")
    assert torch.equal(load_images(str(tmp_path / "w16.tif")), torch.ones(1, 1, 4, 3))
    assert load_images("natural").shape == (4, 1, 72, 88)
    celeba = load_images("celeba", grey=True)
    assert celeba.shape == (16, 1, 64, 64)
    torch.testing.assert_close(celeba, (load_images("celeba") * torch.tensor(
        [0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True))
    with pytest.raises(ValueError, match=r"--images must be one of .*'natural'.*got 'cifar'"):
        load_images("cifar")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--images .*empty: no image files"):
        load_images(str(tmp_path / "empty"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"--images .*bad.png: cannot be read"):
        load_images(str(tmp_path / "bad.png"))
