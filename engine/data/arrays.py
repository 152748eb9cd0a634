"""Checks and coercions shared by every loader, so all formats obey the same storage rules.

Storage rules: images are ``(N, H, W, C)`` with C present even if 1, ``uint8`` (0..255) or ``float32``;
labels are ``(N,)`` ``int64`` in ``0 .. num_classes - 1``. Every message starts with the file it is about.
"""

from __future__ import annotations

import numpy as np

from engine.errors import DataError, shown


def fail(where: object, problem: str) -> DataError:
    """The one message format: ``"<file or folder>: <what is wrong>"`` (returned so callers ``raise`` it)."""
    return DataError(f"{where}: {problem}")


def as_images(x: object, where: object, what: str = "images") -> tuple[np.ndarray, float]:
    """Coerce user arrays to storage form and pick the matching normalisation scale.

    ``x``: (N, H, W) or (N, H, W, C), any real dtype. Returns ``(x4, scale)`` where ``x4`` is
    (N, H, W, C) uint8 or float32 (a view, no copy, when it already is) and ``scale`` maps it to [0, 1].
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]  # a view: grayscale stacks gain their channel axis for free
    if x.ndim != 4:
        raise fail(where, f"{what} must have shape (N, H, W) or (N, H, W, C), got {x.shape}")
    if x.shape[1] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise fail(where, f"{what} have an empty dimension: shape {x.shape}")
    if x.dtype == np.uint8:
        return x, 1.0 / 255.0
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255), 1.0 / 255.0
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 255:
            raise fail(where, f"integer {what} must lie in 0..255, found values {lo}..{hi} "
                              "(save floats in [0, 1] instead)")
        return x.astype(np.uint8), 1.0 / 255.0
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        first = first_nonfinite_sample(x)
        if first is not None:
            raise fail(where, f"{what} contain NaN or infinite values (first in sample {first})")
        hi = float(x.max()) if x.size else 0.0
        # Floats are expected in [0, 1]; a maximum above 1.5 (up to 255) means 0..255 pixel values.
        return x, (1.0 / 255.0 if 1.5 < hi <= 255.0 else 1.0)
    raise fail(where, f"{what} have unsupported dtype {x.dtype}")


def first_nonfinite_sample(x: np.ndarray, rows: int = 4096) -> int | None:
    """Index of the first image holding NaN or infinity, or None; checked in chunks (no full-size mask)."""
    if x.dtype.kind != "f" or not x.size:
        return None
    for start in range(0, len(x), rows):
        bad = ~np.isfinite(x[start:start + rows]).reshape(min(rows, len(x) - start), -1).all(axis=1)
        if bad.any():
            return start + int(np.argmax(bad))
    return None


def _is_one_hot(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def as_labels(y: object, where: object, n: int | None = None, what: str = "labels") -> np.ndarray:
    """Coerce labels to (N,) int64. Accepts (N,), (N, 1) and one-hot (N, K); checks the count is ``n``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.size and _is_one_hot(y):
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise fail(where, f"{what} must have shape (N,), got {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        if y.size and not (np.isfinite(y).all() and (y == np.round(y)).all()):
            raise fail(where, f"{what} must be whole numbers")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise fail(where, f"{what} have unsupported dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if n is not None and len(y) != n:
        raise fail(where, f"{len(y)} {what} but {n} images")
    return y


def check_label_range(y: np.ndarray, num_classes: int, where: object, what: str = "labels") -> None:
    """Every label must name a class: 0 <= label < num_classes."""
    if not len(y):
        return
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise fail(where, f"{len(bad)} {what} outside the class range 0..{num_classes - 1} "
                          f"(first: {int(y[i])} at index {i})")


# More classes than any classifier here can have (a Dense layer has at most 65536 units): a label
# beyond it is damage, not a class, and naming classes up to it would take forever.
MAX_CLASSES = 65536


def default_class_names(*label_arrays: np.ndarray, minimum: int = 0, where: object = "labels") -> list[str]:
    """``"0", "1", ...`` up to the largest label seen (and at least ``minimum`` names)."""
    top = max([int(y.max()) for y in label_arrays if len(y)] + [minimum - 1])
    if top >= MAX_CLASSES:
        raise fail(where, f"a label is {top}: more than {MAX_CLASSES} classes (damaged labels?)")
    return [str(i) for i in range(top + 1)]


def check_class_names(names: object, where: object) -> list[str]:
    """A non-empty list of distinct, non-empty strings."""
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise fail(where, "class_names must be a list of strings")
    out = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]  # type: ignore[union-attr]
    if not out:
        raise fail(where, "class_names is empty")
    if len(out) > MAX_CLASSES:
        raise fail(where, f"class_names holds {len(out)} names, more than {MAX_CLASSES}")
    if any(not n.strip() for n in out):
        raise fail(where, "class_names contains an empty name")
    if len(set(out)) != len(out):
        seen: set[str] = set()
        dup = next(n for n in out if n in seen or seen.add(n))
        raise fail(where, f"class name {shown(dup)} appears twice")
    return out


def empty_like_part(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A zero-row test part with the same image shape and dtype as ``x``."""
    return np.empty((0, *x.shape[1:]), dtype=x.dtype), np.empty(0, dtype=np.int64)
