"""scripts/compare_sr.py runs end to end with tiny arguments and its metrics behave."""

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_sr.py"


@pytest.fixture(scope="module")
def compare_sr():
    spec = importlib.util.spec_from_file_location("compare_sr", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_sr"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["compare_sr"]


def test_hf_energy_is_zero_for_constant_images_and_larger_for_noise(compare_sr):
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert compare_sr.hf_energy(torch.full_like(x, 0.3)).max() < 1e-10
    sharp, smooth = compare_sr.hf_energy(x), compare_sr.hf_energy(x.cumsum(-1) / 16)
    assert (sharp > 1).all() and (smooth < sharp / 10).all()


def test_compare_sr_tiny_run(compare_sr, tmp_path):
    data = tmp_path / "faces"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8001, 8005):  # CelebA-like 89 x 109 JPEGs with the held-out ids
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(
            data / f"{i:06d}.jpg")
    out = tmp_path / "out"
    assert compare_sr.main(["--data", str(data), "--n", "4", "--csgm-n", "2", "--steps", "2",
                            "--restarts", "2", "--samples", "2", "--figure-faces", "2",
                            "--out", str(out), "--name", "sr"]) == 0
    for suffix in (".csv", "_table.md", ".png"):
        assert (out / f"sr{suffix}").is_file()
    with open(out / "sr.csv") as f:
        rows = list(csv.DictReader(f))
    methods = [r["method"] for r in rows if r["faces"] == "8001..8002"]
    assert methods == ["bicubic", "A_dagger y", "celeba-sr4-mse", "celeba-sr4-affgan",
                       "CSGM celeba-dcgan", "CSGM celeba-dcgan + projection",
                       "CSGM celeba-vae", "CSGM celeba-vae + projection"]
    assert [r["method"] for r in rows if r["faces"] == "8001..8004"] == methods[:4]
    for r in rows:
        if r["method"] == "A_dagger y" or "sr4" in r["method"] or "projection" in r["method"]:
            assert float(r["residual_max"]) <= 1e-5, r
        if r["method"] == "celeba-sr4-affgan":
            assert float(r["x_affgan_time"]) == 1.0
            assert float(r["diversity"]) > 0


def test_compare_sr_no_csgm_with_fid(compare_sr, tmp_path):
    from genprior.metrics import inception_weights_path

    try:
        inception_weights_path()
    except FileNotFoundError:
        pytest.skip("no Inception weights installed")
    data = tmp_path / "faces"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8001, 8004):
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(
            data / f"{i:06d}.jpg")
    out = tmp_path / "out"
    assert compare_sr.main(["--data", str(data), "--n", "3", "--samples", "2", "--no-csgm",
                            "--fid", "--figure-faces", "2", "--out", str(out),
                            "--name", "sr"]) == 0
    with open(out / "sr.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["faces"] for r in rows] == ["8001..8003"] * 4  # one face set, no CSGM rows
    fids = {r["method"]: float(r["fid"]) for r in rows}
    assert set(fids) == {"bicubic", "A_dagger y", "celeba-sr4-mse", "celeba-sr4-affgan"}
    assert np.isnan(fids.pop("A_dagger y"))
    assert all(np.isfinite(v) and v >= 0 for v in fids.values())
    table = (out / "sr_table.md").read_text()
    assert "| FID |" in table and "no CSGM rows" in table
    row = {k: v if k in ("faces", "method") else float(v) for k, v in rows[0].items()}
    assert "FID" not in compare_sr.markdown_table([row])  # the default table is unchanged
