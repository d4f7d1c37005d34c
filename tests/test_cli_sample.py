"""`genprior sample` on tiny priors saved to tmp_path: files, shapes, and agreement with the API."""

import numpy as np
import pytest
import torch
from PIL import Image

from genprior._io import save_measurements
from genprior._random import make_generator
from genprior.cli import main
from genprior.operators import GaussianCS, load_operator
from genprior.priors import load_prior
from genprior.priors.conditional import ConditionalSR
from genprior.priors.vae_mlp import MLPVAE
from genprior.sampling import sample

B, N = 3, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    prior = MLPVAE(img_shape=(1, 8, 8), hidden=16, latent_dim=4)
    prior.save_pretrained(root / "prior")
    op = GaussianCS(10, (1, 8, 8), noise_std=0.1, seed=0)
    op.save(root / "op.safetensors")
    x = prior.sample(B, generator=make_generator(1))
    save_measurements(root / "y.npz", op.measure(x, generator=make_generator(2)), x=x)
    return root


def _run(files, out, method, *extra):
    argv = ["sample", "--prior", str(files / "prior"), "--measurements", str(files / "y.npz"),
            "--operator", str(files / "op.safetensors"), "-n", str(N), "--method", method,
            "--out", str(out), "--seed", "3", *extra]
    assert main(argv) == 0
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("method", ["mala", "ula"])
def test_cli_langevin_matches_api(files, tmp_path, method):
    arrays = _run(files, tmp_path, method, "--burn-in", "20", "--chains", "2",
                  "--step-size", "1e-3", "--init", "random", "--precondition", "none")
    assert arrays["samples"].shape == (N, B, 1, 8, 8)
    np.testing.assert_allclose(arrays["mean"], arrays["samples"].mean(0), atol=1e-6)
    np.testing.assert_allclose(arrays["std"], arrays["samples"].std(0, ddof=1), atol=1e-6)
    # the CLI is a thin layer: same numbers as the Python API with the same seed
    prior = load_prior(files / "prior")
    op = load_operator(files / "op.safetensors")
    with np.load(files / "y.npz") as f:
        y = torch.from_numpy(f["y"])
    res = sample(method, y, op, prior, n=N, n_chains=2, sigma=None, burn_in=20, thin=1,
                 step_size=1e-3, init="random", precondition=None, generator=make_generator(3))
    np.testing.assert_allclose(arrays["samples"], res.samples.numpy(), atol=1e-6)
    # grid: B columns; rows = 8 samples + mean + std + truth, 8x8 images with 2 px padding
    w, h = Image.open(tmp_path / "grid.png").size
    assert (w, h) == (B * 10 + 2, (N + 3) * 10 + 2)


def test_cli_mala_csgm_init_laplace(files, tmp_path):
    arrays = _run(files, tmp_path, "mala", "--burn-in", "20", "--chains", "2", "--init", "csgm",
                  "--precondition", "laplace", "--steps", "20", "--step-size", "0.5")
    assert arrays["samples"].shape == (N, B, 1, 8, 8)
    assert ((arrays["acceptance_rate"] > 0) & (arrays["acceptance_rate"] <= 1)).all()


def test_cli_annealed_random_starts_match_api(files, tmp_path):
    extra = ["--burn-in", "30", "--chains", "4", "--init", "random", "--precondition", "none",
             "--step-size", "1e-3", "--anneal", "3", "1", "0.3"]
    arrays = _run(files, tmp_path, "mala", *extra)
    prior = load_prior(files / "prior")
    op = load_operator(files / "op.safetensors")
    with np.load(files / "y.npz") as f:
        y = torch.from_numpy(f["y"])
    res = sample("mala", y, op, prior, n=N, n_chains=4, sigma=None, burn_in=30, thin=1,
                 step_size=1e-3, init="random", precondition=None, anneal=[3.0, 1.0, 0.3],
                 generator=make_generator(3))
    np.testing.assert_allclose(arrays["samples"], res.samples.numpy(), atol=1e-6)
    plain = sample("mala", y, op, prior, n=N, n_chains=4, sigma=None, burn_in=30, thin=1,
                   step_size=1e-3, init="random", precondition=None, generator=make_generator(3))
    assert not np.allclose(arrays["samples"], plain.samples.numpy())  # --anneal is passed on


def test_cli_bad_anneal_levels(files, tmp_path, capsys):
    argv = ["sample", "--prior", str(files / "prior"), "--measurements", str(files / "y.npz"),
            "--operator", str(files / "op.safetensors"), "--method", "mala", "--init", "random",
            "--precondition", "none", "--anneal", "1", "3", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "anneal must be strictly decreasing" in capsys.readouterr().err


def test_cli_restarts(files, tmp_path):
    arrays = _run(files, tmp_path, "restarts", "--steps", "5")
    assert arrays["samples"].shape == (N, B, 1, 8, 8)
    np.testing.assert_array_equal(arrays["ess"], np.full(B, N))
    assert (arrays["std"] > 0).any()


def test_cli_eps(tmp_path):
    model = ConditionalSR(img_size=(1, 8, 8), factor=2, width=4, n_blocks=1, noise_channels=2)
    model.save_pretrained(tmp_path / "sr")
    y = torch.rand(2, 1, 4, 4, generator=make_generator(0))
    save_measurements(tmp_path / "y.npz", y)
    argv = ["sample", "--prior", str(tmp_path / "sr"), "--measurements", str(tmp_path / "y.npz"),
            "-n", "4", "--method", "eps", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    with np.load(tmp_path / "out" / "samples.npz") as f:
        samples = torch.from_numpy(f["samples"])
    assert samples.shape == (4, 2, 1, 8, 8)
    for s in samples:  # every sample is consistent with its measurements
        torch.testing.assert_close(model.operator.A(s), y, atol=1e-5, rtol=0)
    w, h = Image.open(tmp_path / "out" / "grid.png").size
    assert (w, h) == (2 * 10 + 2, (4 + 2) * 10 + 2)  # no truth row
    # --temperature 0: no noise, every draw is the network's output at eps = 0
    assert main([*argv[:-1], str(tmp_path / "cold"), "--temperature", "0"]) == 0
    with np.load(tmp_path / "cold" / "samples.npz") as f:
        cold = torch.from_numpy(f["samples"])
    with torch.no_grad():
        x0 = model(y, torch.zeros(2, *model.latent_shape))
    for s in cold:
        torch.testing.assert_close(s, x0, atol=1e-6, rtol=0)


def test_cli_temperature_errors(files, tmp_path, capsys):
    argv = ["sample", "--prior", str(files / "prior"), "--measurements", str(files / "y.npz"),
            "--operator", str(files / "op.safetensors"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--temperature", "2"]) == 2
    assert "--temperature applies to --method eps only, not mala" in capsys.readouterr().err
    assert main([*argv, "--method", "eps", "--temperature", "-1"]) == 2
    assert "--temperature must be finite and >= 0, got -1.0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_errors(files, tmp_path, capsys):
    argv = ["sample", "--prior", str(files / "prior"), "--measurements", str(files / "y.npz"),
            "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--operator is required" in capsys.readouterr().err
    assert main([*argv, "--operator", str(files / "op.safetensors"), "--sigma", "-1"]) == 2
    assert "sigma must be > 0" in capsys.readouterr().err
    assert main(["sample", "--prior", str(files / "prior"), "--measurements",
                 str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
