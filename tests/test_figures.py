"""The labelled figures (`genprior.cli._figures`) and the commands that write them."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

import genprior.cli._figures as figures
from genprior._io import save_images_npz, save_measurements
from genprior._random import make_generator
from genprior.cli import main
from genprior.cli._figures import (
    comparison_figure,
    figure_image,
    psnr_label,
    samples_figure,
    save_figure,
)
from genprior.metrics import psnr
from genprior.operators import GaussianCS
from genprior.priors.vae_mlp import MLPVAE


def _panels(fig) -> dict[tuple[int, int], str]:
    """(row, column) -> title of every image panel (colour bars have no grid position)."""
    out = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None and ax.images:
            out[(spec.rowspan.start, spec.colspan.start)] = ax.get_title()
    return out


def _columns(fig) -> list[str]:
    """The method names of the columns, left to right (first title line of the top row)."""
    panels = _panels(fig)
    return [panels[(0, j)].split("\n")[0] for j in range(1 + max(j for _, j in panels))]


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def images():
    g = make_generator(0)
    x = torch.rand(5, 1, 8, 8, generator=g)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, noisy


def test_psnr_label():
    assert psnr_label(23.456) == "PSNR 23.5 dB"
    assert psnr_label(float("inf")) == "PSNR inf"


def test_comparison_figure_truth_first_and_psnr_on_every_panel(images):
    x, noisy = images
    fig = comparison_figure(x, {"noisy": noisy, "exact": x, "small": x[:, :, ::2, ::2]},
                            max_images=4, title="a title")
    panels = _panels(fig)
    assert _columns(fig) == ["truth", "noisy", "exact", "small"]
    assert {i for i, _ in panels} == {0, 1, 2, 3}  # max_images rows
    expected = psnr(noisy, x, data_range=1.0)
    for i in range(4):
        assert panels[(i, 0)] == "truth"
        assert panels[(i, 1)] == f"noisy\nPSNR {float(expected[i]):.1f} dB"
        assert panels[(i, 2)] == "exact\nPSNR inf"
        assert panels[(i, 3)] == "small"  # another size: no PSNR
    assert fig.get_suptitle() == "a title"


def test_comparison_figure_given_psnr_and_no_truth(images):
    x, noisy = images
    given = torch.arange(5.0)
    fig = comparison_figure(x, {"m": noisy}, psnr={"m": given})
    assert [_panels(fig)[(i, 1)] for i in range(5)] == [f"m\nPSNR {i}.0 dB" for i in range(5)]
    fig = comparison_figure(None, {"a": noisy, "b": x})
    assert _columns(fig) == ["a", "b"] and "PSNR" not in "".join(_panels(fig).values())
    with pytest.raises(ValueError, match="nothing to draw"):
        comparison_figure(x, {})


def test_samples_figure_has_std_map_with_colour_bar(images):
    x, _ = images
    samples = (x + 0.1 * torch.randn((6, *x.shape), generator=make_generator(1))).clamp(0, 1)
    mean, std = samples.mean(0), samples.std(0)
    fig = samples_figure(samples, mean, std, x=x, n_samples=2, max_images=3)
    assert _columns(fig) == ["truth", "mean", "sample 1", "sample 2", "std"]
    panels = _panels(fig)
    assert panels[(2, 1)] == f"mean\n{psnr_label(float(psnr(mean[2:3], x[2:3], data_range=1)))}"
    assert panels[(0, 4)] == f"std\nmean {float(std[0].mean()):.3f}"
    bars = [ax for ax in fig.axes if ax.get_subplotspec() is None]
    assert len(bars) == 1 and bars[0].get_ylabel() == "per-pixel std"
    # one colour scale for every std panel, from 0 to the largest std shown
    scales = [ax.images[0].get_clim() for ax in fig.axes
              if ax.images and ax.get_title().startswith("std")]
    assert scales == [(0.0, pytest.approx(float(std[:3].max())))] * 3
    # RGB: the std map is the mean over channels, and without the truth no PSNR is printed
    rgb = torch.rand(4, 2, 3, 6, 6, generator=make_generator(2))
    fig = samples_figure(rgb, rgb.mean(0), rgb.std(0))
    assert _columns(fig) == ["mean", "sample 1", "sample 2", "sample 3", "std"]
    assert "PSNR" not in "".join(_panels(fig).values())
    assert next(ax for ax in fig.axes if ax.get_subplotspec() is None).get_ylabel() == (
        "per-pixel std (mean over RGB)")


def test_save_figure_writes_the_rendered_figure_exactly(images, tmp_path):
    x, noisy = images
    fig = comparison_figure(x, {"noisy": noisy})
    save_figure(tmp_path / "f.png", fig)
    png = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    rendered = figure_image(fig)
    assert rendered.shape == (1, 3, *png.shape[:2])
    np.testing.assert_array_equal(png, (rendered[0] * 255).round().byte().permute(1, 2, 0).numpy())
    w, h = fig.get_size_inches() * figures.DPI
    assert png.shape[:2] == (round(h), round(w))


@pytest.fixture
def captured(monkeypatch):
    """The figures the commands save, by file name (still written to disk)."""
    saved = {}
    original = figures.save_figure

    def spy(path, fig):
        saved[str(path).rsplit("/", 1)[-1]] = fig
        original(path, fig)

    monkeypatch.setattr(figures, "save_figure", spy)
    return saved


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    prior = MLPVAE(img_shape=(1, 12, 12), hidden=16, latent_dim=4)  # SSIM needs 11 x 11
    prior.save_pretrained(root / "prior")
    op = GaussianCS(20, (1, 12, 12), noise_std=0.1, seed=0)
    op.save(root / "op.safetensors")
    x = prior.sample(3, generator=make_generator(1))
    save_measurements(root / "y.npz", op.measure(x, generator=make_generator(2)), x=x)
    return root


@pytest.mark.parametrize(("method", "columns"), [
    ("lasso-pixel", ["truth", r"$A^\dagger y$ (pinv)", "lasso-pixel"]),
    ("pinv", ["truth", "pinv"]),
])
def test_reconstruct_figure_carries_method_and_psnr(files, tmp_path, captured, method, columns):
    out = tmp_path / "r"
    assert main(["reconstruct", "--method", method, "--measurements", str(files / "y.npz"),
                 "--operator", str(files / "op.safetensors"), "--out", str(out)]) == 0
    fig = captured["grid.png"]
    assert _columns(fig) == columns
    rows = _read_csv(out / "metrics.csv")
    for i in range(3):  # the PSNR of the table, on the panel of the same image
        assert _panels(fig)[(i, len(columns) - 1)] == (
            f"{method}\n{psnr_label(float(rows[i]['psnr']))}")
    assert Image.open(out / "grid.png").size == tuple(
        round(v) for v in fig.get_size_inches() * figures.DPI)


def test_sample_writes_a_labelled_figure_beside_the_grid(files, tmp_path, captured):
    out = tmp_path / "s"
    assert main(["sample", "--prior", str(files / "prior"), "--measurements",
                 str(files / "y.npz"), "--operator", str(files / "op.safetensors"),
                 "--method", "restarts", "-n", "4", "--steps", "5", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"figure.png", "grid.png", "samples.npz"}
    fig = captured["figure.png"]
    assert _columns(fig) == ["truth", "mean", "sample 1", "sample 2", "sample 3", "std"]
    assert all("PSNR" in _panels(fig)[(0, j)] for j in range(1, 5))
    assert any(ax.get_ylabel() == "per-pixel std" for ax in fig.axes)


def test_evaluate_figure(files, tmp_path, captured, capsys):
    x = torch.rand(3, 1, 12, 12, generator=make_generator(3))
    (tmp_path / "csgm").mkdir()
    save_images_npz(tmp_path / "csgm" / "x_hat.npz", x)
    argv = ["evaluate", "--truth", str(files / "y.npz"), "--recon",
            str(tmp_path / "csgm" / "x_hat.npz"), "--out", str(tmp_path / "t.csv")]
    assert main([*argv, "--figure", str(tmp_path / "t.png")]) == 0
    rows = _read_csv(tmp_path / "t.csv")
    fig = captured["t.png"]
    assert _columns(fig) == ["truth", "csgm"]  # the folder of x_hat.npz names the column
    assert _panels(fig)[(1, 1)] == f"csgm\n{psnr_label(float(rows[1]['psnr']))}"
    # --label; an existing figure is refused before any work, like --out
    assert main([*argv, "--overwrite", "--figure", str(tmp_path / "u.png"),
                 "--label", "mine"]) == 0
    assert _columns(captured["u.png"]) == ["truth", "mine"]
    capsys.readouterr()
    table = (tmp_path / "t.csv").read_bytes()
    assert main([*argv[:-2], "--out", str(tmp_path / "t2.csv"), "--figure",
                 str(tmp_path / "t.png")]) == 2
    assert "--figure" in capsys.readouterr().err and not (tmp_path / "t2.csv").exists()
    assert main([*argv, "--overwrite", "--figure", str(tmp_path / "t.jpg")]) == 2
    assert "--figure must end in .png" in capsys.readouterr().err
    assert (tmp_path / "t.csv").read_bytes() == table


def test_demo_draws_digits_and_faces(tmp_path, captured, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--fast", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"demo.png", "metrics.csv", "faces.png",
                                              "faces_metrics.csv"}
    assert _columns(captured["demo.png"]) == ["truth", "pinv", "lasso", "csgm"]
    faces = captured["faces.png"]
    assert _columns(faces) == ["truth", "y (16x16)", "Lasso-DCT, m=1000", "CSGM, m=1000",
                               "bicubic, 4x SR", "AffGAN, 4x SR"]
    rows = _read_csv(out / "faces_metrics.csv")
    assert len(rows) == 2 + 2  # --fast: 2 faces, then mean and ci95
    for j, key in enumerate(["cs_lasso-dct", "cs_csgm", "sr_bicubic", "sr_affgan"], start=2):
        assert _panels(faces)[(1, j)].endswith(psnr_label(float(rows[1][f"{key}_psnr"])))
    text = capsys.readouterr().out
    assert "cs_csgm" in text and "sr_affgan" in text
    # --no-faces: the digits only
    assert main(["demo", "--fast", "--no-faces", "--out", str(tmp_path / "d2")]) == 0
    assert {p.name for p in (tmp_path / "d2").iterdir()} == {"demo.png", "metrics.csv"}
