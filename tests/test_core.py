"""Core plumbing: input checks, explicit randomness, safetensors persistence, checkpoints."""

import json

import pytest
import torch
from torch import nn

from genprior._checks import check_finite, check_image, check_shape
from genprior._random import randn
from genprior._serialization import load_config, load_tensors, save_config, save_tensors
from genprior.priors import Prior, load_prior
from genprior.training.checkpoint import checkpoint_state, load_checkpoint, save_checkpoint


def test_check_shape_names_argument_and_shapes():
    with pytest.raises(ValueError, match=r"y must have shape \(B, 3\).*\(2, 4\)"):
        check_shape(torch.zeros(2, 4), "y", "B 3")
    with pytest.raises(ValueError, match="3 dims instead of 4"):
        check_shape(torch.zeros(1, 2, 3), "x", "B C H W")
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_shape([1, 2], "x", "B")


def test_check_image_range_nan_dtype_and_size():
    check_image(torch.rand(2, 1, 5, 5), img_size=(1, 5, 5))
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        check_image(torch.full((1, 1, 2, 2), 1.5))
    with pytest.raises(ValueError, match="non-finite"):
        check_image(torch.tensor([[[[float("nan")]]]]))
    with pytest.raises(TypeError, match="floating-point"):
        check_image(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(3, 5, 5\)"):
        check_image(torch.rand(1, 1, 5, 5), img_size=(3, 5, 5))
    with pytest.raises(ValueError, match="2 non-finite"):
        check_finite(torch.tensor([1.0, float("inf"), float("nan")]), "y")


def test_randn_is_reproducible_and_generator_driven():
    a = randn((3, 4), generator=torch.Generator().manual_seed(1))
    b = randn((3, 4), generator=torch.Generator().manual_seed(1))
    c = randn((3, 4), generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert randn((2,), dtype=torch.float64).dtype == torch.float64


def test_tensor_and_config_round_trip(tmp_path):
    t = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_tensors(tmp_path / "w.safetensors", t)
    back = load_tensors(tmp_path / "w.safetensors")
    assert all(torch.equal(t[k], back[k]) for k in t)
    save_config(tmp_path / "c.json", {"x": [1, 2], "y": "z"})
    assert load_config(tmp_path / "c.json") == {"x": [1, 2], "y": "z"}
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_tensors(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="config.json"):
        Prior.from_pretrained(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="no-such-prior"):
        load_prior("no-such-prior")


def test_unknown_prior_class_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class": "Nope", "config": {}}))
    with pytest.raises(ValueError, match="unknown prior class 'Nope'"):
        Prior.from_pretrained(tmp_path)


def _train(model, opt, g, steps):
    for _ in range(steps):
        x = torch.randn(8, 3, generator=g)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    def fresh():
        torch.manual_seed(0)  # test-only seeding of the initial weights
        model = nn.Linear(3, 1)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2), torch.Generator().manual_seed(5)

    m1, o1, g1 = fresh()
    _train(m1, o1, g1, 10)

    m2, o2, g2 = fresh()
    _train(m2, o2, g2, 4)
    save_checkpoint(tmp_path / "ck.safetensors", modules={"m": m2}, optimizers={"o": o2},
                    generators={"g": g2}, state={"step": 4})
    m3, o3, g3 = fresh()
    state = load_checkpoint(tmp_path / "ck.safetensors", modules={"m": m3}, optimizers={"o": o3},
                            generators={"g": g3}, global_rng=True)
    assert state == {"step": 4}
    assert checkpoint_state(tmp_path / "ck.safetensors") == {"step": 4}  # without the tensors
    _train(m3, o3, g3, 6)
    for p, q in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(p, q)


def test_loading_weights_leaves_the_global_rng_alone(tmp_path):
    m = nn.Linear(3, 1)
    torch.manual_seed(7)  # test-only: a known global state at saving
    saved = torch.get_rng_state()
    save_checkpoint(tmp_path / "ck.safetensors", modules={"m": m})
    torch.manual_seed(123)  # test-only: a known global state
    before = torch.get_rng_state()
    load_checkpoint(tmp_path / "ck.safetensors", modules={"m": m})
    assert torch.equal(torch.get_rng_state(), before)
    load_checkpoint(tmp_path / "ck.safetensors", modules={"m": m}, global_rng=True)
    assert torch.equal(torch.get_rng_state(), saved)


def test_checkpoint_of_another_architecture_is_rejected(tmp_path):
    save_checkpoint(tmp_path / "ck.safetensors", modules={"m": nn.Linear(3, 1)})
    with pytest.raises(ValueError, match="ck.safetensors.*'m'"):
        load_checkpoint(tmp_path / "ck.safetensors", modules={"m": nn.Linear(4, 1)})
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_checkpoint(tmp_path / "missing.safetensors", modules={})
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        checkpoint_state(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="plain.safetensors is not a genprior checkpoint"):
        checkpoint_state(tmp_path / "plain.safetensors")
