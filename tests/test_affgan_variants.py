"""The amortised-MAP variants of the AffGAN trainer (AffDG, AffLL), its discriminator options
(hinge loss, spectral norm, lazy R1, DiffAugment) and the diversity-sensitive term: known
answers, clear errors, defaults unchanged and exact resumption."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from torch.nn.utils import parametrize

from genprior import _serialization
from genprior.cli import main as cli_main
from genprior.priors.conditional import ConditionalSR, SRDiscriminator, init_weights_
from genprior.priors.conv_vae import ConvVAE
from genprior.priors.denoiser import Denoiser, tweedie_score
from genprior.training.affgan import AffGANTrainConfig, train_affgan
from genprior.training.checkpoint import CHECKPOINT_NAME
from genprior.training.logging import read_log
from genprior.training.sr_objectives import affdg_loss, affll_loss, diversity_term


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ diversity term
def test_diversity_term_closed_form_and_clipping():
    # per sample: mean|x1 - x2| = 0.2, 0.6, 1.0 (constant offsets); mean|e1 - e2| = 2, 1, 0.5
    x1 = torch.zeros(3, 2, 4, 4)
    x2 = x1 + torch.tensor([0.2, -0.6, 1.0]).view(3, 1, 1, 1)
    e1 = torch.zeros(3, 5)
    e2 = e1 + torch.tensor([2.0, -1.0, 0.5]).view(3, 1)
    # ratios 0.1, 0.6, 2.0
    torch.testing.assert_close(diversity_term(x1, x2, e1, e2, tau=10.0),
                               torch.tensor((0.1 + 0.6 + 2.0) / 3))
    torch.testing.assert_close(diversity_term(x1, x2, e1, e2, tau=0.5),
                               torch.tensor((0.1 + 0.5 + 0.5) / 3))
    # mean absolute differences, not norms: a sign pattern changes nothing
    flip = torch.where(torch.arange(32).view(2, 4, 4) % 2 == 0, 1.0, -1.0)
    torch.testing.assert_close(diversity_term(x1, x1 + (x2 - x1) * flip, e1, e2, tau=10.0),
                               torch.tensor((0.1 + 0.6 + 2.0) / 3))
    # a clipped sample passes no gradient, the others d/dx2 = sign(x2 - x1) / (n de B)
    x2g = x2.clone().requires_grad_(True)
    diversity_term(x1, x2g, e1, e2, tau=0.5).backward()
    n = 2 * 4 * 4
    torch.testing.assert_close(x2g.grad[0], torch.full((2, 4, 4), 1 / (n * 2.0 * 3)))
    assert not x2g.grad[1:].any()
    with pytest.raises(ValueError, match="equal shapes"):
        diversity_term(x1, x2[:2], e1, e2, tau=1.0)


# ------------------------------------------------------------------------------ AffDG
def test_affdg_score_of_the_oracle_gaussian_denoiser_and_its_surrogate_gradient():
    # data x ~ N(mu, c^2 I): the MMSE denoiser for noise std sigma is
    # D(x) = mu + c^2 / (c^2 + sigma^2) (x - mu), and the score of the noised density
    # N(mu, (c^2 + sigma^2) I) is (mu - x) / (c^2 + sigma^2)
    b, shape = 3, (2, 4, 5)
    mu = torch.rand(shape, generator=_g(0), dtype=torch.float64)
    c, sigma = 0.3, 0.2
    x = torch.rand(b, *shape, generator=_g(1), dtype=torch.float64)
    oracle = lambda t: mu + c**2 / (c**2 + sigma**2) * (t - mu)
    s = tweedie_score(oracle, x, sigma)
    torch.testing.assert_close(s, (mu - x) / (c**2 + sigma**2), rtol=1e-12, atol=1e-12)
    # the surrogate's gradient is -s / (B n), which is the gradient of the mean negative
    # log-density per entry, -(1 / (B n)) sum_b log N(x_b; mu, (c^2 + sigma^2) I)
    n = math.prod(shape)
    xg = x.clone().requires_grad_(True)
    affdg_loss(xg, tweedie_score(oracle, xg, sigma)).backward()
    torch.testing.assert_close(xg.grad, -s / (b * n), rtol=1e-14, atol=0)
    xd = x.clone().requires_grad_(True)
    v = c**2 + sigma**2
    nll = (0.5 * (xd - mu).pow(2) / v + 0.5 * math.log(2 * math.pi * v)).sum() / (b * n)
    nll.backward()
    torch.testing.assert_close(xg.grad, xd.grad, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="sigma must be positive"):
        tweedie_score(oracle, x, 0.0)
    with pytest.raises(ValueError, match="score must have the shape"):
        affdg_loss(x, s[:1])


def test_denoiser_score_is_tweedies_formula_on_its_own_output():
    model = Denoiser(img_size=(3, 8, 8), width=4, n_blocks=1, sigma=0.25).double()
    model.reset_parameters(generator=_g(2))
    x = torch.rand(2, 3, 8, 8, generator=_g(3), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model.score(x), (model.denoise(x) - x) / 0.25**2,
                                   rtol=0, atol=0)


# ------------------------------------------------------------------------------ AffLL
def test_affll_loss_is_minus_elbo_per_entry_with_the_given_noise():
    vae = ConvVAE(img_shape=(3, 16, 16), latent_dim=4, base_channels=4).double()
    x = torch.rand(4, 3, 16, 16, generator=_g(4), dtype=torch.float64)
    loss = affll_loss(vae, x, generator=_g(5))
    torch.testing.assert_close(loss, -vae.elbo(x, generator=_g(5)).mean() / (3 * 16 * 16),
                               rtol=1e-14, atol=0)
    # the encoder's draw comes from the generator: another seed, another value
    assert not torch.equal(loss, affll_loss(vae, x, generator=_g(6)))


# ------------------------------------------------------------------------------ spectral norm
def test_spectral_norm_discriminator_has_unit_top_singular_values():
    torch.manual_seed(0)  # the power iteration's start vectors (PyTorch draws them globally)
    disc = SRDiscriminator(channels=3, img_size=16, width=4, spectral_norm=True)
    init_weights_(disc, generator=_g(7))
    layers = [m for m in disc.modules() if parametrize.is_parametrized(m, "weight")]
    assert len(layers) == 3  # two convolutions and the linear head
    assert any(k.endswith("_u") for k in disc.state_dict())  # power iterates are checkpointed
    x = torch.rand(2, 3, 16, 16, generator=_g(8))
    with torch.no_grad():
        originals = [torch.linalg.matrix_norm(m.parametrizations.weight.original.flatten(1),
                                              ord=2) for m in layers]
        assert all(abs(float(s) - 1) > 0.05 for s in originals)  # not normalised by init
        for _ in range(100):  # one power iteration per training-mode forward pass
            disc(x)
        disc.eval()
        for m in layers:
            top = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
            torch.testing.assert_close(top, torch.tensor(1.0), rtol=0, atol=1e-4)
    plain = SRDiscriminator(channels=3, img_size=16, width=4)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())


# ------------------------------------------------------------------------------ config errors
def test_config_errors_name_the_flag(tmp_path: Path):
    d = {"data": tmp_path, "out": tmp_path / "o"}
    for kw, message in [
        ({"loss": "affdg"}, "--loss affdg needs --denoiser"),
        ({"loss": "affll"}, "--loss affll needs --density"),
        ({"denoiser": "den"}, "--denoiser applies to --loss affdg only"),
        ({"loss": "affdg", "denoiser": "d", "density": "v"}, "--density applies"),
        ({"diversity_weight": -1.0}, "--diversity-weight must be >= 0"),
        ({"diversity_weight": float("inf")}, "--diversity-weight must be >= 0 and finite"),
        ({"diversity_tau": 0.0}, "--diversity-tau must be positive"),
        ({"diversity_weight": 1.0, "noise_channels": 0}, "--noise-channels is 0"),
        ({"loss": "mse", "spectral_norm": True}, "--spectral-norm applies to --loss gan only"),
        ({"loss": "mse", "gan_loss": "hinge"}, "--gan-loss applies to --loss gan only"),
        ({"loss": "affll", "density": "v", "r1_gamma": 1.0}, "--r1-gamma applies"),
        ({"loss": "mse", "diffaugment": "color"}, "--diffaugment applies"),
        ({"diffaugment": "color,flip"}, "--diffaugment.*'flip'"),
        ({"r1_gamma": -1.0}, "--r1-gamma must be >= 0"),
        ({"r1_every": 0}, "--r1-every must be positive"),
        ({"gan_loss": "wgan"}, "--gan-loss must be one of"),
        ({"loss": "affxx"}, "--loss must be one of"),
        ({"d_warmup": -1}, "--d-warmup must be >= 0"),
        ({"loss": "mse", "d_warmup": 5}, "--d-warmup applies to --loss gan only"),
    ]:
        with pytest.raises(ValueError, match=message):
            AffGANTrainConfig(**d, **kw)


# ------------------------------------------------------------------------------ end to end
def _config(data: Path, out: Path, **kw) -> AffGANTrainConfig:
    base = {"img_size": 16, "width": 8, "n_blocks": 1, "noise_channels": 2, "d_width": 4,
            "batch_size": 2, "anneal_steps": 4, "device": "cpu", "seed": 3, "threads": 1}
    return AffGANTrainConfig(data=data, out=out, **{**base, **kw})


def _checkpoint_config(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        (raw,) = f.metadata().values()
    return json.loads(raw)["state"]["config"]


# log.csv of 3 steps with the defaults, as written by the trainer before the variants existed
_DEFAULT_LOGS = {
    "gan": [[1.30888, 0.70049, 0.560785, 0.510208, 0.1],
            [1.51441, 0.776404, 0.455017, 0.515624, 0.075],
            [1.47223, 0.830297, 0.441299, 0.47741, 0.05]],
    "mse": [[0.0409327], [0.0368942], [0.0426776]],
}


@pytest.mark.parametrize("loss", ["gan", "mse"])
def test_defaults_train_as_before_the_variants(tiny_faces: Path, tmp_path: Path, loss: str):
    out = tmp_path / loss
    train_affgan(_config(tiny_faces, out, loss=loss, max_steps=3))
    rows = read_log(out / "log.csv", drop=["time_s"])
    columns = (["d_loss", "g_loss", "d_real", "d_fake", "instance_noise"] if loss == "gan"
               else ["mse"])
    assert list(rows[0]) == ["step", "epoch", *columns]
    values = [[float(r[c]) for c in columns] for r in rows]
    for got, want in zip(values, _DEFAULT_LOGS[loss], strict=True):
        assert got == pytest.approx(want, rel=1e-4)
    # the records are those of the old code (old checkpoints resume, old configs compare)
    model = {"img_size": [3, 16, 16], "factor": 4, "kernel": "box", "width": 8, "n_blocks": 1,
             "noise_channels": 2}
    assert _checkpoint_config(out / CHECKPOINT_NAME) == {
        "kind": "affgan", "loss": loss, "model": model, "d_width": 4 if loss == "gan" else None,
        "train_range": None, "lr_d": None, "instance_noise": 0.1, "anneal_steps": 4,
        "ema_decay": 0.999, "batch_size": 2, "lr": 0.0002, "world_size": 1, "seed": 3}
    training = json.loads((out / "final" / "config.json").read_text())["training"]
    assert set(training) == {"anneal_steps", "batch_size", "data", "ema_decay",
                             "epochs_completed", "instance_noise", "loss", "lr", "lr_d", "seed",
                             "steps", "train_range", "unpaired_split"}
    keys = set(_serialization.load_tensors(out / CHECKPOINT_NAME))
    assert {k.split(".")[1] for k in keys if k.startswith("module.")} == (
        {"model", "ema", "disc"} if loss == "gan" else {"model", "ema"})


def _split_then_resume(config: AffGANTrainConfig, n: int) -> tuple[Path, Path]:
    whole = config.out.parent / (config.out.name + "-whole")
    parts = config.out.parent / (config.out.name + "-parts")
    train_affgan(dataclasses.replace(config, out=whole, max_steps=n))
    train_affgan(dataclasses.replace(config, out=parts, max_steps=n // 2))
    train_affgan(dataclasses.replace(config, out=parts, max_steps=n, resume="auto"))
    a = _serialization.load_tensors(whole / CHECKPOINT_NAME)
    b = _serialization.load_tensors(parts / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert read_log(parts / "log.csv", drop=["time_s"]) == read_log(whole / "log.csv", drop=["time_s"])
    return whole, parts


def test_gan_options_train_and_resume_exactly(tiny_faces: Path, tmp_path: Path):
    config = _config(tiny_faces, tmp_path / "gan", gan_loss="hinge", spectral_norm=True,
                     r1_gamma=1.0, r1_every=2, diffaugment="color,translation,cutout",
                     diversity_weight=1.0)
    whole, _ = _split_then_resume(config, 6)  # 2 steps per epoch, killed with R1 due next
    rows = read_log(whole / "log.csv", drop=["time_s"])
    assert list(rows[0]) == ["step", "epoch", "d_loss", "g_loss", "d_real", "d_fake",
                             "instance_noise", "r1", "diversity"]
    r1 = [float(r["r1"]) for r in rows]
    assert all(v > 0 for v in r1[0::2]) and all(v == 0 for v in r1[1::2])  # lazy: every 2nd
    assert all(0 < float(r["diversity"]) < 1.0 for r in rows)  # below tau: not clipped
    training = json.loads((whole / "final" / "config.json").read_text())["training"]
    assert {"gan_loss": "hinge", "spectral_norm": True, "diffaugment": "color,translation,cutout",
            "r1_gamma": 1.0, "r1_every": 2, "diversity_weight": 1.0,
            "diversity_tau": 1.0}.items() <= training.items()
    assert any(k.endswith("_u") for k in _serialization.load_tensors(whole / CHECKPOINT_NAME))
    # the checkpoint records the options: resuming without one is refused
    with pytest.raises(ValueError, match="diversity_weight"):
        train_affgan(dataclasses.replace(config, out=whole, max_steps=7, resume="auto",
                                         diversity_weight=0.0))


def test_affdg_trains_with_a_denoiser_and_resumes_exactly(tiny_faces: Path, tmp_path: Path):
    from genprior.training.denoiser import DenoiserTrainConfig, train_denoiser

    train_denoiser(DenoiserTrainConfig(data=tiny_faces, out=tmp_path / "den", img_size=16, width=4,
                                       n_blocks=1, sigma=0.2, batch_size=2, max_steps=2,
                                       threads=1))
    config = _config(tiny_faces, tmp_path / "dg", loss="affdg",
                     denoiser=str(tmp_path / "den" / "final"), diversity_weight=0.5)
    whole, _ = _split_then_resume(config, 4)
    rows = read_log(whole / "log.csv", drop=["time_s"])
    assert list(rows[0]) == ["step", "epoch", "score_rms", "diversity"]
    assert all(float(r["score_rms"]) > 0 for r in rows)
    training = json.loads((whole / "final" / "config.json").read_text())["training"]
    assert training["denoiser"] == str(tmp_path / "den" / "final")
    assert training["unpaired_split"].startswith("first half -> y")


def test_affll_trains_with_a_vae_and_resumes_exactly(tiny_faces: Path, tmp_path: Path):
    ConvVAE(img_shape=(3, 16, 16), latent_dim=4, base_channels=4).save_pretrained(
        tmp_path / "vae")
    config = _config(tiny_faces, tmp_path / "ll", loss="affll", density=str(tmp_path / "vae"))
    whole, _ = _split_then_resume(config, 4)
    rows = read_log(whole / "log.csv", drop=["time_s"])
    assert list(rows[0]) == ["step", "epoch", "neg_elbo"]
    training = json.loads((whole / "final" / "config.json").read_text())["training"]
    assert training["density"] == str(tmp_path / "vae")
    # the density model is frozen and recorded by its path, not checkpointed
    keys = _serialization.load_tensors(whole / CHECKPOINT_NAME)
    assert {k.split(".")[1] for k in keys if k.startswith("module.")} == {"model", "ema"}


@pytest.fixture(scope="module")
def same_faces(tmp_path_factory) -> Path:
    """6 copies of one RGB 'face' 18x20: every batch is the same, so a step can be redone."""
    root = tmp_path_factory.mktemp("same")
    face = np.random.default_rng(1).integers(0, 256, (18, 20, 3), dtype=np.uint8)
    for i in range(1, 7):
        Image.fromarray(face).save(root / f"{i:06d}.png")
    return root


@pytest.mark.parametrize("loss", ["mse", "affdg", "affll"])
def test_first_step_logs_the_documented_objectives(same_faces: Path, tmp_path: Path, loss: str):
    from genprior.data.training_data import load_image_data
    from genprior.training.affgan import _sr_model

    density = {}
    if loss == "affdg":
        den = Denoiser(img_size=(3, 16, 16), width=4, n_blocks=1, sigma=0.2)
        den.reset_parameters(generator=_g(9))
        den.save_pretrained(tmp_path / "den")
        density = {"denoiser": str(tmp_path / "den")}
    elif loss == "affll":
        vae = ConvVAE(img_shape=(3, 16, 16), latent_dim=4, base_channels=4)
        vae.save_pretrained(tmp_path / "vae")
        density = {"density": str(tmp_path / "vae")}
    config = _config(same_faces, tmp_path / "run", loss=loss, max_steps=1,
                     diversity_weight=2.0, diversity_tau=0.1, **density)
    train_affgan(config)
    (row,) = read_log(tmp_path / "run" / "log.csv", drop=["time_s"])
    # redo step 1: the run's noise generator (seed * 1000 + 1, rank 0) draws eps1, eps2, then
    # (AffLL) the encoder's noise
    x = load_image_data(same_faces, img_size=16).tensors[0][:2]
    model = _sr_model(config, (3, 16, 16))
    noise = _g(3 * 1000 + 1)
    y = model.operator.A(x)
    eps1, eps2 = (model.sample_latent(2, generator=noise) for _ in range(2))
    with torch.no_grad():
        x1, x2 = model(y, eps1), model(y, eps2)
        ratio = ((x1 - x2).abs().flatten(1).mean(1) / (eps1 - eps2).abs().flatten(1).mean(1))
        assert float(ratio.min()) < 0.1 < float(ratio.max())  # one of the two is clipped
        assert float(row["diversity"]) == pytest.approx(float(ratio.clamp(max=0.1).mean()),
                                                        rel=1e-5)
        if loss == "mse":
            want = float((x1 - x).pow(2).mean())
        elif loss == "affdg":
            want = float(((den.denoise(x1) - x1) / 0.2**2).pow(2).mean().sqrt())
        else:
            want = float(-vae.elbo(x1, generator=noise).mean() / (3 * 16 * 16))
    assert float(row[{"mse": "mse", "affdg": "score_rms", "affll": "neg_elbo"}[loss]]) == \
        pytest.approx(want, rel=1e-5)


def test_density_and_denoiser_must_fit_the_outputs(tiny_faces: Path, tmp_path: Path, capsys):
    ConvVAE(img_shape=(3, 32, 32), latent_dim=4, base_channels=4).save_pretrained(
        tmp_path / "vae32")
    with pytest.raises(ValueError, match=r"models images of shape \(3, 32, 32\), but the "
                                         r"super-resolution outputs have shape \(3, 16, 16\)"):
        train_affgan(_config(tiny_faces, tmp_path / "a", loss="affll",
                             density=str(tmp_path / "vae32"), max_steps=1))
    Denoiser(img_size=(3, 16, 16), width=4, n_blocks=1).save_pretrained(tmp_path / "den")
    with pytest.raises(TypeError, match="holds a Denoiser, not a VAEPrior"):
        train_affgan(_config(tiny_faces, tmp_path / "b", loss="affll",
                             density=str(tmp_path / "den"), max_steps=1))
    # through the CLI: one line and exit status 2
    assert cli_main(["train", "affgan", "--data", str(tiny_faces), "--out", str(tmp_path / "c"),
                     "--img-size", "16", "--loss", "affdg", "--denoiser",
                     str(tmp_path / "vae32")]) == 2
    assert "holds a ConvVAE, not a Denoiser" in capsys.readouterr().err
    assert cli_main(["train", "affgan", "--data", str(tiny_faces), "--out", str(tmp_path / "d"),
                     "--img-size", "16", "--loss", "affdg"]) == 2
    assert "--loss affdg needs --denoiser" in capsys.readouterr().err


# ------------------------------------------------------------------------------ --init-from
def _source(path: Path, **kw) -> ConditionalSR:
    """A saved tiny network of ``_config``'s shape, its weights drawn from another seed."""
    model = ConditionalSR(**{"img_size": (3, 16, 16), "width": 8, "n_blocks": 1,
                             "noise_channels": 2, **kw})
    model.reset_parameters(generator=_g(99))
    model.save_pretrained(path)
    return model


def test_init_from_with_discriminator_warmup_keeps_the_generator(tiny_faces: Path,
                                                                  tmp_path: Path):
    source = _source(tmp_path / "src")
    config = _config(tiny_faces, tmp_path / "ft", init_from=str(tmp_path / "src"), d_warmup=3,
                     r1_gamma=1.0, r1_every=2, max_steps=3)
    train_affgan(config)
    tensors = _serialization.load_tensors(tmp_path / "ft" / CHECKPOINT_NAME)
    theirs = source.state_dict()
    for part in ("module.model.", "module.ema.module."):  # neither G nor its average moved
        ours = {k[len(part):]: v for k, v in tensors.items() if k.startswith(part)}
        assert ours.keys() == theirs.keys()
        for k in theirs:
            assert torch.equal(ours[k], theirs[k]), (part, k)
    fresh = init_weights_(SRDiscriminator(img_size=16, width=4), generator=_g(config.seed + 1))
    assert any(not torch.equal(tensors[f"module.disc.{k}"], v)  # D did learn
               for k, v in fresh.state_dict().items())
    rows = read_log(tmp_path / "ft" / "log.csv", drop=["time_s"])
    assert all(float(r["g_loss"]) > 0 for r in rows)  # still logged
    training = json.loads((tmp_path / "ft" / "final" / "config.json").read_text())["training"]
    assert {"init_from": str(tmp_path / "src"), "d_warmup": 3}.items() <= training.items()
    # after the warm-up the generator trains, and the options resume exactly
    whole, _ = _split_then_resume(dataclasses.replace(config, d_warmup=1), 4)
    after = _serialization.load_tensors(whole / CHECKPOINT_NAME)
    assert any(not torch.equal(after[f"module.model.{k}"], v) for k, v in theirs.items())


def test_init_from_must_be_the_same_network(tiny_faces: Path, tmp_path: Path, capsys):
    _source(tmp_path / "wide", width=16)
    with pytest.raises(ValueError, match=r"another network: width 16 \(this run: 8\)"):
        train_affgan(_config(tiny_faces, tmp_path / "a", init_from=str(tmp_path / "wide"),
                             max_steps=1))
    Denoiser(img_size=(3, 16, 16), width=4, n_blocks=1).save_pretrained(tmp_path / "den")
    assert cli_main(["train", "affgan", "--data", str(tiny_faces), "--out", str(tmp_path / "b"),
                     "--img-size", "16", "--init-from", str(tmp_path / "den")]) == 2
    assert "holds a Denoiser, not a ConditionalSR" in capsys.readouterr().err
