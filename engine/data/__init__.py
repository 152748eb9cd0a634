"""Datasets for training: loading (IDX, CIFAR-10, image folders, .npz, the bundled subset),
normalisation, seeded splits, batching and augmentation. Pure NumPy + Pillow; no GUI code here.

Typical use::

    ds = load_dataset("fashion-mnist-mini")          # or a path; see load_dataset
    train_idx, val_idx = ds.split(0.1, seed=0)
    for x, y in ds.batches(train_idx, 64, rng=np.random.default_rng(0), augmentation=Augmentation(shift=2)):
        ...  # x: (B, H, W, C) float32, y: (B,) int64
"""

from engine.data.augment import Augmentation
from engine.data.dataset import Dataset
from engine.data.idx import FASHION_MNIST_CLASSES
from engine.data.normalization import Normalization
from engine.data.registry import DatasetInfo, known_datasets, load_dataset
from engine.errors import DataError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "Augmentation",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Normalization",
    "known_datasets",
    "load_dataset",
]
