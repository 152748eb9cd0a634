"""A folder of images with one sub-folder per class (PNG, JPEG, BMP and whatever else Pillow reads).

Either ``root/<class>/<images>`` (split into train/test with a seed) or ``root/train/<class>/...`` plus an
optional ``root/test/<class>/...``. Images are converted to grayscale or RGB and, if asked, resized
(bilinear, aspect ratio not kept). Files that are not images are skipped with a warning.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.data.arrays import fail
from engine.data.convert import GRAYSCALE, RGB
from engine.data.dataset import Dataset
from engine.data.normalization import Normalization
from engine.data.splits import hold_out_test
from engine.pictures import picture_pixels

# Junk that file managers leave behind; skipped silently rather than warned about.
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_TRAIN_NAMES = ("train", "training")
_TEST_NAMES = ("test", "testing")
_EXIF_ORIENTATION = 0x0112
# What Pillow raises for files it cannot identify or decode (SyntaxError comes from some plugins).
_IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass
class _Entry:
    path: Path
    label: int
    size: tuple[int, int]  # (width, height) after EXIF orientation
    gray: bool


def _natural_key(name: str) -> list[object]:
    # "class2" before "class10", case-insensitively.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name.lower() not in _IGNORED_FILES


def _subfolders(folder: Path) -> list[Path]:
    found = (p for p in folder.iterdir() if p.is_dir() and _visible(p))
    return sorted(found, key=lambda p: _natural_key(p.name))


def has_class_folders(folder: Path) -> bool:
    return bool(_subfolders(folder))


def _probe(path: Path) -> tuple[tuple[int, int], bool] | None:
    """Read only the header: (oriented (width, height), is grayscale), or None when not an image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except _IMAGE_ERRORS:
        return None
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees once EXIF orientation is applied
        w, h = h, w
    return (w, h), mode in _GRAY_MODES


def _scan(part_root: Path, class_folders: list[Path], labels: dict[str, int]) -> list[_Entry]:
    entries: list[_Entry] = []
    for folder in class_folders:
        found = 0
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: _natural_key(str(p)))
        for f in files:
            if any(not _visible(Path(part)) for part in f.relative_to(folder).parts):
                continue
            probed = _probe(f)
            if probed is None:
                warnings.warn(f"{f}: not an image, skipped", stacklevel=4)
                continue
            entries.append(_Entry(f, labels[folder.name], probed[0], probed[1]))
            found += 1
        if not found:
            raise fail(folder, "class folder has no images")
    stray = [p for p in part_root.iterdir() if p.is_file() and _visible(p)]
    if stray:
        warnings.warn(f"{part_root}: {len(stray)} file(s) outside the class folders ignored "
                      f"(e.g. {stray[0].name})", stacklevel=4)
    return entries


def _non_finite(path: Path) -> bool:
    """True for a float picture holding NaN or infinity (asked only after the picture was refused)."""
    try:
        with Image.open(path) as im:
            return im.mode == "F" and not np.isfinite(np.asarray(im, dtype=np.float32)).all()
    except _IMAGE_ERRORS:
        return False


def _decode(entries: list[_Entry], size: tuple[int, int], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode into one preallocated (N, H, W, C) uint8 array; unreadable files are skipped with a warning."""
    w, h = size
    c = 1 if mode == GRAYSCALE else 3
    x = np.empty((len(entries), h, w, c), dtype=np.uint8)
    y = np.empty(len(entries), dtype=np.int64)
    n = 0
    for e in entries:
        try:
            with Image.open(e.path) as im:
                # The rule the studio's "open a picture" and the exported predict.py use too.
                x[n] = picture_pixels(im, (h, w, c))
        except _IMAGE_ERRORS as exc:
            if _non_finite(e.path):  # a damaged value, not a damaged file: the dataset is refused
                raise fail(e.path, "image holds NaN or infinite pixel values") from None
            warnings.warn(f"{e.path}: unreadable image skipped ({exc})", stacklevel=4)
            continue
        y[n] = e.label
        n += 1
    if n < len(entries):
        x, y = x[:n].copy(), y[:n].copy()
    return x, y


def load_image_folder(
    path: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
) -> Dataset:
    """Load class sub-folders of images into a uint8 (N, H, W, C) Dataset.

    ``image_size`` is (height, width); without it all images must share one size. ``color_mode`` is
    "grayscale", "rgb" or None (grayscale when every image is, else RGB). Class names are the folder
    names in natural order.
    """
    root = Path(path)
    subs = {p.name.lower(): p for p in _subfolders(root)}
    train_root = next((subs[n] for n in _TRAIN_NAMES if n in subs and has_class_folders(subs[n])), None)
    if train_root is not None:
        test_root = next((subs[n] for n in _TEST_NAMES if n in subs), None)
    else:
        train_root, test_root = root, None

    train_classes = _subfolders(train_root)
    if not train_classes:
        raise fail(train_root, "no class sub-folders (put each class's images in a folder named after it)")
    labels = {p.name: i for i, p in enumerate(train_classes)}
    train_entries = _scan(train_root, train_classes, labels)
    test_entries: list[_Entry] = []
    if test_root is not None:
        test_classes = _subfolders(test_root)
        if not test_classes:
            raise fail(test_root, "no class sub-folders")
        unknown = [p.name for p in test_classes if p.name not in labels]
        if unknown:
            raise fail(test_root / unknown[0], "test class folder has no matching folder in "
                                               f"{train_root.name}/ (classes: {', '.join(labels)})")
        test_entries = _scan(test_root, test_classes, labels)

    everything = train_entries + test_entries
    if image_size is not None:
        size = (image_size[1], image_size[0])  # Pillow speaks (width, height)
    else:
        first = everything[0]
        odd = next((e for e in everything if e.size != first.size), None)
        if odd is not None:
            raise fail(odd.path, f"image is {odd.size[0]}x{odd.size[1]} (width x height) but "
                                 f"{first.path} is {first.size[0]}x{first.size[1]}; mixed sizes need a "
                                 "target image size")
        size = first.size
    mode = color_mode or (GRAYSCALE if all(e.gray for e in everything) else RGB)

    x_train, y_train = _decode(train_entries, size, mode)
    if test_root is not None:
        x_test, y_test = _decode(test_entries, size, mode)
    else:
        x_train, y_train, x_test, y_test = hold_out_test(x_train, y_train, test_fraction, seed)
    return Dataset(name=name or root.resolve().name, source=str(root), x_train=x_train, y_train=y_train,
                   x_test=x_test, y_test=y_test, class_names=list(labels), normalization=Normalization())
