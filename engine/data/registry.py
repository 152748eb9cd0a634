"""One entry point, ``load_dataset(NAME_OR_PATH)``, used alike by the studio and the CLI.

Names: ``fashion-mnist-mini`` (bundled in assets) and ``fashion-mnist`` (Debian's package
``dataset-fashion-mnist``). Anything else is a path, and the format is chosen by what it holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.arrays import fail
from engine.data.cifar import NESTED_FOLDER, load_cifar, looks_like_cifar
from engine.data.convert import convert_images, parse_color_mode, parse_image_size
from engine.data.dataset import Dataset
from engine.data.idx import find_idx_groups, is_idx_name, load_idx
from engine.data.image_folder import Cancel, Progress, has_class_folders, load_image_folder
from engine.data.npz import load_npz
from engine.errors import DataError, LoadCancelled
from engine.resources import asset_path

MINI_NAME = "fashion-mnist-mini"
FULL_NAME = "fashion-mnist"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FULL_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
_FORMATS = ("IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)",
            "a CIFAR-10 batches folder (data_batch_1.., test_batch, batches.meta)",
            "an image folder with one sub-folder per class",
            "an .npz file with arrays x and y")
# The bundled files are stored sorted by class (it compresses ~5% better); this seed fixes the
# shuffle applied on loading, so code that takes the first rows still sees every class.
_MINI_SHUFFLE_SEED = 20170825


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset that can be loaded by name."""

    name: str
    description: str
    available: bool
    location: str


def mini_dataset_dir() -> Path:
    return asset_path("datasets", MINI_NAME)


def _full_present(folder: Path) -> bool:
    return all((folder / f).is_file() or (folder / (f + ".gz")).is_file() for f in _FULL_FILES)


def known_datasets() -> list[DatasetInfo]:
    """The named datasets, bundled first; ``available`` says whether loading by name will work."""
    mini = mini_dataset_dir()
    return [
        DatasetInfo(MINI_NAME, "Fashion-MNIST subset bundled with the app: 12,000 training and 2,000 test "
                               "28x28 grayscale images, 10 balanced classes", _full_present(mini), str(mini)),
        DatasetInfo(FULL_NAME, "Fashion-MNIST, 60,000 training and 10,000 test 28x28 grayscale images, "
                               "10 classes (Debian package dataset-fashion-mnist)",
                    _full_present(DEBIAN_FASHION_MNIST), str(DEBIAN_FASHION_MNIST)),
    ]


def _shuffle_parts(ds: Dataset, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(ds.y_train))
    te = rng.permutation(len(ds.y_test))
    return Dataset(name=ds.name, source=ds.source, x_train=ds.x_train[tr], y_train=ds.y_train[tr],
                   x_test=ds.x_test[te], y_test=ds.y_test[te], class_names=ds.class_names,
                   normalization=ds.normalization)


def _load_named(name: str) -> Dataset:
    if name == MINI_NAME:
        folder = mini_dataset_dir()
        if not _full_present(folder):
            raise fail(folder, "the bundled Fashion-MNIST subset is missing from this installation "
                               "(rebuild it with scripts/build_mini_dataset.py)")
        ds = load_idx(folder, name=MINI_NAME)
        ds = _shuffle_parts(ds, _MINI_SHUFFLE_SEED)
        ds.source = f"{MINI_NAME} (bundled)"
        return ds
    if not _full_present(DEBIAN_FASHION_MNIST):
        raise DataError(f"{FULL_NAME}: not found in {DEBIAN_FASHION_MNIST}; install the Debian package "
                        "dataset-fashion-mnist, or pass the folder holding the IDX files")
    return load_idx(DEBIAN_FASHION_MNIST, name=FULL_NAME)


def _visible_entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def _load_path(path: Path, image_size: tuple[int, int] | None, color_mode: str | None,
               test_fraction: float, seed: int, **folder_options: Any) -> tuple[Dataset, bool]:
    """Load by format; the flag says whether size/colour were already handled by the loader."""
    if not path.exists():
        hint = "" if len(path.parts) > 1 else f" (known dataset names: {MINI_NAME}, {FULL_NAME})"
        raise fail(path, "no such file or folder" + hint)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path, test_fraction=test_fraction, seed=seed), False
        if is_idx_name(path.name):
            return load_idx(path, test_fraction=test_fraction, seed=seed), False
        raise fail(path, "unknown dataset file; expected " + " or ".join(_FORMATS))
    try:
        entries = _visible_entries(path)
    except OSError as exc:
        raise fail(path, f"cannot list the folder ({exc.strerror or exc})") from None
    if not entries:
        raise fail(path, "folder is empty")
    if looks_like_cifar(path) or (path / NESTED_FOLDER).is_dir():
        return load_cifar(path, test_fraction=test_fraction, seed=seed), False
    if find_idx_groups(path):
        return load_idx(path, test_fraction=test_fraction, seed=seed), False
    if has_class_folders(path):
        ds = load_image_folder(path, image_size=image_size, color_mode=color_mode,
                               test_fraction=test_fraction, seed=seed, **folder_options)
        return ds, True
    raise fail(path, "no dataset found here; looked for " + "; ".join(_FORMATS))


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache: bool | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Dataset:
    """Load a dataset by name (see :func:`known_datasets`) or by path.

    ``image_size`` (height, width) and ``color_mode`` ("grayscale" / "rgb") convert images of any
    format; ``test_fraction`` and ``seed`` make the test part of sources that have none. A known name
    wins over a same-named folder in the working directory unless written as a path (``./name``).
    Raises DataError, naming the file and the problem, for anything that cannot be loaded.

    Image folders take ``cache`` (see ``load_image_folder``: large folders are decoded once into a
    memory-mapped cache), ``progress(stage, done, total)`` and ``cancel()`` (True stops the load with
    LoadCancelled); other formats report one "loading" step when done.
    """
    size = parse_image_size(image_size)
    mode = parse_color_mode(color_mode)
    try:
        fraction = float(test_fraction)
    except (TypeError, ValueError):
        raise DataError(f"test fraction must be a number, got {test_fraction!r}") from None
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"test fraction must be in [0, 1), got {test_fraction!r}")

    text = os.fspath(name_or_path)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text.strip():
        raise DataError("no dataset given (expected a name such as fashion-mnist-mini, or a path)")
    key = text.strip().lower()
    done = False
    if cancel is not None and cancel():
        raise LoadCancelled("loading the dataset was cancelled")
    if not isinstance(name_or_path, os.PathLike) and key in (MINI_NAME, FULL_NAME):
        ds = _load_named(key)
    else:
        if "\x00" in text:  # no file system takes it; Python would raise ValueError on the lookup
            raise DataError(f"{text!r}: not a usable path (it holds a NUL character)")
        ds, done = _load_path(Path(text).expanduser(), size, mode, fraction, int(seed), cache=cache,
                              progress=progress, cancel=cancel)
    if progress is not None and not done:
        progress("loading", 1, 1)
    if not done and (size is not None or mode is not None):
        x_train = convert_images(ds.x_train, size, mode, ds.source)
        x_test = convert_images(ds.x_test, size, mode, ds.source)
        if x_train is not ds.x_train or x_test is not ds.x_test:
            ds = Dataset(name=ds.name, source=ds.source, x_train=x_train, y_train=ds.y_train, x_test=x_test,
                         y_test=ds.y_test, class_names=ds.class_names, normalization=ds.normalization)
    return ds
