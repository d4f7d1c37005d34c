"""Data: MNIST layouts, image folders, splits, shipped samples, and the npz/PNG helpers of _io."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from genprior._io import (
    load_images_npz,
    load_measurements,
    save_grid_png,
    save_images_npz,
    save_measurements,
)
from genprior.data import (
    CELEBA_CROP,
    ImageFolderDataset,
    celeba_ids,
    center_crop_box,
    data_root,
    load_celeba,
    load_mnist,
    load_samples,
    samples_path,
    split_indices,
)


def _digits(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


# ---------------------------------------------------------------------------------------- MNIST
def test_mnist_npz_shards_are_concatenated_in_order(tmp_path):
    a, b = _digits(3, 0), _digits(2, 1)
    np.savez(tmp_path / "mnist_train_00.npz", x=a, y=np.arange(3, dtype=np.uint8))
    np.savez(tmp_path / "mnist_train_01.npz", x=b, y=np.arange(3, 5, dtype=np.uint8))
    ds = load_mnist(tmp_path, split="train")
    assert len(ds) == 5 and ds[0].shape == (1, 28, 28) and ds[0].dtype == torch.float32
    torch.testing.assert_close(ds[4], torch.from_numpy(b[1]).float().unsqueeze(0) / 255)
    assert ds.labels.tolist() == [0, 1, 2, 3, 4]
    assert 0 <= float(ds.as_tensor().min()) and float(ds.as_tensor().max()) <= 1
    with pytest.raises(FileNotFoundError, match=r"no MNIST test data.*mnist_test_\*\.npz"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist(tmp_path, split="val")


def _write_idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">" + "i" * (1 + array.ndim), magic, *array.shape))
        f.write(array.tobytes())


def test_mnist_torchvision_raw_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x = _digits(4, 2)
    _write_idx(raw / "t10k-images-idx3-ubyte", x, 2051)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.array([7, 2, 1, 0], dtype=np.uint8), 2049)
    ds = load_mnist(tmp_path, split="test")
    assert len(ds) == 4 and ds.labels.tolist() == [7, 2, 1, 0]
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x))


def test_mnist_root_from_env_and_bad_shard(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    np.savez(tmp_path / "mnist" / "mnist_test_00.npz", x=_digits(2, 3), y=np.zeros(2, np.uint8))
    monkeypatch.setenv("GENPRIOR_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert len(load_mnist(split="test")) == 2
    monkeypatch.delenv("GENPRIOR_DATA")
    with pytest.raises(ValueError, match="GENPRIOR_DATA"):
        load_mnist(split="test")
    np.savez(tmp_path / "mnist_train_00.npz", x=np.zeros((2, 28, 27), np.uint8), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"mnist_train_00.npz: 'x' must be uint8 \[N, 28, 28\]"):
        load_mnist(tmp_path, split="train")


# ---------------------------------------------------------------------------------------- folders
def _write_png(path, a):
    Image.fromarray(a).save(path)
    return a


def test_image_folder_center_crop_is_exact_without_resize(tmp_path):
    rng = np.random.default_rng(0)
    a = _write_png(tmp_path / "b.png", rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    _write_png(tmp_path / "a.png", rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(tmp_path, img_size=(5, 4), crop=(5, 4))
    assert [p.name for p in ds.paths] == ["a.png", "b.png"]
    # centred 5 x 4 window of a 9 x 7 image: rows 2..6, cols round(1.5) = 2..5
    expected = torch.from_numpy(a[2:7, 2:6]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(ds[1], expected)
    # default crop: the largest centred square (7 x 7, rows 1..7), resized
    assert ImageFolderDataset(tmp_path, img_size=3)[0].shape == (3, 3, 3)
    gray = ImageFolderDataset(tmp_path, img_size=7, grayscale=True)[1]
    expected_gray = np.asarray(Image.fromarray(a[1:8]).convert("L"), dtype=np.float32) / 255
    torch.testing.assert_close(gray, torch.from_numpy(expected_gray)[None])


def test_celeba_crop_box_matches_the_csgm_reference():
    # reference: 108 x 108 centred in 178 x 218 (W x H); ours: 54 x 54 in 89 x 109
    assert center_crop_box(218, 178, (108, 108)) == (35, 55, 143, 163)
    assert center_crop_box(109, 89, (CELEBA_CROP, CELEBA_CROP)) == (18, 28, 72, 82)


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolderDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match=f"no image files .* in folder {tmp_path}"):
        ImageFolderDataset(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    _write_png(tmp_path / "small.png", np.zeros((8, 8, 3), np.uint8))
    ds = ImageFolderDataset(tmp_path, crop=16, img_size=16)
    with pytest.raises(ValueError, match="cannot read image file .*broken.jpg"):
        ds[0]
    with pytest.raises(ValueError, match=r"small.png is 8x8 .* smaller than the crop 16x16"):
        ds[1]
    with pytest.raises(FileNotFoundError, match="1 of 2 image files not found"):
        ImageFolderDataset(tmp_path, files=["small.png", "nope.png"])


def test_celeba_split_ids_and_loader(tmp_path):
    train, test = celeba_ids("train"), celeba_ids("test")
    assert (train[0], train[-1], len(train)) == (1, 8000, 8000)
    assert (test[0], test[-1], len(test)) == (8001, 9000, 1000)
    assert not set(train) & set(test)
    for i in test:  # only existence is checked when the dataset is built
        (tmp_path / f"{i:06d}.jpg").touch()
    ds = load_celeba(tmp_path, split="test")
    assert len(ds) == 1000 and ds.paths[0].name == "008001.jpg" and ds.crop == (54, 54)
    with pytest.raises(FileNotFoundError, match="8000 of 8000 image files not found"):
        load_celeba(tmp_path, split="train")


# ---------------------------------------------------------------------------------------- splits
def test_split_indices_deterministic_disjoint_and_covering():
    s = split_indices(103, val=0.1, test=20, seed=7)
    assert (len(s.train), len(s.val), len(s.test)) == (73, 10, 20)
    union = torch.cat([s.train, s.val, s.test])
    assert sorted(union.tolist()) == list(range(103))  # disjoint and covering
    again = split_indices(103, val=0.1, test=20, seed=7)
    assert all(torch.equal(a, b) for a, b in zip((s.train, s.val, s.test),
                                                 (again.train, again.val, again.test)))
    assert not torch.equal(split_indices(103, val=0.1, test=20, seed=8).test, s.test)
    assert s.test.tolist() == sorted(s.test.tolist())
    with pytest.raises(ValueError, match="exceeds n = 10"):
        split_indices(10, val=6, test=5)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\)"):
        split_indices(10, val=1.5)


# ---------------------------------------------------------------------------------------- samples
def test_shipped_samples():
    x = load_samples("mnist")
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    with np.load(samples_path("mnist")) as f:
        assert f["labels"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST test order
    faces = load_samples("celeba")
    assert faces.shape == (16, 3, 64, 64) and 0 <= faces.min() and faces.max() <= 1
    with np.load(samples_path("celeba")) as f:
        assert f["ids"].tolist() == list(range(8985, 9001))  # held-out split
    total = sum(samples_path(n).stat().st_size for n in ("mnist", "celeba"))
    assert total < 300 * 1024
    with pytest.raises(ValueError, match="unknown sample set 'cifar'"):
        load_samples("cifar")


# ---------------------------------------------------------------------------------------- _io
def test_images_npz_round_trip_and_uint8(tmp_path):
    x = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    save_images_npz(tmp_path / "x.npz", x)
    assert torch.equal(load_images_npz(tmp_path / "x.npz"), x)
    np.savez(tmp_path / "u8.npz", x=np.array([0, 51, 255], np.uint8).reshape(1, 1, 1, 3))
    torch.testing.assert_close(load_images_npz(tmp_path / "u8.npz").flatten(),
                               torch.tensor([0.0, 0.2, 1.0]))


@pytest.mark.parametrize(
    ("arrays", "error", "match"),
    [
        ({"y": np.zeros((1, 1, 2, 2))}, ValueError, "no key 'x'.*keys found: \\['y'\\]"),
        ({"x": np.zeros((2, 2, 2))}, ValueError, r"shape \(B, C, H, W\), got \(2, 2, 2\)"),
        ({"x": np.full((1, 1, 2, 2), np.nan)}, ValueError, "4 non-finite"),
        ({"x": np.full((1, 1, 2, 2), 2.0)}, ValueError, r"values in \[0, 1\]"),
        ({"x": np.zeros((1, 1, 2, 2), np.int32)}, TypeError, "uint8 or floating point"),
        ({"x": np.array([None, 1], dtype=object)}, ValueError, "without pickle"),
    ],
)
def test_load_images_npz_errors(tmp_path, arrays, error, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(error, match=match):
        load_images_npz(tmp_path / "bad.npz")


def test_load_images_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="images file not found: .*nope.npz"):
        load_images_npz(tmp_path / "nope.npz")


def test_measurements_round_trip_with_truth_and_meta(tmp_path):
    y = torch.randn(3, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.rand(3, 1, 4, 4)
    save_measurements(tmp_path / "y.npz", y, x=x, operator="gaussian_cs:7", seed=3)
    m = load_measurements(tmp_path / "y.npz")
    assert torch.equal(m.y, y) and torch.equal(m.x, x)
    assert m.meta == {"operator": "gaussian_cs:7", "seed": 3}
    save_measurements(tmp_path / "y2.npz", y)
    m2 = load_measurements(tmp_path / "y2.npz")
    assert m2.x is None and m2.meta == {}
    with pytest.raises(ValueError, match="same number of images"):
        save_measurements(tmp_path / "y3.npz", y, x=x[:2])
    save_images_npz(tmp_path / "x.npz", x)
    with pytest.raises(ValueError, match="no key 'y'"):
        load_measurements(tmp_path / "x.npz")


def test_grid_png_layout(tmp_path):
    x = torch.zeros(5, 3, 4, 6)
    x[4] = 1.0
    save_grid_png(tmp_path / "g.png", x, nrow=2)
    img = np.asarray(Image.open(tmp_path / "g.png"))
    # 3 rows x 2 columns of 4 x 6 tiles with 2-pixel padding
    assert img.shape == (3 * 6 + 2, 2 * 8 + 2, 3)
    assert (img[14:18, 2:8] == 255).all()  # the fifth image (row 2, column 0) is white
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        save_grid_png(tmp_path / "bad.png", x + 1)
