"""Range-constrained conditional SR model (AffGAN) and its trainer, on tiny models and data."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from genprior.cli import main as cli_main
from genprior.priors import Prior, load_prior
from genprior.priors.conditional import (
    ConditionalSR,
    SRDiscriminator,
    init_weights_,
    is_conditional,
)
from genprior.training.affgan import instance_noise_std, split_unpaired

TINY = {"img_size": (3, 16, 16), "factor": 4, "width": 8, "n_blocks": 1, "noise_channels": 2}


def _model(device, *, kernel="box", seed=0) -> ConditionalSR:
    model = ConditionalSR(kernel=kernel, **TINY)
    model.reset_parameters(generator=torch.Generator().manual_seed(seed))
    return model.to(device)


def _y(device, b=3, seed=1) -> torch.Tensor:
    return torch.rand(b, 3, 4, 4, generator=torch.Generator().manual_seed(seed)).to(device)


@pytest.mark.parametrize("kernel", ["box", "bicubic"])
def test_every_output_is_consistent_with_y(device, kernel):
    model = _model(device, kernel=kernel)
    y = _y(device)
    xs = model.sample(y, 4, generator=torch.Generator().manual_seed(0))
    for x in xs:
        rel = (model.operator.A(x) - y).norm() / y.norm()
        assert x.dtype == torch.float32
        assert rel <= 1e-5


def test_null_space_component_is_the_networks(device):
    # x = A^+ y + (I - A^+ A) f  =>  (I - A^+ A) x = (I - A^+ A) f  and  A^+ A x = A^+ y.
    model = _model(device)
    A = model.operator
    y = _y(device)
    eps = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = model(y, eps)
        f = model.net(y, eps)
    torch.testing.assert_close(x - A.A_dagger(A.A(x)), f - A.A_dagger(A.A(f)),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(A.A_dagger(A.A(x)), A.A_dagger(y), atol=1e-5, rtol=0)


def test_matches_range_constrained_wrapper(device):
    from genprior.operators.projection import RangeConstrained

    model = _model(device)
    y = _y(device)
    eps = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(RangeConstrained(model.net, model.operator)(y, eps),
                                   model(y, eps))


def test_noise_changes_output_and_generator_fixes_it(device):
    model = _model(device)
    y = _y(device)
    a = model.sample(y, 2, generator=torch.Generator().manual_seed(5))
    b = model.sample(y, 2, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert (a[0] - a[1]).abs().max() > 1e-4
    # sample() draws eps with sample_latent from the same generator, sample by sample
    eps = model.sample_latent(2 * 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(y.repeat(2, 1, 1, 1), eps).reshape(a.shape), a)


def test_temperature_scales_the_noise(device):
    model = _model(device)
    y = _y(device)
    x = model.sample(y, 2, generator=torch.Generator().manual_seed(5), temperature=2.5)
    eps = model.sample_latent(2 * 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(y.repeat(2, 1, 1, 1), 2.5 * eps).reshape(x.shape), x)
        cold = model.sample(y, 2, generator=torch.Generator().manual_seed(5), temperature=0.0)
        torch.testing.assert_close(cold[0], model(y, torch.zeros_like(eps[:3])), atol=0, rtol=0)
    torch.testing.assert_close(cold[0], cold[1], atol=0, rtol=0)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            model.sample(y, 2, temperature=bad)


def test_shapes(device):
    model = _model(device)
    y = _y(device, b=2)
    assert model.latent_shape == (2, 4, 4)
    assert model.meas_shape == (3, 4, 4)
    assert model.img_shape == (3, 16, 16)
    assert model(y, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 16, 16)
    assert model.sample(y, 5).shape == (5, 2, 3, 16, 16)
    assert model.sample(y).shape == (1, 2, 3, 16, 16)
    disc = SRDiscriminator(channels=3, img_size=16, width=4).to(device)
    assert disc(torch.rand(2, 3, 16, 16, device=device)).shape == (2,)


def test_save_load_round_trip(tmp_path):
    model = _model("cpu", seed=3)
    model.save_pretrained(tmp_path / "sr")
    y = _y("cpu")
    eps = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    for loaded in (Prior.from_pretrained(tmp_path / "sr"), load_prior(tmp_path / "sr"),
                   ConditionalSR.from_pretrained(tmp_path / "sr")):
        assert isinstance(loaded, ConditionalSR) and is_conditional(loaded)
        assert loaded.config == model.config
        with torch.no_grad():
            torch.testing.assert_close(loaded(y, eps), model(y, eps), atol=0, rtol=0)
    # the weights file holds the network only (the operator is rebuilt from the config)
    assert all(k.startswith("net.") for k in load_file(tmp_path / "sr" / "model.safetensors"))
    assert not is_conditional(torch.nn.Linear(2, 2))


def test_reset_parameters_is_deterministic():
    a, b, c = _model("cpu", seed=7), _model("cpu", seed=7), _model("cpu", seed=8)
    for (k, p), q, r in zip(a.state_dict().items(), b.state_dict().values(),
                            c.state_dict().values()):
        assert torch.equal(p, q), k
    assert any(not torch.equal(p, r) for p, r in zip(a.parameters(), c.parameters()))
    init_weights_(SRDiscriminator(img_size=8, width=2), generator=torch.Generator())


def test_bad_inputs():
    model = _model("cpu")
    with pytest.raises(ValueError, match="y must have shape"):
        model.sample(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="y must have shape"):
        model(torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(1, 3, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-finite"):
        model(torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="eps must have shape"):
        model(_y("cpu"), torch.zeros(3, 5, 4, 4))
    with pytest.raises(ValueError, match="n must be >= 1"):
        model.sample(_y("cpu"), 0)
    with pytest.raises(ValueError, match="power of 2"):
        ConditionalSR(img_size=(3, 12, 12), factor=3)
    with pytest.raises(ValueError, match="divisible by factor"):
        ConditionalSR(img_size=(3, 18, 18), factor=4)
    with pytest.raises(ValueError, match=r"x must have shape"):
        SRDiscriminator(img_size=16, width=2)(torch.rand(1, 3, 8, 8))


def test_unpaired_split_and_instance_noise_schedule():
    x = torch.arange(7.0).reshape(7, 1, 1, 1)
    lo, hi = split_unpaired(x)
    assert lo.flatten().tolist() == [0, 1, 2] and hi.flatten().tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="at least 2"):
        split_unpaired(x[:1])
    assert [instance_noise_std(s, start=0.2, anneal_steps=4) for s in (0, 1, 4, 9)] == \
        pytest.approx([0.2, 0.15, 0.0, 0.0])
    assert instance_noise_std(0, start=0.2, anneal_steps=0) == 0.0


# ------------------------------------------------------------------------------ trainer (CLI)
def _train(data, out, *extra):
    return cli_main(["train", "affgan", "--data", str(data), "--out", str(out),
                     "--img-size", "16", "--width", "8", "--n-blocks", "1",
                     "--noise-channels", "2", "--d-width", "4", "--batch-size", "2",
                     "--anneal-steps", "4", "--device", "cpu", "--seed", "3", *extra])


@pytest.mark.parametrize("loss", ["gan", "mse"])
def test_train_resume_equals_uninterrupted(tiny_faces, tmp_path, loss):
    assert _train(tiny_faces, tmp_path / "full", "--loss", loss, "--max-steps", "4") == 0
    assert _train(tiny_faces, tmp_path / "part", "--loss", loss, "--max-steps", "2") == 0
    assert _train(tiny_faces, tmp_path / "part", "--loss", loss, "--max-steps", "4",
                  "--resume") == 0
    full = load_file(tmp_path / "full" / "final" / "model.safetensors")
    part = load_file(tmp_path / "part" / "final" / "model.safetensors")
    assert full.keys() == part.keys()
    for k in full:
        assert torch.equal(full[k], part[k]), k
    for run in ("full", "part"):
        assert (tmp_path / run / "log.csv").read_text() .count("\n") == 5  # header + 4 steps
        assert (tmp_path / run / "samples.png").is_file()
    model = load_prior(tmp_path / "full" / "final")
    y = _y("cpu")
    x = model.sample(y, 2, generator=torch.Generator().manual_seed(0))
    assert (model.operator.A(x[1]) - y).norm() / y.norm() <= 1e-5


def test_train_rejects_bad_arguments(tiny_faces, tmp_path, capsys):
    assert _train(tiny_faces, tmp_path / "a", "--instance-noise", "-1") == 2
    assert "--instance-noise" in capsys.readouterr().err
    assert _train(tiny_faces, tmp_path / "b", "--img-size", "18") == 2
    assert "--img-size" in capsys.readouterr().err
    # resuming with another architecture is refused, naming the checkpoint
    assert _train(tiny_faces, tmp_path / "c", "--max-steps", "1") == 0
    assert _train(tiny_faces, tmp_path / "c", "--max-steps", "2", "--width", "4",
                  "--resume") == 2
    assert "checkpoint" in capsys.readouterr().err


def test_conditional_sr_is_a_conditional_prior_not_a_prior(tmp_path):
    from genprior.priors import ConditionalPrior
    from genprior.priors.dcgan import DCGANGenerator

    model = _model("cpu")
    assert isinstance(model, ConditionalPrior) and not isinstance(model, Prior)
    model.save_pretrained(tmp_path / "sr")
    with pytest.warns(DeprecationWarning, match="ConditionalPrior.from_pretrained"):
        assert isinstance(Prior.from_pretrained(tmp_path / "sr"), ConditionalSR)
    with pytest.raises(ValueError, match="ConditionalSR, which is a ConditionalPrior, not a "
                                         "DCGANGenerator"):
        DCGANGenerator.from_pretrained(tmp_path / "sr")
    DCGANGenerator(nz=4, ngf=2, nc=3, img_size=16).save_pretrained(tmp_path / "g")
    with pytest.raises(ValueError, match="DCGANGenerator, which is a Prior, not a "
                                         "ConditionalPrior"):
        ConditionalPrior.from_pretrained(tmp_path / "g")
    with pytest.raises(ValueError, match="not a ConditionalSR"):
        ConditionalSR.from_pretrained(tmp_path / "g")
    assert isinstance(ConditionalPrior.from_pretrained(tmp_path / "sr"), ConditionalSR)


def test_conditional_prior_interface_is_generic():
    from genprior.priors import ConditionalPrior

    class Upsample(ConditionalPrior):  # x = nearest(y) + eps, a minimal conditional prior
        def __init__(self, *, size: int = 4) -> None:
            super().__init__()
            self.img_shape, self.meas_shape = (1, 2 * size, 2 * size), (1, size, size)
            self.latent_shape = self.img_shape
            self.register_buffer("scale", torch.ones(()))

        def generate(self, y, eps):
            return torch.nn.functional.interpolate(y, scale_factor=2) + self.scale * eps

    model = Upsample(size=3)
    assert model.config == {"size": 3} and is_conditional(model)
    y = torch.rand(2, 1, 3, 3)
    xs = model.sample(y, 4, generator=torch.Generator().manual_seed(0))
    assert xs.shape == (4, 2, 1, 6, 6)
    eps = model.sample_latent(8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(y.repeat(4, 1, 1, 1), eps).reshape(xs.shape), xs)
    torch.testing.assert_close(model.decode(y, eps[:2]), model(y, eps[:2]))
    with pytest.raises(ValueError, match="eps"):
        model(y, eps[:1])


def test_python_api_matches_cli(tiny_faces, tmp_path):
    from genprior.training.affgan import AffGANTrainConfig, train_affgan

    assert _train(tiny_faces, tmp_path / "cli", "--max-steps", "3") == 0
    res = train_affgan(AffGANTrainConfig(
        data=tiny_faces, out=tmp_path / "py", img_size=16, width=8, n_blocks=1, noise_channels=2,
        d_width=4, batch_size=2, anneal_steps=4, device="cpu", seed=3, max_steps=3))
    assert isinstance(res.model, ConditionalSR) and res.state.step == 3
    cli = load_file(tmp_path / "cli" / "final" / "model.safetensors")
    py = load_file(tmp_path / "py" / "final" / "model.safetensors")
    assert cli.keys() == py.keys() and all(torch.equal(cli[k], py[k]) for k in cli)
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, py[k]), k


def test_train_never_loses_a_run_nor_accepts_non_finite_settings(tiny_faces, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(tiny_faces, out, "--max-steps", "1") == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert _train(tiny_faces, out, "--max-steps", "2") == 2  # neither --resume nor --overwrite
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert _train(tiny_faces, out, "--max-steps", "2", "--overwrite") == 0
    assert (out / "log.csv").read_text().count("\n") == 3  # header + 2 steps: a fresh log
    for flags in (["--lr-d", "inf"], ["--max-minutes", "0"], ["--ema-decay", "nan"]):
        assert _train(tiny_faces, tmp_path / "bad", *flags) == 2
        assert flags[0] in capsys.readouterr().err
    assert _train(tiny_faces, tiny_faces / "run") == 2  # the run folder inside the data
    assert "--data" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tiny_faces / "run").exists()
