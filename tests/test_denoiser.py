"""The Gaussian denoiser (the score model of AffDG) and its trainer, on tiny models and data."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genprior import _serialization
from genprior.priors import ConditionalPrior, load_prior
from genprior.priors.denoiser import Denoiser
from genprior.training.checkpoint import CHECKPOINT_NAME
from genprior.training.denoiser import DenoiserTrainConfig, train_denoiser


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(seed: int = 0, **kw) -> Denoiser:
    model = Denoiser(**{"img_size": (3, 8, 6), "width": 4, "n_blocks": 2, "sigma": 0.3, **kw})
    model.reset_parameters(generator=_g(seed))
    return model


def test_save_load_round_trip(tmp_path: Path):
    model = _model(seed=3)
    model.save_pretrained(tmp_path / "den")
    x = torch.rand(2, 3, 8, 6, generator=_g(1))
    for loaded in (load_prior(tmp_path / "den"), Denoiser.from_pretrained(tmp_path / "den"),
                   ConditionalPrior.from_pretrained(tmp_path / "den")):
        assert type(loaded) is Denoiser and not loaded.training
        assert loaded.config == model.config == {"img_size": [3, 8, 6], "width": 4,
                                                 "n_blocks": 2, "sigma": 0.3}
        assert loaded.sigma == 0.3
        with torch.no_grad():
            assert torch.equal(loaded.denoise(x), model.denoise(x))
            assert torch.equal(loaded.score(x), model.score(x))


def test_a_denoiser_is_a_deterministic_conditional_model():
    model = _model()
    x = torch.rand(2, 3, 8, 6, generator=_g(1))
    g = _g(2)
    state = g.get_state()
    xs = model.sample(x, 3, generator=g)
    assert torch.equal(g.get_state(), state)  # the noise input is empty: nothing drawn
    assert model.latent_shape == (0,) and model.meas_shape == model.img_shape == (3, 8, 6)
    with torch.no_grad():
        d = model.denoise(x)
        for i in range(3):
            assert torch.equal(xs[i], d)
        # the residual form x + g(x): a zero last layer is the identity
        model.net[-1].weight.zero_()
        model.net[-1].bias.zero_()
        assert torch.equal(model.denoise(x), x) and not model.score(x).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma must be positive"):
        Denoiser(sigma=0.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        Denoiser(sigma=float("inf"))
    with pytest.raises(ValueError, match=r"img_size must be \(C, H, W\)"):
        Denoiser(img_size=(8, 8))
    with pytest.raises(ValueError, match="width must be >= 1"):
        Denoiser(width=0)
    with pytest.raises(ValueError, match="y must have shape"):
        _model().denoise(torch.rand(2, 3, 8, 8))
    d = {"data": "x", "out": "y"}
    with pytest.raises(ValueError, match="--sigma must be positive"):
        DenoiserTrainConfig(**d, sigma=-0.1)
    with pytest.raises(ValueError, match="--n-blocks must be >= 0"):
        DenoiserTrainConfig(**d, n_blocks=-1)
    with pytest.raises(ValueError, match="--ema-decay"):
        DenoiserTrainConfig(**d, ema_decay=1.0)


def test_cli_flags_build_the_config(tmp_path: Path):
    from genprior.cli import build_parser
    from genprior.cli.train import config_from_args

    args = build_parser().parse_args(
        ["train", "denoiser", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
         "--sigma", "0.3", "--width", "8", "--n-blocks", "2"])
    assert config_from_args(args) == DenoiserTrainConfig(data=tmp_path, out=tmp_path / "o",
                                                         sigma=0.3, width=8, n_blocks=2)


# ------------------------------------------------------------------------------ trainer
def _shards(root: Path, levels: np.ndarray) -> Path:
    """Constant grey 8x8 images of the given uint8 levels, one npz shard (MNIST layout)."""
    root.mkdir()
    x = np.broadcast_to(levels[:, None, None], (len(levels), 8, 8)).astype(np.uint8)
    np.savez(root / "train.npz", x=x)
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def test_trained_denoiser_beats_the_noise_variance(tmp_path: Path):
    levels = np.random.default_rng(0).integers(40, 216, 128)
    data = _shards(tmp_path / "grey", levels)
    sigma = 0.2
    res = train_denoiser(DenoiserTrainConfig(
        data=data, out=tmp_path / "run", sigma=sigma, width=8, n_blocks=2, batch_size=16,
        epochs=75, ema_decay=0.9, threads=1, sample_every=0, ckpt_every=0))
    assert res.state.step == 300  # 64 images (the second half) / 16 per batch, 75 epochs
    model = res.model
    assert isinstance(load_prior(tmp_path / "run" / "final"), Denoiser)
    # held-out constant images: the identity's MSE is sigma^2
    x = (torch.rand(256, 1, 1, 1, generator=_g(1)) * 0.7 + 0.15).expand(256, 1, 8, 8)
    y = x + sigma * torch.randn(x.shape, generator=_g(2))
    with torch.no_grad():
        mse = float((model.denoise(y) - x).pow(2).mean())
        identity = float((y - x).pow(2).mean())
    assert identity == pytest.approx(sigma**2, rel=0.05)
    assert mse < 0.1 * sigma**2


def test_trains_on_the_second_half_and_resumes_exactly(tmp_path: Path):
    data = _shards(tmp_path / "grey", np.arange(40, 51))  # 11 images: halves of 5 and 6
    config = DenoiserTrainConfig(data=data, out=tmp_path / "whole", sigma=0.1, width=4,
                                 n_blocks=1, batch_size=3, epochs=3, threads=1, seed=2)
    train_denoiser(config)
    rows = _rows(tmp_path / "whole" / "log.csv")
    assert [r["epoch"] for r in rows] == ["0", "0", "1", "1", "2", "2"]  # 6 // 3 steps an epoch
    record = json.loads((tmp_path / "whole" / "final" / "config.json").read_text())["training"]
    assert record["split"].startswith("second half")
    parts = dataclasses.replace(config, out=tmp_path / "parts", max_steps=3)
    train_denoiser(parts)
    train_denoiser(dataclasses.replace(parts, max_steps=None, resume="auto"))
    a = _serialization.load_tensors(tmp_path / "whole" / CHECKPOINT_NAME)
    b = _serialization.load_tensors(tmp_path / "parts" / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _rows(tmp_path / "parts" / "log.csv") == rows
