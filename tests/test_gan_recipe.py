"""The limited-data GAN recipe: DiffAugment, the hinge loss, R1, and their exact resumption."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from genprior import _serialization
from genprior.training.adversarial import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    r1_penalty,
)
from genprior.training.augment import diff_augment, parse_policy
from genprior.training.checkpoint import CHECKPOINT_NAME
from genprior.training.gan import GANTrainConfig, _recipe_record, train_gan
from genprior.training.logging import read_log


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------ DiffAugment
def test_empty_policy_is_identity_and_draws_nothing():
    x = torch.rand(2, 3, 8, 8, generator=_g())
    g = _g(1)
    state = g.get_state()
    assert diff_augment(x, "", generator=g) is x
    assert diff_augment(x, [], generator=g) is x
    assert torch.equal(g.get_state(), state)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'colour'"):
        diff_augment(torch.zeros(1, 1, 4, 4), "colour,cutout", generator=None)
    assert parse_policy(" color ,translation, ") == ("color", "translation")


def test_translation_moves_content_by_an_integer_offset_within_the_bound():
    b, h, w = 16, 16, 24                 # bounds round(16 / 8) = 2 and round(24 / 8) = 3
    x = torch.rand(b, 3, h, w, generator=_g(2))
    y = diff_augment(x, ["translation"], generator=_g(3))
    offsets = []
    for i in range(b):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-3, 4):
                ref = torch.zeros_like(x[i])
                ref[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                    x[i, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
                if torch.equal(y[i], ref):
                    matches.append((dy, dx))
        assert len(matches) == 1, i
        offsets.append(matches[0])
    assert len(set(offsets)) > 1         # drawn per sample
    # a single bright pixel away from the border moves and keeps its mass
    one = torch.zeros(b, 1, h, w)
    one[:, :, 8, 12] = 1.0
    moved = diff_augment(one, ["translation"], generator=_g(3))
    assert torch.equal(moved.sum(dim=(1, 2, 3)), torch.ones(b))
    at = moved[:, 0].flatten(1).argmax(1)
    assert list(zip((at // w - 8).tolist(), (at % w - 12).tolist())) == offsets


def test_cutout_zeroes_exactly_a_half_size_rectangle():
    x = torch.ones(6, 3, 16, 12)
    y = diff_augment(x, "cutout", generator=_g(4))
    zero = y == 0
    assert (zero.sum(dim=(1, 2, 3)) == 3 * 8 * 6).all()
    assert (zero == zero[:, :1]).all()                        # the same square in every channel
    for m in zero[:, 0]:
        r, c = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert (r[-1] - r[0] + 1, c[-1] - c[0] + 1) == (8, 6)  # one solid 8x6 block
    assert len({tuple(m.nonzero()[0].tolist()) for m in zero[:, 0]}) > 1  # per sample
    assert torch.equal(y[~zero], x[~zero])


def test_color_closed_form():
    b = 5
    # u1 (brightness), u2 (saturation), u3 (contrast): one U[0, 1) each per image, in order
    g = _g(5)
    u1, u2, u3 = (torch.rand(b, 1, 1, 1, generator=g) for _ in range(3))
    bright, sat, con = (u1 - 0.5) / 2, 2 * u2, u3 + 0.5
    # a constant image: saturation and contrast do nothing, the mean moves by +-0.25 at most
    c = torch.full((b, 3, 4, 4), 0.3)
    y = diff_augment(c, "color", generator=_g(5))
    torch.testing.assert_close(y, c + bright)
    assert (y - c).abs().max() <= 0.25
    # grey (equal channels): no saturation change; contrast about the brightened mean
    grey = torch.rand(b, 1, 4, 4, generator=_g(6)).expand(b, 3, 4, 4)
    m = grey.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(diff_augment(grey, "color", generator=_g(5)),
                               m + bright + con * (grey - m))
    # spatially constant colour: channel mean = image mean, saturation and contrast multiply
    rgb = torch.tensor([0.1, 0.5, 0.6]).view(1, 3, 1, 1).expand(b, 3, 4, 4)
    mu = rgb.mean(dim=1, keepdim=True)
    torch.testing.assert_close(diff_augment(rgb, "color", generator=_g(5)),
                               mu + bright + con * sat * (rgb - mu))


def test_same_seed_same_output_and_input_untouched():
    x = torch.rand(4, 3, 8, 8, generator=_g(7))
    x0 = x.clone()
    pol = "color,translation,cutout"
    a = diff_augment(x, pol, generator=_g(8))
    assert torch.equal(a, diff_augment(x, pol, generator=_g(8)))
    assert not torch.equal(a, diff_augment(x, pol, generator=_g(9)))
    assert torch.equal(x, x0)
    # float32 draws: the same transformation in float64
    torch.testing.assert_close(diff_augment(x.double(), pol, generator=_g(8)), a.double(),
                               rtol=0, atol=1e-6)


def test_gradcheck():
    x = torch.rand(2, 3, 5, 6, generator=_g(10), dtype=torch.float64, requires_grad=True)
    for pol in ("color", "translation", "cutout", "color,translation,cutout"):
        assert torch.autograd.gradcheck(
            lambda t, pol=pol: diff_augment(t, pol, generator=_g(11)), (x,)), pol


# ------------------------------------------------------------------------------------ losses
def test_hinge_losses_closed_form():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-3.0, 0.0, 0.5])
    # relu(1 - real) = [0, 0.5, 2], relu(1 + fake) = [0, 1, 1.5]
    torch.testing.assert_close(hinge_discriminator_loss(real, fake), torch.tensor(5.0 / 3))
    torch.testing.assert_close(hinge_generator_loss(fake), torch.tensor(2.5 / 3))


def test_r1_linear_and_quadratic_discriminators():
    x = torch.randn(4, 2, 3, 3, generator=_g(12), dtype=torch.float64)
    lin = torch.nn.Linear(18, 1).double()
    D = lambda t: lin(t.flatten(1)).squeeze(1)
    r1 = r1_penalty(D, x)
    torch.testing.assert_close(r1, lin.weight.pow(2).sum(), rtol=1e-12, atol=0)
    r1.backward()                               # differentiable in D's weights: d||w||^2 = 2w
    torch.testing.assert_close(lin.weight.grad, 2 * lin.weight.detach())
    quad = r1_penalty(lambda t: t.pow(2).sum(dim=(1, 2, 3)), x)
    torch.testing.assert_close(quad, 4 * x.pow(2).sum(dim=(1, 2, 3)).mean())
    assert not x.requires_grad


# ------------------------------------------------------------------------------------ config
def test_config_flags_and_checks(tmp_path: Path):
    from genprior.cli import build_parser
    from genprior.cli.train import config_from_args

    d = {"data": tmp_path, "out": tmp_path / "o"}
    args = build_parser().parse_args(
        ["train", "gan", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--loss",
         "hinge", "--diffaugment", "color,cutout", "--r1-gamma", "0.5", "--r1-every", "4"])
    assert config_from_args(args) == GANTrainConfig(**d, loss="hinge", diffaugment="color,cutout",
                                                    r1_gamma=0.5, r1_every=4)
    with pytest.raises(ValueError, match="--diffaugment.*'flip'"):
        GANTrainConfig(**d, diffaugment="color,flip")
    with pytest.raises(ValueError, match="--loss"):
        GANTrainConfig(**d, loss="wgan")
    with pytest.raises(ValueError, match="--label-smoothing"):
        GANTrainConfig(**d, loss="hinge", label_smoothing=0.8)
    GANTrainConfig(**d, loss="hinge", label_smoothing=1.0)
    with pytest.raises(ValueError, match="--r1-gamma"):
        GANTrainConfig(**d, r1_gamma=-1.0)
    with pytest.raises(ValueError, match="--r1-every"):
        GANTrainConfig(**d, r1_every=0)
    # off by default: nothing new enters the records of existing configurations
    assert _recipe_record(GANTrainConfig(**d), ()) == {}


# ------------------------------------------------------------------------------------ end to end
def _config(data: Path, out: Path, **kw) -> GANTrainConfig:
    return GANTrainConfig(data=data, out=out, arch="dcgan", img_size=16, nz=8, ngf=4, ndf=4,
                          batch_size=4, epochs=2, instance_noise=0.1, ema_decay=0.9, seed=5,
                          threads=1, ckpt_every=100, diffaugment="color,translation,cutout",
                          loss="hinge", r1_gamma=1.0, r1_every=2, **kw)


def test_recipe_trains_and_resumes_exactly(faces: Path, tmp_path: Path):
    n = 6                                   # 4 steps per epoch: the resume at 3 crosses epochs
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    res = train_gan(_config(faces, whole, max_steps=n))
    assert res.state.step == n and (whole / "final" / "model.safetensors").is_file()
    rows = read_log(whole / "log.csv", drop=["time_s"])
    assert list(rows[0]) == ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "sigma",
                             "r1"]
    r1 = [float(r["r1"]) for r in rows]
    assert all(v > 0 for v in r1[0::2]) and all(v == 0 for v in r1[1::2])  # lazy: every 2nd
    record = json.loads((whole / "final" / "config.json").read_text())
    assert {"loss": "hinge", "diffaugment": "color,translation,cutout", "r1_gamma": 1.0,
            "r1_every": 2}.items() <= record["training"].items()
    # "killed" after an odd step (R1 is due on the next), then resumed
    config = _config(faces, parts, max_steps=n // 2)
    train_gan(config)
    train_gan(dataclasses.replace(config, max_steps=n, resume="auto"))
    a = _serialization.load_tensors(whole / CHECKPOINT_NAME)
    b = _serialization.load_tensors(parts / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert read_log(parts / "log.csv", drop=["time_s"]) == rows
    # the checkpoint records the recipe: resuming it without the recipe is refused
    with pytest.raises(ValueError, match="diffaugment"):
        train_gan(dataclasses.replace(config, max_steps=n + 1, resume="auto", diffaugment=""))
