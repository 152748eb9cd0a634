"""IDX loading (gzipped and raw) and every way an IDX file can be broken."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from engine.data import FASHION_MNIST_CLASSES, DataError, load_dataset
from engine.data.idx import read_idx
from tests.helpers.data_factories import idx_bytes, images, labels, make_idx_folder, write_idx


def test_gzipped_folder_loads_with_digit_names(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "mnist", n_train=30, n_test=10)
    ds = load_dataset(folder)
    assert ds.x_train.shape == (30, 8, 8, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10, 8, 8, 1) and ds.y_test.dtype == np.int64
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.name == "mnist" and ds.input_shape == (8, 8, 1)
    assert np.array_equal(ds.x_train[..., 0], images(30, seed=1))
    assert np.array_equal(ds.y_train, labels(30, 10))


def test_raw_files_and_fashion_names(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "my-fashion-data", gz=False)
    ds = load_dataset(str(folder))
    assert ds.class_names == FASHION_MNIST_CLASSES
    assert np.array_equal(ds.x_test[..., 0], images(10, seed=2))


def test_class_names_file_overrides(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "d", num_classes=3)
    (folder / "class_names.txt").write_text("a\nb\nc\n")
    assert load_dataset(folder).class_names == ["a", "b", "c"]


def test_kaggle_style_names_and_split_without_test_files(tmp_path: Path) -> None:
    folder = tmp_path / "k"
    folder.mkdir()
    write_idx(folder / "train-images.idx3-ubyte", images(40), gz=False)
    write_idx(folder / "train-labels.idx1-ubyte", labels(40, 4), gz=False)
    ds = load_dataset(folder, test_fraction=0.25, seed=1)
    assert len(ds.y_train) == 30 and len(ds.y_test) == 10
    assert np.bincount(ds.y_test).tolist() == [3, 2, 3, 2] or sorted(np.bincount(ds.y_test)) == [2, 2, 3, 3]
    assert load_dataset(folder, test_fraction=0.0).x_test.shape == (0, 8, 8, 1)


def test_emnist_prefix_is_transposed_and_file_path_picks_the_prefix(tmp_path: Path) -> None:
    folder = tmp_path / "emnist"
    make_idx_folder(folder, prefix="emnist-digits-", num_classes=10)
    make_idx_folder(folder, prefix="emnist-letters-", num_classes=5)
    with pytest.raises(DataError, match="several IDX datasets"):
        load_dataset(folder)
    ds = load_dataset(folder / "emnist-digits-train-images-idx3-ubyte.gz")
    assert ds.name == "emnist-digits"
    assert np.array_equal(ds.x_train[..., 0], images(30, seed=1).transpose(0, 2, 1))


# ------------------------------------------------------------------------------------- bad input
@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_idx_folder(tmp_path / "data")


def test_truncated_gzip(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: .*truncated"):
        load_dataset(folder)


@pytest.mark.parametrize("cut", [3, 10, 20, -9, -4, -1])
def test_gzip_cut_anywhere_is_a_data_error(folder: Path, cut: int) -> None:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_dataset(folder)


def test_corrupt_gzip(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[10] = 0x07  # first deflate block header after the 10-byte gzip header: reserved block type 3
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: corrupt gzip data"):
        load_dataset(folder)


@pytest.mark.parametrize("seed", range(8))
def test_random_corruption_never_escapes_as_another_error(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    spots = rng.integers(0, len(data), size=4)
    for s in spots:
        data[s] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))
    try:
        load_dataset(folder)
    except DataError as exc:
        assert "train-images-idx3-ubyte.gz" in str(exc)


def test_crc_mismatch(folder: Path) -> None:
    path = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: corrupt gzip"):
        load_dataset(folder)


def test_wrong_magic_number(folder: Path) -> None:
    write_idx(folder / "train-images-idx3-ubyte.gz", images(30), magic=0x00000901)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: wrong IDX magic number 0x00000901"):
        load_dataset(folder)


def test_labels_file_given_images_magic(folder: Path) -> None:
    write_idx(folder / "train-labels-idx1-ubyte.gz", images(30))
    with pytest.raises(DataError, match="wrong IDX magic number 0x00000803"):
        load_dataset(folder)


def test_counts_differ(folder: Path) -> None:
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels(9, 10))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: 9 labels but .*holds 10 images"):
        load_dataset(folder)


def test_labels_outside_class_range(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "fashion", num_classes=10)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 1, 10] * 10, np.uint8))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte\.gz: 10 labels outside the class range 0\.\.9"):
        load_dataset(folder)


def test_raw_file_truncated_and_trailing_data(folder: Path) -> None:
    raw = idx_bytes(images(30))
    (folder / "train-images-idx3-ubyte.gz").unlink()
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated"):
        load_dataset(folder)
    path.write_bytes(raw + b"xx")
    with pytest.raises(DataError, match="more data than its IDX header"):
        load_dataset(folder)
    path.write_bytes(raw[:6])
    with pytest.raises(DataError, match="ends inside the IDX header"):
        load_dataset(folder)


def test_missing_labels_file(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing IDX file t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset(folder)


def test_garbage_file_with_idx_name(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"hello world, definitely not IDX"))
    with pytest.raises(DataError, match="wrong IDX magic"):
        read_idx(path, "images")
