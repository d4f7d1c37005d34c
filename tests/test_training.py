"""Training loops: end-to-end runs, exact resumption, atomic checkpoints, DDP, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genprior import _serialization
from genprior.cli import main
from genprior.data import ResumableSampler, parse_range
from genprior.priors import Prior
from genprior.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from genprior.training.checkpoint_model import checkpoint_model
from genprior.training.common import save_image_grid  # the deprecated alias
from genprior.training.ema import EMA, average_weights
from genprior.training.gan import GANTrainConfig, train_gan
from genprior.training.logging import read_log
from genprior.training.vae import VAETrainConfig, train_vae


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def _restore_threads():
    """Runs use ``--threads 1`` (tiny models are faster single-threaded); restore afterwards."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """40 random 'digits' 8x8 in two npz shards (MNIST layout)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "digits"
    root.mkdir()
    for i in range(2):
        np.savez(root / f"mnist_train_{i:02d}.npz",
                 x=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
                 y=np.zeros(20, dtype=np.uint8))
    return root


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """24 RGB 'faces' 20x18 named 000001.png ... 000024.png."""
    rng = np.random.default_rng(1)
    root = tmp_path / "faces"
    root.mkdir()
    for i in range(1, 25):
        Image.fromarray(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(
            root / f"{i:06d}.png")
    return root


def _vae(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "vae", "--arch", "mlp", "--data", str(data), "--out", str(out),
            "--hidden", "16", "--latent-dim", "4", "--batch-size", "8", "--epochs", "2",
            "--seed", "3", "--threads", "1", *extra]


def _gan(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "gan", "--data", str(data), "--out", str(out), "--img-size", "16",
            "--nz", "8", "--ngf", "4", "--ndf", "4", "--batch-size", "4", "--epochs", "2",
            "--instance-noise", "0.1", "--ema-decay", "0.9", "--seed", "5", "--threads", "1",
            *extra]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return _serialization.load_tensors(path)


# ------------------------------------------------------------------------------------ helpers
def test_parse_range():
    assert parse_range("1:8000") == (1, 8000)
    assert parse_range(None) is None
    with pytest.raises(ValueError, match="--train-range"):
        parse_range("8000:1")


def test_ema_closed_form():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.75)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(4.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, 0.75 * w0 + 0.25 * (w0 + 4.0))
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)


def test_sampler_resume_and_shards():
    data = list(range(23))
    full = ResumableSampler(data, num_replicas=1, rank=0, seed=7)
    full.set_epoch(2)
    order = list(full)
    full.set_epoch(2, start=5)
    assert list(full) == order[5:]
    shards = [ResumableSampler(data, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    for s in shards:
        s.set_epoch(2)
    a, b = (set(s) for s in shards)
    assert not a & b and len(a) == len(b) == 11


def test_save_image_grid(tmp_path: Path):
    x = torch.rand(5, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    save_image_grid(x, tmp_path / "g.png", nrow=3, pad=1)
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (2 * 7 + 1, 3 * 8 + 1, 3)
    np.testing.assert_array_equal(grid[1:7, 1:8], (x[0].permute(1, 2, 0) * 255).round().byte())


# ------------------------------------------------------------------------------------ end to end
def test_vae_end_to_end(digits: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--ckpt-every", "3", "--sample-every", "3")) == 0
    rows = read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 11))  # 2 epochs x 40 // 8
    assert [int(r["epoch"]) for r in rows] == [0] * 5 + [1] * 5
    assert Image.open(out / "samples.png").size == (8 * 10 + 2, 8 * 10 + 2)
    vae = Prior.from_pretrained(out / "final")
    assert type(vae).__name__ == "MLPVAE" and vae.img_shape == (1, 8, 8)
    ckpt = _weights(out / CHECKPOINT_NAME)
    for k, v in vae.state_dict().items():
        torch.testing.assert_close(v, ckpt[f"module.vae.{k}"], rtol=0, atol=0)
    assert float(rows[-1]["neg_elbo"]) < float(rows[0]["neg_elbo"])


def test_gan_end_to_end(faces: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert main(_gan(faces, out, "--train-range", "1:20")) == 0
    rows = read_log(out / "log.csv")
    assert len(rows) == 2 * 20 // 4  # ids 21..24 are held out
    sig = [float(r["sigma"]) for r in rows]
    assert sig[0] == pytest.approx(0.1) and sig[-1] == pytest.approx(0.1 / 10)
    G = Prior.from_pretrained(out / "final")
    assert type(G).__name__ == "DCGANGenerator" and G.img_shape == (3, 16, 16)
    ckpt = _weights(out / CHECKPOINT_NAME)
    for k, v in G.state_dict().items():
        torch.testing.assert_close(v, ckpt[f"module.G_ema.{k}"], rtol=0, atol=0)
    raw = Prior.from_pretrained(out / "final-raw")
    assert any(not torch.equal(a, b) for a, b in zip(G.parameters(), raw.parameters()))


# ------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_resume_matches_uninterrupted(kind: str, digits: Path, faces: Path, tmp_path: Path):
    make, data, n = (_vae, digits, 8) if kind == "vae" else (_gan, faces, 9)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(make(data, whole, "--max-steps", str(n), "--ckpt-every", "100")) == 0
    # "killed" after n // 2 steps (the epoch boundary is crossed after resuming), then resumed
    assert main(make(data, parts, "--max-steps", str(n // 2), "--ckpt-every", "100")) == 0
    assert main(make(data, parts, "--max-steps", str(n), "--resume")) == 0
    a, b = _weights(whole / CHECKPOINT_NAME), _weights(parts / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert read_log(whole / "log.csv") != [] and len(read_log(parts / "log.csv")) == n
    for ra, rb in zip(read_log(whole / "log.csv"), read_log(parts / "log.csv")):
        assert {k: v for k, v in ra.items() if k != "time_s"} == \
            {k: v for k, v in rb.items() if k != "time_s"}


def test_resume_other_architecture_names_file(digits: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--max-steps", "2")) == 0
    assert main(_vae(digits, out, "--max-steps", "4", "--resume", "--hidden", "12")) == 2
    assert str(out / CHECKPOINT_NAME) in capsys.readouterr().err
    assert main(_vae(digits, tmp_path / "new", "--resume")) == 2
    assert "checkpoint not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ atomicity
def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch):
    model = torch.nn.Linear(4, 3)
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, modules={"m": model}, state={"step": 1})
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(_serialization, "save_file", broken)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, modules={"m": model}, state={"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    fresh = torch.nn.Linear(4, 3)
    assert load_checkpoint(path, modules={"m": fresh}) == {"step": 1}
    torch.testing.assert_close(fresh.weight, model.weight - 1.0)


# ------------------------------------------------------------------------------------ bad input
def test_bad_data_names_the_file(faces: Path, tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_gan(empty, tmp_path / "o1")) == 2
    assert str(empty) in capsys.readouterr().err
    assert main(_gan(tmp_path / "missing", tmp_path / "o2")) == 2
    assert "not found" in capsys.readouterr().err
    (faces / "000003.png").write_bytes(b"not a png")
    assert main(_gan(faces, tmp_path / "o3")) == 2
    assert "000003.png" in capsys.readouterr().err
    Image.new("L", (20, 18)).save(faces / "000003.png")
    assert main(_gan(faces, tmp_path / "o4")) == 2
    err = capsys.readouterr().err
    assert "000003.png" in err and "mode L" in err
    Image.new("RGB", (10, 30)).save(faces / "000003.png")
    assert main(_gan(faces, tmp_path / "o5")) == 2
    assert "000003.png" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_ddp_two_processes(kind: str, digits: Path, faces: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    args = (_vae(digits, out, "--epochs", "1") if kind == "vae"
            else _gan(faces, out, "--epochs", "1"))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "genprior", *args, "--device", "cpu"]
    res = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    # each rank sees half the data: 40 digits / 2 / batch 8 = 2 steps; 24 faces / 2 / 4 = 3
    rows = read_log(out / "log.csv")
    assert len(rows) == (2 if kind == "vae" else 3)  # one writer: rank 0
    assert res.stdout.count("saved ") == 1
    saved = load_checkpoint(out / CHECKPOINT_NAME, modules={})
    assert saved["config"]["world_size"] == 2
    assert (out / "final" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------ Python API
@pytest.fixture
def no_argparse(monkeypatch):
    """Make any argument parsing or ``argparse.Namespace`` fail while the test runs."""
    import argparse

    def forbidden(*args, **kwargs):
        raise AssertionError("argparse used on the Python training path")

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", forbidden)
    monkeypatch.setattr(argparse.Namespace, "__init__", forbidden)


def _vae_config(data: Path, out: Path, **kw) -> VAETrainConfig:
    return VAETrainConfig(data=data, out=out, arch="mlp", hidden=16, latent_dim=4, batch_size=8,
                          epochs=2, seed=3, threads=1, **kw)


def _gan_config(data: Path, out: Path, **kw) -> GANTrainConfig:
    return GANTrainConfig(data=data, out=out, img_size=16, nz=8, ngf=4, ndf=4, batch_size=4,
                          epochs=2, instance_noise=0.1, ema_decay=0.9, seed=5, threads=1, **kw)


def test_train_from_python_without_argparse(digits: Path, faces: Path, tmp_path: Path,
                                            no_argparse):
    res = train_vae(_vae_config(digits, tmp_path / "vae", max_steps=3))
    assert res.state.step == 3 and res.out == tmp_path / "vae"
    assert len(read_log(tmp_path / "vae" / "log.csv")) == 3
    saved = Prior.from_pretrained(tmp_path / "vae" / "final")
    assert type(res.model).__name__ == "MLPVAE" and saved.img_shape == (1, 8, 8)
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, saved.state_dict()[k]), k
    res = train_gan(_gan_config(faces, tmp_path / "gan", max_steps=2, crop=18))
    assert res.state.step == 2 and type(res.model).__name__ == "DCGANGenerator"
    assert (tmp_path / "gan" / "final-raw" / "model.safetensors").is_file()
    x = res.model.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 16, 16) and 0 <= float(x.min()) <= float(x.max()) <= 1


def test_config_checks_its_values(tmp_path: Path):
    with pytest.raises(ValueError, match="--batch-size must be positive"):
        VAETrainConfig(data=tmp_path, out=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="--arch must be one of mlp, conv"):
        VAETrainConfig(data=tmp_path, out=tmp_path, arch="resnet")
    with pytest.raises(ValueError, match="--label-smoothing"):
        GANTrainConfig(data=tmp_path, out=tmp_path, label_smoothing=0.0)
    cfg = VAETrainConfig(data=str(tmp_path), out=str(tmp_path / "o"), resume="auto")
    assert cfg.data == tmp_path and cfg.resume_path == tmp_path / "o" / CHECKPOINT_NAME


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_python_and_cli_give_identical_weights(kind: str, digits: Path, faces: Path,
                                               tmp_path: Path):
    from genprior.cli import build_parser
    from genprior.cli.train import config_from_args

    if kind == "vae":
        argv = _vae(digits, tmp_path / "cli", "--max-steps", "7", "--ckpt-every", "3")
        config, train = _vae_config(digits, tmp_path / "py", max_steps=7, ckpt_every=3), train_vae
    else:
        argv = _gan(faces, tmp_path / "cli", "--max-steps", "7", "--spectral-norm")
        config, train = _gan_config(faces, tmp_path / "py", max_steps=7, spectral_norm=True), \
            train_gan
    # the flags are the fields: the CLI's config is the Python one but for the run folder
    cli_config = config_from_args(build_parser().parse_args(argv))
    assert dataclasses.replace(cli_config, out=config.out) == config
    assert main(argv) == 0
    train(config)
    a, b = _weights(tmp_path / "cli" / CHECKPOINT_NAME), _weights(tmp_path / "py" / CHECKPOINT_NAME)
    assert a.keys() == b.keys()
    for k in a.keys() - {"rng.torch_cpu"}:  # the process's global RNG is not the run's
        assert torch.equal(a[k], b[k]), k
    for final in ("final", "final-raw") if kind == "gan" else ("final",):
        wa = _weights(tmp_path / "cli" / final / "model.safetensors")
        wb = _weights(tmp_path / "py" / final / "model.safetensors")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for ra, rb in zip(read_log(tmp_path / "cli" / "log.csv"), read_log(tmp_path / "py" / "log.csv")):
        assert {k: v for k, v in ra.items() if k != "time_s"} == \
            {k: v for k, v in rb.items() if k != "time_s"}


def test_deprecated_entry_points_still_work(digits: Path, tmp_path: Path):
    import argparse

    from genprior.training import common, vae

    parser = argparse.ArgumentParser()
    with pytest.warns(DeprecationWarning, match="VAETrainConfig"):
        vae.add_arguments(parser)
    args = parser.parse_args(_vae(digits, tmp_path / "old", "--max-steps", "2")[2:])
    with pytest.warns(DeprecationWarning, match="train_vae"):
        assert vae.main(args) == 0
    assert len(read_log(tmp_path / "old" / "log.csv")) == 2
    legacy = argparse.ArgumentParser()
    with pytest.warns(DeprecationWarning):
        common.add_common_arguments(legacy, epochs=3, batch_size=5, lr=0.5)
    ns = legacy.parse_args(["--data", "d", "--out", "o"])
    assert (ns.epochs, ns.batch_size, ns.lr, ns.img_size) == (3, 5, 0.5, None)


def test_checkpoint_model_is_the_final_model_of_every_trainer(digits: Path, faces: Path,
                                                                tiny_faces: Path, tmp_path: Path):
    from genprior import load_prior
    from genprior.training import (
        AffGANTrainConfig,
        DenoiserTrainConfig,
        train_affgan,
        train_denoiser,
    )

    train_vae(_vae_config(digits, tmp_path / "vae", max_steps=3))
    train_gan(_gan_config(faces, tmp_path / "gan", max_steps=3))
    train_denoiser(DenoiserTrainConfig(data=tiny_faces, out=tmp_path / "denoiser", img_size=16,
                                       width=4, n_blocks=1, sigma=0.2, batch_size=2,
                                       max_steps=3, threads=1))
    train_affgan(AffGANTrainConfig(data=tiny_faces, out=tmp_path / "affgan", img_size=16,
                                   width=8, n_blocks=1, noise_channels=2, d_width=4,
                                   batch_size=2, max_steps=3, seed=0, threads=1))
    for run in ("vae", "gan", "denoiser", "affgan"):
        model, step = checkpoint_model(tmp_path / run / CHECKPOINT_NAME)
        final = load_prior(tmp_path / run / "final")
        assert step == 3 and type(model) is type(final) and not model.training
        a, b = model.state_dict(), final.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), run
    save_checkpoint(tmp_path / "other.safetensors", modules={"m": torch.nn.Linear(2, 2)},
                    state={"step": 1, "config": {"kind": "gan", "arch": "unknown"}})
    with pytest.raises(ValueError, match="other.safetensors is not a checkpoint of genprior"):
        checkpoint_model(tmp_path / "other.safetensors")


# ---------------------------------------------------------------------- learning-rate decay
_ADAM_STEP = torch.optim.Adam.step


class _Killed(Exception):
    """Stands for a kill in the middle of a run."""


def _record_adam_lrs(monkeypatch, stop_after: int | None = None) -> list[float]:
    """Record the first group's lr at every Adam step; raise after ``stop_after`` steps."""
    lrs: list[float] = []

    def recording(self, *args, **kwargs):
        if stop_after is not None and len(lrs) == stop_after:
            raise _Killed
        lrs.append(self.param_groups[0]["lr"])
        return _ADAM_STEP(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    return lrs


def test_lr_decay_is_linear_to_zero_and_resumes_exactly(digits: Path, tmp_path: Path,
                                                        monkeypatch):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    lrs = _record_adam_lrs(monkeypatch)
    train_vae(_vae_config(digits, whole, lr=1e-3, max_steps=8, lr_decay_start=4))
    expected = [1e-3] * 4 + [1e-3 * (8 - s) / 4 for s in range(4, 8)]
    assert lrs == pytest.approx(expected, rel=1e-12, abs=0)
    record = json.loads((whole / "final" / "config.json").read_text())["training"]
    assert record["lr_decay_start"] == 4
    # killed after 6 steps (checkpoint at 6, the lr already at 1/2), then resumed
    _record_adam_lrs(monkeypatch, stop_after=6)
    with pytest.raises(_Killed):
        train_vae(_vae_config(digits, parts, lr=1e-3, max_steps=8, lr_decay_start=4,
                              ckpt_every=3))
    lrs = _record_adam_lrs(monkeypatch)
    train_vae(_vae_config(digits, parts, lr=1e-3, max_steps=8, lr_decay_start=4,
                          resume="auto"))
    assert lrs == pytest.approx(expected[6:], rel=1e-12, abs=0)
    a, b = _weights(whole / CHECKPOINT_NAME), _weights(parts / CHECKPOINT_NAME)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lr_decay_off_leaves_the_lr_alone_and_bad_starts_are_named(digits: Path,
                                                                   tmp_path: Path,
                                                                   monkeypatch):
    lrs = _record_adam_lrs(monkeypatch)
    train_vae(_vae_config(digits, tmp_path / "a", lr=1e-3, max_steps=3))
    assert lrs == [1e-3] * 3
    with pytest.raises(ValueError, match="--lr-decay-start 3 must be below the run's 3 steps"):
        train_vae(_vae_config(digits, tmp_path / "b", max_steps=3, lr_decay_start=3))
    with pytest.raises(ValueError, match="--lr-decay-start must be positive"):
        _vae_config(digits, tmp_path / "c", lr_decay_start=0)


def test_average_weights_is_the_mean_of_every_float_tensor():
    from genprior.priors.dcgan import DCGANGenerator

    g = torch.Generator().manual_seed(0)
    models = [DCGANGenerator(nz=4, ngf=2, img_size=16) for _ in range(3)]
    with torch.no_grad():
        for i, m in enumerate(models):
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            for b in m.buffers():
                b.fill_(i + 1) if b.is_floating_point() else b.fill_(10 * (i + 1))
    avg = average_weights(models)
    for k, v in avg.state_dict().items():
        parts = [m.state_dict()[k] for m in models]
        if v.is_floating_point():
            expected = (parts[0].double() + parts[1].double() + parts[2].double()) / 3
            torch.testing.assert_close(v.double(), expected, rtol=0, atol=1e-7)
        else:  # num_batches_tracked: the first model's
            assert torch.equal(v, parts[0]), k
    assert float(avg.state_dict()["net.1.running_mean"][0]) == 2.0  # (1 + 2 + 3) / 3
    one = average_weights(models[:1])
    for a, b in zip(one.state_dict().values(), models[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert one is not models[0]


def test_average_weights_with_weights_is_the_convex_combination():
    a, b = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    t = 0.3
    mix = average_weights([a, b], weights=[1 - t, t])
    for k, v in mix.state_dict().items():
        torch.testing.assert_close(v, (1 - t) * a.state_dict()[k] + t * b.state_dict()[k],
                                   rtol=0, atol=1e-15)
    # the end points are the models themselves, bit for bit
    for w, model in (([1.0, 0.0], a), ([0.0, 1.0], b)):
        end = average_weights([a, b], weights=w)
        for x, y in zip(end.state_dict().values(), model.state_dict().values(), strict=True):
            assert torch.equal(x, y)
    uniform = average_weights([a, b], weights=[0.5, 0.5])
    for x, y in zip(uniform.state_dict().values(), average_weights([a, b]).state_dict().values(),
                    strict=True):
        assert torch.equal(x, y)


def test_average_weights_refuses_weights_that_are_not_convex():
    a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="got 1 weights for 2 models"):
        average_weights([a, b], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative weights summing to 1"):
        average_weights([a, b], weights=[0.7, 0.7])
    with pytest.raises(ValueError, match="non-negative weights summing to 1"):
        average_weights([a, b], weights=[1.5, -0.5])


def test_average_weights_refuses_other_architectures():
    with pytest.raises(ValueError, match="at least one model"):
        average_weights([])
    with pytest.raises(ValueError, match=r"model 1's weight has shape \(2, 3\), model 0's \(1, 3\)"):
        average_weights([torch.nn.Linear(3, 1), torch.nn.Linear(3, 2)])
    with pytest.raises(ValueError, match="model 1 does not have the keys of model 0"):
        average_weights([torch.nn.Linear(3, 1), torch.nn.Linear(3, 1, bias=False)])
