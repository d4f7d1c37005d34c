"""Loading priors by name: from a Hugging Face cache (offline), and from a wheel installed into a
fresh virtual environment with no checkout around."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genprior
from genprior.priors import (
    ConditionalPrior,
    Prior,
    available_priors,
    hub_cache_dir,
    load_prior,
    pretrained_dir,
)
from genprior.priors.linear import LinearGenerator

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT) -> Path:
    """Lay out ``folder``'s files as ``huggingface_hub`` caches a download of ``repo_id``:
    content-addressed blobs, a snapshot of symlinks per commit, and ``refs/main``."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(folder.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def tiny_linear() -> LinearGenerator:
    g = torch.Generator().manual_seed(0)
    return LinearGenerator(torch.randn(12, 3, generator=g), torch.randn(12, generator=g), (1, 3, 4))


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_hub_prior_loads_offline_from_cache(tmp_path, tiny_linear, offline):
    tiny_linear.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hf"
    snapshot = populate_hub_cache(cache, "someone/tiny-linear", tmp_path / "saved")

    prior = load_prior("hf://someone/tiny-linear", cache_dir=cache)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    assert isinstance(prior, LinearGenerator)
    assert torch.equal(prior.decode(z), tiny_linear.decode(z))
    pinned = load_prior(f"hf://someone/tiny-linear@{COMMIT}", cache_dir=cache)
    assert torch.equal(pinned.W, tiny_linear.W)

    listed = available_priors(cache_dir=cache)
    assert listed["hf://someone/tiny-linear"] == snapshot
    assert listed["mnist-vae"] == pretrained_dir() / "mnist-vae"
    assert list(listed)[-1] == "hf://someone/tiny-linear"  # shipped first, then the cache


def test_hub_conditional_prior_loads_as_conditional(tmp_path, offline):
    cache = tmp_path / "hf"
    populate_hub_cache(cache, "someone/sr", pretrained_dir() / "celeba-sr4-mse")
    model = load_prior("hf://someone/sr", cache_dir=cache)
    assert isinstance(model, ConditionalPrior)
    assert not isinstance(model, Prior)


def test_hub_blend_by_reference_loads_offline_without_weights(tmp_path, offline):
    from genprior.priors import ConditionalBlend
    from genprior.priors.conditional import ConditionalSR

    names = []
    for i, width in enumerate((8, 4)):
        member = ConditionalSR(img_size=(3, 16, 16), width=width, n_blocks=1)
        member.reset_parameters(generator=torch.Generator().manual_seed(i))
        member.save_pretrained(tmp_path / f"m{i}")
        names.append(str(tmp_path / f"m{i}"))
    blend = ConditionalBlend(members=names, weights=[0.25, 0.75])
    blend.save_pretrained(tmp_path / "blend")
    cache = tmp_path / "hf"
    snapshot = populate_hub_cache(cache, "someone/blend", tmp_path / "blend")
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json"]

    loaded = load_prior("hf://someone/blend", cache_dir=cache)
    assert isinstance(loaded, ConditionalBlend) and loaded.config == blend.config
    y = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    g = [torch.Generator().manual_seed(2) for _ in range(2)]
    assert torch.equal(loaded.sample(y, 2, generator=g[0]), blend.sample(y, 2, generator=g[1]))
    assert available_priors(cache_dir=cache)["hf://someone/blend"] == snapshot


def test_hub_prior_without_its_weights_is_refused(tmp_path, tiny_linear, offline):
    """Only a class that keeps its weights elsewhere may leave out model.safetensors."""
    tiny_linear.save_pretrained(tmp_path / "saved")
    (tmp_path / "saved" / "model.safetensors").unlink()
    cache = tmp_path / "hf"
    populate_hub_cache(cache, "someone/no-weights", tmp_path / "saved")
    with pytest.raises(FileNotFoundError, match="'hf://someone/no-weights' has no "
                                                "model.safetensors"):
        load_prior("hf://someone/no-weights", cache_dir=cache)
    assert "hf://someone/no-weights" not in available_priors(cache_dir=cache)


def test_available_priors_lists_the_shipped_blends():
    listed = available_priors()
    for name in ("celeba-sr4-affgan-blend", "celeba-sr4-mse-affgan-blend"):
        assert listed[name] == pretrained_dir() / name
        assert type(load_prior(name)).__name__ == "ConditionalBlend"


def test_available_priors_skips_cached_repos_that_are_not_priors(tmp_path):
    cache = tmp_path / "hf"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (other / "model.safetensors").write_bytes(b"")
    populate_hub_cache(cache, "someone/bert", other)
    assert not [n for n in available_priors(cache_dir=cache) if n.startswith("hf://")]
    assert available_priors(cache_dir=tmp_path / "missing")  # the shipped ones remain


def test_hub_prior_missing_while_offline_names_the_cache(tmp_path, offline):
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_prior("hf://someone/absent", cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["hf://noslash", "hf://a/b/c", "hf:///repo"])
def test_bad_hub_names_are_rejected(name):
    with pytest.raises(ValueError, match="owner/repo"):
        load_prior(name)


@pytest.mark.parametrize("env, local_only", [(None, False), ("1", True), ("true", True),
                                             ("0", False)])
def test_hf_hub_offline_is_read_at_each_call(monkeypatch, tmp_path, env, local_only):
    """``huggingface_hub`` reads ``HF_HUB_OFFLINE`` once, at import; genprior reads it per call
    and passes ``local_files_only`` (no network here: the download itself is stubbed)."""
    import huggingface_hub

    LinearGenerator(latent_dim=2, img_shape=(1, 2, 2)).save_pretrained(tmp_path)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    if env is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", env)
    load_prior("hf://owner/repo@v1", cache_dir=tmp_path / "cache")
    (repo_id, kwargs), = calls
    assert repo_id == "owner/repo" and kwargs["revision"] == "v1"
    assert kwargs["local_files_only"] is local_only
    assert kwargs["cache_dir"] == tmp_path / "cache"
    assert {"config.json", "model.safetensors", "misfit.safetensors"} <= set(kwargs["allow_patterns"])


def test_hub_cache_dir_defaults_to_huggingface_hub(tmp_path):
    from huggingface_hub import constants

    assert hub_cache_dir() == Path(constants.HF_HUB_CACHE)
    assert hub_cache_dir(tmp_path) == tmp_path


def test_unknown_name_lists_the_shipped_priors():
    with pytest.raises(FileNotFoundError, match="mnist-vae"):
        load_prior("no-such-prior")


# --------------------------------------------------------------------------- the built wheel

WHEEL_SCRIPT = """
import json, sys
import genprior
names = genprior.available_priors()
loaded = {n: type(genprior.load_prior(n)).__name__ for n in names}
print(json.dumps({"file": genprior.__file__, "dir": str(genprior.priors.pretrained_dir()),
                  "loaded": loaded}))
"""


def _copy_source(dst: Path) -> None:
    """What a build needs: the packaging files, the package and the shipped priors."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "samples.png")
    shutil.copytree(ROOT / "genprior", dst / "genprior", ignore=skip)
    shutil.copytree(ROOT / "pretrained", dst / "pretrained", ignore=skip)


@pytest.mark.slow
def test_wheel_install_loads_every_shipped_prior(tmp_path):
    """Build the wheel, install it (no deps: torch etc. come from the system site) into a fresh
    venv, and load every shipped prior from a folder with no checkout around."""
    shipped = sorted(p.name for p in (ROOT / "pretrained").iterdir()
                     if (p / "config.json").is_file())
    assert shipped
    _copy_source(tmp_path / "src")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "GENPRIOR_PRETRAINED", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"))  # lists shipped only

    def run(*cmd, cwd=tmp_path):
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
        return res.stdout

    run(sys.executable, "-m", "pip", "wheel", str(tmp_path / "src"), "--no-deps",
        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"))
    wheel, = (tmp_path / "dist").glob("genprior-*.whl")
    assert wheel.stat().st_size < 50e6, f"wheel is {wheel.stat().st_size / 1e6:.1f} MB"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(tmp_path / "venv"))
    python = tmp_path / "venv" / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel))
    shutil.rmtree(tmp_path / "src")  # no source tree left to fall back on
    (tmp_path / "elsewhere").mkdir()
    out = json.loads(run(str(python), "-c", WHEEL_SCRIPT, cwd=tmp_path / "elsewhere")
                     .strip().splitlines()[-1])

    site = tmp_path / "venv"
    assert Path(out["file"]).is_relative_to(site), out["file"]
    assert Path(out["dir"]).is_relative_to(site), out["dir"]
    assert not Path(out["file"]).is_relative_to(ROOT)
    assert sorted(out["loaded"]) == shipped
    for name in shipped:
        expected = type(genprior.load_prior(name)).__name__
        assert out["loaded"][name] == expected
