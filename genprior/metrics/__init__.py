"""Per-image metrics (shape ``(B,)``): MSE per pixel, PSNR, SSIM, LPIPS, measurement residual,
and their mean with a 95% confidence half-width; distribution metrics: FID, and a pixel-space
Fréchet distance.

Images are float ``(B, C, H, W)``; PSNR and SSIM take an explicit ``data_range`` (1 for the
[0, 1] convention, 2 for [-1, 1], see :func:`to_minus1_1`).
"""

from genprior.metrics.fid import (
    FID,
    fid,
    frechet_distance,
    frechet_gaussian,
    inception_features,
)
from genprior.metrics.frechet import pixel_frechet_distance
from genprior.metrics.image import mse_per_pixel, psnr, ssim, to_minus1_1
from genprior.metrics.inception import (
    FID_WEIGHTS_FILES,
    FID_WEIGHTS_URL,
    InceptionV3,
    inception_weights_path,
    load_inception,
)
from genprior.metrics.perceptual import LPIPS_NETS, backbone_weights_path, load_lpips, lpips
from genprior.metrics.residual import measurement_residual
from genprior.metrics.summary import Summary, summary
from genprior.metrics.table import MetricsTable, image_metrics

__all__ = [
    "FID",
    "FID_WEIGHTS_FILES",
    "FID_WEIGHTS_URL",
    "LPIPS_NETS",
    "InceptionV3",
    "MetricsTable",
    "Summary",
    "backbone_weights_path",
    "fid",
    "frechet_distance",
    "frechet_gaussian",
    "image_metrics",
    "inception_features",
    "inception_weights_path",
    "load_inception",
    "load_lpips",
    "lpips",
    "measurement_residual",
    "mse_per_pixel",
    "pixel_frechet_distance",
    "psnr",
    "ssim",
    "summary",
    "to_minus1_1",
]
