"""A folder of images decoded once into a memory-mapped uint8 file, reused until the folder changes.

Where: ``$CNN_STUDIO_CACHE_DIR`` if set, else the user's cache folder (``$XDG_CACHE_HOME`` or
``~/.cache`` on Linux, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows), under
``cnn-studio/image-folders/``. Each cache is a folder named by the image folder's path and the
settings (image size, colour mode, test fraction and seed), holding one version keyed by the name,
size and modification time of every file: a changed folder gets a fresh cache and the stale one is
removed. ``images.u8`` holds the (N, H, W, C) pixels, training images first, then the test images;
``labels.npy`` the labels; ``meta.json``, written last, marks a complete cache. Deleting the folder
is always safe: it is rebuilt on the next load.

The pixels are read through ``np.memmap``: the operating system pages them in as batches are drawn
and can drop them again, so a folder of 100,000 images never sits in memory twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.atomic import write_text_atomic

CACHE_ENV = "CNN_STUDIO_CACHE_DIR"
CACHE_FORMAT = 1
_IMAGES = "images.u8"
_LABELS = "labels.npy"
_META = "meta.json"


def cache_root() -> Path:
    """The folder every image-folder cache lives in (see the module's description)."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        base = Path(configured).expanduser()
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "cnn-studio" / "cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "cnn-studio"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnn-studio"
    return base / "image-folders"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cache_location(root: Path, settings: dict[str, object], files: Iterable[Path]) -> Path:
    """The cache folder for this image folder, these settings and these files' names, sizes and times."""
    resolved = root.resolve()
    listing = []
    for f in files:
        stat = f.stat()
        listing.append((str(f.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    place = _digest({"folder": str(resolved), "settings": settings, "format": CACHE_FORMAT})[:20]
    content = _digest(listing)[:20]
    return cache_root() / f"{resolved.name[:40]}-{place}" / content


@dataclass(frozen=True)
class CachedImages:
    """A complete cache: read-only pixels, labels, and how many of them are training images."""

    x: np.ndarray
    y: np.ndarray
    n_train: int
    size: tuple[int, int]  # (width, height)
    mode: str
    skipped: tuple[str, ...]  # the first few files skipped as unreadable when the cache was built
    skipped_count: int = 0


def open_cache(location: Path) -> CachedImages | None:
    """The cache at ``location``, or None when there is none (or it is incomplete or damaged)."""
    try:
        meta = json.loads((location / _META).read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT:
            return None
        n, h, w, c = (int(v) for v in meta["shape"])
        x = np.memmap(location / _IMAGES, dtype=np.uint8, mode="r", shape=(n, h, w, c)) if n else (
            np.empty((0, h, w, c), np.uint8))
        y = np.load(location / _LABELS, allow_pickle=False)
        if y.shape != (n,) or y.dtype != np.int64:
            return None
        skipped = tuple(meta.get("skipped", ()))
        return CachedImages(x, y, int(meta["n_train"]), (w, h), str(meta["mode"]), skipped,
                            int(meta.get("skipped_count", len(skipped))))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


class CacheWriter:
    """Decodes go into a memory-mapped file in a private folder; ``commit`` moves it into place.

    Until then nothing is visible at the cache's location, so an interrupted or cancelled load (or
    a crash) never leaves a half-written cache that a later load would trust.
    """

    def __init__(self, location: Path, shape: tuple[int, int, int, int]) -> None:
        self.location = location
        location.parent.mkdir(parents=True, exist_ok=True)
        self.work = location.parent / f".building-{uuid.uuid4().hex}"
        self.work.mkdir()
        self.image_shape = shape[1:]
        # np.memmap cannot map an empty file: a cache of no images holds a one-byte placeholder.
        self.x = np.memmap(self.work / _IMAGES, dtype=np.uint8, mode="w+", shape=shape if shape[0] else (1,))

    def commit(self, labels: np.ndarray, count: int, n_train: int, size: tuple[int, int], mode: str,
               skipped: list[str]) -> CachedImages:
        self.x.flush()
        del self.x
        np.save(self.work / _LABELS, np.ascontiguousarray(labels[:count], dtype=np.int64))
        h, w, c = self.image_shape
        meta = {"format": CACHE_FORMAT, "shape": [count, h, w, c], "n_train": n_train, "mode": mode,
                "skipped": skipped[:20], "skipped_count": len(skipped)}
        write_text_atomic(self.work / _META, json.dumps(meta))
        for stale in self.location.parent.iterdir():  # older versions of this folder's cache
            if stale.name != self.work.name and not stale.name.startswith(".building-"):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(self.work, self.location)
        except OSError:  # another process finished the same cache first: use theirs
            shutil.rmtree(self.work, ignore_errors=True)
        cached = open_cache(self.location)
        if cached is None:
            raise OSError(f"{self.location}: the image cache could not be read back")
        return cached

    def abort(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.x
        shutil.rmtree(self.work, ignore_errors=True)


def enough_disk(location: Path, size: int) -> bool:
    """Whether the cache's drive has room for ``size`` bytes and a margin."""
    folder = location
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free > size + (256 << 20)
    except OSError:
        return False
