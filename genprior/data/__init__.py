"""Datasets (MNIST, folders of images such as CelebA), splits, the shipped sample batches and the
in-memory training sets of ``genprior train`` (with their resumable sampler).

Every dataset item is one image tensor ``(C, H, W)``, float in [0, 1].
"""

from genprior.data.folder import (
    CELEBA_CROP,
    CELEBA_SPLITS,
    IMG_EXTENSIONS,
    ImageFolderDataset,
    celeba_ids,
    center_crop_box,
    load_celeba,
)
from genprior.data.mnist import MNIST_SPLITS, load_mnist
from genprior.data.paths import DATA_ENV, data_root
from genprior.data.samples import SAMPLES, load_samples, samples_path
from genprior.data.splits import Splits, split_indices
from genprior.data.tensor_dataset import ImageTensorDataset
from genprior.data.training_data import ResumableSampler, load_image_data, parse_range

__all__ = [
    "CELEBA_CROP",
    "CELEBA_SPLITS",
    "DATA_ENV",
    "IMG_EXTENSIONS",
    "MNIST_SPLITS",
    "SAMPLES",
    "ImageFolderDataset",
    "ImageTensorDataset",
    "ResumableSampler",
    "Splits",
    "celeba_ids",
    "center_crop_box",
    "data_root",
    "load_celeba",
    "load_image_data",
    "load_mnist",
    "load_samples",
    "parse_range",
    "samples_path",
    "split_indices",
]
