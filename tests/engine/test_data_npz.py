""".npz datasets: x and y, optional x_test/y_test and class_names, and broken archives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import DataError, load_dataset
from tests.helpers.data_factories import images, labels


def test_x_y_split_with_seed(tmp_path: Path) -> None:
    path = tmp_path / "toy.npz"
    np.savez(path, x=images(20), y=labels(20, 4))
    ds = load_dataset(path, test_fraction=0.2, seed=1)
    assert ds.input_shape == (8, 8, 1) and len(ds.y_train) == 16 and len(ds.y_test) == 4
    assert ds.class_names == ["0", "1", "2", "3"] and ds.name == "toy"
    again = load_dataset(path, test_fraction=0.2, seed=1)
    assert np.array_equal(ds.y_test, again.y_test) and np.array_equal(ds.x_test, again.x_test)


def test_full_archive_with_class_names_and_channels(tmp_path: Path) -> None:
    path = tmp_path / "rgb.npz"
    np.savez_compressed(path, x=images(6, 5, 5, 3), y=labels(6, 2), x_test=images(2, 5, 5, 3, seed=9),
                        y_test=np.array([1, 0]), class_names=np.array(["no", "yes"]))
    ds = load_dataset(str(path))
    assert ds.input_shape == (5, 5, 3) and ds.class_names == ["no", "yes"]
    assert np.array_equal(ds.x_test, images(2, 5, 5, 3, seed=9)) and ds.y_test.tolist() == [1, 0]


def test_float_images_keep_float32_and_scale_one(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, x=np.random.default_rng(0).random((4, 3, 3)), y=[0, 1, 0, 1])
    ds = load_dataset(path, test_fraction=0)
    assert ds.x_train.dtype == np.float32 and ds.normalization.scale == 1.0
    xb, _ = next(ds.batches(None, 4))
    assert np.allclose(xb, ds.x_train, atol=1e-7)


@pytest.mark.parametrize("keys, missing", [({"y": [0]}, "'x'"), ({"x": np.zeros((1, 2, 2))}, "'y'"),
                                           ({"images": np.zeros((1, 2, 2))}, "'x' and 'y'")])
def test_missing_x_or_y(tmp_path: Path, keys: dict, missing: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **keys)
    with pytest.raises(DataError, match=rf"bad\.npz: missing array {missing}"):
        load_dataset(path)


def test_counts_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=images(5), y=[0, 1, 2])
    with pytest.raises(DataError, match=r"bad\.npz: 3 labels 'y' but 5 images"):
        load_dataset(path)
    np.savez(path, x=images(3), y=[0, 1, 2], class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"bad\.npz: 1 labels 'y' outside the class range 0..1"):
        load_dataset(path)
    np.savez(path, x=images(3), y=[0, 1, -1])
    with pytest.raises(DataError, match=r"bad\.npz: labels must be >= 0"):
        load_dataset(path)
    np.savez(path, x=images(3), y=[0, 1, 1], x_test=images(2, 4, 4), y_test=[0, 1])
    with pytest.raises(DataError, match=r"bad\.npz: 'x_test' images are"):
        load_dataset(path)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object()] * 2, dtype=object), y=[0, 1])
    with pytest.raises(DataError, match=r"obj\.npz: array 'x' holds Python objects \(pickled data\)"):
        load_dataset(path)


def test_corrupt_archive(tmp_path: Path) -> None:
    path = tmp_path / "cut.npz"
    np.savez_compressed(path, x=images(50), y=labels(50, 2))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.npz: not a readable \.npz archive"):
        load_dataset(path)
    path.write_text("just text")
    with pytest.raises(DataError, match=r"cut\.npz: not a readable \.npz archive"):
        load_dataset(path)


def test_archive_member_without_a_name(tmp_path: Path) -> None:
    # A fuzz finding: a member named "" ended in an IndexError inside zipfile.
    import zipfile

    path = tmp_path / "empty_name.npz"
    np.savez(path, x=images(4), y=labels(4, 2))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"not an array")
    with pytest.raises(DataError, match=r"empty_name.npz: member '' is not a NumPy array"):
        load_dataset(path)
