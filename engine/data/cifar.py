"""CIFAR-10's "python version": a folder of pickled batches (data_batch_1..5, test_batch, batches.meta).

Each batch is a dict with ``data`` (N, 3072) uint8 holding the red, green and blue 32x32 planes of
each image row-major, and ``labels`` (N,). ``batches.meta`` has ``label_names``. Pickles are read with
an unpickler that only builds plain containers and NumPy arrays, so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
from pathlib import Path

import numpy as np

from engine.data.arrays import as_labels, check_class_names, check_label_range, fail
from engine.data.dataset import Dataset
from engine.data.normalization import Normalization
from engine.data.splits import hold_out_test
from engine.errors import brief

META_FILE = "batches.meta"
TEST_FILE = "test_batch"
TRAIN_FILE = re.compile(r"^data_batch_(\d+)$")
NESTED_FOLDER = "cifar-10-batches-py"  # what the official archive unpacks to
_SIDE = 32
_PIXELS = _SIDE * _SIDE * 3

# The only globals a CIFAR pickle needs: NumPy array reconstruction and py2/py3 bytes handling.
_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        # Pickles made by NumPy 1.x name numpy.core, which NumPy 2 renamed numpy._core.
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def looks_like_cifar(folder: Path) -> bool:
    return (folder / META_FILE).is_file() or (folder / "data_batch_1").is_file()


# Opcodes of pickle protocol 5 (mutable and out-of-band buffers) that CIFAR batches (protocol 2) never
# use: arrays built on them can outlive the buffer when a damaged file fails half-way.
_REFUSED_OPCODES = {"BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}


def _check_opcodes(raw: bytes) -> None:
    with warnings.catch_warnings():
        # (decoding a damaged STRING argument warns about its escapes; the unpickler then refuses it)
        warnings.simplefilter("ignore", DeprecationWarning)
        for opcode, _arg, _position in pickletools.genops(raw):
            if opcode.name in _REFUSED_OPCODES:
                raise pickle.UnpicklingError(f"refusing the {opcode.name} opcode")


def _check_plain_arrays(obj: object, path: Path) -> None:
    """Refuse arrays whose dtype is not a plain number type as NumPy itself makes it. A pickle can
    set a dtype's flags (its BUILD state): a uint8 dtype then compares equal to uint8 but claims to
    hold object references, and NumPy fails on it later, far from the file."""
    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, np.ndarray):
            dtype = item.dtype
            if dtype.kind not in "biuf" or dtype.hasobject or dtype.flags != np.dtype(dtype.str).flags:
                raise fail(path, f"holds an array of an unexpected kind ({dtype.str}, flags {dtype.flags})")
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)


def _unpickle(path: Path) -> dict:
    try:
        raw = path.read_bytes()
        _check_opcodes(raw)
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except OSError as exc:
        raise fail(path, f"cannot read the file ({exc.strerror or exc})") from None
    except Exception as exc:  # any unpickling failure (there are many kinds) means a corrupt batch file
        raise fail(path, f"not a readable CIFAR batch file ({type(exc).__name__}: {brief(exc)})") from None
    if not isinstance(obj, dict):
        raise fail(path, f"expected a pickled dict, found {type(obj).__name__}")
    _check_plain_arrays(obj, path)
    # Python 2 pickles decoded with encoding="bytes" have bytes keys; newer ones may have str keys.
    return {(k.decode("latin-1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (x (N, 32, 32, 3) uint8, y (N,) int64)."""
    d = _unpickle(path)
    for key in ("data", "labels"):
        if key not in d:
            raise fail(path, f"batch has no {key!r} entry")
    data = d["data"]
    if isinstance(data, bytes):  # (the unpickler refuses bytearray)
        if len(data) % _PIXELS:
            raise fail(path, f"'data' holds {len(data)} bytes, not a whole number of {_PIXELS}-byte images")
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, _PIXELS)
    if not isinstance(data, np.ndarray):
        raise fail(path, f"'data' must be an (N, {_PIXELS}) uint8 array, not {type(data).__name__}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise fail(path, f"'data' must be (N, {_PIXELS}) uint8, got {data.shape} {data.dtype}")
    try:
        labels = np.asarray(d["labels"])
    except (ValueError, TypeError):  # e.g. a ragged list
        raise fail(path, "'labels' must be a list of whole numbers") from None
    y = as_labels(labels, path, len(data))
    # Planes R, G, B of 32x32 each -> (N, 32, 32, 3); one copy into channels-last order.
    x = np.ascontiguousarray(data.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1))
    return x, y


def _read_meta(folder: Path) -> list[str]:
    path = folder / META_FILE
    if not path.is_file():
        raise fail(folder, f"missing {META_FILE} (it holds the class names)")
    d = _unpickle(path)
    if "label_names" not in d:
        raise fail(path, "no 'label_names' entry")
    return check_class_names(d["label_names"], path)


def load_cifar(
    path: str | Path, *, test_fraction: float = 0.2, seed: int = 0, name: str | None = None
) -> Dataset:
    """Load a CIFAR-10 batches folder (or the folder holding ``cifar-10-batches-py``).

    Returns a uint8 (N, 32, 32, 3) Dataset; without ``test_batch`` a stratified ``test_fraction`` of the
    training batches becomes the test part.
    """
    folder = Path(path)
    if (folder / NESTED_FOLDER).is_dir() and not looks_like_cifar(folder):
        folder = folder / NESTED_FOLDER
    class_names = _read_meta(folder)
    train_files = sorted((p for p in folder.iterdir() if TRAIN_FILE.match(p.name)),
                         key=lambda p: int(TRAIN_FILE.match(p.name)[1]))  # type: ignore[index]
    if not train_files:
        raise fail(folder, "no training batches (data_batch_1, data_batch_2, ...)")

    def read_checked(p: Path) -> tuple[np.ndarray, np.ndarray]:
        x, y = read_batch(p)
        check_label_range(y, len(class_names), p)
        return x, y

    xs, ys = zip(*(read_checked(p) for p in train_files), strict=True)
    x_train = xs[0] if len(xs) == 1 else np.concatenate(xs)
    y_train = np.concatenate(ys)
    del xs, ys
    test_path = folder / TEST_FILE
    if test_path.is_file():
        x_test, y_test = read_checked(test_path)
    else:
        x_train, y_train, x_test, y_test = hold_out_test(x_train, y_train, test_fraction, seed)
    default_name = "cifar-10" if folder.name == NESTED_FOLDER else folder.name
    return Dataset(name=name or default_name, source=str(folder), x_train=x_train, y_train=y_train,
                   x_test=x_test, y_test=y_test, class_names=class_names, normalization=Normalization())
