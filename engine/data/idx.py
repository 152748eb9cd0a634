"""IDX files (MNIST, Fashion-MNIST, EMNIST, KMNIST), gzipped or raw.

An IDX file is a 4-byte magic number (0, 0, dtype code, number of dimensions), the dimensions as
big-endian uint32, then the values. Images are ``0x00000803`` (N, H, W) and labels ``0x00000801`` (N,),
both uint8. Pixels are read straight into their final array so no second copy is ever made.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from engine.data.arrays import (
    check_class_names,
    check_label_range,
    default_class_names,
    fail,
)
from engine.data.dataset import Dataset
from engine.data.normalization import Normalization
from engine.data.splits import hold_out_test
from engine.errors import DataError
from engine.memory import check_dataset

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# Optional file beside the IDX files: one class name per line, overriding the guessed names.
CLASS_NAMES_FILE = "class_names.txt"

# train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte, train-images.idx3-ubyte (Kaggle),
# emnist-balanced-train-images-idx3-ubyte.gz (prefix "emnist-balanced-").
IDX_NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<part>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte"
    r"(?P<gz>\.gz)?$",
    re.IGNORECASE,
)
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_CHUNK = 1 << 22  # bytes per read; bounds the temporary buffers the gzip module allocates


def is_idx_name(name: str) -> bool:
    return IDX_NAME.match(name) is not None


def _open(path: Path) -> BinaryIO:
    """Open raw or gzipped by looking at the first bytes, not the name."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")
    except OSError as exc:
        raise fail(path, f"cannot read the file ({exc.strerror or exc})") from None


def _read_exact(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise fail(path, f"file is truncated: it ends inside the {what}")
    return data


def _read_into(f: BinaryIO, out: np.ndarray, path: Path, what: str) -> None:
    """Fill a C-contiguous array from the stream in chunks; a short stream means a truncated file."""
    view = memoryview(out).cast("B")
    pos = 0
    while pos < len(view):
        n = f.readinto(view[pos:pos + _CHUNK])  # type: ignore[attr-defined]
        if not n:
            raise fail(path, f"file is truncated: the header promises {len(view)} bytes of {what}, "
                             f"the file holds {pos}")
        pos += n


def _check_promised(path: Path, size: int, header: int, kind: str, dims: tuple[int, ...]) -> None:
    """Refuse a header that promises more values than the file can hold, or than memory can, before
    anything is allocated (one damaged byte in a dimension would otherwise ask for gigabytes)."""
    on_disk = path.stat().st_size
    compressed = _is_gzip(path)
    # Deflate packs at most about 1032 bytes into one; a raw file holds exactly its values.
    most = (on_disk * 1032 + 1024) if compressed else on_disk - header
    if size > most:
        raise fail(path, f"file is truncated or damaged: its IDX header promises {size:,} bytes of {kind} "
                         f"({'x'.join(map(str, dims))}), more than the {on_disk:,}-byte file can hold")
    check_dataset(dims[0] if dims else 0, dims[1:], path)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read one IDX file. ``kind="images"`` -> (N, H, W) uint8; ``kind="labels"`` -> (N,) uint8."""
    path = Path(path)
    f = _open(path)
    try:
        with f:
            magic = int.from_bytes(_read_exact(f, 4, path, "IDX header"), "big")
            expected = _MAGIC[kind]
            if magic != expected:
                raise fail(path, f"wrong IDX magic number 0x{magic:08X}: an IDX {kind} file starts with "
                                 f"0x{expected:08X}")
            ndim = magic & 0xFF
            dims = tuple(int.from_bytes(_read_exact(f, 4, path, "IDX header"), "big") for _ in range(ndim))
            if kind == "images" and (dims[1] == 0 or dims[2] == 0):
                raise fail(path, f"IDX header gives an empty image size {dims[1]}x{dims[2]}")
            _check_promised(path, math.prod(dims), 4 + 4 * ndim, kind, dims)
            out = np.empty(dims, dtype=np.uint8)
            if out.size:
                _read_into(f, out, path, kind)
            if f.read(1):
                raise fail(path, f"file holds more data than its IDX header describes ({dims})")
    except DataError:
        raise
    except EOFError:
        raise fail(path, "truncated gzip file (the compressed stream ends early)") from None
    except (OSError, zlib.error) as exc:
        # gzip.BadGzipFile (bad header, CRC or length check) is an OSError too.
        raise fail(path, f"corrupt gzip data ({exc})") from None
    return out


def _transpose_inplace(x: np.ndarray) -> None:
    # EMNIST stores each image transposed; fix square images chunk by chunk to avoid a full copy.
    step = 8192
    for s in range(0, len(x), step):
        x[s:s + step] = x[s:s + step].transpose(0, 2, 1).copy()


def find_idx_groups(folder: Path) -> dict[str, dict[tuple[str, str], Path]]:
    """IDX files in ``folder`` grouped by name prefix: ``{prefix: {(part, kind): path}}``.

    ``part`` is "train" or "test" (t10k counts as test); a raw file wins over its gzipped twin.
    """
    groups: dict[str, dict[tuple[str, str], Path]] = {}
    for p in sorted(folder.iterdir()):
        m = IDX_NAME.match(p.name)
        if not m or not p.is_file():
            continue
        part = "train" if m["part"].lower() == "train" else "test"
        key = (part, m["kind"].lower())
        files = groups.setdefault(m["prefix"], {})
        if key not in files or files[key].suffix.lower() == ".gz":
            files[key] = p
    return groups


def _class_names(folder: Path, prefix: str, y_train: np.ndarray, y_test: np.ndarray) -> list[str]:
    names_file = folder / CLASS_NAMES_FILE
    if names_file.is_file():
        try:
            lines = names_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(names_file, f"cannot read class names ({exc})") from None
        return check_class_names([ln.strip() for ln in lines if ln.strip()], names_file)
    if "fashion" in folder.name.lower() or "fashion" in prefix.lower():
        return list(FASHION_MNIST_CLASSES)
    return default_class_names(y_train, y_test, minimum=10, where=folder)


def load_idx(
    path: str | Path, *, test_fraction: float = 0.2, seed: int = 0, name: str | None = None
) -> Dataset:
    """Load an IDX dataset from a folder, or from one of its files (to pick one of several prefixes).

    Needs train images + labels; t10k (test) images + labels are optional (else a seeded, stratified
    ``test_fraction`` of the training files becomes the test part). Returns a uint8 (N, H, W, 1) Dataset.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    groups = find_idx_groups(folder)
    if path.is_file():
        m = IDX_NAME.match(path.name)
        if not m:
            raise fail(path, "not an IDX file name (expected e.g. train-images-idx3-ubyte.gz)")
        prefix = m["prefix"]
    elif len(groups) == 1:
        prefix = next(iter(groups))
    elif not groups:
        raise fail(folder, "no IDX files here (expected train-images-idx3-ubyte[.gz] and friends)")
    else:
        names = ", ".join(repr(p or "(none)") for p in groups)
        raise fail(folder, f"several IDX datasets share this folder (prefixes {names}); "
                           "pass the path of the train-images file of the one you want")
    files = groups.get(prefix, {})

    def need(part: str, kind: str) -> Path:
        if (part, kind) not in files:
            std = "train" if part == "train" else "t10k"
            ndim = 3 if kind == "images" else 1
            raise fail(folder, f"missing IDX file {prefix}{std}-{kind}-idx{ndim}-ubyte[.gz]")
        return files[(part, kind)]

    x_train_path, y_train_path = need("train", "images"), need("train", "labels")
    has_test = ("test", "images") in files or ("test", "labels") in files
    parts = {"train": (x_train_path, y_train_path)}
    if has_test:
        parts["test"] = (need("test", "images"), need("test", "labels"))

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part, (xp, yp) in parts.items():
        x = read_idx(xp, "images")
        y = read_idx(yp, "labels")
        if len(x) != len(y):
            raise fail(yp, f"{len(y)} labels but {xp.name} holds {len(x)} images")
        if "emnist" in prefix.lower() and x.shape[1] == x.shape[2]:
            _transpose_inplace(x)
        arrays[part] = (x[..., np.newaxis], y.astype(np.int64))

    x_train, y_train = arrays["train"]
    if "test" in arrays:
        x_test, y_test = arrays["test"]
        if x_test.shape[1:] != x_train.shape[1:]:
            raise fail(parts["test"][0], f"test images are {x_test.shape[1]}x{x_test.shape[2]} but "
                                         f"training images are {x_train.shape[1]}x{x_train.shape[2]}")
    else:
        x_train, y_train, x_test, y_test = hold_out_test(x_train, y_train, test_fraction, seed)

    class_names = _class_names(folder, prefix, y_train, y_test)
    check_label_range(y_train, len(class_names), y_train_path)
    if has_test:
        check_label_range(y_test, len(class_names), parts["test"][1])
    default_name = prefix.strip("-_. ") or folder.name
    return Dataset(name=name or default_name, source=str(path), x_train=x_train, y_train=y_train,
                   x_test=x_test, y_test=y_test, class_names=class_names, normalization=Normalization())
