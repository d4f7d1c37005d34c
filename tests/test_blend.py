"""ConditionalBlend: affine blends of range-constrained generators stay consistent with y,
equal the weighted sum of their members exactly, and save / load as one prior."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genprior import load_prior
from genprior.operators.downsample import Downsample
from genprior.priors import ConditionalBlend
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
