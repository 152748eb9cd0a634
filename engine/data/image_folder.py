"""A folder of images with one sub-folder per class (PNG, JPEG, BMP and whatever else Pillow reads).

Either ``root/<class>/<images>`` (split into train/test with a seed) or ``root/train/<class>/...`` plus an
optional ``root/test/<class>/...``. Images are converted to grayscale or RGB and, if asked, resized
(bilinear, aspect ratio not kept). Files that are not images are skipped with a warning.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.data.arrays import fail
from engine.data.convert import GRAYSCALE, RGB
from engine.data.dataset import Dataset
from engine.data.image_cache import CACHE_ENV, CacheWriter, cache_location, cache_root, enough_disk, open_cache
from engine.data.normalization import Normalization
from engine.data.splits import stratified_split
from engine.errors import LoadCancelled
from engine.memory import available_memory, check_dataset
from engine.pictures import picture_pixels

# Junk that file managers leave behind; skipped silently rather than warned about.
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_TRAIN_NAMES = ("train", "training")
_TEST_NAMES = ("test", "testing")
_EXIF_ORIENTATION = 0x0112
# Folders whose pixels take at least this many bytes are decoded into the on-disk image cache.
CACHE_THRESHOLD = 64 << 20
Progress = Callable[[str, int, int], None]
Cancel = Callable[[], bool]
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


def _listing(class_folders: list[Path]) -> list[tuple[Path, Path]]:
    """(class folder, file) for every visible file under the class folders, in natural order."""
    listed = []
    for folder in class_folders:
        files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: _natural_key(str(p)))
        listed += [(folder, f) for f in files if all(_visible(Path(part)) for part in f.relative_to(folder).parts)]
    return listed


def _scan(part_root: Path, listed: list[tuple[Path, Path]], class_folders: list[Path], labels: dict[str, int],
          report: _Reporter, skipped: list[str]) -> list[_Entry]:
    """Read every listed file's header; files that are not images are skipped with a warning."""
    entries: list[_Entry] = []
    found = dict.fromkeys(class_folders, 0)
    for folder, f in listed:
        report.step("scanning")
        probed = _probe(f)
        if probed is None:
            warnings.warn(f"{f}: not an image, skipped", stacklevel=5)
            skipped.append(str(f))
            continue
        entries.append(_Entry(f, labels[folder.name], probed[0], probed[1]))
        found[folder] += 1
    empty = next((folder for folder, count in found.items() if not count), None)
    if empty is not None:
        raise fail(empty, "class folder has no images")
    stray = [p for p in part_root.iterdir() if p.is_file() and _visible(p)]
    if stray:
        warnings.warn(f"{part_root}: {len(stray)} file(s) outside the class folders ignored "
                      f"(e.g. {stray[0].name})", stacklevel=5)
    return entries


def _non_finite(path: Path) -> bool:
    """True for a float picture holding NaN or infinity (asked only after the picture was refused)."""
    try:
        with Image.open(path) as im:
            return im.mode == "F" and not np.isfinite(np.asarray(im, dtype=np.float32)).all()
    except _IMAGE_ERRORS:
        return False


class _Reporter:
    """Progress ``(stage, done, total)`` and the cancel question, asked once per file."""

    def __init__(self, total: int, progress: Progress | None, cancel: Cancel | None) -> None:
        self.total, self.progress, self.cancel = total, progress, cancel
        self.done: dict[str, int] = {}

    def step(self, stage: str) -> None:
        if self.cancel is not None and self.cancel():
            raise LoadCancelled("loading the image folder was cancelled")
        done = self.done[stage] = self.done.get(stage, 0) + 1
        if self.progress is not None:
            self.progress(stage, done, self.total)


def _decode_into(x: np.ndarray, entries: list[_Entry], start: int, mode: str, labels: np.ndarray,
                 report: _Reporter, skipped: list[str]) -> int:
    """Decode ``entries`` into consecutive rows of ``x`` from ``start``; returns the rows written.

    Unreadable files are skipped with a warning (their rows are reused); a float picture holding NaN
    or infinity refuses the whole dataset, naming the file."""
    _, h, w, c = x.shape
    n = start
    for e in entries:
        report.step("decoding")
        try:
            with Image.open(e.path) as im:
                # The rule the studio's "open a picture" and the exported predict.py use too.
                x[n] = picture_pixels(im, (h, w, c))
        except _IMAGE_ERRORS as exc:
            if _non_finite(e.path):  # a damaged value, not a damaged file: the dataset is refused
                raise fail(e.path, "image holds NaN or infinite pixel values") from None
            warnings.warn(f"{e.path}: unreadable image skipped ({exc})", stacklevel=5)
            skipped.append(str(e.path))
            continue
        labels[n] = e.label
        n += 1
    return n - start


def _split_order(train_entries: list[_Entry], test_entries: list[_Entry] | None, test_fraction: float,
                 seed: int) -> tuple[list[_Entry], list[_Entry]]:
    """(training entries, test entries) in the order they are stored: a folder without its own test
    part gives a seeded, stratified ``test_fraction`` of its images to the test part."""
    if test_entries is not None:
        return train_entries, test_entries
    if test_fraction <= 0:
        return train_entries, []
    keep, held = stratified_split(np.array([e.label for e in train_entries]), test_fraction,
                                  np.random.default_rng(seed))
    return [train_entries[i] for i in keep], [train_entries[i] for i in held]


def load_image_folder(
    path: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
    cache: bool | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Dataset:
    """Load class sub-folders of images into a uint8 (N, H, W, C) Dataset.

    ``image_size`` is (height, width); without it all images must share one size. ``color_mode`` is
    "grayscale", "rgb" or None (grayscale when every image is, else RGB). Class names are the folder
    names in natural order.

    ``cache``: decode into a memory-mapped file in the image cache (see ``engine.data.image_cache``)
    and reuse it while the folder is unchanged; None (the default) does so for folders whose pixels
    take CACHE_THRESHOLD bytes or more, or that would not fit in memory. ``progress(stage, done,
    total)`` is called for every file ("scanning" reads headers, "decoding" pixels); ``cancel()``
    returning True stops the load with LoadCancelled, leaving no cache behind.
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
    test_classes: list[Path] = []
    if test_root is not None:
        test_classes = _subfolders(test_root)
        if not test_classes:
            raise fail(test_root, "no class sub-folders")
        unknown = [p.name for p in test_classes if p.name not in labels]
        if unknown:
            raise fail(test_root / unknown[0], "test class folder has no matching folder in "
                                               f"{train_root.name}/ (classes: {', '.join(labels)})")
    train_listed, test_listed = _listing(train_classes), _listing(test_classes)
    report = _Reporter(len(train_listed) + len(test_listed), progress, cancel)
    dataset_name = name or root.resolve().name
    settings = {"image_size": list(image_size) if image_size else None, "color_mode": color_mode,
                "split": None if test_root is not None else [float(test_fraction), int(seed)],
                "classes": list(labels)}
    location = None
    if cache is not False:
        location = cache_location(root, settings, [f for _, f in train_listed + test_listed])
        cached = open_cache(location)
        if cached is not None:
            if cached.skipped:
                warnings.warn(f"{root}: {cached.skipped_count} unreadable file(s) were skipped when the folder was "
                              f"cached (e.g. {cached.skipped[0]})", stacklevel=3)
            return _dataset(dataset_name, root, cached.x, cached.y, cached.n_train, list(labels))

    skipped: list[str] = []
    train_entries = _scan(train_root, train_listed, train_classes, labels, report, skipped)
    test_entries = (_scan(test_root, test_listed, test_classes, labels, report, skipped) if test_root is not None
                    else None)
    everything = train_entries + (test_entries or [])
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
    train_order, test_order = _split_order(train_entries, test_entries, test_fraction, seed)
    w, h = size
    shape = (len(train_order) + len(test_order), h, w, 1 if mode == GRAYSCALE else 3)
    nbytes = math.prod(shape)
    if location is not None and (cache or nbytes >= CACHE_THRESHOLD or not _fits_in_memory(nbytes)):
        if enough_disk(location, nbytes):
            return _decode_cached(location, shape, train_order, test_order, size, mode, report, dataset_name, root,
                                  list(labels), skipped)
        if cache:
            raise fail(root, f"not enough free disk space for its image cache ({nbytes / 2**30:.1f} GiB) in "
                             f"{cache_root()}; set {CACHE_ENV} to a folder on a larger drive")
    check_dataset(shape[0], shape[1:], root)
    x = np.empty(shape, np.uint8)
    y = np.empty(shape[0], np.int64)
    n_train = _decode_into(x, train_order, 0, mode, y, report, skipped)
    n_test = _decode_into(x, test_order, n_train, mode, y, report, skipped)
    return _dataset(dataset_name, root, x[:n_train + n_test], y[:n_train + n_test], n_train, list(labels))


def _fits_in_memory(nbytes: int) -> bool:
    available = available_memory()
    return available is None or nbytes <= available / 2


def _decode_cached(location: Path, shape: tuple[int, int, int, int], train_order: list[_Entry],
                   test_order: list[_Entry], size: tuple[int, int], mode: str, report: _Reporter, name: str,
                   root: Path, class_names: list[str], skipped: list[str]) -> Dataset:
    writer = CacheWriter(location, shape)
    try:
        y = np.empty(shape[0], np.int64)
        n_train = _decode_into(writer.x, train_order, 0, mode, y, report, skipped)
        n_test = _decode_into(writer.x, test_order, n_train, mode, y, report, skipped)
        cached = writer.commit(y, n_train + n_test, n_train, size, mode, skipped)
    except BaseException:
        writer.abort()
        raise
    return _dataset(name, root, cached.x, cached.y, cached.n_train, class_names)


def _dataset(name: str, root: Path, x: np.ndarray, y: np.ndarray, n_train: int, class_names: list[str]) -> Dataset:
    # The training and test parts are views of one array (or one memory-mapped file): no copies.
    return Dataset(name=name, source=str(root), x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:],
                   y_test=y[n_train:], class_names=class_names, normalization=Normalization())
