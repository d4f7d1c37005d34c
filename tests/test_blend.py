"""ConditionalBlend: affine blends of range-constrained generators stay consistent with y,
equal the weighted sum of their members exactly, and save / load as one prior."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genprior import load_prior
from genprior._serialization import load_config
from genprior.operators.downsample import Downsample
from genprior.priors import ConditionalBlend, pretrained_dir
from genprior.priors.conditional import ConditionalSR
from genprior.reconstruct.baselines import conditional


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _member(seed: int, **kw) -> ConditionalSR:
    model = ConditionalSR(**{"img_size": (3, 16, 16), "width": 8, "n_blocks": 1,
                             "noise_channels": 2, **kw})
    model.reset_parameters(generator=_g(seed))
    return model


@pytest.fixture
def members() -> list[ConditionalSR]:
    return [_member(1).double(), _member(2, width=4, noise_channels=3).double()]


@pytest.mark.parametrize("weights", [(0.3, 0.7), (1.5, -0.5)])
def test_every_output_is_consistent_and_the_weighted_sum(members, weights):
    blend = ConditionalBlend.from_models(members, weights)
    assert blend.latent_shape == (5, 4, 4)
    y = torch.rand(3, 3, 4, 4, generator=_g(0), dtype=torch.float64)
    eps = blend.sample_latent(3, generator=_g(1)).double()
    x = blend(y, eps)
    assert (blend.operator.A(x) - y).abs().max() < 1e-12  # extrapolation too: sum w = 1
    want = (weights[0] * members[0](y, eps[:, :2]) + weights[1] * members[1](y, eps[:, 2:]))
    assert torch.allclose(x, want, rtol=0, atol=1e-14)


def test_weight_one_is_the_member_and_draws_follow_the_generator(members):
    blend = ConditionalBlend.from_models(members, [1.0, 0.0])
    y = torch.rand(2, 3, 4, 4, generator=_g(0), dtype=torch.float64)
    eps = blend.sample_latent(2, generator=_g(1)).double()
    assert torch.equal(blend(y, eps), members[0](y, eps[:, :2]))
    a = blend.sample(y, 4, generator=_g(5))
    assert torch.equal(a, blend.sample(y, 4, generator=_g(5)))
    assert a.shape == (4, 2, 3, 16, 16) and (a[0] - a[1]).abs().max() > 0


def test_save_and_load_round_trip(members, tmp_path: Path):
    blend = ConditionalBlend.from_models([m.float() for m in members], [0.25, 0.75])
    blend.save_pretrained(tmp_path / "blend")
    loaded = load_prior(str(tmp_path / "blend"))
    assert isinstance(loaded, ConditionalBlend)
    assert loaded.config == blend.config
    assert loaded.config["weights"] == [0.25, 0.75]
    assert [m["_class"] for m in loaded.config["members"]] == ["ConditionalSR"] * 2
    y = torch.rand(2, 3, 4, 4, generator=_g(0))
    assert torch.equal(loaded.sample(y, 2, generator=_g(3)), blend.sample(y, 2, generator=_g(3)))
    # the conditional baseline accepts it with its members' operator
    result = conditional(y, Downsample((3, 16, 16), 4), loaded, generator=_g(4))
    assert (loaded.operator.A(result.x_hat) - y).abs().max() < 1e-5


def test_bad_blends_are_refused(members):
    with pytest.raises(ValueError, match="sum to 1"):
        ConditionalBlend(members=members, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="sum to 1"):
        ConditionalBlend(members=members, weights=[float("nan"), 1.0])
    with pytest.raises(ValueError, match="one weight per member: 2 members, 3 weights"):
        ConditionalBlend(members=members, weights=[0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="at least two members"):
        ConditionalBlend(members=members[:1], weights=[1.0])
    with pytest.raises(ValueError, match=r"member 1 has img_shape \(3, 32, 32\)"):
        ConditionalBlend(members=[members[0], _member(3, img_size=(3, 32, 32))],
                         weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="member 1 has operator"):
        ConditionalBlend(members=[members[0], _member(3, kernel="bicubic")], weights=[0.5, 0.5])
    with pytest.raises(TypeError, match="must be a conditional prior or a mapping"):
        ConditionalBlend(members=[members[0], torch.nn.Linear(2, 2)], weights=[0.5, 0.5])


def test_blend_script_writes_a_loadable_folder_and_refuses_bad_input(tmp_path: Path, capsys,
                                                                     load_script):
    script = load_script("blend_sr")
    for i in (1, 2):
        _member(i).save_pretrained(tmp_path / f"m{i}")
    members = [str(tmp_path / "m1"), str(tmp_path / "m2")]
    assert script.main([*members, "--weights", "0.6", "0.4", "--out",
                        str(tmp_path / "b")]) == 0
    blend = load_prior(str(tmp_path / "b"))
    y = torch.rand(1, 3, 4, 4, generator=_g(0))
    eps = blend.sample_latent(1, generator=_g(1))
    want = 0.6 * load_prior(members[0])(y, eps[:, :2]) + 0.4 * load_prior(members[1])(y, eps[:, 2:])
    assert torch.allclose(blend(y, eps), want, rtol=0, atol=1e-6)
    with pytest.raises(SystemExit):  # never overwrites an earlier result
        script.main([*members, "--weights", "0.5", "0.5", "--out", str(tmp_path / "b")])
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="sum to 1"):
        script.main([*members, "--weights", "0.5", "0.6", "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- by reference

@pytest.fixture
def member_folders(tmp_path: Path) -> list[str]:
    """Two different members saved as prior folders; their names, as strings."""
    _member(1).save_pretrained(tmp_path / "m1")
    _member(2, width=4, noise_channels=3).save_pretrained(tmp_path / "m2")
    return [str(tmp_path / "m1"), str(tmp_path / "m2")]


def test_a_blend_by_reference_equals_the_embedded_blend_of_the_same_models(member_folders):
    weights = [0.3, 0.7]
    ref = ConditionalBlend(members=member_folders, weights=weights)
    assert ref.config == {"members": member_folders, "weights": weights}
    assert not ref.training  # built from loaded priors, like a loaded prior
    embedded = ConditionalBlend.from_models([load_prior(m) for m in member_folders], weights)
    ref, embedded = ref.double(), embedded.double()
    y = torch.rand(3, 3, 4, 4, generator=_g(0), dtype=torch.float64)
    eps = ref.sample_latent(3, generator=_g(1))
    x = ref(y, eps)
    assert x.dtype == torch.float64 and torch.equal(x, embedded(y, eps))
    assert (ref.operator.A(x) - y).abs().max() < 1e-12


def test_a_blend_by_reference_saves_its_config_only_and_loads_back_exactly(member_folders,
                                                                           tmp_path: Path):
    ref = ConditionalBlend(members=member_folders, weights=[0.6, 0.4])
    ConditionalBlend.from_models([load_prior(m) for m in member_folders],
                                 [0.5, 0.5]).save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "model.safetensors").is_file()
    ref.save_pretrained(tmp_path / "b")  # over an embedded blend: its stale weights go
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["config.json"]
    loaded = load_prior(str(tmp_path / "b"))
    assert isinstance(loaded, ConditionalBlend) and loaded.config == ref.config
    y = torch.rand(2, 3, 4, 4, generator=_g(0))
    assert torch.equal(loaded.sample(y, 3, generator=_g(2)), ref.sample(y, 3, generator=_g(2)))
    # an embedded blend still needs its weights file
    ConditionalBlend.from_models(list(loaded.members), [0.5, 0.5]).save_pretrained(tmp_path / "e")
    (tmp_path / "e" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_prior(str(tmp_path / "e"))


def test_bad_blends_by_reference_are_refused(member_folders, members, tmp_path: Path):
    with pytest.raises(ValueError, match="all prior names .* or all models / specs"):
        ConditionalBlend(members=[member_folders[0], members[1]], weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="at least two members"):
        ConditionalBlend(members=member_folders[:1], weights=[1.0])
    ConditionalBlend(members=member_folders, weights=[0.5, 0.5]).save_pretrained(tmp_path / "r")
    ConditionalBlend.from_models(members, [0.5, 0.5]).save_pretrained(tmp_path / "e")
    for nested in ("r", "e"):
        with pytest.raises(ValueError, match=f"member '{tmp_path / nested}' is itself a "
                                             "ConditionalBlend; nest blends by listing"):
            ConditionalBlend(members=[member_folders[0], str(tmp_path / nested)],
                             weights=[0.5, 0.5])
    from genprior.priors.linear import LinearGenerator

    LinearGenerator(latent_dim=2, img_shape=(3, 16, 16)).save_pretrained(tmp_path / "lin")
    with pytest.raises(TypeError, match="'.*lin' is a LinearGenerator, not a conditional prior"):
        ConditionalBlend(members=[member_folders[0], str(tmp_path / "lin")], weights=[0.5, 0.5])
    with pytest.raises(FileNotFoundError, match="no-such-member"):
        ConditionalBlend(members=[member_folders[0], "no-such-member"], weights=[0.5, 0.5])
    _member(3, img_size=(3, 32, 32)).save_pretrained(tmp_path / "big")
    with pytest.raises(ValueError, match="member 1 has img_shape"):  # the shape checks apply
        ConditionalBlend(members=[member_folders[0], str(tmp_path / "big")], weights=[0.5, 0.5])


def test_blends_naming_each_other_are_refused_not_recursed(member_folders, tmp_path: Path):
    from genprior._serialization import save_config

    for me, other in (("a", "b"), ("b", "a")):  # only by hand: the constructor refuses it
        save_config(tmp_path / me / "config.json", {"_class": "ConditionalBlend", "config": {
            "members": [member_folders[0], str(tmp_path / other)], "weights": [0.5, 0.5]}})
    with pytest.raises(ValueError, match="nest blends by listing their members"):
        load_prior(str(tmp_path / "a"))


def test_blend_script_by_reference_writes_a_config_only_equal_to_the_copy(member_folders,
                                                                          tmp_path: Path,
                                                                          load_script):
    script = load_script("blend_sr")
    args = [*member_folders, "--weights", "0.6", "0.4"]
    assert script.main([*args, "--by-reference", "--out", str(tmp_path / "ref")]) == 0
    assert script.main([*args, "--out", str(tmp_path / "copy")]) == 0
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["config.json"]
    stored = load_config(tmp_path / "ref" / "config.json")
    assert stored["config"]["members"] == member_folders
    assert stored["training"] == {"blend_of": member_folders}
    ref, copy = load_prior(str(tmp_path / "ref")), load_prior(str(tmp_path / "copy"))
    y = torch.rand(2, 3, 4, 4, generator=_g(0))
    assert torch.equal(ref.sample(y, 2, generator=_g(1)), copy.sample(y, 2, generator=_g(1)))
    with pytest.raises(SystemExit):
        script.main([*args, "--by-reference", "--out", str(tmp_path / "ref")])
    with pytest.raises(SystemExit, match="no-such-member"):
        script.main([member_folders[0], "no-such-member", "--weights", "0.5", "0.5",
                     "--by-reference", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


SHIPPED_BLENDS = {
    "celeba-sr4-affgan-blend": (["celeba-sr4-affgan-w96", "celeba-sr4-affgan-wide",
                                 "celeba-sr4-affgan-avg", "celeba-sr4-affgan-r1"],
                                [0.3, 0.25, 0.25, 0.2]),
    "celeba-sr4-mse-affgan-blend": (["celeba-sr4-mse", "celeba-sr4-affgan-w96",
                                     "celeba-sr4-affgan-wide", "celeba-sr4-affgan-avg",
                                     "celeba-sr4-affgan-r1"], [0.55, 0.15, 0.1, 0.1, 0.1]),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_BLENDS))
def test_shipped_blends_load_by_name_and_equal_the_blend_of_their_members(name):
    names, weights = SHIPPED_BLENDS[name]
    blend = load_prior(name)
    assert isinstance(blend, ConditionalBlend)
    assert blend.config == {"members": names, "weights": weights}
    assert not (pretrained_dir() / name / "model.safetensors").exists()
    embedded = ConditionalBlend.from_models([load_prior(n) for n in names], weights)
    assert blend.meas_shape == (3, 16, 16) and blend.img_shape == (3, 64, 64)
    y = torch.rand(2, 3, 16, 16, generator=_g(0))
    eps = blend.sample_latent(2, generator=_g(1))
    x = blend(y, eps)
    assert torch.equal(x, embedded(y, eps))
    assert ((blend.operator.A(x) - y).norm() / y.norm()).item() < 1e-5
