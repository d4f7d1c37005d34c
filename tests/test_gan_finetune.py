"""GAN fine-tuning options: ``--init-from``, ``--d-warmup`` and the VAE-GAN latent-recovery term
(``--recon-weight``), with the encoder they add and the multi-optimiser step it needs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from genprior import _serialization
from genprior.priors.dcgan import DCGANDiscriminator, DCGANGenerator
from genprior.priors.hub import load_prior
from genprior.training.checkpoint import CHECKPOINT_NAME
from genprior.training.gan import (
    GANTrainConfig,
    _recipe_record,
    build_encoder,
    build_gan,
    latent_recovery_loss,
    train_gan,
)
from genprior.training.logging import read_log
from genprior.training.precision import Precision


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _config(data: Path, out: Path, **kw) -> GANTrainConfig:
    return GANTrainConfig(data=data, out=out, arch="dcgan", img_size=16, nz=8, ngf=4, ndf=4,
                          batch_size=4, epochs=2, ema_decay=0.9, seed=5, threads=1,
                          ckpt_every=100, label_smoothing=1.0, **kw)


# --------------------------------------------------------------------------------- the pieces
def test_encoder_is_the_discriminator_network_with_2nz_outputs():
    config = GANTrainConfig(data="d", out="o", nz=6, ndf=4, seed=3)
    E = build_encoder(config, (3, 16, 16))
    assert E(torch.rand(5, 3, 16, 16, generator=_g())).shape == (5, 12)
    assert E.config["out_features"] == 12
    assert DCGANDiscriminator.from_config(E.config).out_features == 12
    # a discriminator's config does not record the default, so older records stay equal
    assert "out_features" not in DCGANDiscriminator(ndf=4, nc=3, img_size=16).config
    again = build_encoder(config, (3, 16, 16))  # seeded from seed + 1: reproducible
    for a, b in zip(E.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="out_features"):
        DCGANDiscriminator(ndf=4, nc=3, img_size=16, out_features=0)


def test_latent_recovery_loss_closed_form():
    """With an encoder that outputs mu = 0, logvar = 0 the KL is 0 and z is the drawn noise, so
    the term is ||x - G(eps)||^2 / (2 sigma^2) / P; with mu = m, logvar = l per entry the KL is
    -nz (1 + l - m^2 - e^l) / 2."""
    torch.manual_seed(0)
    G = DCGANGenerator(nz=4, ngf=4, nc=3, img_size=16).double().eval()
    x = torch.rand(3, 3, 16, 16, generator=_g(1), dtype=torch.float64)

    class Constant(nn.Module):
        def __init__(self, m: float, l: float) -> None:
            super().__init__()
            self.m, self.l = m, l

        def forward(self, x):
            out = torch.empty(x.shape[0], 8, dtype=x.dtype)
            out[:, :4], out[:, 4:] = self.m, self.l
            return out

    sigma = 0.2
    term, logs = latent_recovery_loss(Constant(0.0, 0.0), G, x, sigma=sigma, generator=_g(2))
    eps = torch.randn(3, 4, generator=_g(2), dtype=torch.float64)
    sq = (G(eps) - x).pow(2).reshape(3, -1).sum(1)
    P = 3 * 16 * 16
    assert term.item() == pytest.approx((sq / (2 * sigma**2)).mean().item() / P, rel=1e-12)
    assert logs["kl"] == 0.0
    assert logs["recon"] == pytest.approx(sq.mean().item() / P, rel=1e-12)
    m, l = 0.5, -1.0
    _, logs = latent_recovery_loss(Constant(m, l), G, x, sigma=sigma, generator=_g(2))
    assert logs["kl"] == pytest.approx(-0.5 * 4 * (1 + l - m * m - math.exp(l)), rel=1e-12)


def test_precision_steps_several_optimisers_after_one_backward():
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    opt_a, opt_b = (torch.optim.SGD(m.parameters(), lr=0.5) for m in (a, b))
    before = [p.detach().clone() for p in (*a.parameters(), *b.parameters())]
    x = torch.ones(1, 2)
    loss = (a(x) * b(x)).sum()
    grads = torch.autograd.grad(loss, [*a.parameters(), *b.parameters()])
    Precision("fp32", torch.device("cpu")).step((a(x) * b(x)).sum(), opt_a, opt_b)
    for p0, g, p in zip(before, grads, [*a.parameters(), *b.parameters()], strict=True):
        assert torch.allclose(p, p0 - 0.5 * g)


def test_config_flags_and_checks(tmp_path: Path):
    from genprior.cli import build_parser
    from genprior.cli.train import config_from_args

    d = {"data": tmp_path, "out": tmp_path / "o"}
    args = build_parser().parse_args(
        ["train", "gan", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--init-from",
         "celeba-dcgan-plain", "--d-warmup", "50", "--recon-weight", "2", "--recon-sigma",
         "0.05"])
    assert config_from_args(args) == GANTrainConfig(**d, init_from="celeba-dcgan-plain",
                                                    d_warmup=50, recon_weight=2.0,
                                                    recon_sigma=0.05)
    for bad, flag in (({"d_warmup": -1}, "--d-warmup"), ({"recon_weight": -1.0}, "--recon-weight"),
                      ({"recon_sigma": 0.0}, "--recon-sigma"),
                      ({"recon_weight": 1.0, "arch": "spatial"}, "--recon-weight needs")):
        with pytest.raises(ValueError, match=flag):
            GANTrainConfig(**d, **bad)
    assert _recipe_record(GANTrainConfig(**d), ()) == {}  # off: records unchanged


# --------------------------------------------------------------------------------- end to end
def test_recovery_term_trains_and_resumes_exactly(faces: Path, tmp_path: Path):
    n = 6                                   # 4 steps per epoch: the resume at 3 crosses epochs
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    kw = {"recon_weight": 2.0, "recon_sigma": 0.1, "d_warmup": 2}
    res = train_gan(_config(faces, whole, max_steps=n, **kw))
    assert res.state.step == n
    rows = read_log(whole / "log.csv", drop=["time_s"])
    assert list(rows[0]) == ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "sigma",
                             "recon", "kl"]
    assert all(float(r["recon"]) > 0 and float(r["kl"]) >= 0 for r in rows)
    record = json.loads((whole / "final" / "config.json").read_text())
    assert {"recon_weight": 2.0, "recon_sigma": 0.1, "d_warmup": 2}.items() <= \
        record["training"].items()
    assert any(k.startswith("module.E.") for k in _serialization.load_tensors(whole / CHECKPOINT_NAME))
    config = _config(faces, parts, max_steps=n // 2, **kw)
    train_gan(config)
    train_gan(dataclasses.replace(config, max_steps=n, resume="auto"))
    a = _serialization.load_tensors(whole / CHECKPOINT_NAME)
    b = _serialization.load_tensors(parts / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert read_log(parts / "log.csv", drop=["time_s"]) == rows
    with pytest.raises(ValueError, match="recon_weight"):
        train_gan(dataclasses.replace(config, max_steps=n + 1, resume="auto", recon_weight=1.0))


def test_init_from_with_warmup_keeps_the_generator(faces: Path, tmp_path: Path):
    src = train_gan(_config(faces, tmp_path / "src", max_steps=2)).model
    src_dir = tmp_path / "src" / "final"
    ft = tmp_path / "ft"
    train_gan(_config(faces, ft, max_steps=3, init_from=str(src_dir), d_warmup=3,
                      recon_weight=1.0))
    out = load_prior(ft / "final")        # the EMA: untouched while only D and E train
    for k, v in src.state_dict().items():
        assert torch.equal(out.state_dict()[k], v), k
    raw = load_prior(ft / "final-raw")    # the raw generator's weights too (not its BN buffers)
    for (k, v), w in zip(src.named_parameters(), raw.parameters(), strict=True):
        assert torch.equal(w, v), k
    ck = _serialization.load_tensors(ft / CHECKPOINT_NAME)
    config = _config(faces, ft)
    _, D = build_gan(config, (3, 16, 16))
    E = build_encoder(config, (3, 16, 16))
    assert not torch.equal(ck["module.D.net.0.weight"], D.net[0].weight)  # D and E trained
    assert not torch.equal(ck["module.E.net.0.weight"], E.net[0].weight)
    record = json.loads((ft / "final" / "config.json").read_text())
    assert {"init_from": str(src_dir), "d_warmup": 3}.items() <= record["training"].items()


def test_init_from_must_be_the_same_network(faces: Path, tmp_path: Path):
    wide = tmp_path / "wide"
    DCGANGenerator(nz=8, ngf=8, nc=3, img_size=16).save_pretrained(wide)
    with pytest.raises(ValueError, match=r"--init-from .* has another network: ngf 8 \(this run: 4\)"):
        train_gan(_config(faces, tmp_path / "a", max_steps=1, init_from=str(wide)))
    with pytest.raises(TypeError, match="holds a MLPVAE, not a DCGANGenerator"):
        train_gan(_config(faces, tmp_path / "b", max_steps=1, init_from="mnist-vae"))
