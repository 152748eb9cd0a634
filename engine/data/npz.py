"""NumPy ``.npz`` archives: ``x`` (N, H, W[, C]) and ``y`` (N,), optional ``x_test``/``y_test`` and
``class_names``. Read with ``allow_pickle=False``, so the file can only hold plain arrays."""

from __future__ import annotations

from pathlib import Path

from engine.data.arrays import (
    as_images,
    as_labels,
    check_class_names,
    check_label_range,
    default_class_names,
    fail,
)
from engine.data.dataset import Dataset
from engine.data.normalization import Normalization
from engine.data.splits import hold_out_test
from engine.errors import DataError, shown
from engine.npz_archive import read_npz


def load_npz(
    path: str | Path, *, test_fraction: float = 0.2, seed: int = 0, name: str | None = None
) -> Dataset:
    """Load an .npz dataset. uint8 images are kept as uint8; float images as float32 (values in [0, 1]).

    Without ``x_test`` a seeded, stratified ``test_fraction`` of ``x`` becomes the test part.
    """
    path = Path(path)
    z = read_npz(path, DataError)
    keys = set(z)
    missing = [k for k in ("x", "y") if k not in keys]
    if missing:
        raise fail(path, f"missing array {' and '.join(repr(k) for k in missing)} "
                         f"(found: {shown(', '.join(sorted(keys))) if keys else 'nothing'})")
    if ("x_test" in keys) != ("y_test" in keys):
        raise fail(path, "has only one of 'x_test' and 'y_test'")
    x, scale = as_images(z["x"], path, "images 'x'")
    y = as_labels(z["y"], path, len(x), "labels 'y'")
    if "x_test" in keys:
        x_test, _ = as_images(z["x_test"], path, "images 'x_test'")
        y_test = as_labels(z["y_test"], path, len(x_test), "labels 'y_test'")
        if x_test.dtype != x.dtype:
            x_test = x_test.astype(x.dtype)
    else:
        x_test = y_test = None
    names = None
    if "class_names" in keys:
        if z["class_names"].dtype.kind not in "US":
            raise fail(path, f"'class_names' must be an array of text, not {z['class_names'].dtype}")
        names = check_class_names(z["class_names"].reshape(-1).tolist(), path)

    if x_test is not None and x_test.shape[1:] != x.shape[1:]:
        raise fail(path, f"'x_test' images are {x_test.shape[1:]} but 'x' images are {x.shape[1:]}")
    given = [y] if y_test is None else [y, y_test]
    if names is None:
        if any(len(v) and v.min() < 0 for v in given):
            raise fail(path, "labels must be >= 0")
        names = default_class_names(*given, where=path)
    check_label_range(y, len(names), path, "labels 'y'")
    if y_test is not None:
        check_label_range(y_test, len(names), path, "labels 'y_test'")
    if x_test is None or y_test is None:
        x, y, x_test, y_test = hold_out_test(x, y, test_fraction, seed)
    return Dataset(name=name or path.stem, source=str(path), x_train=x, y_train=y, x_test=x_test,
                   y_test=y_test, class_names=names, normalization=Normalization(scale=scale))
