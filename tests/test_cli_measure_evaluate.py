"""`genprior measure` -> `genprior evaluate` round trips through the CLI on the shipped samples."""

import csv
import json

import numpy as np
import pytest
import torch

from genprior._io import load_images_npz, load_measurements, save_images_npz
from genprior.cli import main
from genprior.cli.measure import noise_generator
from genprior.data import load_samples
from genprior.metrics import psnr, ssim
from genprior.operators import load_operator
from genprior.operators.factory import make_operator


def _measure(out, images="mnist", spec="gaussian_cs:50", noise="0.05", seed="1", n="6"):
    argv = ["measure", "--images", images, "--operator", spec, "--noise-std", noise,
            "--seed", seed, "--out", str(out)]
    return main(argv + (["--num-images", n] if n else []))


def test_measure_writes_files_and_is_reproducible_bit_for_bit(tmp_path):
    assert _measure(tmp_path / "a") == 0
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert names == {"y.npz", "operator.safetensors", "x.png", "x_dagger.png", "x_dagger.npz"}
    m = load_measurements(tmp_path / "a" / "y.npz")
    x = load_samples("mnist")[:6]
    assert torch.equal(m.x, x) and m.y.shape == (6, 50)
    assert m.meta == {"images": "mnist", "operator": "gaussian_cs:50", "noise_std": 0.05,
                      "seed": 1}
    # the reloaded operator, and one rebuilt from the spec, give exactly the same y again
    A = load_operator(tmp_path / "a" / "operator.safetensors")
    assert torch.equal(A.measure(x, generator=noise_generator(1)), m.y)
    A2 = make_operator("gaussian_cs:50", (1, 28, 28), noise_std=0.05, seed=1)
    assert torch.equal(A2.measure(x, generator=noise_generator(1)), m.y)
    # same arguments -> the same file contents; another seed -> other measurements
    assert _measure(tmp_path / "b") == 0
    assert np.array_equal(load_measurements(tmp_path / "b" / "y.npz").y, m.y)
    assert _measure(tmp_path / "c", seed="2") == 0
    assert not torch.equal(load_measurements(tmp_path / "c" / "y.npz").y, m.y)
    # the noise has the requested level and is not the operator's own first draws
    e = m.y - A.A(x)
    assert float(e.std()) == pytest.approx(0.05, rel=0.2)
    first_draws = A.state_dict()[next(iter(A.state_dict()))].flatten()[: e.numel()]
    assert abs(float(torch.corrcoef(torch.stack([e.flatten(), first_draws]))[0, 1])) < 0.2


def test_measure_then_evaluate_exact_recon_csv(tmp_path):
    d = tmp_path / "m"
    assert _measure(d, images="celeba", spec="downsample:4", noise="0", n="3") == 0
    table = tmp_path / "t.csv"
    argv = ["evaluate", "--truth", str(d / "y.npz"), "--recon", str(d / "y.npz"),
            "--measurements", str(d / "y.npz"), "--operator", str(d / "operator.safetensors"),
            "--out", str(table)]
    assert main(argv) == 0
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [r["image"] for r in rows] == ["0", "1", "2", "mean", "ci95"]
    for r in rows[:3]:  # perfect reconstruction, noise-free data
        assert float(r["mse_per_pixel"]) == 0 and float(r["psnr"]) == float("inf")
        assert float(r["ssim"]) == pytest.approx(1, abs=1e-6) and float(r["residual"]) == 0


def test_evaluate_pinv_baseline_json_matches_metrics(tmp_path, capsys):
    d = tmp_path / "m"
    assert _measure(d, spec="inpaint:center:10", noise="0.1", n="5") == 0
    out = tmp_path / "t.json"
    assert main(["evaluate", "--truth", str(d / "y.npz"), "--recon", str(d / "x_dagger.npz"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "psnr" in printed and "n=5" in printed and str(out) in printed
    doc = json.loads(out.read_text())
    x, x_hat = load_samples("mnist")[:5], load_images_npz(d / "x_dagger.npz")
    expected = psnr(x_hat, x, data_range=1.0)
    assert [r["psnr"] for r in doc["per_image"]] == pytest.approx(expected.tolist())
    assert doc["summary"]["psnr"]["mean"] == pytest.approx(float(expected.double().mean()))
    assert doc["summary"]["ssim"]["mean"] == pytest.approx(
        float(ssim(x_hat, x, data_range=1.0).double().mean()))
    assert doc["n"] == 5 and "residual" not in doc["summary"]


def test_measure_accepts_an_npz_of_images(tmp_path):
    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    save_images_npz(tmp_path / "x.npz", x)
    assert _measure(tmp_path / "m", images=str(tmp_path / "x.npz"), spec="inpaint:random:0.5",
                    noise="0", n=None) == 0
    m = load_measurements(tmp_path / "m" / "y.npz")
    A = load_operator(tmp_path / "m" / "operator.safetensors")
    assert torch.equal(m.x, x) and torch.equal(m.y, A.A(x))


def test_cli_user_errors_exit_2_with_message(tmp_path, capsys, monkeypatch):
    assert _measure(tmp_path / "m", images="cifar") == 2
    assert "--images must be one of" in capsys.readouterr().err
    assert _measure(tmp_path / "m", spec="blur:3") == 2
    assert "invalid operator spec 'blur:3'" in capsys.readouterr().err
    assert _measure(tmp_path / "m", n="3") == 0
    d = tmp_path / "m"
    base = ["evaluate", "--truth", str(d / "y.npz"), "--recon", str(d / "x_dagger.npz")]
    assert main(base + ["--measurements", str(d / "y.npz"), "--out", str(tmp_path / "t.csv")]) == 2
    assert "must be given together" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "t.txt")]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    # LPIPS without the backbone weights: a clear error naming the file, no download
    from genprior.metrics import perceptual

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(perceptual, "_CACHE", {})
    celeba = tmp_path / "c"
    assert _measure(celeba, images="celeba", spec="downsample:2", n="2") == 0
    assert main(["evaluate", "--truth", str(celeba / "y.npz"), "--recon",
                 str(celeba / "x_dagger.npz"), "--out", str(tmp_path / "t.csv"), "--lpips"]) == 2
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().err
