"""Shared fixtures: devices, dtypes, seeded generators, latent draws, synthetic npz patches and
image folders, script loading."""

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)  # tiny test tensors: threads only add overhead on a loaded 2-core machine

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def draw_latent() -> Callable[..., torch.Tensor]:
    """``draw_latent(prior, b=2, seed=0)``: ``b`` float64 N(0, I) latents of ``prior``'s shape."""
    def draw(prior, b: int = 2, seed: int = 0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(b, *prior.latent_shape, generator=g, dtype=torch.float64)
    return draw


@pytest.fixture
def ramp_patches(tmp_path: Path) -> Callable[[int], Path]:
    """``ramp_patches(size)``: a folder holding ``part0.npz`` with 32 grey ``size x size`` uint8
    patches (a horizontal ramp rolled by 0..31 pixels, plus N(0, 4) noise), the npz layout of
    scripts/make_patches.py."""
    def make(size: int) -> Path:
        g = np.random.default_rng(0)
        ramp = np.linspace(0, 255, size)[None, :] * np.ones((size, 1))
        x = np.stack([np.roll(ramp, k, axis=1) for k in range(32)]) + g.normal(0, 4, (32, size, size))
        data = tmp_path / "patches"
        data.mkdir()
        np.savez(data / "part0.npz", x=x.clip(0, 255).astype(np.uint8))
        return data
    return make


def write_noise_images(folder: Path, ids: range, height: int, width: int, seed: int,
                       suffix: str = ".png") -> Path:
    """Uniform-noise RGB images ``height x width`` named ``NNNNNN<suffix>`` for ``ids``, in
    ``folder`` (created), the layout of a CelebA folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in ids:
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            folder / f"{i:06d}{suffix}")
    return folder


@pytest.fixture
def noise_images() -> Callable[..., Path]:
    """:func:`write_noise_images` (folders of noise 'faces')."""
    return write_noise_images


@pytest.fixture
def faces(tmp_path: Path, noise_images) -> Path:
    """16 RGB noise 'faces' 20x18 (height x width) named 000001.png ... 000016.png (the GAN
    trainers' tests)."""
    return noise_images(tmp_path / "faces", range(1, 17), 20, 18, seed=1)


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory) -> Path:
    """10 RGB noise 'faces' 18x20 (height x width) named 000001.png ... 000010.png."""
    return write_noise_images(tmp_path_factory.mktemp("faces"), range(1, 11), 18, 20, seed=0)


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def load_script() -> Callable[[str], ModuleType]:
    """``load_script(name)``: scripts/<name>.py imported as a module (scripts/ on the path while
    it loads, as when it runs: some scripts import others)."""
    def load(name: str) -> ModuleType:
        sys.path.insert(0, str(SCRIPTS))
        try:
            spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(SCRIPTS))
        return module
    return load
