"""`genprior reconstruct` and `genprior demo` end to end on tiny inputs."""

import csv

import pytest
import torch

from genprior._io import load_images_npz, save_measurements
from genprior.cli import main
from genprior.operators.downsample import Downsample
from genprior.operators.gaussian_cs import GaussianCS
from genprior.priors.linear import LinearGenerator
from genprior.reconstruct import reconstruct

IMG = (1, 12, 12)


@pytest.fixture
def problem(tmp_path):
    """A linear prior whose range holds x, full-rank CS measurements, all on disk."""
    g = torch.Generator().manual_seed(0)
    W = 0.1 * torch.randn(144, 3, generator=g)
    G = LinearGenerator(W, torch.full((144,), 0.5), IMG)
    G.save_pretrained(tmp_path / "prior")
    x = G.decode(0.5 * torch.randn(3, 3, generator=g)).clamp(0, 1)
    A = GaussianCS(144, IMG, seed=0)
    A.save(tmp_path / "op.safetensors")
    save_measurements(tmp_path / "y.npz", A.A(x), x=x)
    return tmp_path, x


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(("method", "atol"), [("csgm", 2e-3), ("pinv", 2e-3), ("lasso-dct", 0.1)])
def test_reconstruct_writes_outputs(problem, method, atol):
    tmp, x = problem
    out = tmp / method
    rc = main(["reconstruct", "--method", method, "--prior", str(tmp / "prior"),
               "--measurements", str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"),
               "--out", str(out), "--restarts", "2", "--steps", "300", "--lr", "0.05",
               "--alpha", "1e-6"])
    assert rc == 0
    x_hat = load_images_npz(out / "x_hat.npz")
    assert x_hat.shape == x.shape
    # m = n and no noise: every method recovers x (csgm: x is in the prior's range; FISTA's
    # 1000 steps on a square Gaussian A, badly conditioned, fit y but converge slowly in x)
    assert float((x_hat - x).abs().max()) < atol
    rows = _read_csv(out / "metrics.csv")
    assert [r["image"] for r in rows] == ["0", "1", "2", "mean", "ci95"]
    assert {"mse_per_pixel", "psnr", "ssim", "residual", "measurement_error"} <= set(rows[0])
    assert max(float(r["measurement_error"]) for r in rows[:3]) < 1e-4
    mse = torch.tensor([float(r["mse_per_pixel"]) for r in rows[:3]])
    torch.testing.assert_close(mse, (x_hat - x).pow(2).flatten(1).mean(1), atol=1e-7, rtol=1e-4)
    assert (out / "grid.png").stat().st_size > 0


def test_cli_matches_python_api(problem):
    tmp, _ = problem
    from genprior._io import load_measurements
    from genprior._random import make_generator
    from genprior.operators import load_operator
    from genprior.priors import load_prior

    main(["reconstruct", "--method", "csgm", "--prior", str(tmp / "prior"), "--measurements",
          str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"), "--out",
          str(tmp / "cli"), "--restarts", "2", "--steps", "20", "--seed", "3", "--lam", "0.1"])
    res = reconstruct("csgm", load_measurements(tmp / "y.npz").y,
                      load_operator(tmp / "op.safetensors"), prior=load_prior(tmp / "prior"),
                      lam=0.1, restarts=2, steps=20, generator=make_generator(3))
    torch.testing.assert_close(load_images_npz(tmp / "cli" / "x_hat.npz"),
                               res.x_hat.clamp(0, 1))


@pytest.mark.parametrize("flags", [("--optimizer", "lbfgs", "--lr", "1", "--halving-every", "5"),
                                   ("--optimizer", "gauss-newton", "--restarts", "1"),
                                   ("--autocast", "bf16")])
def test_cli_solver_flags_match_python_api(problem, flags):
    tmp, _ = problem
    from genprior._io import load_measurements
    from genprior._random import make_generator
    from genprior.operators import load_operator
    from genprior.priors import load_prior

    main(["reconstruct", "--method", "csgm", "--prior", str(tmp / "prior"), "--measurements",
          str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"), "--out",
          str(tmp / "cli"), "--restarts", "4", "--steps", "12", "--seed", "3", "--lam", "0.1",
          *flags])
    kw = dict(zip(flags[::2], flags[1::2], strict=True))
    res = reconstruct("csgm", load_measurements(tmp / "y.npz").y,
                      load_operator(tmp / "op.safetensors"), prior=load_prior(tmp / "prior"),
                      lam=0.1, restarts=int(kw.get("--restarts", 4)), steps=12,
                      lr=float(kw["--lr"]) if "--lr" in kw else None,
                      optimizer=kw.get("--optimizer"),
                      halving_every=int(kw["--halving-every"]) if "--halving-every" in kw
                      else None,
                      autocast=torch.bfloat16 if "--autocast" in kw else None,
                      generator=make_generator(3))
    torch.testing.assert_close(load_images_npz(tmp / "cli" / "x_hat.npz"),
                               res.x_hat.clamp(0, 1))


@pytest.mark.parametrize("back_projection", ["exact", "none"])
def test_cli_adaptive_matches_python_api(problem, back_projection):
    tmp, _ = problem
    from genprior._io import load_measurements
    from genprior._random import make_generator
    from genprior.operators import load_operator
    from genprior.priors import load_prior

    out = tmp / f"adaptive-{back_projection}"
    assert main(["reconstruct", "--method", "adaptive", "--prior", str(tmp / "prior"),
                 "--measurements", str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"),
                 "--out", str(out), "--restarts", "2", "--steps", "20", "--seed", "3",
                 "--lam", "0.1", "--adapt-steps", "10", "--lr-theta", "1e-3", "--lr-z", "1e-3",
                 "--lam-theta", "0.5", "--back-projection", back_projection]) == 0
    res = reconstruct("adaptive", load_measurements(tmp / "y.npz").y,
                      load_operator(tmp / "op.safetensors"), prior=load_prior(tmp / "prior"),
                      lam=0.1, restarts=2, steps=20, generator=make_generator(3),
                      adapt_steps=10, lr_theta=1e-3, lr_z=1e-3, lam_theta=0.5, tau=None,
                      back_projection=None if back_projection == "none" else back_projection)
    torch.testing.assert_close(load_images_npz(out / "x_hat.npz"), res.x_hat.clamp(0, 1))
    # the flags reach the method: another anchor weight gives another result
    other = reconstruct("adaptive", load_measurements(tmp / "y.npz").y,
                        load_operator(tmp / "op.safetensors"), prior=load_prior(tmp / "prior"),
                        lam=0.1, restarts=2, steps=20, generator=make_generator(3),
                        adapt_steps=10, lr_theta=1e-3, lr_z=1e-3, lam_theta=0.0,
                        back_projection=None if back_projection == "none" else back_projection)
    if back_projection == "none":
        assert not torch.equal(other.x_hat, res.x_hat)


def test_reconstruct_errors(problem, capsys):
    tmp, _ = problem
    base = ["--measurements", str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"),
            "--out", str(tmp / "o")]
    assert main(["reconstruct", "--method", "csgm", *base]) == 2
    assert "needs --prior" in capsys.readouterr().err
    assert main(["reconstruct", "--method", "bicubic", *base]) == 2
    assert "image-shaped" in capsys.readouterr().err
    # measurements of another operator
    Downsample((1, 8, 8), 2).save(tmp / "down.safetensors")
    base[3] = str(tmp / "down.safetensors")
    assert main(["reconstruct", "--method", "pinv", *base]) == 2
    assert "y must have shape" in capsys.readouterr().err


def test_demo_falls_back_without_prior(tmp_path, capsys):
    rc = main(["demo", "--fast", "--out", str(tmp_path), "--prior", str(tmp_path / "missing")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "CSGM is skipped" in text and "lasso" in text
    assert (tmp_path / "demo.png").is_file()
    rows = _read_csv(tmp_path / "metrics.csv")
    assert "lasso_mse_per_pixel" in rows[0] and len(rows) == 4 + 2


def test_conditional_prior_is_the_default_method_and_consistent(tmp_path):
    from genprior.priors.conditional import ConditionalSR

    model = ConditionalSR(img_size=(3, 16, 16), factor=4, width=8, n_blocks=1, noise_channels=2)
    model.reset_parameters(generator=torch.Generator().manual_seed(0))
    model.save_pretrained(tmp_path / "sr")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    A = Downsample((3, 16, 16), 4)
    y = A.A(x)
    save_measurements(tmp_path / "y.npz", y, x=x)
    # the operator as a spec string (image size from the prior) and as a file agree
    A.save(tmp_path / "op.safetensors")
    for op, out in (("downsample:4", "a"), (str(tmp_path / "op.safetensors"), "b")):
        assert main(["reconstruct", "--prior", str(tmp_path / "sr"), "--operator", op,
                     "--measurements", str(tmp_path / "y.npz"), "--out",
                     str(tmp_path / out), "--seed", "3"]) == 0
    xa = load_images_npz(tmp_path / "a" / "x_hat.npz")
    assert torch.equal(xa, load_images_npz(tmp_path / "b" / "x_hat.npz"))
    direct = reconstruct("conditional", y, A, prior=model,
                         generator=torch.Generator().manual_seed(3)).x_hat
    assert ((A.A(direct) - y).norm() / y.norm()) <= 1e-5
    torch.testing.assert_close(xa, direct.clamp(0, 1), atol=1e-6, rtol=0)
    # an operator the model was not trained for is refused, naming both
    assert main(["reconstruct", "--prior", str(tmp_path / "sr"), "--operator",
                 "downsample:4:bicubic", "--measurements", str(tmp_path / "y.npz"),
                 "--out", str(tmp_path / "c")]) == 2


@pytest.mark.parametrize("method", ["csgm", "pinv"])
def test_reconstruct_under_torchrun_equals_single_process(problem, method):
    """Two gloo processes split the 3 images (1 + 2) and rank 0 writes what one process would."""
    import os
    import socket
    import subprocess
    import sys

    tmp, x = problem
    args = ["reconstruct", "--method", method, "--prior", str(tmp / "prior"),
            "--measurements", str(tmp / "y.npz"), "--operator", str(tmp / "op.safetensors"),
            "--restarts", "3", "--steps", "50", "--lr", "0.05", "--seed", "7"]
    assert main([*args, "--out", str(tmp / "one")]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "genprior", *args,
           "--out", str(tmp / "two")]
    res = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("wrote ") == 1  # only rank 0 writes
    one, two = load_images_npz(tmp / "one" / "x_hat.npz"), load_images_npz(tmp / "two" / "x_hat.npz")
    assert two.shape == x.shape
    torch.testing.assert_close(two, one, atol=1e-5, rtol=0)
    rows_one, rows_two = _read_csv(tmp / "one" / "metrics.csv"), _read_csv(tmp / "two" / "metrics.csv")
    assert len(rows_two) == len(rows_one)
    for a, b in zip(rows_one, rows_two, strict=True):
        assert float(a["measurement_error"]) == pytest.approx(float(b["measurement_error"]),
                                                              rel=1e-3, abs=1e-8)
