"""The prior-comparison scripts of issue #17 (digit_priors.py, face_gan_fid.py) on tiny inputs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genprior.priors import pretrained_dir
from genprior.priors.dcgan import DCGANGenerator
from genprior.training.checkpoint import save_checkpoint


@pytest.mark.filterwarnings("ignore")
def test_digit_priors_measures_every_prior_on_the_same_measurements(tmp_path, load_script):
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "mnist_test_00.npz", x=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
             y=np.arange(3))
    out = tmp_path / "out"
    module = load_script("digit_priors")
    # the reference again, from its folder: same A, y and solver, so exactly the same errors
    assert module.main(["--data-root", str(tmp_path), "--priors", str(pretrained_dir() /
                        "mnist-vae"), "--estimators", "CSGM", "--m", "10", "--n-images", "3",
                        "--steps", "3", "--restarts", "2", "--out", str(out)]) == 0
    with open(out / "digit_priors.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(Path(r["prior"]).name, r["estimator"]) for r in rows] == [
        ("mnist-vae", "CSGM"), ("mnist-vae", "CSGM")]
    assert rows[0]["mean"] == rows[1]["mean"] and float(rows[1]["ratio"]) == 1.0
    text = (out / "digit_priors.md").read_text()
    assert text.startswith("Command: `python ") and "| prior | estimator | m = 10 |" in text


def test_digit_priors_refuses_bad_arguments(tmp_path, capsys, load_script):
    module = load_script("digit_priors")
    with pytest.raises(SystemExit):
        module.parse_args(["--data-root", str(tmp_path), "--n-images", "1"])
    assert "--n-images must be at least 2" in capsys.readouterr().err


def _dcgan_checkpoint(path: Path, step: int) -> DCGANGenerator:
    """A tiny ``genprior train gan --arch dcgan`` checkpoint at ``path``; returns its EMA
    generator (the raw one differs)."""
    config = {"nz": 8, "ngf": 4, "nc": 3, "img_size": 16}
    G, G_ema = DCGANGenerator(**config), DCGANGenerator(**config)
    save_checkpoint(path, modules={"G": G, "G_ema": G_ema},
                    state={"step": step, "config": {"kind": "gan", "arch": "dcgan",
                                                    "generator": config}})
    return G_ema


def test_face_gan_fid_loads_the_ema_generator_of_a_checkpoint(tmp_path, load_script):
    module = load_script("face_gan_fid")
    G_ema = _dcgan_checkpoint(tmp_path / "ck.safetensors", step=7)
    loaded, step = module.checkpoint_generator(tmp_path / "ck.safetensors")
    assert step == 7
    for p, q in zip(loaded.state_dict().values(), G_ema.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    save_checkpoint(tmp_path / "vae.safetensors", modules={"G": G_ema},
                    state={"step": 1, "config": {"kind": "vae", "arch": "conv"}})
    with pytest.raises(ValueError, match="vae.safetensors is not a checkpoint of genprior train"):
        module.checkpoint_generator(tmp_path / "vae.safetensors")


def test_affll_density_check_ranks_outputs_by_the_vaes_elbo(tmp_path, load_script):
    from PIL import Image

    data = tmp_path / "faces"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in (8001, 8002):
        Image.fromarray(rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)).save(
            data / f"{i:06d}.jpg")
    module = load_script("affll_density_check")
    assert module.main(["--data", str(data), "--n", "2", "--out", str(tmp_path)]) == 0
    rows = [line.split(" | ") for line in
            (tmp_path / "affll_density_check.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| output")]
    assert [r[0] for r in rows] == ["| truth", "| bicubic", "| A_dagger y", "| celeba-sr4-mse",
                                    "| celeba-sr4-affgan"]
    # the truth's entry is the density's own ELBO of the faces, per entry, same draw
    import genprior
    from genprior.data import load_image_data

    x = load_image_data(data, img_size=64, crop=54, id_range=(8001, 8002)).tensors[0]
    with torch.no_grad():
        e = genprior.load_prior("celeba-vae").elbo(
            x, generator=torch.Generator().manual_seed(0)).double() / x[0].numel()
    assert rows[0][1].startswith(f"{e.mean():.3f} ± ")
    assert all(0 <= float(r[2].rstrip(" |")) <= 1 for r in rows[1:])


def test_log_means_averages_the_last_steps(tmp_path, capsys, load_script):
    log = tmp_path / "log.csv"
    log.write_text("step,epoch,time_s,d_real,d_fake\n" +
                   "".join(f"{i},0,{i}.0,{i / 10},{1 - i / 10}\n" for i in range(1, 6)))
    module = load_script("log_means")
    assert module.main([str(log), "--last", "2", "--columns", "d_real", "d_fake"]) == 0
    # the last column: the logged training time up to the last step averaged
    assert f"| {log} | 4..5 | 0.45 | 0.55 | 5 |" in capsys.readouterr().out
    assert module.main([str(log), "--last", "2", "--until", "3", "--columns", "d_real"]) == 0
    assert f"| {log} | 2..3 | 0.25 | 3 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        module.main([str(log), "--columns", "loss_g"])
    assert "has no column(s) ['loss_g']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main([str(log), "--until", "0"])
    assert "has no step <= --until 0" in capsys.readouterr().err


def test_face_gan_fid_pixel_std_is_the_per_pixel_spread(load_script):
    module = load_script("face_gan_fid")
    x = torch.zeros(2, 3, 4, 4)
    x[1] = 1.0  # every pixel takes the values 0 and 1: unbiased std sqrt(1/2)
    assert module.pixel_std(x) == pytest.approx(0.5 ** 0.5, abs=1e-12)
    x[1, :, :2] = 0.0  # half the pixels never vary
    assert module.pixel_std(x) == pytest.approx(0.5 ** 0.5 / 2, abs=1e-12)
    assert module.pixel_std(torch.rand(1, 3, 2, 2).expand(5, 3, 2, 2)) == 0.0


def test_face_gan_fid_writes_fid_and_pixel_std_rows(tmp_path, monkeypatch, load_script):
    module = load_script("face_gan_fid")
    _dcgan_checkpoint(tmp_path / "ck.safetensors", step=3)
    faces = {"train": torch.rand(250, 3, 16, 16, generator=torch.Generator().manual_seed(1)),
             "test": torch.rand(250, 3, 16, 16, generator=torch.Generator().manual_seed(2))}
    monkeypatch.setattr(module, "load_celeba", lambda root, split: list(faces[split]))
    # stand-in features, 2x2-pooled pixels (the real ones are Inception's)
    monkeypatch.setattr(module, "inception_features", lambda x, batch_size: torch.nn.functional
                        .adaptive_avg_pool2d(x, 2).flatten(1).double())
    assert module.main(["--data-root", str(tmp_path), "--checkpoints", str(tmp_path / "ck.safetensors"),
                        "--n", "250", "--cache", str(tmp_path / "feats.safetensors"),
                        "--out", str(tmp_path), "--stem", "t"]) == 0
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["heldout_pixel_std"] == pytest.approx(module.pixel_std(faces["test"]), abs=1e-12)
    (row,) = record["rows"]
    assert row["step"] == 3 and row["fid"] > 0 and 0 <= row["pixel_std"] < 0.5
    table = (tmp_path / "t.md").read_text()
    assert f"| ck | 3 | {row['fid']:.1f} | {row['pixel_std']:.3f} |" in table
    assert f"*{record['heldout_pixel_std']:.3f} (held-out faces)*" in table
    # --sample-seed: other draws, so another FID; the default is seed 0
    assert record["sample_seed"] == 0 and "generator seeded 0" in table
    assert module.main(["--data-root", str(tmp_path), "--checkpoints", str(tmp_path / "ck.safetensors"),
                        "--n", "250", "--cache", str(tmp_path / "feats.safetensors"),
                        "--out", str(tmp_path), "--stem", "s1", "--sample-seed", "1"]) == 0
    other = json.loads((tmp_path / "s1.json").read_text())
    assert other["sample_seed"] == 1 and other["rows"][0]["fid"] != row["fid"]
    ck = module.checkpoint_generator(tmp_path / "ck.safetensors")[0]
    assert torch.equal(module.samples(ck, 250, 1)[1], module.samples(ck, 250, 1)[1])


def test_face_gan_fid_grid_only_needs_no_inception(tmp_path, load_script):
    from PIL import Image

    module = load_script("face_gan_fid")
    config = {"nz": 8, "ngf": 4, "nc": 3, "img_size": 16}
    save_checkpoint(tmp_path / "ck.safetensors",
                    modules={"G_ema": DCGANGenerator(**config)},
                    state={"step": 3, "config": {"kind": "gan", "arch": "dcgan",
                                                 "generator": config}})
    grid = tmp_path / "grid.png"
    assert module.main(["--data-root", str(tmp_path), "--checkpoints",
                        str(tmp_path / "ck.safetensors"), str(tmp_path / "ck.safetensors"),
                        "--no-fid", "--grid", str(grid)]) == 0
    w, h = Image.open(grid).size
    assert w > 16 * 16 and 2 * 16 < h < 3 * 16  # 16 samples per row, two rows
    # --standing-stats: the generators' BatchNorm statistics recomputed first: other draws
    recal = tmp_path / "recal.png"
    assert module.main(["--data-root", str(tmp_path), "--checkpoints",
                        str(tmp_path / "ck.safetensors"), "--no-fid", "--grid", str(recal),
                        "--standing-stats", "2"]) == 0
    assert Image.open(recal).tobytes() != Image.open(grid).crop((0, 0, w, Image.open(
        recal).size[1])).tobytes()
    for bad in (["--priors", "x", "--no-fid"], ["--priors", "x", "--standing-stats", "-2"]):
        with pytest.raises(SystemExit):
            module.parse_args(["--data-root", str(tmp_path), *bad])


def test_prior_quality_merges_its_json_and_draws_priors_side_by_side(tmp_path, monkeypatch, load_script):
    import json

    from PIL import Image

    root = tmp_path / "data" / "mnist"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(root / "mnist_test_00.npz", x=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
             y=np.arange(3))
    out = tmp_path / "out"
    out.mkdir()
    (out / "prior_quality.json").write_text(json.dumps({"celeba-vae": {"fid": 1.0}}))
    monkeypatch.chdir(tmp_path)  # its sample grids go to ./pretrained/<name>/samples.png
    module = load_script("prior_quality")
    module.main(["--data-root", str(tmp_path / "data"), "--out", str(out), "--priors",
                 "mnist-vae", "mnist-convvae", "--side-by-side", str(tmp_path / "s.png")])
    results = json.loads((out / "prior_quality.json").read_text())
    assert list(results) == ["celeba-vae", "mnist-vae", "mnist-convvae"]  # the old entry kept
    assert results["mnist-convvae"]["n_heldout"] == 3
    assert results["mnist-convvae"]["recon_mse_per_pixel"] >= 0
    w, h = Image.open(tmp_path / "s.png").size
    assert w > 16 * 28 and 2 * 28 < h < 3 * 28  # 16 draws per prior, one row each
    assert (tmp_path / "pretrained" / "mnist-convvae" / "samples.png").is_file()


def test_prior_quality_refuses_mixed_shapes_side_by_side_before_measuring(tmp_path, monkeypatch,
                                                                          load_script):
    monkeypatch.chdir(tmp_path)
    module = load_script("prior_quality")
    with pytest.raises(SystemExit, match=r"one image shape.*'mnist-vae': \(1, 28, 28\)"):
        module.main(["--data-root", str(tmp_path / "no-data"), "--out", str(tmp_path / "out"),
                     "--priors", "mnist-vae", "celeba-vae", "--side-by-side",
                     str(tmp_path / "s.png")])
    assert not (tmp_path / "pretrained").exists() and not (tmp_path / "out").exists()


def test_gaussian_mixture_em_recovers_separated_components(load_script):
    module = load_script("digit_pm_limits")
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-5.0, 0.0], [5.0, 1.0]], dtype=torch.float64)
    scale = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.3, 0.0], [0.0, 2.0]]], dtype=torch.float64)
    k = (torch.rand(4000, generator=g) < 0.25).long()  # weights 0.75 / 0.25
    z = means[k] + (scale[k] @ torch.randn(4000, 2, 1, generator=g, dtype=torch.float64))[..., 0]
    log_w, mu, L = module.fit_gaussian_mixture(z, 2, generator=torch.Generator().manual_seed(1))
    order = mu[:, 0].argsort()
    assert torch.allclose(log_w[order].exp(), torch.tensor([0.75, 0.25], dtype=torch.float64), atol=0.02)
    assert torch.allclose(mu[order], means, atol=0.1)
    assert torch.allclose((L @ L.mT)[order], scale @ scale.mT, atol=0.15)


def test_mixture_latent_density_is_the_gaussian_for_one_component(load_script):
    module = load_script("digit_pm_limits")
    prior = torch.nn.Linear(3, 2).double()
    prior.latent_shape, prior.img_shape = (3,), (1, 1, 2)
    L = torch.tensor([[[1.0, 0.0, 0.0], [0.2, 0.7, 0.0], [-0.1, 0.3, 1.5]]], dtype=torch.float64)
    m = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    latent = module.MixtureLatent(prior, torch.zeros(1, dtype=torch.float64), m, L)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(m[0], scale_tril=L[0]).log_prob(z)
    assert torch.allclose(latent.log_prior(z), exact, rtol=0, atol=1e-12)
    draws = latent.sample_latent(20000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(draws.mean(0), m[0], atol=0.05)
    assert torch.allclose(torch.cov(draws.T), L[0] @ L[0].T, atol=0.06)


@pytest.mark.filterwarnings("ignore")
def test_digit_pm_limits_measures_the_variants_on_the_same_measurements(tmp_path, load_script):
    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(root / f"mnist_{split}_00.npz", x=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
                 y=np.arange(12) % 10)
    module = load_script("digit_pm_limits")
    out = tmp_path / "out"
    assert module.main(["--data-root", str(tmp_path), "--m", "10", "--n-images", "2",
                        "--components", "2", "--steps", "2", "--restarts", "1",
                        "--variants", "PM", "PM-mixture-codes", "--out", str(out)]) == 0
    with open(out / "digit_pm_limits.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["estimator"] for r in rows] == ["CSGM mnist-vae (reference)", "PM",
                                              "PM-mixture-codes"]
    assert float(rows[0]["ratio"]) == 1.0
    assert all(float(r["ratio"]) == pytest.approx(float(rows[0]["mean"]) / float(r["mean"]))
               for r in rows)
    assert "| PM-mixture-codes |" in (out / "digit_pm_limits.md").read_text()


def test_export_checkpoint_writes_the_ema_generator_and_never_overwrites(tmp_path, capsys,
                                                                         load_script):
    from genprior import load_prior

    module = load_script("export_checkpoint")
    G_ema = _dcgan_checkpoint(tmp_path / "ck.safetensors", step=7)
    out = tmp_path / "model"
    assert module.main([str(tmp_path / "ck.safetensors"), str(out)]) == 0
    loaded = load_prior(out)
    for p, q in zip(loaded.state_dict().values(), G_ema.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["steps"] == 7 and "generator" not in training  # that is config.json's config
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "ck.safetensors"), str(out)])
    assert "exists" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_export_checkpoint_averages_several_checkpoints_of_one_run(tmp_path, capsys,
                                                                   load_script):
    from genprior import load_prior

    module = load_script("export_checkpoint")
    a = _dcgan_checkpoint(tmp_path / "a.safetensors", step=7)
    b = _dcgan_checkpoint(tmp_path / "b.safetensors", step=9)
    out = tmp_path / "avg"
    assert module.main([str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                        str(out)]) == 0
    loaded = load_prior(out)
    for (k, p), q, r in zip(loaded.state_dict().items(), a.state_dict().values(),
                            b.state_dict().values(), strict=True):
        if p.is_floating_point():
            torch.testing.assert_close(p.double(), (q.double() + r.double()) / 2, rtol=0,
                                       atol=1e-7)
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["steps"] == [7, 9] and training["averaged"] == "uniform"
    assert training["checkpoints"] == [str(tmp_path / "a.safetensors"),
                                       str(tmp_path / "b.safetensors")]
    # a checkpoint of another run configuration is refused, nothing written
    config = {"nz": 8, "ngf": 8, "nc": 3, "img_size": 16}
    save_checkpoint(tmp_path / "c.safetensors", modules={"G": DCGANGenerator(**config),
                                                         "G_ema": DCGANGenerator(**config)},
                    state={"step": 3, "config": {"kind": "gan", "arch": "dcgan",
                                                 "generator": config}})
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "a.safetensors"), str(tmp_path / "c.safetensors"),
                     str(tmp_path / "bad")])
    assert "c.safetensors is not a checkpoint of the run configuration of" in \
        capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_first_images_refuses_more_than_the_data_holds(load_script):
    first_images = load_script("_run").first_images
    data = [torch.full((1, 2, 2), float(i)) for i in range(3)]
    assert torch.equal(first_images(data, 2)[:, 0, 0, 0], torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="asked for 4 images, the data holds 3"):
        first_images(data, 4)


def test_export_checkpoint_standing_stats_recomputes_the_batchnorm_statistics(tmp_path, capsys,
                                                                             load_script):
    from genprior import load_prior
    from genprior.priors.standing_stats import recalibrate_batchnorm

    module = load_script("export_checkpoint")
    G_ema = _dcgan_checkpoint(tmp_path / "ck.safetensors", step=7)
    out = tmp_path / "model"
    assert module.main([str(tmp_path / "ck.safetensors"), str(out), "--standing-stats", "3"]) == 0
    # the same as recalibrating the checkpoint's EMA generator with the documented seed
    recalibrate_batchnorm(G_ema, n_batches=3, batch_size=64,
                          generator=torch.Generator().manual_seed(1))
    loaded = load_prior(out)
    for (k, p), q in zip(loaded.state_dict().items(), G_ema.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["standing_stats"] == {"batches": 3, "batch_size": 64, "seed": 1}
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "ck.safetensors"), str(tmp_path / "m2"), "--standing-stats",
                     "-1"])
    assert "--standing-stats must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "m2").exists()


def test_interpolate_priors_writes_the_convex_combination_and_never_overwrites(
        tmp_path, capsys, load_script):
    from genprior import load_prior
    from genprior.priors.standing_stats import recalibrate_batchnorm

    module = load_script("interpolate_priors")
    g = torch.Generator().manual_seed(0)
    a, b = DCGANGenerator(nz=8, ngf=4, img_size=16), DCGANGenerator(nz=8, ngf=4, img_size=16)
    with torch.no_grad():
        for p in b.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b", training={"steps": 7})
    out = tmp_path / "mix"
    assert module.main([str(tmp_path / "a"), str(tmp_path / "b"), str(out), "--t", "0.25"]) == 0
    loaded = load_prior(out)
    for (k, p), q, r in zip(loaded.state_dict().items(), a.state_dict().values(),
                            b.state_dict().values(), strict=True):
        if p.is_floating_point():
            torch.testing.assert_close(p.double(), 0.75 * q.double() + 0.25 * r.double(),
                                       rtol=0, atol=1e-6)
    record = json.loads((out / "config.json").read_text())["training"]
    assert record == {"interpolated": {"A": str(tmp_path / "a"), "B": str(tmp_path / "b"),
                                       "t": 0.25, "B_training": {"steps": 7}}}
    # t = 1 with standing statistics: B recalibrated with the documented seed, bit for bit
    assert module.main([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "one"),
                        "--t", "1", "--standing-stats", "2"]) == 0
    recalibrate_batchnorm(b, n_batches=2, batch_size=64, generator=torch.Generator().manual_seed(1))
    for (k, p), q in zip(load_prior(tmp_path / "one").state_dict().items(),
                         b.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    before = (out / "model.safetensors").read_bytes()
    for argv, message in (
            ([str(out), "--t", "0.5"], "exists; choose a new folder"),
            ([str(tmp_path / "new"), "--t", "1.5"], "--t must be in [0, 1], got 1.5")):
        with pytest.raises(SystemExit):
            module.main([str(tmp_path / "a"), str(tmp_path / "b"), *argv])
        assert message in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    DCGANGenerator(nz=8, ngf=8, img_size=16).save_pretrained(tmp_path / "wide")
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "a"), str(tmp_path / "wide"), str(tmp_path / "new"),
                     "--t", "0.5"])
    assert "are not one architecture" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_recalibrate_prior_writes_a_copy_with_standing_statistics(tmp_path, capsys, load_script):
    from genprior import load_prior
    from genprior.priors.linear import LinearGenerator
    from genprior.priors.standing_stats import recalibrate_batchnorm

    module = load_script("recalibrate_prior")
    source = tmp_path / "source"
    G = DCGANGenerator(nz=8, ngf=4, img_size=16)
    G.save_pretrained(source, training={"steps": 5})
    out = tmp_path / "ss"
    assert module.main([str(source), str(out), "--batches", "3"]) == 0
    # the same as recalibrating the source with the documented batch size and seed
    recalibrate_batchnorm(G, n_batches=3, batch_size=64, generator=torch.Generator().manual_seed(1))
    for (k, p), q in zip(load_prior(out).state_dict().items(), G.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    config = json.loads((out / "config.json").read_text())
    assert config["training"] == {"steps": 5}  # the source's records kept
    assert config["standing_stats"] == {"batches": 3, "batch_size": 64, "seed": 1,
                                        "source": str(source)}
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit):
        module.main([str(source), str(out)])
    assert "exists" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
    LinearGenerator(torch.eye(4)[:, :2], img_shape=(1, 2, 2)).save_pretrained(tmp_path / "lin")
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "lin"), str(tmp_path / "lin-ss")])
    assert "has no BatchNorm statistics" in capsys.readouterr().err
    assert not (tmp_path / "lin-ss").exists()


def test_snapshot_checkpoints_copies_multiples_and_never_overwrites(tmp_path, capsys,
                                                                    load_script):
    module = load_script("snapshot_checkpoints")
    run, snap = tmp_path / "run", tmp_path / "run-snap"
    assert module.snapshot_once(run, snap, 250) is None  # no checkpoint yet
    run.mkdir()
    net = torch.nn.Linear(2, 2)
    for step in (240, 250):
        with torch.no_grad():
            net.weight.fill_(step)
        save_checkpoint(run / "checkpoint.safetensors", modules={"G": net}, state={"step": step})
        assert module.snapshot_once(run, snap, 250) == step
    assert sorted(p.name for p in snap.iterdir()) == ["step_250.safetensors"]
    assert (snap / "step_250.safetensors").read_bytes() == (
        run / "checkpoint.safetensors").read_bytes()
    # the same step written again (a resumed run) does not replace the copy
    before = (snap / "step_250.safetensors").read_bytes()
    with torch.no_grad():
        net.weight.fill_(-1)
    save_checkpoint(run / "checkpoint.safetensors", modules={"G": net}, state={"step": 250})
    module.snapshot_once(run, snap, 250)
    assert (snap / "step_250.safetensors").read_bytes() == before
    # a finished run: main() takes a last look and returns
    (run / "final").mkdir()
    module.main([str(run), "--every", "250", "--poll", "0"])
    with pytest.raises(SystemExit):
        module.main([str(run), "--every", "0"])
    assert "--every must be positive" in capsys.readouterr().err
