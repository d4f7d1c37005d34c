"""`genprior sample --posterior misfit` and `--conformal` on tiny priors saved to tmp_path.

Known answers: with Sigma_d = 0 the misfit posterior is the latent posterior (the same chains on
the whitened problem, then samples = G(z)); on an Inpaint operator with Sigma_d = 0.05 I and noise
0.01 the observed pixels follow y to the noise level (posterior std of an observed pixel
0.01 * sqrt(s / (s + 0.01^2)) ~ 0.01) while the hidden ones spread by about sqrt(0.05) ~ 0.22.
"""

import shutil

import numpy as np
import pytest
import torch

from genprior._io import save_measurements
from genprior._random import make_generator
from genprior.cli import main
from genprior.operators import GaussianCS, Inpaint, load_operator
from genprior.priors import load_prior
from genprior.priors.vae_mlp import MLPVAE
from genprior.sampling import (
    ConformalScale,
    MisfitCovariance,
    credible_interval,
    misfit_posterior,
)

B, N = 3, 8
RANDOM_START = ["--burn-in", "20", "--chains", "2", "--step-size", "1e-3", "--init", "random",
                "--precondition", "none"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_misfit")
    with torch.random.fork_rng():  # the same tiny weights in every run
        torch.manual_seed(0)
        prior = MLPVAE(img_shape=(1, 8, 8), hidden=16, latent_dim=4)
    prior.save_pretrained(root / "prior")
    x = prior.sample(B, generator=make_generator(1))
    op = GaussianCS(10, (1, 8, 8), noise_std=0.1, seed=0)
    op.save(root / "op.safetensors")
    save_measurements(root / "y.npz", op.measure(x, generator=make_generator(2)), x=x)
    inpaint = Inpaint.center_box((1, 8, 8), 4, noise_std=0.01)
    inpaint.save(root / "inpaint.safetensors")
    save_measurements(root / "y_inpaint.npz", inpaint.measure(x, generator=make_generator(3)),
                      x=x)
    MisfitCovariance(0.0).save_pretrained(root / "zero")
    MisfitCovariance(0.05).save_pretrained(root / "wide")
    # a prior folder that holds its own misfit, as pretrained/<name>/ will
    shutil.copytree(root / "prior", root / "prior_with_misfit")
    MisfitCovariance(0.05).save_pretrained(root / "prior_with_misfit")
    return root


def _argv(files, out, *extra, prior="prior", meas="y.npz", op="op.safetensors"):
    return ["sample", "--prior", str(files / prior), "--measurements", str(files / meas),
            "--operator", str(files / op), "-n", str(N), "--out", str(out), "--seed", "3",
            *extra]


def _run(files, out, *extra, **kw):
    assert main(_argv(files, out, *extra, **kw)) == 0
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _error(files, tmp_path, capsys, *extra, **kw) -> str:
    assert main(_argv(files, tmp_path / "out", *extra, **kw)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err  # one line
    assert not (tmp_path / "out").exists()  # nothing written
    return err


@pytest.mark.parametrize("method, atol", [("ula", 1e-6), ("mala", 1e-4)])
def test_zero_misfit_equals_latent(files, tmp_path, method, atol):
    latent = _run(files, tmp_path / "latent", "--method", method, *RANDOM_START)
    misfit = _run(files, tmp_path / "misfit", "--method", method, *RANDOM_START,
                  "--posterior", "misfit", "--misfit", str(files / "zero"))
    assert set(misfit) == set(latent)  # the same files and arrays
    # equal up to float32 rounding of the whitened data term (y / sigma, A / sigma). ULA carries
    # it along unchanged (measured max difference 1.2e-7); MALA's step adaptation (dual
    # averaging on the acceptance probabilities) amplifies it (measured 5.8e-6 in the samples,
    # 8.9e-6 in the step size; up to 1.3e-4 with other tiny weights)
    for key in latent:
        np.testing.assert_allclose(misfit[key], latent[key], atol=atol, rtol=atol, err_msg=key)


def test_auto_is_latent_without_a_misfit_file(files, tmp_path):
    plain = _run(files, tmp_path / "plain", *RANDOM_START)
    flagged = _run(files, tmp_path / "flagged", *RANDOM_START, "--posterior", "latent")
    for key in plain:
        np.testing.assert_array_equal(flagged[key], plain[key])
    assert (tmp_path / "plain" / "grid.png").read_bytes() == \
        (tmp_path / "flagged" / "grid.png").read_bytes()


def test_misfit_cli_matches_api(files, tmp_path):
    arrays = _run(files, tmp_path, *RANDOM_START, "--posterior", "misfit", "--misfit",
                  str(files / "wide" / "misfit.safetensors"))  # a file works as well as a folder
    assert arrays["samples"].shape == (N, B, 1, 8, 8)
    prior = load_prior(files / "prior")
    op = load_operator(files / "op.safetensors")
    with np.load(files / "y.npz") as f:
        y = torch.from_numpy(f["y"])
    res = misfit_posterior(y, op, prior, MisfitCovariance(0.05), n_samples=N // 2, n_chains=2,
                           burn_in=20, thin=1, step_size=1e-3, init="random", precondition=None,
                           method="mala", generator=make_generator(3))
    np.testing.assert_allclose(arrays["samples"], res.samples.numpy(), atol=1e-6)


def test_auto_is_misfit_with_the_priors_misfit_file(files, tmp_path):
    auto = _run(files, tmp_path / "auto", *RANDOM_START, prior="prior_with_misfit")
    misfit = _run(files, tmp_path / "misfit", *RANDOM_START, "--posterior", "misfit",
                  prior="prior_with_misfit")
    np.testing.assert_array_equal(auto["samples"], misfit["samples"])
    latent = _run(files, tmp_path / "latent", *RANDOM_START, "--posterior", "latent",
                  prior="prior_with_misfit")
    assert not np.array_equal(auto["samples"], latent["samples"])


def test_misfit_default_is_the_prior_folder(files, tmp_path):
    arrays = _run(files, tmp_path, *RANDOM_START, "--posterior", "misfit",
                  prior="prior_with_misfit")
    explicit = _run(files, tmp_path / "explicit", *RANDOM_START, "--posterior", "misfit",
                    "--misfit", str(files / "wide"))
    np.testing.assert_array_equal(arrays["samples"], explicit["samples"])


def test_misfit_inpaint_observed_follow_y_hidden_spread(files, tmp_path):
    arrays = _run(files, tmp_path, "-n", "64", "--chains", "4", "--burn-in", "50", "--steps",
                  "50", "--posterior", "misfit", "--misfit", str(files / "wide"),
                  meas="y_inpaint.npz", op="inpaint.safetensors")
    samples = torch.from_numpy(arrays["samples"])  # (64, B, 1, 8, 8)
    assert samples.shape == (64, B, 1, 8, 8)
    op = load_operator(files / "inpaint.safetensors")
    with np.load(files / "y_inpaint.npz") as f:
        y = torch.from_numpy(f["y"])
    hidden = ~op.mask.expand(1, 8, 8)
    observed_gap = (op.A(samples.flatten(0, 1)).reshape(64, *y.shape) - y).abs()
    std = samples.std(0)
    # measured: max |A x - y| 0.038 (3.8 noise std), mean std of the observed pixels 0.0099,
    # of the hidden ones 0.225 (min 0.165)
    assert observed_gap.max() < 0.06
    assert std[:, ~hidden].mean() < 0.02
    assert std[:, hidden].mean() > 0.15
    assert (std[:, hidden] > 0).all()


def _scale(files, tmp_path, **setting) -> str:
    path = tmp_path / "conformal.json"
    ConformalScale(factor=1.5, level=0.8, n_images=20, n_pixels=64, setting=setting).save(path)
    return str(path)


def test_conformal_scales_the_intervals(files, tmp_path):
    op = load_operator(files / "op.safetensors")
    record = {"type": "gaussian_cs", "config": dict(op.config)}
    path = _scale(files, tmp_path, prior="prior", operator=record, noise_std=0.1, sigma=0.1,
                  posterior="misfit", method="mala")
    arrays = _run(files, tmp_path / "out", *RANDOM_START, "--posterior", "misfit", "--misfit",
                  str(files / "wide"), "--conformal", path)
    lo, hi = credible_interval(torch.from_numpy(arrays["samples"]), level=0.8)
    np.testing.assert_allclose(arrays["lower"], (0.5 * (lo + hi) - 0.75 * (hi - lo)).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(arrays["upper"] - arrays["lower"], 1.5 * (hi - lo).numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("setting, expected", [
    ({"prior": "celeba-dcgan"}, "prior celeba-dcgan != "),
    ({"noise_std": 0.5}, "noise_std 0.5 != 0.1"),
    ({"sigma": 0.2}, "sigma 0.2 != 0.1"),
    ({"posterior": "latent"}, "posterior latent != misfit"),
    ({"operator": {"type": "downsample"}}, "operator downsample != gaussian_cs"),
    ({"operator": {"type": "gaussian_cs", "config": {"m": 20}}}, "operator m 20 != 10"),
])
def test_conformal_setting_mismatch(files, tmp_path, capsys, setting, expected):
    path = _scale(files, tmp_path, **setting)
    err = _error(files, tmp_path, capsys, *RANDOM_START, "--posterior", "misfit", "--misfit",
                 str(files / "wide"), "--conformal", path)
    assert "was fitted for another setting" in err and expected in err, err


def test_misfit_errors(files, tmp_path, capsys):
    err = _error(files, tmp_path, capsys, "--posterior", "misfit")
    assert "no " + str(files / "prior" / "misfit.safetensors") in err
    assert "scripts/fit_misfit.py" in err and "--misfit PATH" in err
    err = _error(files, tmp_path, capsys, "--posterior", "misfit", "--misfit",
                 str(tmp_path / "nowhere"))
    assert "--misfit" in err and "nowhere" in err
    err = _error(files, tmp_path, capsys, "--posterior", "misfit", "--method", "restarts",
                 "--misfit", str(files / "wide"))
    assert "--posterior misfit samples with --method mala or ula" in err
    MisfitCovariance(torch.ones(1, 4, 4)).save_pretrained(tmp_path / "small")
    err = _error(files, tmp_path, capsys, "--posterior", "misfit", "--misfit",
                 str(tmp_path / "small"))
    assert "per-pixel misfit has shape (1, 4, 4)" in err
    err = _error(files, tmp_path, capsys, "--posterior", "latent", "--misfit",
                 str(files / "wide"))
    assert "--misfit is only used with --posterior misfit" in err
    (tmp_path / "bad.json").write_text("{}")
    err = _error(files, tmp_path, capsys, "--conformal", str(tmp_path / "bad.json"))
    assert "--conformal" in err and "not a genprior conformal scale" in err


def test_auto_falls_back_to_latent_when_the_covariance_cannot_be_factorised(
        files, tmp_path, monkeypatch, capsys):
    import genprior.cli.sample as cli_sample

    def too_big(*args, **kwargs):
        raise ValueError("a dense factor for m = 5000 > max_dense = 4096 measurements")

    latent = _run(files, tmp_path / "latent", *RANDOM_START, "--posterior", "latent",
                  prior="prior_with_misfit")
    monkeypatch.setattr(cli_sample, "marginal_covariance", too_big)
    auto = _run(files, tmp_path / "auto", *RANDOM_START, prior="prior_with_misfit")
    for key in latent:
        np.testing.assert_array_equal(auto[key], latent[key])
    assert "--posterior auto: latent" in capsys.readouterr().out
