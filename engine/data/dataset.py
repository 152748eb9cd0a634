"""The in-memory dataset every loader returns, shared by the trainer, the CLI and the studio."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.data.arrays import (
    as_images,
    as_labels,
    check_class_names,
    check_label_range,
    default_class_names,
    empty_like_part,
    fail,
)
from engine.data.augment import Augmentation
from engine.data.normalization import Normalization
from engine.data.splits import balanced_choice, stratified_split
from engine.errors import DataError

# Target elements per chunk when a pass over the raw data needs floats (about 32 MB of float64).
_CHUNK_ELEMENTS = 4_000_000


def _frozen(a: np.ndarray) -> np.ndarray:
    # A read-only view: datasets derived from this one share the same storage, so nobody may write it.
    v = a.view()
    v.flags.writeable = False
    return v


@dataclass(eq=False)
class Dataset:
    """Train and test parts held as raw storage, normalised per batch on the way out.

    ``x_train``/``x_test``: (N, H, W, C) uint8 (or float32), C present even if 1.
    ``y_train``/``y_test``: (N,) int64 in ``0 .. len(class_names) - 1``.
    Keeping raw uint8 and converting one batch at a time is what keeps the full Fashion-MNIST at
    ~55 MB instead of ~220 MB of float32 (and never twice).
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    normalization: Normalization = field(default_factory=Normalization)

    def __post_init__(self) -> None:
        where = self.source or self.name
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype not in (np.uint8, np.float32):
                raise fail(where, f"x_{part} must be a (N, H, W, C) uint8 or float32 array "
                                  "(use Dataset.from_arrays to convert)")
            y = as_labels(getattr(self, f"y_{part}"), where, len(x), what=f"{part} labels")
            setattr(self, f"x_{part}", _frozen(x))
            setattr(self, f"y_{part}", _frozen(y))
        if len(self.x_train) == 0:
            raise fail(where, "the training part has no images")
        if self.x_test.dtype != self.x_train.dtype:
            raise fail(where, f"test images are {self.x_test.dtype} but training images are {self.x_train.dtype}")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise fail(where, f"test images are {self.x_test.shape[1:]} but training images are "
                              f"{self.x_train.shape[1:]} (H, W, C)")
        self.class_names = check_class_names(self.class_names, where)
        check_label_range(self.y_train, len(self.class_names), where, "train labels")
        check_label_range(self.y_test, len(self.class_names), where, "test labels")
        if not isinstance(self.normalization, Normalization):
            raise fail(where, "normalization must be a Normalization")
        if self.normalization.mean is not None and len(self.normalization.mean) != self.x_train.shape[3]:
            raise fail(where, f"normalization has {len(self.normalization.mean)} channel(s), "
                              f"images have {self.x_train.shape[3]}")

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_arrays(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        class_names: list[str] | None = None,
        name: str = "arrays",
        source: str = "",
        normalization: Normalization | None = None,
    ) -> Dataset:
        """Build from arrays: x (N, H, W) or (N, H, W, C), y (N,). Validates like the loaders (DataError).

        uint8 images get ``scale = 1/255``; float images are kept as float32 with ``scale = 1`` (values
        in [0, 1]) or 1/255 when they look like 0..255. Without ``x_test`` the test part is empty.
        Class names default to ``"0" .. str(max label)``.
        """
        where = source or name
        xt, scale = as_images(x_train, where, "training images")
        yt = as_labels(y_train, where, len(xt), "training labels")
        if (x_test is None) != (y_test is None):
            raise fail(where, "x_test and y_test must be given together")
        if x_test is not None:
            xs, _ = as_images(x_test, where, "test images")
            if xs.dtype != xt.dtype:
                xs = xs.astype(xt.dtype)
            ys = as_labels(y_test, where, len(xs), "test labels")
        else:
            xs, ys = empty_like_part(xt)
        names = list(class_names) if class_names is not None else default_class_names(yt, ys)
        return cls(name=name, source=source, x_train=xt, y_train=yt, x_test=xs, y_test=ys,
                   class_names=names, normalization=normalization or Normalization(scale=scale))

    # ----------------------------------------------------------------------------------- shape
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        h, w, c = self.x_train.shape[1:]
        return int(h), int(w), int(c)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
                f"shape={self.input_shape}, classes={self.num_classes})")

    def _part(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part == "train":
            return self.x_train, self.y_train
        if part == "test":
            return self.x_test, self.y_test
        raise DataError(f"{self.name}: part must be 'train' or 'test', got {part!r}")

    def _check_indices(self, indices: np.ndarray | None, n: int, part: str) -> np.ndarray:
        if indices is None:
            return np.arange(n, dtype=np.int64)
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise DataError(f"{self.name}: indices must be a 1-D integer array, got shape {idx.shape} "
                            f"dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"{self.name}: indices must lie in 0..{n - 1} for the {part} part")
        return idx

    # ----------------------------------------------------------------------------------- derived sets
    def standardized(self) -> Dataset:
        """Same storage, with per-channel mean/std measured on ``x_train`` (after scaling).

        Runs in chunks with float64 sums, so no float copy of the whole training part is ever made.
        """
        x = self.x_train
        c = x.shape[3]
        rows = max(1, _CHUNK_ELEMENTS // max(1, x[0].size))
        total = np.zeros(c, dtype=np.float64)
        total_sq = np.zeros(c, dtype=np.float64)
        for start in range(0, len(x), rows):
            chunk = x[start:start + rows].reshape(-1, c).astype(np.float64)
            total += chunk.sum(axis=0)
            total_sq += np.einsum("ij,ij->j", chunk, chunk)
        count = x.shape[0] * x.shape[1] * x.shape[2]
        scale = self.normalization.scale
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        # A constant channel would give std 0; a floor keeps the division finite.
        std = np.maximum(np.sqrt(var) * scale, 1e-6)
        norm = Normalization(scale=scale, mean=tuple(float(m) for m in mean * scale),
                             std=tuple(float(s) for s in std))
        return dataclasses.replace(self, normalization=norm)

    def centered_as(self, preprocessing: dict[str, Any] | None) -> Dataset:
        """Same storage, centred with the mean and std of ``preprocessing`` (the record of the inputs
        some weights were trained on; both measured after scaling), this dataset's own scale kept.
        Itself when the record centres nothing or is for another number of channels."""
        mean = (preprocessing or {}).get("mean")
        std = (preprocessing or {}).get("std")
        if mean is None or std is None or len(mean) != self.x_train.shape[3]:
            return self
        norm = Normalization(scale=self.normalization.scale, mean=tuple(mean), std=tuple(std))
        return dataclasses.replace(self, normalization=norm)

    def subset(self, n_train: int, n_test: int, seed: int = 0) -> Dataset:
        """At most ``n_train``/``n_test`` images, class-balanced where the class sizes allow, seeded.

        The rows keep their original order; the arrays are copies (small by design).
        """
        rng = np.random.default_rng(seed)
        tr = balanced_choice(self.y_train, int(n_train), rng)
        if len(tr) == 0:
            raise DataError(f"{self.name}: a subset needs at least one training image")
        te = balanced_choice(self.y_test, int(n_test), rng)
        return dataclasses.replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                                   x_test=self.x_test[te], y_test=self.y_test[te])

    # ----------------------------------------------------------------------------------- iteration
    def split(self, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train_indices, val_indices) into ``x_train``: sorted int64, stratified by class, seeded.

        ``round(validation_fraction * N)`` rows go to validation; 0 gives an empty validation part.
        """
        try:
            frac = float(validation_fraction)
        except (TypeError, ValueError):
            raise DataError(f"validation fraction must be a number, got {validation_fraction!r}") from None
        if not 0.0 <= frac < 1.0:
            raise DataError(f"validation fraction must be in [0, 1), got {validation_fraction!r}")
        train, val = stratified_split(self.y_train, frac, np.random.default_rng(seed))
        if len(train) == 0:
            raise DataError(f"{self.name}: validation fraction {frac} leaves no training images")
        return train, val

    def batches(
        self,
        indices: np.ndarray | None,
        batch_size: int,
        *,
        rng: np.random.Generator | None = None,
        augmentation: Augmentation | None = None,
        part: str = "train",
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)``: x (B, H, W, C) float32 normalized C-contiguous, y (B,) int64.

        ``indices`` select rows of the part (None = all). With ``rng`` the order is shuffled by it;
        augmentation draws from ``rng`` too (or a generator seeded 0 when there is none). The last
        batch may be smaller.
        """
        x_all, y_all = self._part(part)
        idx = self._check_indices(indices, len(x_all), part)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"batch size must be a whole number >= 1, got {batch_size!r}")
        if rng is not None:
            idx = idx[rng.permutation(len(idx))]
        augment = augmentation if augmentation is not None and augmentation.active else None
        aug_rng = rng if rng is not None else np.random.default_rng(0)
        norm = self.normalization
        for start in range(0, len(idx), int(batch_size)):
            rows = idx[start:start + int(batch_size)]
            xb = norm.scaled(x_all[rows])
            if augment is not None:
                xb = augment(xb, aug_rng)  # on [0, 1] values, so its zero fill is black, not the mean
            yield norm.center_inplace(xb), y_all[rows]

    def normalized(self, part: str, indices: np.ndarray | None = None) -> np.ndarray:
        """Float32 normalized copy of a part, (N, H, W, C), or of the given rows only."""
        x_all, _ = self._part(part)
        if indices is None:
            return self.normalization.apply(x_all)
        return self.normalization.apply(x_all[self._check_indices(indices, len(x_all), part)])
