"""CIFAR-10 python batches, faked with a few 32x32 images per batch."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from engine.data import DataError, load_dataset
from tests.helpers.data_factories import images, labels, make_cifar_folder, write_cifar_batch


def test_batches_folder_loads_in_channels_last_order(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "cifar-10-batches-py")
    ds = load_dataset(folder)
    assert ds.x_train.shape == (12, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (5, 32, 32, 3)
    assert ds.class_names == ["airplane", "automobile", "bird"]
    assert ds.name == "cifar-10" and ds.input_shape == (32, 32, 3)
    # data_batch_1 then data_batch_2, pixels back in (H, W, C) order
    assert np.array_equal(ds.x_train[:6], images(6, 32, 32, 3, seed=1))
    assert np.array_equal(ds.x_train[6:], images(6, 32, 32, 3, seed=2))
    assert ds.y_train.tolist() == labels(6, 3).tolist() * 2


def test_red_plane_comes_first(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c", n_batches=1)
    x = np.zeros((6, 32, 32, 3), np.uint8)
    x[..., 0] = 200  # red only
    write_cifar_batch(folder / "data_batch_1", x, labels(6, 3))
    ds = load_dataset(folder)
    assert (ds.x_train[..., 0] == 200).all() and (ds.x_train[..., 1:] == 0).all()


def test_parent_folder_and_str_keys_and_no_test_batch(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "download" / "cifar-10-batches-py", n_test=0, per_batch=10)
    write_cifar_batch(folder / "data_batch_2", images(10, 32, 32, 3), labels(10, 3), str_keys=True)
    ds = load_dataset(tmp_path / "download", test_fraction=0.25)
    assert len(ds.y_train) + len(ds.y_test) == 20 and len(ds.y_test) == 5


def test_labels_outside_class_range(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    write_cifar_batch(folder / "test_batch", images(2, 32, 32, 3), np.array([0, 3]))
    with pytest.raises(DataError, match=r"test_batch: 1 labels outside the class range 0..2"):
        load_dataset(folder)


def test_label_count_mismatch(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    d = {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(d))
    with pytest.raises(DataError, match=r"data_batch_2: 2 labels but 3 images"):
        load_dataset(folder)


def test_wrong_data_shape(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    d = {b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(d))
    with pytest.raises(DataError, match=r"data_batch_1: 'data' must be \(N, 3072\) uint8"):
        load_dataset(folder)


@pytest.mark.parametrize("raw", [bytes(100), bytes(3072 + 5)])
def test_raw_data_bytes_that_are_not_whole_images(tmp_path: Path, raw) -> None:
    # A fuzz finding: raw bytes of another length ended in numpy's reshape error.
    folder = make_cifar_folder(tmp_path / "c")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": raw, b"labels": [0]}))
    with pytest.raises(DataError, match=rf"data_batch_1: 'data' holds {len(raw)} bytes, not a whole number"):
        load_dataset(folder)


@pytest.mark.parametrize("entry,message", [
    ({b"data": [[0] * 3072, [0]], b"labels": [0, 1]}, r"'data' must be an \(N, 3072\) uint8 array, not list"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1, 2]]}, r"'labels' must be a list of whole numbers"),
])
def test_ragged_lists_are_refused(tmp_path: Path, entry, message) -> None:
    # Fuzz findings: ragged lists ended in numpy's "inhomogeneous shape" error.
    folder = make_cifar_folder(tmp_path / "c")
    (folder / "data_batch_1").write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DataError, match=rf"data_batch_1: {message}"):
        load_dataset(folder)


def test_protocol_5_buffers_are_refused(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    raw = pickle.dumps({b"data": bytearray(3072), b"labels": [0]}, protocol=5)
    (folder / "data_batch_1").write_bytes(raw)
    with pytest.raises(DataError, match=r"data_batch_1: not a readable CIFAR batch file .*BYTEARRAY8"):
        load_dataset(folder)


def test_truncated_batch_file(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    path = folder / "data_batch_1"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_1: not a readable CIFAR batch file"):
        load_dataset(folder)


def test_missing_meta(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    (folder / "batches.meta").unlink()
    with pytest.raises(DataError, match=r"missing batches.meta"):
        load_dataset(folder)


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    folder = make_cifar_folder(tmp_path / "c")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(marker),))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match=r"data_batch_1: .*refusing to load"):
        load_dataset(folder)
    assert not marker.exists()
