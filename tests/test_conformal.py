"""Split-conformal calibration of per-pixel intervals: known quantiles, the coverage guarantee on
synthetic exchangeable data, persistence and errors."""

import math

import pytest
import torch

from genprior.sampling import (
    ConformalScale,
    conformal_scores,
    credible_interval,
    fit_conformal,
    interval_base,
)


def test_factor_is_the_hand_computed_quantile():
    # N = 2 images of P = 2 pixels, two samples each: mean 0, std sqrt(2) everywhere
    samples = torch.tensor([-1.0, 1.0]).reshape(2, 1, 1, 1, 1).expand(2, 2, 1, 1, 2)
    x = torch.tensor([[0.3, 2.0], [1.0, 0.7]]).reshape(2, 1, 1, 2)
    scores = conformal_scores(x, samples, score="std")
    torch.testing.assert_close(scores, x.abs() / math.sqrt(2))
    # level 0.5: k = ceil(0.5 * (2 + 1) * 2) = 3, the 3rd smallest of {0.3, 0.7, 1.0, 2.0}
    scale = fit_conformal(x, samples, level=0.5, score="std")
    assert scale.factor == pytest.approx(1.0 / math.sqrt(2))
    assert (scale.n_images, scale.n_pixels, scale.level) == (2, 2, 0.5)
    # level 0.6: k = ceil(3.6) = 4 = N P, the largest
    assert fit_conformal(x, samples, level=0.6, score="std").factor == pytest.approx(
        2.0 / math.sqrt(2))


def test_interval_score_by_hand():
    # three samples 0, 1, 2 per pixel; the central 50% interval (linear quantiles) is [0.5, 1.5]
    samples = torch.tensor([0.0, 1.0, 2.0]).reshape(3, 1, 1, 1, 1).expand(3, 1, 1, 1, 4)
    x = torch.tensor([1.0, 1.25, 2.0, 3.0]).reshape(1, 1, 1, 4)
    centre, half = interval_base(samples, level=0.5)
    torch.testing.assert_close(centre, torch.ones(1, 1, 1, 4))
    torch.testing.assert_close(half, torch.full((1, 1, 1, 4), 0.5))
    torch.testing.assert_close(conformal_scores(x, samples, level=0.5).flatten(),
                               torch.tensor([0.0, 0.5, 2.0, 4.0]))
    # factor 1 gives back the credible interval itself
    lo, hi = ConformalScale(factor=1.0, level=0.5).apply(samples)
    ref_lo, ref_hi = credible_interval(samples, level=0.5)
    torch.testing.assert_close(lo, ref_lo)
    torch.testing.assert_close(hi, ref_hi)


def test_zero_spread_scores():
    samples = torch.zeros(4, 1, 1, 1, 2)
    scores = conformal_scores(torch.tensor([0.0, 0.5]).reshape(1, 1, 1, 2), samples)
    assert scores.flatten().tolist() == [0.0, math.inf]
    with pytest.raises(ValueError, match="infinite"):
        fit_conformal(torch.ones(9, 1, 1, 2), torch.zeros(4, 9, 1, 1, 2), level=0.5)


def _synthetic(n_rep, n_images, n_samples, p, g):
    """Exchangeable images whose sampler is overconfident by an image-dependent factor."""
    mu = torch.randn(n_rep, n_images, 1, 1, 1, p, generator=g, dtype=torch.float64)
    tau = 0.5 + 1.5 * torch.rand(n_rep, n_images, 1, 1, 1, 1, generator=g, dtype=torch.float64)
    x = (mu + tau * torch.randn(mu.shape, generator=g, dtype=torch.float64)).squeeze(2)
    spread = 0.3 * torch.randn(n_rep, n_images, n_samples, 1, 1, p, generator=g,
                               dtype=torch.float64)
    samples = (mu + spread).transpose(1, 2)  # (R, S, N, 1, 1, P)
    return x, samples


@pytest.mark.parametrize("score", ["interval", "std"])
def test_coverage_guarantee_on_fresh_data(score):
    # E[coverage of a new image] >= level, averaged over calibration draws, and about at most
    # level + 1/(N + 1); checked over R independent calibration/test splits within 3 SE
    g = torch.Generator().manual_seed(0)
    level, n_rep, n_cal, n_test, s, p = 0.9, 300, 20, 10, 20, 16
    x_cal, s_cal = _synthetic(n_rep, n_cal, s, p, g)
    x_new, s_new = _synthetic(n_rep, n_test, s, p, g)
    covered, raw = [], []
    for r in range(n_rep):
        scale = fit_conformal(x_cal[r], s_cal[r], level=level, score=score)
        lo, hi = scale.apply(s_new[r])
        covered.append(((x_new[r] >= lo) & (x_new[r] <= hi)).double().mean())
        c, h = interval_base(s_new[r], level=level, score=score)
        raw.append(((x_new[r] - c).abs() <= h).double().mean())
    covered = torch.stack(covered)
    se = float(covered.std() / math.sqrt(n_rep))
    assert float(covered.mean()) >= level - 3 * se, (float(covered.mean()), se)
    assert float(covered.mean()) <= level + 1 / (n_cal + 1) + 3 * se
    assert float(torch.stack(raw).mean()) < 0.5  # the uncalibrated intervals were far off


def test_save_load_round_trip(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 1, 2, 3, generator=g)
    samples = torch.rand(5, 12, 1, 2, 3, generator=g)
    setting = {"prior": "mnist-vae", "operator": "gaussian_cs:m=100", "noise": 0.1,
               "sampler": {"method": "mala", "n": 20}}
    scale = fit_conformal(x, samples, level=0.8, setting=setting)
    scale.save(tmp_path / "conformal.json")
    back = ConformalScale.load(tmp_path / "conformal.json")
    assert back == scale and back.setting == setting
    (tmp_path / "other.json").write_text('{"factor": 1.0}')
    with pytest.raises(ValueError, match="not a genprior conformal scale"):
        ConformalScale.load(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError):
        ConformalScale.load(tmp_path / "missing.json")


def test_errors():
    x = torch.rand(12, 1, 2, 3)
    samples = torch.rand(5, 12, 1, 2, 3)
    for level in (0.0, 1.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="level"):
            fit_conformal(x, samples, level=level)
    with pytest.raises(ValueError, match="samples must have shape"):
        fit_conformal(x, samples[:, :11])
    with pytest.raises(ValueError, match=r"\(S, 12, 1, 2, 3\)"):
        fit_conformal(x, samples[0])
    with pytest.raises(ValueError, match="non-finite"):
        fit_conformal(x.clone().fill_(float("nan")), samples)
    bad = samples.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        fit_conformal(x, bad)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fit_conformal(x, samples[:1])
    with pytest.raises(ValueError, match="too few calibration images"):
        fit_conformal(x[:3], samples[:, :3], level=0.9)  # needs N >= 9
    with pytest.raises(ValueError, match="score"):
        fit_conformal(x, samples, score="mad")
    with pytest.raises(ValueError, match="JSON"):
        fit_conformal(x, samples, setting={"operator": object()})
    with pytest.raises(ValueError, match="factor"):
        ConformalScale(factor=-1.0, level=0.9)
