"""LPIPS (Zhang et al. 2018) from the ``lpips`` package, loaded offline only.

Two sets of weights are needed:

- the LPIPS linear layers, shipped inside the ``lpips`` package (``lpips/weights/v0.1/<net>.pth``);
- the torchvision ImageNet backbone, read from the torch hub cache
  ``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch/hub/checkpoints/``), e.g.
  ``alexnet-owt-7be5be79.pth``. It is never downloaded here: a missing file raises
  ``FileNotFoundError`` naming the path and the URL to fetch it from.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from genprior._checks import check_image
from genprior.metrics.image import check_pair

__all__ = ["LPIPS_NETS", "backbone_weights_path", "load_lpips", "lpips"]

#: backbone -> (torchvision weights URL, smallest image side the network accepts)
LPIPS_NETS = {
    "alex": ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", 31),
    "vgg": ("https://download.pytorch.org/models/vgg16-397923af.pth", 16),
    "squeeze": ("https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", 17),
}

_CACHE: dict[tuple[str, str], nn.Module] = {}


def _check_net(net: str) -> None:
    if net not in LPIPS_NETS:
        raise ValueError(f"net must be one of {sorted(LPIPS_NETS)}, got {net!r}")


def backbone_weights_path(net: str = "alex") -> Path:
    """Where the torchvision backbone weights of ``net`` must be: the torch hub cache.

    Example:
        >>> backbone_weights_path("alex").name
        'alexnet-owt-7be5be79.pth'
    """
    _check_net(net)
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_NETS[net][0].rsplit("/", 1)[-1]


def load_lpips(net: str = "alex", *, device: torch.device | str = "cpu") -> nn.Module:
    """Build an ``lpips.LPIPS`` model from local files only (cached per ``net`` and device).

    The backbone is created randomly initialised and then loaded from
    :func:`backbone_weights_path` with ``torch.load(weights_only=True)``, which gives the same
    network as ``lpips.LPIPS(net=net)`` without any chance of a download.

    Args:
        net: ``"alex"`` (the LPIPS default), ``"vgg"`` or ``"squeeze"``.
        device: where to put the model.

    Returns:
        The model in eval mode with frozen parameters.

    Raises:
        FileNotFoundError: the backbone weights are not in the torch hub cache (names the file
            and the URL), or the ``lpips`` package lacks its linear-layer weights.
    """
    _check_net(net)
    key = (net, str(torch.device(device)))
    if key in _CACHE:
        return _CACHE[key]
    import lpips as lpips_pkg

    path = backbone_weights_path(net)
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS ({net}) needs the torchvision ImageNet backbone weights file {path}, which is "
            f"missing; it is not downloaded automatically. Fetch {LPIPS_NETS[net][0]} and put "
            f"it there (or point $TORCH_HOME at a folder whose hub/checkpoints/ holds it)."
        )
    lin_path = Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    if not lin_path.is_file():
        raise FileNotFoundError(f"LPIPS linear-layer weights missing from the lpips package: "
                                f"{lin_path}")
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" warnings
        warnings.simplefilter("ignore")
        model = lpips_pkg.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # lpips splits torchvision's ``features`` into slices: "slice2.3.weight" is "features.3.weight"
    mapped = {}
    for k in model.net.state_dict():
        src = "features." + re.sub(r"^slice\d+\.", "", k)
        if src not in state:
            raise ValueError(f"{path} is not a torchvision {net} checkpoint: no key {src!r}")
        mapped[k] = state[src]
    model.net.load_state_dict(mapped)
    model = model.eval().requires_grad_(False).to(device)
    _CACHE[key] = model
    return model


@torch.no_grad()
def lpips(
    x_hat: Tensor, x: Tensor, *, net: str = "alex", model: nn.Module | None = None
) -> Tensor:
    """Learned perceptual image patch similarity (lower is closer), per image.

    Grayscale images are repeated to three channels.

    Args:
        x_hat: reconstructions in [0, 1].
        x: ground truth in [0, 1].
        net: backbone for :func:`load_lpips` when ``model`` is not given.
        model: an ``lpips.LPIPS`` instance to use instead (e.g. ``pnet_rand=True`` in tests).

    Returns:
        One value per image, 0 for identical images.

    Shape:
        - x_hat, x: ``(B, C, H, W)``, ``C`` in {1, 3}; ``H, W >= 31`` for ``"alex"``
        - output: ``(B,)``

    Raises:
        FileNotFoundError: no local backbone weights (see :func:`load_lpips`).
    """
    check_pair(x_hat, x)
    check_image(x_hat, "x_hat")
    check_image(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"lpips needs 1 or 3 channels, got {x.shape[1]}")
    net_name = getattr(model, "pnet_type", net) if model is not None else net
    min_side = LPIPS_NETS.get(net_name, ("", 1))[1]
    if min(x.shape[-2:]) < min_side:
        raise ValueError(f"lpips with net={net_name!r} needs images of at least {min_side} x "
                         f"{min_side} pixels, got {tuple(x.shape[-2:])}; upsample them first")
    if model is None:
        model = load_lpips(net, device=x.device)
    if x.shape[1] == 1:
        x_hat, x = x_hat.expand(-1, 3, -1, -1), x.expand(-1, 3, -1, -1)
    return model(x_hat, x, normalize=True).reshape(x.shape[0], -1).mean(dim=1)
