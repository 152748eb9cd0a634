"""How a run names its dataset: enough to load the same images again, and a fingerprint that
tells whether what loads later is really the same data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from engine.data import Dataset, load_dataset
from engine.errors import RunError


def fingerprint(dataset: Dataset) -> str:
    """A short hash of the images, labels and class names of both parts."""
    h = hashlib.blake2b(digest_size=16)
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        h.update(str((array.shape, array.dtype.str)).encode())
        h.update(np.ascontiguousarray(array).data)
    h.update("\n".join(dataset.class_names).encode())
    return h.hexdigest()


def _spec(spec: str | os.PathLike) -> str:
    """A name stays a name; a path becomes absolute, so the run can be resumed from anywhere."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.exists() and (os.sep in text or "/" in text or text.startswith(".")):
        return str(path.resolve())
    return text


def dataset_reference(dataset: Dataset, spec: str | os.PathLike | None, *, image_size: tuple[int, int] | None = None,
                      color: str | None = None, limit: int | None = None, limit_seed: int = 0) -> dict[str, Any]:
    """The record of ``dataset`` as loaded from ``spec`` (a name or path for load_dataset; None for
    data that cannot be loaded again, e.g. arrays made in a program), optionally cut down to
    ``limit`` training images by ``Dataset.subset(limit, test size, seed=limit_seed)``."""
    return {
        "spec": None if spec is None else _spec(spec),
        "name": dataset.name,
        "image_size": list(image_size) if image_size else None,
        "color": color,
        "limit": None if not limit else {"train": int(limit), "seed": int(limit_seed)},
        "train_size": int(len(dataset.y_train)),
        "test_size": int(len(dataset.y_test)),
        "input_shape": list(dataset.input_shape),
        "class_names": list(dataset.class_names),
        "fingerprint": fingerprint(dataset),
    }


def load_referenced_dataset(ref: dict[str, Any]) -> Dataset:
    """Load the dataset a run was trained on; RunError when it cannot be found or has changed."""
    spec = ref.get("spec")
    if not spec:
        raise RunError(f"the run's dataset {ref.get('name')!r} was given as arrays, not a name or path; "
                       "it cannot be loaded again")
    size = tuple(ref["image_size"]) if ref.get("image_size") else None
    dataset = load_dataset(spec, image_size=size, color_mode=ref.get("color"))
    limit = ref.get("limit")
    if limit:
        n = min(int(limit["train"]), len(dataset.y_train))
        dataset = dataset.subset(n, len(dataset.y_test), seed=int(limit.get("seed", 0)))
    check_same_dataset(ref, dataset)
    return dataset


def check_same_dataset(ref: dict[str, Any], dataset: Dataset) -> None:
    expected = ref.get("fingerprint")
    if expected and fingerprint(dataset) != expected:
        raise RunError(f"the dataset {ref.get('spec') or ref.get('name')!r} is not the one the run was trained on "
                       f"(it has {len(dataset.y_train)} training and {len(dataset.y_test)} test images now, "
                       f"{ref.get('train_size')} and {ref.get('test_size')} then, or the images differ)")
