"""The CSGM reproduction scripts run end to end on tiny fake data and write their tables."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.filterwarnings("ignore")
def test_reproduce_mnist_tiny(tmp_path, load_script):
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "mnist_test_00.npz", x=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
             y=np.arange(3))
    out = tmp_path / "out"
    module = load_script("reproduce_mnist")
    assert module.main(["--data-root", str(tmp_path), "--n-images", "3", "--out", str(out),
                        "--m", "10", "100", "--steps", "2", "--restarts", "2"]) == 0
    rows = _rows(out / "reproduce_mnist.csv")
    assert [(r["method"], int(r["m"])) for r in rows] == [
        (k, m) for m in (10, 100) for k in module.METHODS]
    assert all(int(r["n"]) == 3 and float(r["mean"]) > 0 for r in rows)
    text = (out / "reproduce_mnist.md").read_text()
    assert "| m | Lasso | VAE | VAE+Reg | Sparse-Gen | VAE-PM |" in text
    assert (out / "reproduce_mnist.png").is_file() and (out / "reproduce_mnist_m100.png").is_file()


@pytest.mark.filterwarnings("ignore")
def test_reproduce_celeba_tiny(tmp_path, load_script):
    root = tmp_path / "celeba"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in (8001, 8002):  # the held-out test split is ids 008001..009000
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(
            root / f"{i:06d}.jpg")
    for i in range(8003, 9001):  # the rest of the split: links to one file (never read)
        os.link(root / "008001.jpg", root / f"{i:06d}.jpg")
    out = tmp_path / "out"
    module = load_script("reproduce_celeba")
    assert module.main(["--data-root", str(tmp_path), "--n-images", "2", "--out", str(out),
                        "--m", "20", "500", "--steps", "2", "--sparse-gen-steps", "3",
                        "--restarts", "1", "--lasso-steps", "2"]) == 0
    rows = _rows(out / "reproduce_celeba.csv")
    assert [(r["method"], int(r["m"])) for r in rows] == [
        (k, m) for m in (20, 500) for k in module.METHODS]
    assert "Sparse-Gen 3" in (out / "reproduce_celeba.md").read_text()
    assert (out / "reproduce_celeba_m500.png").is_file()
