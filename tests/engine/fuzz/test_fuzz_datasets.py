"""Dataset files under fuzzing: IDX, CIFAR-10 batches, .npz datasets and image folders.

``load_dataset`` may only return a Dataset or raise DataError (ResourceError for what would not fit
in memory), with one line naming the file or folder; skipped files are warnings, never errors.
"""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np

from tests.helpers.extras import require

require("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from engine.data import load_dataset  # noqa: E402
from engine.errors import DataError, ResourceError  # noqa: E402
from tests.helpers.data_factories import (  # noqa: E402
    idx_bytes,
    images,
    labels,
    make_cifar_folder,
    make_image_folder,
)
from tests.helpers.fuzz import check_reader, fuzz, fuzz_settings, hostile_values, mutated_bytes  # noqa: E402

pytestmark = fuzz
ERRORS = (DataError, ResourceError)


def load_checked(path: Path, **kwargs) -> None:
    """Load like the CLI and the studio do; a loaded dataset must hold what the storage rules promise."""
    def read() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # skipped files are reported as warnings
            ds = load_dataset(path, **kwargs)
        assert ds.x_train.ndim == 4 and ds.x_train.dtype in (np.uint8, np.float32) and len(ds.x_train)
        assert ds.y_train.dtype == np.int64 and ds.y_train.min() >= 0 and ds.y_train.max() < ds.num_classes
        if ds.x_train.dtype == np.float32:
            assert np.isfinite(ds.x_train).all()
        next(ds.batches(None, 4))
    check_reader(read, path, ERRORS)


# ------------------------------------------------------------------------------------- IDX
def _idx_files(n: int = 12, h: int = 6, w: int = 5) -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte": idx_bytes(images(n, h, w, seed=1)),
        "train-labels-idx1-ubyte": idx_bytes(labels(n, 10)),
        "t10k-images-idx3-ubyte": idx_bytes(images(4, h, w, seed=2)),
        "t10k-labels-idx1-ubyte": idx_bytes(labels(4, 10)),
    }


@fuzz_settings(1.0)
@given(data=st.data())
def test_idx_folders(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("idx") / "mnist"
    folder.mkdir()
    files = _idx_files()
    victim = data.draw(st.sampled_from(sorted(files)))
    action = data.draw(st.sampled_from(["bytes", "header", "delete", "gzip"]))
    if action == "bytes":
        files[victim] = data.draw(mutated_bytes(files[victim], max_flips=6))
    elif action == "header":  # a dimension or the magic number replaced by any 32-bit value
        raw = bytearray(files[victim])
        at = data.draw(st.sampled_from([0, 4, 8, 12]))
        raw[at:at + 4] = data.draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
        files[victim] = bytes(raw)
    elif action == "delete":
        del files[victim]
    gz = action == "gzip" or data.draw(st.booleans())
    for name, raw in files.items():
        if gz:
            packed = gzip.compress(raw)
            if action == "gzip" and name == victim:
                packed = data.draw(mutated_bytes(packed))
            (folder / f"{name}.gz").write_bytes(packed)
        else:
            (folder / name).write_bytes(raw)
    load_checked(folder)


# ------------------------------------------------------------------------------------- CIFAR-10
_CIFAR_VALUES = st.one_of(
    hostile_values(placeholders=False),
    st.sampled_from([np.zeros((2, 3072), np.uint8), np.zeros((2, 3072), np.float32), np.zeros((2, 3071), np.uint8),
                     np.zeros(3072, np.uint8), np.array([[1, 2], [3]], dtype=object), b"\x00" * 3072,
                     b"\x00" * 100, [[0] * 3072, [0]], np.array([-1, 99]), np.array([0.5, 1.0]),
                     [b"\xff\xfe", b"cat"], ["a", "a"], [], np.array(["x", "y"]), {b"data": 1}]),
)


@st.composite
def cifar_batch(draw, original: dict) -> bytes:
    batch = dict(original)
    key = draw(st.sampled_from(sorted(batch, key=repr) + [b"extra"]))
    if draw(st.integers(0, 4)) == 0:
        batch.pop(key, None)
    else:
        batch[key] = draw(_CIFAR_VALUES)
    return pickle.dumps(batch, protocol=draw(st.sampled_from([2, 4])))


@fuzz_settings(1.0)
@given(data=st.data())
def test_cifar_folders(tmp_path_factory, data):
    folder = make_cifar_folder(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py", per_batch=4, n_test=3)
    name = data.draw(st.sampled_from(["data_batch_1", "data_batch_2", "test_batch", "batches.meta"]))
    path = folder / name
    if data.draw(st.booleans()):
        path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
    else:
        original = pickle.loads(path.read_bytes())
        path.write_bytes(data.draw(cifar_batch(original)))
    load_checked(folder)


class _Evil:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-folder",))


def test_cifar_pickles_cannot_run_code(tmp_path):
    folder = make_cifar_folder(tmp_path / "cifar")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    exc = check_reader(lambda: load_dataset(folder), folder / "data_batch_1", ERRORS)
    assert exc is not None and "refusing to load shutil.rmtree" in str(exc)


# ------------------------------------------------------------------------------------- .npz datasets
_ODD_ARRAYS = st.sampled_from([
    np.zeros((4, 5, 5), np.uint8), np.zeros((4, 5, 5, 3), np.float32), np.zeros((4, 5), np.uint8),
    np.zeros((0, 5, 5), np.uint8), np.zeros((4, 0, 5), np.uint8), np.full((4, 5, 5), np.nan, np.float32),
    np.full((4, 5, 5), np.inf, np.float64), np.full((4, 5, 5), 300, np.int32), np.full((4, 5, 5), -1, np.int8),
    np.zeros((4, 5, 5), np.complex64), np.zeros((4, 5, 5), bool), np.array(["a", "b"]), np.array([0, 1, 2, 3]),
    np.array([0, 1, 2, 2**40]), np.array([0.5, 1, 2, 3]), np.array([-1, 0, 1, 2]), np.array([[0, 1], [1, 0]] * 2),
    np.array([np.nan] * 4), np.array(1.0), np.array(["cat", "cat"]), np.array(["", "dog"]),
    np.array(["x" * 500, "é"]), np.zeros(4, np.float16), np.zeros((4, 5, 5, 2, 1), np.uint8),
])


@fuzz_settings(1.0)
@given(data=st.data())
def test_npz_datasets(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    arrays = {"x": images(8, 5, 5, seed=3), "y": labels(8, 2), "x_test": images(4, 5, 5, seed=4),
              "y_test": labels(4, 2), "class_names": np.array(["cat", "dog"])}
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(arrays) + ["extra"]))
        if data.draw(st.integers(0, 3)) == 0:
            arrays.pop(key, None)
        else:
            arrays[key] = data.draw(_ODD_ARRAYS)
            if data.draw(st.integers(0, 5)) == 0 and arrays[key].dtype.kind == "f" and arrays[key].size:
                arrays[key] = arrays[key].copy()
                arrays[key].reshape(-1)[data.draw(st.integers(0, arrays[key].size - 1))] = np.nan
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays) if data.draw(st.booleans()) else np.savez(buffer, **arrays)
    raw = buffer.getvalue()
    if data.draw(st.integers(0, 2)) == 0:
        raw = data.draw(mutated_bytes(raw, max_flips=8))
    path.write_bytes(raw)
    load_checked(path)


# ------------------------------------------------------------------------------------- image folders
def _odd_image(kind: str) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    if kind == "16-bit":
        Image.fromarray(rng.integers(0, 65535, (6, 7), dtype=np.uint16)).save(buffer, "PNG")
    elif kind == "float":
        Image.fromarray(rng.random((6, 7), dtype=np.float32) * 4).save(buffer, "TIFF")
    elif kind == "float-nan":
        Image.fromarray(np.full((6, 7), np.nan, np.float32)).save(buffer, "TIFF")
    elif kind == "rgba":
        Image.new("RGBA", (7, 6), (1, 2, 3, 4)).save(buffer, "PNG")
    elif kind == "palette":
        Image.new("P", (7, 6)).save(buffer, "GIF")
    elif kind == "cmyk":
        Image.new("CMYK", (7, 6)).save(buffer, "JPEG")
    elif kind == "1-bit":
        Image.new("1", (7, 6)).save(buffer, "BMP")
    elif kind == "big":
        Image.new("L", (70, 3)).save(buffer, "PNG")
    elif kind == "tiny":
        Image.new("L", (1, 1)).save(buffer, "PNG")
    elif kind == "empty":
        return b""
    elif kind == "text":
        return b"not an image at all\n"
    return buffer.getvalue()


@fuzz_settings(0.5)
@given(data=st.data())
def test_image_folders(tmp_path_factory, data):
    root = make_image_folder(tmp_path_factory.mktemp("img") / "pets", ("cat", "dog"), per_class=3, size=(7, 6),
                             fmt=data.draw(st.sampled_from(["png", "jpg", "bmp"])))
    for _ in range(data.draw(st.integers(1, 3))):
        files = sorted(p for p in root.rglob("*") if p.is_file())
        action = data.draw(st.sampled_from(["bytes", "odd", "remove", "stray", "rename", "nest", "empty-class"]))
        if action == "bytes" and files:
            victim = data.draw(st.sampled_from(files))
            victim.write_bytes(data.draw(mutated_bytes(victim.read_bytes(), max_flips=8)))
        elif action == "odd" and files:
            kind = data.draw(st.sampled_from(["16-bit", "float", "float-nan", "rgba", "palette", "cmyk", "1-bit",
                                              "big", "tiny", "empty", "text"]))
            data.draw(st.sampled_from(files)).write_bytes(_odd_image(kind))
        elif action == "remove" and files:
            data.draw(st.sampled_from(files)).unlink()
        elif action == "stray":
            stray = root / data.draw(st.sampled_from(["notes.txt", ".hidden", "Thumbs.db"]))
            if not stray.is_dir():
                stray.write_bytes(b"x")
        elif action == "rename":
            folder = data.draw(st.sampled_from(sorted(p for p in root.iterdir() if p.is_dir()) or [root]))
            if folder != root:
                name = data.draw(st.sampled_from(["é☃", "x" * 200, "train", "test", ".hidden", "10", "Cat"]))
                if not (root / name).exists():
                    folder.rename(root / name)
        elif action == "nest":
            (root / "cat" / "more").mkdir(parents=True, exist_ok=True)
            Image.new("L", (7, 6)).save(root / "cat" / "more" / "x.png")
        elif action == "empty-class":
            (root / "bird").mkdir(exist_ok=True)
    size = data.draw(st.sampled_from([None, (4, 4), (1, 9)]))
    color = data.draw(st.sampled_from([None, "grayscale", "rgb"]))
    load_checked(root, image_size=size, color_mode=color, cache=data.draw(st.booleans()))
