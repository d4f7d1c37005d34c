"""``genprior reconstruct`` for natural images: ``--method tv``, ``--init encoder --init-from tv``
and ``--back-projection`` for csgm / sparse-gen, each against the Python API on a measured PNG."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from genprior._io import load_images_npz, load_measurements
from genprior._random import make_generator
from genprior.cli import build_parser, main
from genprior.cli.reconstruct import _solve_shard
from genprior.operators import load_operator
from genprior.priors import load_prior
from genprior.priors.spatial_vae import SpatialVAE
from genprior.reconstruct import back_project, csgm, fit_prior, sparse_gen, tv
from genprior.training.distributed import DistInfo

TV_FLAGS = ["--tv-lambda", "0.02", "--tv-lambda-start", "0.2", "--tv-steps", "15"]
TV_KW = {"lam": 0.02, "lam_start": 0.2, "steps": 15}


def _smooth_png(path, h: int = 40, w: int = 44, shift: int = 0) -> None:
    """A grey image of smooth shapes: a gradient, a disc and a bar."""
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    a = 0.3 + 0.3 * c / w
    a += 0.35 * (((r - 18 - shift) ** 2 + (c - 15) ** 2) < 81)
    a -= 0.2 * ((r > 26) & (r < 33) & (c > 20 + shift))
    Image.fromarray(np.clip(255 * a, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    """Two 40 x 44 PNGs measured by block CS (8 x 8 blocks, 40 orthonormal rows), and a tiny
    SpatialVAE saved as a prior folder."""
    tmp = tmp_path_factory.mktemp("natural")
    (tmp / "imgs").mkdir()
    _smooth_png(tmp / "imgs" / "a.png")
    _smooth_png(tmp / "imgs" / "b.png", shift=4)
    assert main(["measure", "--images", str(tmp / "imgs"), "--operator",
                 "block_cs:8:40:orthonormal", "--out", str(tmp / "m")]) == 0
    with torch.random.fork_rng():
        torch.manual_seed(0)  # test-level: the initial weights only
        SpatialVAE(img_shape=(1, 16, 16), latent_channels=2, base_channels=4).save_pretrained(
            tmp / "prior")
    return tmp


def _inputs(tmp):
    meas = load_measurements(tmp / "m" / "y.npz")
    A = load_operator(tmp / "m" / "operator.safetensors")
    return meas.y, A, fit_prior(load_prior(tmp / "prior"), A.img_size)


def _base(tmp, out: str) -> list[str]:
    return ["reconstruct", "--measurements", str(tmp / "m" / "y.npz"), "--operator",
            str(tmp / "m" / "operator.safetensors"), "--out", str(tmp / out)]


def _column(path, name: str) -> torch.Tensor:
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["image"].isdigit()]
    return torch.tensor([float(r[name]) for r in rows], dtype=torch.float64)


def test_method_tv_equals_the_python_tv(natural):
    y, A, _ = _inputs(natural)
    assert main([*_base(natural, "tv"), "--method", "tv", *TV_FLAGS]) == 0
    x_hat = load_images_npz(natural / "tv" / "x_hat.npz")
    ref = tv(y, A, **TV_KW, generator=make_generator(0))
    assert x_hat.shape == (2, 1, 40, 44)
    assert torch.equal(x_hat, ref.x_hat)
    torch.testing.assert_close(_column(natural / "tv" / "metrics.csv", "measurement_error"),
                               ref.measurement_error.double(), rtol=1e-5, atol=1e-12)
    # the flags reach tv: another final weight, another estimate
    assert main([*_base(natural, "tv2"), "--method", "tv", *TV_FLAGS[:-2], "--tv-steps",
                 "3"]) == 0
    assert not torch.equal(load_images_npz(natural / "tv2" / "x_hat.npz"), x_hat)


def test_csgm_from_the_tv_start_with_exact_back_projection(natural):
    y, A, prior = _inputs(natural)
    args = ["--method", "csgm", "--prior", str(natural / "prior"), "--init", "encoder",
            "--init-from", "tv", *TV_FLAGS, "--restarts", "1", "--steps", "3",
            "--back-projection", "exact"]
    assert main([*_base(natural, "vae"), *args]) == 0
    x_hat = load_images_npz(natural / "vae" / "x_hat.npz")
    x_tv = tv(y, A, **TV_KW, generator=make_generator(0)).x_hat
    res = csgm(y, A, prior, init="encoder", x_init=x_tv, restarts=1, steps=3,
               generator=make_generator(0))
    bp = back_project(res.x_hat, y, A)
    torch.testing.assert_close(x_hat, bp.clamp(0, 1))
    # consistent before clamping: metrics.csv's measurement_error is that of the projected image
    m = y[0].numel()
    err = _column(natural / "vae" / "metrics.csv", "measurement_error")
    rel = (err * m).sqrt() / y.flatten(1).norm(dim=1).double()
    assert float(rel.max()) <= 1e-5
    assert float((A.A(bp) - y).flatten(1).norm(dim=1).div(y.flatten(1).norm(dim=1)).max()) <= 1e-5
    # the TV start is used: from the default pinv start the same run ends elsewhere
    pinv_start = csgm(y, A, prior, init="encoder", restarts=1, steps=3,
                      generator=make_generator(0))
    assert not torch.allclose(back_project(pinv_start.x_hat, y, A).clamp(0, 1), x_hat)


def test_sparse_gen_takes_back_projection_too(natural):
    y, A, prior = _inputs(natural)
    assert main([*_base(natural, "sg"), "--method", "sparse-gen", "--prior",
                 str(natural / "prior"), "--restarts", "1", "--steps", "2",
                 "--back-projection", "exact"]) == 0
    res = sparse_gen(y, A, prior, lam_nu=0.1, basis="pixel", restarts=1, steps=2,
                     generator=make_generator(0))
    torch.testing.assert_close(load_images_npz(natural / "sg" / "x_hat.npz"),
                               back_project(res.x_hat, y, A).clamp(0, 1))
    assert float(_column(natural / "sg" / "metrics.csv", "measurement_error").max()) < 1e-10


def test_without_back_projection_csgm_is_unchanged(natural):
    y, A, prior = _inputs(natural)
    args = ["--method", "csgm", "--prior", str(natural / "prior"), "--init", "encoder",
            "--restarts", "2", "--steps", "3"]
    assert main([*_base(natural, "plain"), *args]) == 0
    assert main([*_base(natural, "pinv"), *args, "--init-from", "pinv",
                 "--back-projection", "none"]) == 0
    ref = csgm(y, A, prior, init="encoder", restarts=2, steps=3, generator=make_generator(0))
    for out in ("plain", "pinv"):
        assert torch.equal(load_images_npz(natural / out / "x_hat.npz"), ref.x_hat.clamp(0, 1))
        torch.testing.assert_close(_column(natural / out / "metrics.csv", "measurement_error"),
                                   ref.measurement_error.double(), rtol=1e-5, atol=1e-12)


def test_tv_start_on_shards_equals_one_process(natural):
    """What two torchrun ranks compute (each its own image's TV start) equals one process."""
    y, A, prior = _inputs(natural)
    args = build_parser().parse_args([
        *_base(natural, "unused"), "--method", "csgm", "--prior", str(natural / "prior"),
        "--init", "encoder", "--init-from", "tv", *TV_FLAGS, "--restarts", "2", "--steps", "2",
        "--back-projection", "exact"])
    cpu = torch.device("cpu")
    one, err_one = _solve_shard(args, y, A, prior, DistInfo(0, 1, 0, cpu), cpu)
    shards = [_solve_shard(args, y, A, prior, DistInfo(r, 2, r, cpu), cpu) for r in (0, 1)]
    torch.testing.assert_close(torch.cat([s[0] for s in shards]), one, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat([s[1] for s in shards]), err_one, atol=1e-8, rtol=0)


def test_flag_errors_exit_2_with_one_line(natural, capsys):
    prior = ["--prior", str(natural / "prior")]
    cases = [
        (["--method", "csgm", *prior, "--init-from", "tv"],
         "--init-from tv chooses the image whose encoder mean starts --init encoder"),
        (["--method", "tv", "--back-projection", "exact"],
         "--back-projection applies to --method csgm, sparse-gen, adaptive, not tv"),
        (["--method", "tv", "--tv-lambda", "0"], "--tv-lambda must be > 0, got 0.0"),
        (["--method", "csgm", *prior, "--init", "encoder", "--init-from", "tv", "--tv-steps",
          "0"], "--tv-steps must be an int >= 1, got 0"),
        (["--method", "tv", "--tv-lambda-start", "0.001"],
         "--tv-lambda-start must be >= --tv-lambda = 0.01"),
        (["--method", "csgm", *prior, "--back-projection", "regularized"],
         "--back-projection regularized uses eps = the measurements' noise variance"),
    ]
    capsys.readouterr()
    for i, (flags, message) in enumerate(cases):
        assert main([*_base(natural, f"bad{i}"), *flags]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (natural / f"bad{i}").exists()
