"""Metrics: closed-form answers, per-image shapes, LPIPS plumbing (offline), tables."""

import csv
import json
import math
import warnings

import pytest
import torch

from genprior.metrics import (
    MetricsTable,
    Summary,
    backbone_weights_path,
    image_metrics,
    load_lpips,
    lpips,
    measurement_residual,
    mse_per_pixel,
    perceptual,
    psnr,
    ssim,
    summary,
    to_minus1_1,
)
from genprior.operators.factory import make_operator


def _pair(generator, shape=(3, 1, 16, 16)):
    x = torch.rand(shape, generator=generator)
    x_hat = (x + 0.1 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return x_hat, x


def test_mse_per_pixel_is_squared_norm_over_n(device):
    x = torch.zeros(2, 3, 4, 5, device=device)
    x_hat = torch.stack([torch.full((3, 4, 5), 0.5), torch.zeros(3, 4, 5)]).to(device)
    x_hat[1, 0, 0, 0] = 1.0  # one pixel off by 1 -> 1 / n with n = 60
    torch.testing.assert_close(mse_per_pixel(x_hat, x).cpu(), torch.tensor([0.25, 1 / 60]))


def test_psnr_of_known_mse_and_data_range(device):
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(device) * 0.8
    x_hat = x + torch.tensor([0.1, 0.01], device=device).view(2, 1, 1, 1)  # MSE 1e-2 and 1e-4
    torch.testing.assert_close(psnr(x_hat, x, data_range=1.0).cpu(), torch.tensor([20.0, 40.0]))
    torch.testing.assert_close(psnr(x_hat, x, data_range=255.0).cpu(),
                               torch.tensor([20.0, 40.0]) + 20 * math.log10(255))
    assert psnr(x, x, data_range=1.0).isinf().all()


def test_minus1_1_convention_scales_mse_by_4_and_keeps_psnr(generator):
    x_hat, x = _pair(generator)
    a, b = to_minus1_1(x_hat), to_minus1_1(x)
    assert a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(mse_per_pixel(a, b), 4 * mse_per_pixel(x_hat, x))
    torch.testing.assert_close(psnr(a, b, data_range=2.0), psnr(x_hat, x, data_range=1.0))


def test_ssim_identity_per_image_and_matches_torchmetrics(generator):
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    x_hat, x = _pair(generator, (3, 3, 20, 24))
    torch.testing.assert_close(ssim(x, x, data_range=1.0), torch.ones(3))
    s = ssim(x_hat, x, data_range=1.0)
    assert s.shape == (3,) and (s < 1).all()
    for i in range(3):  # per-image values equal torchmetrics on each image alone
        torch.testing.assert_close(s[i], tm_ssim(x_hat[i:i + 1], x[i:i + 1], data_range=1.0))


def test_metric_input_errors():
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        mse_per_pixel(x, x[:1])
    with pytest.raises(ValueError, match="data_range must be > 0"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(x[..., :8, :8], x[..., :8, :8], data_range=1.0)
    with pytest.raises(ValueError, match="x_hat contains 1 non-finite"):
        x_bad = x.clone()
        x_bad[0, 0, 0, 0] = float("nan")
        mse_per_pixel(x_bad, x)
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        psnr(x, x[0], data_range=1.0)


def test_summary_ci95_on_known_data():
    s = summary([1.0, 2.0, 3.0, 4.0])
    # sample std of 1..4 is sqrt(5/3)
    assert s == Summary(mean=2.5, ci95=pytest.approx(1.96 * math.sqrt(5 / 3) / 2), n=4)
    assert summary(torch.full((10,), 7.0)) == Summary(mean=7.0, ci95=0.0, n=10)
    assert math.isnan(summary([3.0]).ci95)
    assert str(summary([1.0, 2.0])) == "1.5 ± 0.98 (n=2)"
    with pytest.raises(ValueError, match="non-empty 1-D"):
        summary([])


def test_residual_zero_for_exact_x_with_noisy_operator(generator):
    x = torch.rand(4, 1, 8, 6, generator=generator)
    A = make_operator("gaussian_cs:20", (1, 8, 6), noise_std=0.5, seed=1)
    y = A.A(x)
    # an exact x fits noise-free data exactly: the residual must use A.A, not the noisy A(x)
    assert torch.equal(measurement_residual(x, y, A), torch.zeros(4))
    torch.testing.assert_close(measurement_residual(torch.zeros_like(x), y, A), torch.ones(4))
    torch.testing.assert_close(measurement_residual(x, y / 2, A), torch.ones(4))


def test_residual_with_plain_callable_known_value():
    W = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])

    def A(x):
        return x.flatten(1) @ W.T

    x_hat = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # A x_hat = (1, 2)
    y = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(measurement_residual(x_hat, y, A), torch.tensor([2.0]))
    # y = 0: 0 when A x_hat = 0 too, inf otherwise
    res = measurement_residual(torch.cat([torch.zeros_like(x_hat), x_hat]), torch.zeros(2, 2), A)
    assert res[0] == 0 and res[1].isinf()
    with pytest.raises(ValueError, match="not measured with this operator"):
        measurement_residual(x_hat, torch.zeros(1, 3), A)


@pytest.fixture(scope="module")
def rand_lpips():
    import lpips as lpips_pkg

    torch.manual_seed(0)  # test-only: lpips draws its random backbone from the global RNG
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated"
        warnings.simplefilter("ignore")
        return lpips_pkg.LPIPS(net="alex", pnet_rand=True, verbose=False)


def test_lpips_plumbing_with_random_backbone(rand_lpips, generator):
    x_hat, x = _pair(generator, (2, 3, 32, 32))
    d = lpips(x_hat, x, model=rand_lpips)
    assert d.shape == (2,) and (d > 0).all()
    torch.testing.assert_close(lpips(x, x, model=rand_lpips), torch.zeros(2))
    # inputs in [0, 1] are mapped to the [-1, 1] that the lpips package expects
    torch.testing.assert_close(d, rand_lpips(2 * x_hat - 1, 2 * x - 1).flatten())
    # grayscale is repeated to RGB
    g_hat, g = x_hat[:, :1], x[:, :1]
    torch.testing.assert_close(lpips(g_hat, g, model=rand_lpips),
                               lpips(g_hat.repeat(1, 3, 1, 1), g.repeat(1, 3, 1, 1),
                                     model=rand_lpips))
    with pytest.raises(ValueError, match="at least 31 x 31"):
        lpips(x_hat[..., :28, :28], x[..., :28, :28], model=rand_lpips)


def test_lpips_missing_backbone_raises_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(perceptual, "_CACHE", {})
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert backbone_weights_path("alex") == expected
    with pytest.raises(FileNotFoundError, match=str(expected)):
        load_lpips("alex")
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth"):
        lpips(x, x)
    assert not expected.exists()  # nothing was downloaded


def test_lpips_loads_backbone_from_torch_hub_cache(tmp_path, monkeypatch, rand_lpips):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(perceptual, "_CACHE", {})
    # a stand-in for torchvision's AlexNet checkpoint: its five conv layers of `features`
    g = torch.Generator().manual_seed(3)
    convs = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
    state = {}
    for i, (c_out, c_in, k) in convs.items():
        state[f"features.{i}.weight"] = 0.05 * torch.randn(c_out, c_in, k, k, generator=g)
        state[f"features.{i}.bias"] = 0.05 * torch.randn(c_out, generator=g)
    path = backbone_weights_path("alex")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    model = load_lpips("alex")
    assert load_lpips("alex") is model  # cached
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(model.net.slice1.get_submodule("0").weight, state["features.0.weight"])
    assert torch.equal(model.net.slice5.get_submodule("10").bias, state["features.10.bias"])
    # the LPIPS linear layers are the package's calibrated ones, same as in any LPIPS(...)
    assert torch.equal(model.lin0.model[1].weight, rand_lpips.lin0.model[1].weight)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert lpips(x, x.flip(0)).shape == (2,)


def test_image_metrics_and_table_round_trip(tmp_path, generator, rand_lpips):
    x_hat, x = _pair(generator, (3, 3, 32, 32))
    A = make_operator("inpaint:center:8", (3, 32, 32))
    y = A.A(x)
    metrics = image_metrics(x_hat, x, y=y, A=A, lpips_model=rand_lpips)
    assert list(metrics) == ["mse_per_pixel", "psnr", "ssim", "residual", "lpips"]
    torch.testing.assert_close(metrics["psnr"], psnr(x_hat, x, data_range=1.0))
    with pytest.raises(ValueError, match="together"):
        image_metrics(x_hat, x, y=y)

    metrics["psnr"][0] = float("inf")
    table = MetricsTable.from_metrics(metrics)
    assert table.n == 3 and table.summaries["ssim"] == summary(metrics["ssim"])
    table.to_csv(tmp_path / "t.csv")
    rows = list(csv.reader((tmp_path / "t.csv").read_text().splitlines()))
    assert rows[0] == ["image", *metrics]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "mean", "ci95"]
    assert float(rows[2][2]) == float(metrics["psnr"][1])
    assert float(rows[4][3]) == pytest.approx(float(metrics["ssim"].double().mean()))
    table.to_json(tmp_path / "t.json", note="x")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["note"] == "x" and doc["n"] == 3
    assert doc["per_image"][0]["psnr"] is None  # inf is written as null (strict JSON)
    assert doc["per_image"][1]["mse_per_pixel"] == float(metrics["mse_per_pixel"][1])
    assert doc["summary"]["ssim"]["ci95"] == pytest.approx(table.summaries["ssim"].ci95)


def test_pixel_frechet_distance_known_answers():
    from genprior.metrics import pixel_frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.rand(400, 1, 16, 16, generator=g)
    assert abs(pixel_frechet_distance(a, a)) < 1e-8
    # a constant shift c of every pixel moves only the mean term: adds c^2 per pooled pixel
    c = 0.1
    d = pixel_frechet_distance(a, a + c) - pixel_frechet_distance(a, a)
    assert abs(d - c**2 * 64) < 1e-6
    with pytest.raises(ValueError, match="multiple of size"):
        pixel_frechet_distance(torch.rand(4, 1, 12, 12), torch.rand(4, 1, 12, 12))
