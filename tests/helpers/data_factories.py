"""Small dataset files in every supported format, written into a test's temporary folder."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def images(n: int, h: int = 8, w: int = 8, c: int | None = None, seed: int = 0) -> np.ndarray:
    """Random uint8 images (n, h, w) or (n, h, w, c)."""
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def labels(n: int, num_classes: int) -> np.ndarray:
    """Every class in turn: 0, 1, .., k-1, 0, 1, ..."""
    return (np.arange(n) % num_classes).astype(np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True, magic: int | None = None) -> Path:
    data = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_folder(
    folder: Path,
    *,
    n_train: int = 30,
    n_test: int = 10,
    num_classes: int = 10,
    h: int = 8,
    w: int = 8,
    gz: bool = True,
    prefix: str = "",
    test: bool = True,
) -> Path:
    """An MNIST-style folder: {prefix}train-images-idx3-ubyte[.gz] etc."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    parts = [("train", n_train, 1)] + ([("t10k", n_test, 2)] if test else [])
    for part, n, seed in parts:
        write_idx(folder / f"{prefix}{part}-images-idx3-ubyte{ext}", images(n, h, w, seed=seed), gz=gz)
        write_idx(folder / f"{prefix}{part}-labels-idx1-ubyte{ext}", labels(n, num_classes), gz=gz)
    return folder


def write_cifar_batch(path: Path, x: np.ndarray, y: np.ndarray, *, str_keys: bool = False) -> Path:
    """x (N, 32, 32, 3) uint8 -> a pickled batch with data (N, 3072) as R, G, B planes."""
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1)
    ys = [int(v) for v in y]
    d = {"data": data, "labels": ys} if str_keys else {b"data": data, b"labels": ys}
    path.write_bytes(pickle.dumps(d, protocol=2))
    return path


def make_cifar_folder(
    folder: Path,
    *,
    per_batch: int = 6,
    n_batches: int = 2,
    n_test: int = 5,
    class_names: tuple[str, ...] = ("airplane", "automobile", "bird"),
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    k = len(class_names)
    for b in range(1, n_batches + 1):
        x = images(per_batch, 32, 32, 3, seed=b)
        write_cifar_batch(folder / f"data_batch_{b}", x, labels(per_batch, k))
    if n_test:
        write_cifar_batch(folder / "test_batch", images(n_test, 32, 32, 3, seed=99), labels(n_test, k))
    meta = {b"label_names": [n.encode() for n in class_names], b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def make_image_folder(
    folder: Path,
    classes: tuple[str, ...] = ("cat", "dog"),
    per_class: int = 3,
    *,
    size: tuple[int, int] = (10, 8),
    mode: str = "L",
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """folder/<class>/<i>.<fmt>, images of ``size`` (width, height) in Pillow ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (h, w) if mode == "L" else (h, w, 3)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(folder / name / f"{i}.{fmt}")
    return folder


def write_stripes_npz(path: Path, n_train: int = 96, n_test: int = 24) -> Path:
    """The three-class stripes images (engine_factories.stripes_dataset) as a one-channel dataset .npz."""
    from tests.helpers.engine_factories import stripes_dataset

    data = stripes_dataset(n_train, n_test)
    np.savez(path, x=data.x_train[..., 0], y=data.y_train, x_test=data.x_test[..., 0], y_test=data.y_test,
             class_names=np.array(data.class_names))
    return path
