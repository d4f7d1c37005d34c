"""Training never loses a run and never ends "successfully" with NaN (issue 11).

Refuse/resume/overwrite of a run folder, logs that are never spliced, finite-or-fail settings,
losses and weights, removal of killed runs' temporary files, and a run folder that is never the
training data; through the CLI (exit 2, one line) and the Python API (an exception). Tiny MLP
VAEs on 40 random 8x8 digits: each run takes well under a second.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from genprior import _serialization
from genprior.cli import main
from genprior.training import NonFiniteError, VAETrainConfig, train_vae
from genprior.training import vae as vae_module
from genprior.training.affgan import AffGANTrainConfig
from genprior.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from genprior.training.gan import GANTrainConfig
from genprior.training.logging import CSVLogger
from genprior.training.precision import Precision


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """40 random 'digits' 8x8 in one npz shard (MNIST layout): 5 steps of 8 per epoch."""
    root = tmp_path / "digits"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "mnist_train_00.npz", x=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8))
    return root


def _vae(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "vae", "--arch", "mlp", "--data", str(data), "--out", str(out),
            "--hidden", "16", "--latent-dim", "4", "--batch-size", "8", "--epochs", "2",
            "--seed", "3", "--threads", "1", *extra]


def _config(data: Path, out: Path, **kw) -> VAETrainConfig:
    kw = {"arch": "mlp", "hidden": 16, "latent_dim": 4, "batch_size": 8, "epochs": 2, "seed": 3,
          "threads": 1, **kw}
    return VAETrainConfig(data=data, out=out, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _steps(log: Path) -> list[int]:
    with log.open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _rows(log: Path) -> list[dict[str, str]]:
    with log.open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def _error_line(capsys) -> str:
    """The CLI's error: exactly one ``genprior train: error:`` line on stderr."""
    lines = [ln for ln in capsys.readouterr().err.splitlines()
             if ln.startswith("genprior train: error:")]
    assert len(lines) == 1, lines
    return lines[0]


def _call_counter(monkeypatch, when, *, action):
    """Patch the VAE's training objective so that ``action(self, loss)`` replaces its result
    on the calls (= steps) for which ``when(call)`` holds."""
    original = vae_module._NegativeELBO.forward
    calls = {"n": 0}

    def forward(self, x, generator):
        calls["n"] += 1
        loss = original(self, x, generator)
        return action(self, loss) if when(calls["n"]) else loss

    monkeypatch.setattr(vae_module._NegativeELBO, "forward", forward)
    return calls


# ------------------------------------------------------------------------ refuse / overwrite
def test_rerun_without_resume_leaves_the_run_intact(digits: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--ckpt-every", "3")) == 0
    # a killed run's leftovers stay too: a refused command touches nothing
    (out / "final" / ".model.safetensors.a1b2c3d4.tmp").write_bytes(b"x" * 16)
    before = _snapshot(out)
    assert {"log.csv", "samples.png", CHECKPOINT_NAME, "final/model.safetensors"} <= set(before)
    assert main(_vae(digits, out)) == 2
    err = _error_line(capsys)
    assert "--resume" in err and "--overwrite" in err and str(out) in err
    assert _snapshot(out) == before
    with pytest.raises(ValueError, match="already holds a training run"):
        train_vae(_config(digits, out))
    assert _snapshot(out) == before
    # a run killed half-way (checkpoint and log, no final/) is protected the same way
    half = tmp_path / "half"
    assert main(_vae(digits, half, "--max-steps", "3")) == 0
    (half / "final").rename(tmp_path / "moved")
    before = _snapshot(half)
    assert main(_vae(digits, half, "--max-steps", "6")) == 2
    assert "--overwrite" in _error_line(capsys) and _snapshot(half) == before


def test_overwrite_replaces_only_the_run(digits: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--max-steps", "6")) == 0
    (out / "final-raw").mkdir()  # as a GAN run leaves it
    (out / "final-raw" / "model.safetensors").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    assert main(_vae(digits, out, "--max-steps", "3", "--overwrite")) == 0
    assert _steps(out / "log.csv") == [1, 2, 3]  # a fresh log, never appended to
    assert load_checkpoint(out / CHECKPOINT_NAME, modules={})["step"] == 3
    assert not (out / "final-raw").exists() and (out / "notes.txt").read_text() == "mine"
    # --overwrite would delete the checkpoint --resume reads: refused before anything happens
    before = _snapshot(out)
    assert main(_vae(digits, out, "--resume", "--overwrite")) == 2
    assert "--overwrite" in _error_line(capsys) and _snapshot(out) == before
    with pytest.raises(ValueError, match="--overwrite would delete"):
        _config(digits, out, resume="auto", overwrite=True)
    # resuming another folder's checkpoint into this run would mix two runs
    other = tmp_path / "other"
    assert main(_vae(digits, other, "--max-steps", "2")) == 0
    assert main(_vae(digits, out, "--resume", str(other / CHECKPOINT_NAME))) == 2
    assert "mix two runs" in _error_line(capsys) and _snapshot(out) == before


# ------------------------------------------------------------------------ resume after a kill
def test_resume_after_kill_continues_the_log_exactly(digits: Path, tmp_path: Path,
                                                     monkeypatch):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(_vae(digits, whole, "--max-steps", "9")) == 0

    def kill(self, loss):
        raise KeyboardInterrupt  # the process dies inside step 7: checkpoint at 4, log at 6

    _call_counter(monkeypatch, lambda n: n == 7, action=kill)
    with pytest.raises(KeyboardInterrupt):
        train_vae(_config(digits, killed, max_steps=9, ckpt_every=4))
    monkeypatch.undo()
    assert _steps(killed / "log.csv") == [1, 2, 3, 4, 5, 6]
    with (killed / "log.csv").open("a") as f:
        f.write("7,1,0.")  # kill -9 in the middle of a row
    assert main(_vae(digits, killed, "--max-steps", "9", "--resume")) == 0
    assert _steps(killed / "log.csv") == list(range(1, 10))  # no duplicated or spliced step
    assert _rows(killed / "log.csv") == _rows(whole / "log.csv")
    with (killed / "log.csv").open(newline="") as f:
        times = [float(r["time_s"]) for r in csv.DictReader(f)]
    assert times == sorted(times)  # the clock continues from the checkpoint's row


def test_log_that_does_not_lead_to_the_checkpoint_is_refused(tmp_path: Path):
    log = tmp_path / "log.csv"
    log.write_text("step,epoch,time_s,loss\n1,0,0.1,5\n2,0,0.2,4\n3,0,0.3,3\n4,0,0")
    kept = CSVLogger(log, ["loss"], resume_step=2)
    kept.close()
    assert log.read_text().splitlines() == ["step,epoch,time_s,loss", "1,0,0.1,5", "2,0,0.2,4"]
    assert kept.time_offset == pytest.approx(0.2)
    with pytest.raises(ValueError, match="splice"):  # rows 1..2, checkpoint at step 5
        CSVLogger(log, ["loss"], resume_step=5)
    with pytest.raises(ValueError, match="not the log of this run"):
        CSVLogger(log, ["neg_elbo"], resume_step=2)
    assert log.read_text().splitlines()[-1] == "2,0,0.2,4"  # refused: left as it was


def test_stale_temporaries_are_removed_on_start(digits: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--max-steps", "3")) == 0
    stale = [out / ".checkpoint.safetensors.k9x_2m1q.tmp", out / ".log.csv.abcdefgh.tmp",
             out / "final" / ".model.safetensors.0a1b2c3d.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 16)
    mine = [out / "keep.tmp", out / ".keep.tmp", out / "final" / "notes.txt"]
    for p in mine:
        p.write_text("mine")
    assert main(_vae(digits, out, "--max-steps", "4", "--resume")) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.read_text() == "mine" for p in mine)
    assert _steps(out / "log.csv") == [1, 2, 3, 4]


# ------------------------------------------------------------------------ finite or fail
@pytest.mark.parametrize(("flags", "named"), [
    (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "0"], "--lr"),
    (["--max-minutes", "-1"], "--max-minutes"), (["--max-minutes", "0"], "--max-minutes"),
    (["--max-minutes", "inf"], "--max-minutes"), (["--threads", "0"], "--threads"),
    (["--hidden", "0"], "--hidden")])
def test_bad_numbers_are_refused(flags: list[str], named: str, digits: Path, tmp_path: Path,
                                 capsys):
    out = tmp_path / "run"
    assert main(_vae(digits, out, *flags)) == 2
    assert named in _error_line(capsys)
    assert not out.exists()
    name, value = flags[0][2:].replace("-", "_"), float(flags[1])
    with pytest.raises(ValueError, match=named):
        _config(digits, out, **{name: int(value) if name in ("threads", "hidden") else value})


def test_bad_numbers_of_each_kind_are_refused(tmp_path: Path):
    d = {"data": tmp_path, "out": tmp_path / "o"}
    inf, nan = float("inf"), float("nan")
    for cls, kw, named in [
            (GANTrainConfig, {"ema_decay": nan}, "--ema-decay"),
            (GANTrainConfig, {"ema_decay": 1.0}, "--ema-decay"),
            (GANTrainConfig, {"instance_noise": inf}, "--instance-noise"),
            (GANTrainConfig, {"label_smoothing": nan}, "--label-smoothing"),
            (GANTrainConfig, {"ngf": 0}, "--ngf"),
            (AffGANTrainConfig, {"lr_d": inf}, "--lr-d"),
            (AffGANTrainConfig, {"factor": 0}, "--factor"),
            (AffGANTrainConfig, {"instance_noise": nan}, "--instance-noise"),
            (AffGANTrainConfig, {"ema_decay": -0.1}, "--ema-decay"),
            (VAETrainConfig, {"max_steps": 0}, "--max-steps")]:
        with pytest.raises(ValueError, match=named):
            cls(**d, **kw)
    for kw, named in [({"epochs": inf}, "--epochs"), ({"epochs": 2.5}, "--epochs"),
                      ({"lr": "1e-3"}, "--lr"), ({"overwrite": "yes"}, "--overwrite")]:
        with pytest.raises(TypeError, match=named):
            VAETrainConfig(**d, **kw)


def test_nan_loss_mid_run_stops_and_keeps_the_last_good_checkpoint(
        digits: Path, tmp_path: Path, monkeypatch, capsys):
    good = tmp_path / "good"
    assert main(_vae(digits, good, "--max-steps", "4")) == 0
    calls = _call_counter(monkeypatch, lambda n: n >= 5,
                          action=lambda self, loss: loss * float("nan"))
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--ckpt-every", "2")) == 2
    err = _error_line(capsys)
    assert "diverged at step 5" in err and "neg_elbo = nan" in err
    assert str(out / CHECKPOINT_NAME) in err and "(step 4)" in err
    assert not (out / "final").exists()
    assert _steps(out / "log.csv") == [1, 2, 3, 4]
    a, b = _serialization.load_tensors(out / CHECKPOINT_NAME), \
        _serialization.load_tensors(good / CHECKPOINT_NAME)
    assert load_checkpoint(out / CHECKPOINT_NAME, modules={})["step"] == 4
    for k in a.keys() - {"rng.torch_cpu"}:
        assert torch.equal(a[k], b[k]), k
    calls["n"] = 0
    with pytest.raises(NonFiniteError, match="diverged at step 5"):
        train_vae(_config(digits, tmp_path / "py", ckpt_every=2))
    assert not (tmp_path / "py" / "final").exists()
    assert isinstance(NonFiniteError("x"), ValueError)


def test_nan_weights_are_never_checkpointed(digits: Path, tmp_path: Path, monkeypatch,
                                            capsys):
    """A step whose loss is finite but leaves NaN weights: the checkpoint due after it is
    refused and the one before it survives."""
    original = Precision.step
    calls = {"n": 0}

    def poisoned(self, loss, optimizer):
        original(self, loss, optimizer)
        calls["n"] += 1
        if calls["n"] == 4:
            with torch.no_grad():
                optimizer.param_groups[0]["params"][0].fill_(float("nan"))

    monkeypatch.setattr(Precision, "step", poisoned)
    out = tmp_path / "run"
    assert main(_vae(digits, out, "--ckpt-every", "2")) == 2
    err = _error_line(capsys)
    assert "diverged at step 4" in err and "non-finite" in err and "(step 2)" in err
    assert load_checkpoint(out / CHECKPOINT_NAME, modules={})["step"] == 2
    assert all(bool(torch.isfinite(t).all())
               for t in _serialization.load_tensors(out / CHECKPOINT_NAME).values()
               if t.is_floating_point())
    assert not (out / "final").exists()


def test_non_finite_training_data_is_refused(tmp_path: Path, capsys):
    data = tmp_path / "floats"
    data.mkdir()
    x = np.full((16, 8, 8), 0.5, np.float32)
    x[3, 2, 2] = np.nan
    np.savez(data / "mnist_train_00.npz", x=x)
    assert main(_vae(data, tmp_path / "run")) == 2
    err = _error_line(capsys)
    assert "mnist_train_00.npz" in err and "NaN" in err


# ------------------------------------------------------------------------ output vs data
def test_run_folder_inside_the_data_is_refused(digits: Path, capsys):
    for out in (digits, digits / "run"):
        assert main(_vae(digits, out)) == 2
        assert "--data" in _error_line(capsys)
        with pytest.raises(ValueError, match="would be read as training data"):
            train_vae(_config(digits, out))
    assert sorted(p.name for p in digits.iterdir()) == ["mnist_train_00.npz"]
