"""Bad inputs of the ``genprior`` command, one row per case: the command, the exit status, the
words its one-line message must contain and the files that must be unchanged afterwards.

Classes (issue 11): a non-empty or wrong ``--out`` (no run is ever overwritten in part), an
operator that is not the one recorded in the measurements, corrupt / truncated / wrong-kind /
missing files, devices and options, a prior of the wrong kind for the method, complex
measurements, ``train`` through the same error path, and OS errors on paths. Below the table:
failures in the middle of writing, ``--overwrite``, stale temporaries of killed runs,
``--debug``, and the operator record itself.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genprior._io import load_images_npz, load_measurements, save_images_npz, save_measurements
from genprior._serialization import tensors_sha256
from genprior.cli import main
from genprior.operators import GaussianCS, load_operator
from genprior.priors.conditional import ConditionalSR
from genprior.priors.linear import LinearGenerator

IMG = (1, 12, 12)
_TEMP_NAMES = (".tmp-", ".old-")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs good and bad, and an earlier result ``prev/`` that no failure may touch."""
    w = tmp_path_factory.mktemp("world")
    g = torch.Generator().manual_seed(0)
    prior = LinearGenerator(0.1 * torch.randn(144, 3, generator=g), torch.full((144,), 0.5), IMG)
    prior.save_pretrained(w / "prior")
    sr = ConditionalSR(img_size=IMG, factor=2, width=4, n_blocks=1, noise_channels=2)
    sr.save_pretrained(w / "sr")
    x = prior.decode(0.5 * torch.randn(3, 3, generator=g)).clamp(0, 1)
    save_images_npz(w / "imgs.npz", x)
    assert main(["measure", "--images", str(w / "imgs.npz"), "--operator", "gaussian_cs:20",
                 "--noise-std", "0.05", "--seed", "3", "--out", str(w / "m")]) == 0
    assert main(["measure", "--images", str(w / "imgs.npz"), "--operator", "downsample:2",
                 "--out", str(w / "down")]) == 0
    assert main(["reconstruct", "--method", "pinv", "--measurements", str(w / "m" / "y.npz"),
                 "--operator", str(w / "m" / "operator.safetensors"), "--out",
                 str(w / "prev")]) == 0
    GaussianCS(20, IMG, noise_std=0.05, seed=0).save(w / "op_seed0.safetensors")
    # measurements written before operator records: the spec and seed in the metadata only
    m = load_measurements(w / "m" / "y.npz")
    save_measurements(w / "legacy_y.npz", m.y, x=m.x, **m.meta)
    save_measurements(w / "complex_y.npz", m.y.to(torch.complex64) * (1 + 1j), x=m.x)
    # damaged files
    for src, dst in (("m/y.npz", "trunc_y.npz"), ("imgs.npz", "trunc_imgs.npz"),
                     ("m/operator.safetensors", "trunc_op.safetensors")):
        data = (w / src).read_bytes()
        (w / dst).write_bytes(data[: len(data) // 2])
    (w / "not_npz.npz").write_text("hello, not a zip file\n")
    for name, config in (("trunc_prior", None), ("list_prior", "[1, 2]"),
                         ("badjson_prior", '{"_class": ')):
        prior.save_pretrained(w / name)
        if config is None:
            weights = w / name / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:100])
        else:
            (w / name / "config.json").write_text(config)
    (w / "afile.txt").write_text("an existing file\n")
    (w / "table.csv").write_text("an earlier table\n")
    (w / "dir.csv").mkdir()
    return w


# arguments shared by many rows; {w}: the world folder, {t}: a fresh folder of the test
RECON = "reconstruct --measurements {w}/m/y.npz --operator {w}/m/operator.safetensors"
RECON_PRIOR = RECON + " --prior {w}/prior --method csgm --restarts 1 --steps 2"
SAMPLE = ("sample --prior {w}/prior --measurements {w}/m/y.npz --operator "
          "{w}/m/operator.safetensors --method restarts -n 2 --steps 2")
MEASURE = "measure --images {w}/imgs.npz --operator gaussian_cs:20"
EVAL = "evaluate --truth {w}/m/y.npz --recon {w}/prev/x_hat.npz"
DEMO = "demo --fast --prior {w}/prior"
INPUTS = ("m", "prev", "prior", "sr")  # unchanged after every row, on top of the row's own
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")

CASES = [
    # (class, id, command, exit status, words in the message, paths that must be unchanged)
    # -- an earlier result is never overwritten, in whole or in part
    ("out", "reconstruct into a non-empty folder", RECON + " --method pinv --out {w}/prev", 2,
     ("--out", "not empty", "--overwrite"), ("prev",)),
    ("out", "measure into a non-empty folder", MEASURE + " --out {w}/prev", 2,
     ("not empty",), ("prev",)),
    ("out", "sample into a non-empty folder", SAMPLE + " --out {w}/prev", 2, ("not empty",),
     ("prev",)),
    ("out", "demo into a non-empty folder", DEMO + " --out {w}/prev", 2, ("not empty",),
     ("prev",)),
    ("out", "evaluate onto an existing table", EVAL + " --out {w}/table.csv", 2,
     ("exists", "--overwrite"), ("table.csv",)),
    ("out", "reconstruct --out an existing file", RECON + " --method pinv --out {w}/afile.txt",
     2, ("--out", "existing file"), ("afile.txt",)),
    ("out", "measure --out an existing file", MEASURE + " --out {w}/afile.txt", 2,
     ("existing file",), ("afile.txt",)),
    ("out", "sample --out an existing file", SAMPLE + " --out {w}/afile.txt", 2,
     ("existing file",), ("afile.txt",)),
    ("out", "demo --out an existing file", DEMO + " --out {w}/afile.txt", 2,
     ("existing file",), ("afile.txt",)),
    ("out", "evaluate --out a folder", EVAL + " --out {w}/dir.csv", 2, ("is a folder",),
     ("dir.csv",)),
    ("out", "--out inside a file", RECON + " --method pinv --out {w}/afile.txt/sub", 2,
     ("afile.txt", "not a folder"), ("afile.txt",)),
    # -- the operator must be the one that measured y
    ("operator", "spec of another normalisation",
     ("reconstruct --measurements {w}/m/y.npz --operator gaussian_cs_unscaled:20 --method pinv "
      "--prior {w}/prior --out {w}/prev --overwrite"), 2,
     ("not the operator that measured", "gaussian_cs:20", "normalize"), ("prev",)),
    ("operator", "spec of another size",
     ("reconstruct --measurements {w}/m/y.npz --operator gaussian_cs:30 --method pinv "
      "--out {t}/out"), 2, ("not the operator that measured", "m 30 != 20"), ()),
    ("operator", "operator file of another seed",
     ("reconstruct --measurements {w}/m/y.npz --operator {w}/op_seed0.safetensors --method pinv "
      "--out {w}/prev --overwrite"), 2, ("seed 0 != 3", "matrix", "operator.safetensors"),
     ("prev", "op_seed0.safetensors")),
    ("operator", "sample with an operator of another seed",
     SAMPLE.replace("{w}/m/operator.safetensors", "{w}/op_seed0.safetensors") + " --out {t}/out",
     2, ("not the operator that measured", "seed 0 != 3"), ()),
    ("operator", "evaluate with an operator of another seed",
     EVAL + " --measurements {w}/m/y.npz --operator {w}/op_seed0.safetensors --out {t}/t.csv",
     2, ("not the operator that measured",), ()),
    ("operator", "older y.npz (metadata only), operator of another seed",
     ("reconstruct --measurements {w}/legacy_y.npz --operator {w}/op_seed0.safetensors "
      "--method pinv --out {t}/out"), 2, ("legacy_y.npz", "seed 0 != 3"), ("legacy_y.npz",)),
    ("operator", "measurements of another operator's shape",
     ("reconstruct --measurements {w}/down/y.npz --operator {w}/m/operator.safetensors "
      "--method pinv --out {t}/out"), 2, ("not the operator that measured", "downsample:2"), ()),
    # -- corrupt, truncated, wrong-kind and missing files
    ("file", "truncated measurements", RECON + " --method pinv --out {t}/out",
     2, ("--measurements", "trunc_y.npz", "truncated or corrupt"), ("trunc_y.npz",)),
    ("file", "truncated measurements (sample)", SAMPLE + " --out {t}/out", 2,
     ("--measurements", "trunc_y.npz"), ()),
    ("file", "truncated truth (evaluate)", EVAL.replace("{w}/m/y.npz", "{w}/trunc_y.npz")
     + " --out {t}/t.csv", 2, ("--truth", "trunc_y.npz"), ()),
    ("file", "truncated images (measure)",
     "measure --images {w}/trunc_imgs.npz --operator gaussian_cs:20 --out {t}/out", 2,
     ("--images", "trunc_imgs.npz"), ("trunc_imgs.npz",)),
    ("file", "text file as measurements", RECON + " --method pinv --out {t}/out", 2,
     ("--measurements", "not_npz.npz"), ()),
    ("file", "PNG as measurements", RECON + " --method pinv --out {t}/out", 2,
     ("--measurements", "x.png"), ()),
    ("file", "folder as measurements", RECON + " --method pinv --out {t}/out", 2,
     ("--measurements", "is a folder"), ()),
    ("file", "missing measurements", RECON + " --method pinv --out {t}/out", 2,
     ("--measurements", "missing.npz", "not found"), ()),
    ("file", "truncated operator", RECON + " --method pinv --out {t}/out", 2,
     ("--operator", "trunc_op.safetensors"), ("trunc_op.safetensors",)),
    ("file", "npz as operator", RECON + " --method pinv --out {t}/out", 2,
     ("--operator", "y.npz", "cannot be read"), ()),
    ("file", "folder as operator", RECON + " --method pinv --out {t}/out", 2,
     ("--operator", "neither an operator file nor a spec"), ()),
    ("file", "truncated prior weights", RECON_PRIOR + " --out {t}/out", 2,
     ("--prior", "model.safetensors", "truncated or corrupt"), ("trunc_prior",)),
    ("file", "prior config.json not an object", RECON_PRIOR + " --out {t}/out", 2,
     ("--prior", "config.json", "JSON object"), ("list_prior",)),
    ("file", "prior config.json not JSON", SAMPLE + " --out {t}/out", 2,
     ("--prior", "config.json", "not valid JSON"), ("badjson_prior",)),
    ("file", "missing prior", RECON_PRIOR + " --out {t}/out", 2,
     ("--prior", "no prior folder"), ()),
    ("file", "demo with a truncated prior", DEMO + " --out {t}/out", 2,
     ("--prior", "model.safetensors"), ("trunc_prior",)),
    # -- devices and options
    ("option", "reconstruct --device cuda without a GPU",
     RECON + " --method pinv --device cuda --out {t}/out", 2, ("--device cuda", "no CUDA GPU"),
     ()),
    ("option", "sample --device cuda without a GPU", SAMPLE + " --device cuda --out {t}/out", 2,
     ("--device cuda", "no CUDA GPU"), ()),
    ("option", "not a device", RECON + " --method pinv --device gpu0 --out {t}/out", 2,
     ("--device", "gpu0"), ()),
    ("option", "reconstruct --threads 0", RECON + " --method pinv --threads 0 --out {t}/out", 2,
     ("--threads must be >= 1",), ()),
    ("option", "demo --threads 0", DEMO + " --threads 0 --out {t}/out", 2,
     ("--threads must be >= 1",), ()),
    ("option", "measure --num-images 0", MEASURE + " --num-images 0 --out {t}/out", 2,
     ("--num-images must be >= 1",), ()),
    # -- a prior of the wrong kind for the method
    ("prior kind", "conditional model, --method csgm",
     ("reconstruct --measurements {w}/down/y.npz --operator downsample:2 --prior {w}/sr "
      "--method csgm --out {t}/out"), 2, ("conditional generator", "--method conditional"), ()),
    ("prior kind", "conditional model, --method sparse-gen",
     ("reconstruct --measurements {w}/down/y.npz --operator downsample:2 --prior {w}/sr "
      "--method sparse-gen --out {t}/out"), 2, ("conditional generator", "--method conditional"),
     ()),
    ("prior kind", "conditional model, --method adaptive",
     ("reconstruct --measurements {w}/down/y.npz --operator downsample:2 --prior {w}/sr "
      "--method adaptive --out {t}/out"), 2, ("conditional generator", "--method conditional"),
     ()),
    ("prior kind", "latent prior, --method conditional",
     RECON + " --prior {w}/prior --method conditional --out {t}/out", 2,
     ("latent prior", "csgm, sparse-gen, adaptive"), ()),
    ("prior kind", "latent prior, sample --method eps",
     SAMPLE.replace("restarts", "eps") + " --out {t}/out", 2, ("latent prior", "mala"), ()),
    ("prior kind", "conditional model, sample --method mala",
     ("sample --prior {w}/sr --measurements {w}/down/y.npz --operator {w}/down/operator.safetensors"
      " --method mala -n 2 --out {t}/out"), 2, ("conditional generator", "--method eps"), ()),
    # -- measurements genprior cannot use as they are
    ("y", "complex measurements", RECON + " --method pinv --out {t}/out", 2,
     ("--measurements", "complex"), ("complex_y.npz",)),
    # -- train goes through the same error path
    ("train", "train with a missing data folder",
     "train vae --data {w}/missing-data --out {t}/run --max-steps 1", 2,
     ("--data", "missing-data"), ()),
    # -- OS errors on paths
    ("os", "--out where no folder can be created", MEASURE + " --out /proc/genprior-out", 2,
     ("--out", "/proc/genprior-out", "cannot create"), ()),
]

# the input swapped in for the row's standard one (rows whose command names the good file)
SWAP = {
    "truncated measurements": ("{w}/m/y.npz", "{w}/trunc_y.npz"),
    "truncated measurements (sample)": ("{w}/m/y.npz", "{w}/trunc_y.npz"),
    "text file as measurements": ("{w}/m/y.npz", "{w}/not_npz.npz"),
    "PNG as measurements": ("{w}/m/y.npz", "{w}/m/x.png"),
    "folder as measurements": ("{w}/m/y.npz", "{w}/m"),
    "missing measurements": ("{w}/m/y.npz", "{w}/missing.npz"),
    "truncated operator": ("{w}/m/operator.safetensors", "{w}/trunc_op.safetensors"),
    "npz as operator": ("{w}/m/operator.safetensors", "{w}/m/y.npz"),
    "folder as operator": ("{w}/m/operator.safetensors", "{w}/m"),
    "truncated prior weights": ("{w}/prior", "{w}/trunc_prior"),
    "prior config.json not an object": ("{w}/prior", "{w}/list_prior"),
    "prior config.json not JSON": ("{w}/prior", "{w}/badjson_prior"),
    "missing prior": ("{w}/prior", "{w}/no-such-prior"),
    "demo with a truncated prior": ("{w}/prior", "{w}/trunc_prior"),
    "complex measurements": ("{w}/m/y.npz", "{w}/complex_y.npz"),
}


def _param(case):
    cls, name, *_ = case
    marks = [NO_GPU] if "--device cuda" in case[2] else []
    return pytest.param(*case, id=f"{cls}: {name}", marks=marks)


def _snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(path.rglob("*"))}


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if any(t in p.name for t in _TEMP_NAMES)]


def test_every_class_has_rows():
    classes = {c[0] for c in CASES}
    assert classes == {"out", "operator", "file", "option", "prior kind", "y", "train", "os"}
    assert len({c[1] for c in CASES}) == len(CASES)
    assert set(SWAP) <= {c[1] for c in CASES}


@pytest.mark.parametrize(("cls", "name", "command", "code", "words", "unchanged"),
                         [_param(c) for c in CASES])
def test_bad_input(world, tmp_path, capsys, cls, name, command, code, words, unchanged):
    if name in SWAP:
        good, bad = SWAP[name]
        assert good in command
        command = command.replace(good, bad, 1)
    argv = command.format(w=world, t=tmp_path).split()
    keep = {p: _snapshot(world / p) for p in (*INPUTS, *unchanged)}
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith(f"genprior {argv[0]}: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    for p, before in keep.items():
        assert _snapshot(world / p) == before, f"{p} changed"
    assert not (tmp_path / "out").exists() and not (tmp_path / "t.csv").exists()
    assert _temporaries(world) == [] and _temporaries(tmp_path) == []


# ---------------------------------------------------------------------- failures mid-write


def _fail_writing(monkeypatch, error):
    """Make the PNG writer of every command raise ``error`` (after other files are written)."""
    import genprior._io
    import genprior.cli.measure
    import genprior.cli.sample

    def broken(*args, **kwargs):
        raise error

    for mod in (genprior._io, genprior.cli.measure, genprior.cli.sample):
        monkeypatch.setattr(mod, "save_grid_png", broken)


LATE = {
    "reconstruct": RECON_PRIOR + " --out {w}/prev --overwrite",
    "measure": MEASURE + " --seed 3 --noise-std 0.05 --out {w}/prev --overwrite",
    "sample": SAMPLE + " --out {w}/prev --overwrite",
}


@pytest.mark.parametrize("command", sorted(LATE))
@pytest.mark.parametrize(("error", "code"), [(OSError(28, "No space left on device", "grid.png"),
                                              2), (KeyboardInterrupt(), 130)],
                         ids=["disk full", "interrupt"])
def test_failure_while_writing_leaves_the_earlier_result_byte_identical(
        world, monkeypatch, capsys, command, error, code):
    before = _snapshot(world / "prev")
    _fail_writing(monkeypatch, error)
    assert main(LATE[command].format(w=world).split()) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("No space left" in err or "interrupted" in err)
    assert _snapshot(world / "prev") == before
    assert _temporaries(world) == []


def test_failing_reconstruct_leaves_existing_output_byte_identical(world, tmp_path, capsys):
    out = tmp_path / "r"
    ok = RECON_PRIOR.format(w=world).split() + ["--out", str(out)]
    assert main(ok) == 0
    before = _snapshot(out)
    assert set(before) == {"x_hat.npz", "grid.png", "metrics.csv"}
    # a later run with other options fails in the solver, after the inputs were read
    bad = [*ok, "--overwrite", "--lr", "inf"]
    assert main(bad) == 2
    assert "lr must be finite" in capsys.readouterr().err
    assert _snapshot(out) == before and _temporaries(tmp_path) == []


def test_overwrite_replaces_own_files_and_keeps_the_others(world, tmp_path):
    out = tmp_path / "r"
    base = RECON.format(w=world).split() + ["--out", str(out)]
    assert main([*base, "--method", "pinv"]) == 0
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "sub" / "a.npz").write_bytes(b"123")
    pinv = (out / "x_hat.npz").read_bytes()
    assert main([*base, "--method", "lasso-pixel", "--alpha", "0.5"]) == 2  # not empty
    assert (out / "x_hat.npz").read_bytes() == pinv
    assert main([*base, "--method", "lasso-pixel", "--alpha", "0.5", "--overwrite"]) == 0
    assert (out / "x_hat.npz").read_bytes() != pinv
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub" / "a.npz").is_file()
    assert _temporaries(tmp_path) == []


def test_an_empty_existing_folder_is_used(world, tmp_path):
    (tmp_path / "out").mkdir()
    assert main([*MEASURE.format(w=world).split(), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "y.npz").is_file() and _temporaries(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_killed_runs_are_removed(world, tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".out.tmp-{dead}-abc").mkdir()
    (tmp_path / f".out.tmp-{dead}-abc" / "x_hat.npz").write_bytes(b"half")
    (tmp_path / f".t.csv.tmp-{dead}-xyz.tmp").write_bytes(b"half")
    (tmp_path / "kept").mkdir()
    (tmp_path / f".kept.old-{dead}").mkdir()  # swap finished: the old copy goes
    (tmp_path / f".gone.old-{dead}").mkdir()  # killed mid-swap: the old folder comes back
    (tmp_path / f".gone.old-{dead}" / "y.npz").write_bytes(b"old run")
    (tmp_path / f".busy.tmp-{alive}-q").mkdir()  # a live run's: untouched
    (tmp_path / ".notes.tmp").write_text("not ours")
    assert main([*MEASURE.format(w=world).split(), "--out", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f".busy.tmp-{alive}-q", ".notes.tmp", "gone", "kept", "out"]
    assert (tmp_path / "gone" / "y.npz").read_bytes() == b"old run"


def test_a_failed_run_removes_the_folders_it_created(world, tmp_path, monkeypatch):
    out = tmp_path / "a" / "b" / "out"
    _fail_writing(monkeypatch, OSError(28, "No space left on device", "grid.png"))
    assert main([*RECON.format(w=world).split(), "--method", "pinv", "--out", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(world, tmp_path):
    argv = [*RECON.format(w=world).split(), "--method", "pinv", "--out", str(world / "prev")]
    with pytest.raises(ValueError, match="not empty"):
        main(["--debug", *argv])
    with pytest.raises(ValueError, match="not empty"):
        main([*argv, "--debug"])


def test_measurements_record_their_operator(world):
    m = load_measurements(world / "m" / "y.npz")
    A = load_operator(world / "m" / "operator.safetensors")
    rec = m.operator_record
    assert rec["spec"] == "gaussian_cs:20" and rec["seed"] == 3 and rec["noise_std"] == 0.05
    assert rec["type"] == "gaussian_cs" and rec["config"]["normalize"] is True
    assert rec["sha256"] == tensors_sha256({"matrix": A.matrix})
    assert m.meta == {"images": str(world / "imgs.npz"), "operator": "gaussian_cs:20",
                      "noise_std": 0.05, "seed": 3}


@pytest.mark.parametrize("y_file", ["m/y.npz", "legacy_y.npz"])
def test_a_spec_is_rebuilt_with_the_recorded_seed(world, tmp_path, y_file):
    """``--operator gaussian_cs:20`` on measurements of seed 3 is the seed-3 operator, so it
    reconstructs exactly what the operator file does."""
    base = ["reconstruct", "--method", "pinv", "--measurements", str(world / y_file)]
    assert main([*base, "--operator", "gaussian_cs:20", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--operator", str(world / "m" / "operator.safetensors"), "--out",
                 str(tmp_path / "b")]) == 0
    assert torch.equal(load_images_npz(tmp_path / "a" / "x_hat.npz"),
                       load_images_npz(tmp_path / "b" / "x_hat.npz"))
    assert np.array_equal(load_images_npz(tmp_path / "a" / "x_hat.npz"),
                          load_images_npz(world / "prev" / "x_hat.npz"))
