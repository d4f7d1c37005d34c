"""scripts/compare_sr.py runs end to end with tiny arguments and its metrics behave."""

import csv

import numpy as np
import pytest
import torch


@pytest.fixture
def compare_sr(load_script):
    return load_script("compare_sr")


def test_hf_energy_is_zero_for_constant_images_and_larger_for_noise(compare_sr):
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert compare_sr.hf_energy(torch.full_like(x, 0.3)).max() < 1e-10
    sharp, smooth = compare_sr.hf_energy(x), compare_sr.hf_energy(x.cumsum(-1) / 16)
    assert (sharp > 1).all() and (smooth < sharp / 10).all()


def test_compare_sr_tiny_run(compare_sr, tmp_path, noise_images):
    data = noise_images(tmp_path / "faces", range(8001, 8005), 109, 89, seed=0,
                        suffix=".jpg")
    out = tmp_path / "out"
    assert compare_sr.main(["--data", str(data), "--n", "4", "--csgm-n", "2", "--steps", "2",
                            "--restarts", "2", "--samples", "2", "--figure-faces", "2",
                            "--out", str(out), "--name", "sr"]) == 0
    for suffix in (".csv", "_table.md", ".png"):
        assert (out / f"sr{suffix}").is_file()
    with open(out / "sr.csv") as f:
        rows = list(csv.DictReader(f))
    methods = [r["method"] for r in rows if r["faces"] == "8001..8002"]
    assert methods == ["bicubic", "A_dagger y", "celeba-sr4-mse", "celeba-sr4-affgan",
                       "CSGM celeba-dcgan", "CSGM celeba-dcgan + projection",
                       "CSGM celeba-vae", "CSGM celeba-vae + projection"]
    assert [r["method"] for r in rows if r["faces"] == "8001..8004"] == methods[:4]
    for r in rows:
        if r["method"] == "A_dagger y" or "sr4" in r["method"] or "projection" in r["method"]:
            assert float(r["residual_max"]) <= 1e-5, r
        if r["method"] == "celeba-sr4-affgan":
            assert float(r["x_affgan_time"]) == 1.0
            assert float(r["diversity"]) > 0


def test_compare_sr_no_csgm_with_fid(compare_sr, tmp_path, noise_images):
    from genprior.metrics import inception_weights_path

    try:
        inception_weights_path()
    except FileNotFoundError:
        pytest.skip("no Inception weights installed")
    data = noise_images(tmp_path / "faces", range(8001, 8004), 109, 89, seed=1,
                        suffix=".jpg")
    out = tmp_path / "out"
    assert compare_sr.main(["--data", str(data), "--n", "3", "--samples", "2", "--no-csgm",
                            "--fid", "--figure-faces", "2", "--out", str(out),
                            "--name", "sr"]) == 0
    with open(out / "sr.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["faces"] for r in rows] == ["8001..8003"] * 4  # one face set, no CSGM rows
    fids = {r["method"]: float(r["fid"]) for r in rows}
    assert set(fids) == {"bicubic", "A_dagger y", "celeba-sr4-mse", "celeba-sr4-affgan"}
    assert np.isnan(fids.pop("A_dagger y"))
    assert all(np.isfinite(v) and v >= 0 for v in fids.values())
    table = (out / "sr_table.md").read_text()
    assert "| FID |" in table and "no CSGM rows" in table
    row = {k: v if k in ("faces", "method") else float(v) for k, v in rows[0].items()}
    assert "FID" not in compare_sr.markdown_table([row])  # the default table is unchanged


def test_std_error_correlation_is_pearson_over_all_entries(compare_sr):
    g = torch.Generator().manual_seed(0)
    err = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)
    # draws +-err around a centre: the std is err * sqrt(2) exactly, perfectly correlated
    samples = torch.stack([0.5 + err, 0.5 - err])
    assert compare_sr.std_error_correlation(samples, err) == pytest.approx(1.0, abs=1e-12)
    assert compare_sr.std_error_correlation(samples, -err) == pytest.approx(-1.0, abs=1e-12)
    a = samples.std(0).flatten().numpy()
    other = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)
    assert compare_sr.std_error_correlation(samples, other) == pytest.approx(
        np.corrcoef(a, other.flatten().numpy())[0, 1], abs=1e-12)


def test_models_entries_and_reference(compare_sr):
    assert compare_sr.model_entry("sn=/runs/sn/final") == ("sn", "/runs/sn/final")
    assert compare_sr.model_entry("celeba-sr4-mse") == ("celeba-sr4-mse", "celeba-sr4-mse")
    assert compare_sr.reference_label({"celeba-sr4-mse": 0, "celeba-sr4-affgan": 0}) == \
        "celeba-sr4-affgan"
    assert compare_sr.reference_label({"celeba-sr4-mse": 0, "sn": 0, "dg": 0}) == "dg"


def test_compare_sr_with_a_model_folder_and_the_twin(compare_sr, tmp_path, noise_images):
    from genprior.priors import pretrained_dir

    data = noise_images(tmp_path / "faces", range(8001, 8004), 109, 89, seed=2,
                        suffix=".jpg")
    out = tmp_path / "out"
    folder = pretrained_dir() / "celeba-sr4-affgan"
    assert compare_sr.main(["--data", str(data), "--n", "3", "--samples", "2", "--no-csgm",
                            "--models", "celeba-sr4-mse", f"again={folder}", "--figure-faces",
                            "2", "--out", str(out), "--name", "sr"]) == 0
    with open(out / "sr.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["bicubic", "A_dagger y", "celeba-sr4-mse", "again"]
    assert float(rows["again"]["x_affgan_time"]) == 1.0  # the last model is the time unit
    assert np.isnan(float(rows["bicubic"]["std_err_corr"]))  # deterministic: no spread
    assert -1 <= float(rows["again"]["std_err_corr"]) <= 1
    assert "corr(std, twin err)" in (out / "sr_table.md").read_text()
    with pytest.raises(SystemExit, match=r"--fid-methods \['nope'\] are not among"):
        compare_sr.main(["--data", str(data), "--n", "3", "--samples", "2", "--no-csgm",
                         "--fid-methods", "nope", "--out", str(out), "--name", "sr2"])


def test_temperature_per_model_label(compare_sr, tmp_path, noise_images, capsys):
    from genprior.priors import pretrained_dir

    data = noise_images(tmp_path / "faces", range(8001, 8004), 109, 89, seed=3,
                        suffix=".jpg")
    out = tmp_path / "out"
    folder = pretrained_dir() / "celeba-sr4-affgan"
    assert compare_sr.main(["--data", str(data), "--n", "3", "--samples", "3", "--no-csgm",
                            "--models", f"t1={folder}", f"t0={folder}", f"t3={folder}",
                            "--temperature", "t0=0", "t3=3", "--figure-faces", "2",
                            "--out", str(out), "--name", "sr"]) == 0
    with open(out / "sr.csv") as f:
        spread = {r["method"]: float(r["diversity"]) for r in csv.DictReader(f)}
    assert spread["t0"] == 0.0  # no noise: every draw is the same output
    assert spread["t3"] > 2 * spread["t1"] > 0
    assert "noise temperature t0 0, t3 3, others 1" in (out / "sr_table.md").read_text()
    for bad in ("nope=1", "t1=-1", "t1=x", "t1"):
        with pytest.raises(SystemExit):
            compare_sr.main(["--data", str(data), "--n", "3", "--no-csgm", "--models",
                             f"t1={folder}", "--temperature", bad, "--out", str(out)])
        assert f"--temperature {bad}: need LABEL=T" in capsys.readouterr().err


def test_truth_features_are_cached_for_the_same_images_only(compare_sr, tmp_path, monkeypatch):
    calls = []

    def fake_features(x, batch_size):
        calls.append(x.shape[0])
        return x.flatten(1)[:, :4].double()

    monkeypatch.setattr(compare_sr, "inception_features", fake_features)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cache = tmp_path / "truth.safetensors"
    first = compare_sr.truth_features(x, 25, cache)
    again = compare_sr.truth_features(x, 25, cache)
    assert calls == [3] and torch.equal(first, again)
    compare_sr.truth_features(x[:2], 25, cache)  # other images: computed again
    assert calls == [3, 2]


def test_a_checkpoints_ema_weights_are_the_final_model(compare_sr, tiny_faces, tmp_path):
    from genprior import load_prior
    from genprior.training.affgan import AffGANTrainConfig, train_affgan
    from genprior.training.checkpoint import save_checkpoint

    out = tmp_path / "run"
    train_affgan(AffGANTrainConfig(data=tiny_faces, out=out, img_size=16, width=8, n_blocks=1,
                                   noise_channels=2, d_width=4, batch_size=2, max_steps=3,
                                   device="cpu", seed=0, threads=1))
    from_checkpoint = compare_sr.load_sr_model(str(out / "checkpoint.safetensors"))
    final = load_prior(out / "final")
    a, b = from_checkpoint.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from genprior.priors.dcgan import DCGANGenerator

    other, config = tmp_path / "gan.safetensors", {"nz": 2, "ngf": 2, "nc": 3, "img_size": 16}
    save_checkpoint(other, modules={"G_ema": DCGANGenerator(**config)},
                    state={"step": 1, "config": {"kind": "gan", "arch": "dcgan",
                                                 "generator": config}})
    with pytest.raises(SystemExit, match="not a checkpoint of genprior train affgan"):
        compare_sr.load_sr_model(str(other))
