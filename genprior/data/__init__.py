"""Datasets (MNIST, folders of images such as CelebA), splits and the shipped sample batches.

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

__all__ = [
    "CELEBA_CROP",
    "CELEBA_SPLITS",
    "DATA_ENV",
    "IMG_EXTENSIONS",
    "MNIST_SPLITS",
    "SAMPLES",
    "ImageFolderDataset",
    "ImageTensorDataset",
    "Splits",
    "celeba_ids",
    "center_crop_box",
    "data_root",
    "load_celeba",
    "load_mnist",
    "load_samples",
    "samples_path",
    "split_indices",
]
