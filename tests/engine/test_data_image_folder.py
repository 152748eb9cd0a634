"""Image folders: one sub-folder per class, PNG/JPEG/BMP, sizes and colour modes, and bad folders."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import DataError, load_dataset
from tests.helpers.data_factories import make_image_folder


def test_grayscale_pngs(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "pets", ("cat", "dog", "bird"), per_class=5, size=(10, 8))
    ds = load_dataset(root, test_fraction=0.4, seed=0)
    assert ds.class_names == ["bird", "cat", "dog"]
    assert ds.input_shape == (8, 10, 1) and ds.x_train.dtype == np.uint8
    assert len(ds.y_train) == 9 and len(ds.y_test) == 6
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]
    assert ds.name == "pets"


def test_pixels_match_the_files(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("a",), per_class=1, size=(4, 3))
    ds = load_dataset(root, test_fraction=0)
    expected = np.asarray(Image.open(root / "a" / "0.png"))
    assert np.array_equal(ds.x_train[0, ..., 0], expected)


@pytest.mark.parametrize("fmt", ["png", "jpg", "bmp"])
def test_rgb_formats_are_detected_as_rgb(tmp_path: Path, fmt: str) -> None:
    root = make_image_folder(tmp_path / "p", ("x", "y"), per_class=2, size=(6, 6), mode="RGB", fmt=fmt)
    ds = load_dataset(root, test_fraction=0)
    assert ds.input_shape == (6, 6, 3) and len(ds.y_train) == 4


def test_color_mode_and_resize(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("x", "y"), per_class=2, size=(6, 6), mode="RGB")
    ds = load_dataset(root, image_size=(12, 9), color_mode="grayscale", test_fraction=0)
    assert ds.input_shape == (12, 9, 1)
    gray = make_image_folder(tmp_path / "g", ("x", "y"), per_class=2, size=(6, 6))
    assert load_dataset(gray, color_mode="rgb", test_fraction=0).input_shape == (6, 6, 3)


def test_mixed_sizes_need_a_target_size(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("a", "b"), per_class=2, size=(8, 8))
    Image.new("L", (9, 7)).save(root / "b" / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: image is 9x7 \(width x height\) but .* is 8x8"):
        load_dataset(root)
    ds = load_dataset(root, image_size=(8, 8), test_fraction=0)
    assert len(ds.y_train) == 5


def test_train_and_test_subfolders(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "d" / "train", ("a", "b"), per_class=3)
    make_image_folder(tmp_path / "d" / "test", ("b",), per_class=2)
    ds = load_dataset(tmp_path / "d")
    assert ds.class_names == ["a", "b"]
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [1, 1]


def test_test_class_unknown_to_train(tmp_path: Path) -> None:
    make_image_folder(tmp_path / "d" / "train", ("a", "b"))
    make_image_folder(tmp_path / "d" / "test", ("c",))
    with pytest.raises(DataError, match=r"test[/\\]c: test class folder has no matching folder"):
        load_dataset(tmp_path / "d")


def test_natural_class_order(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("class10", "class2", "class1"), per_class=1)
    assert load_dataset(root, test_fraction=0).class_names == ["class1", "class2", "class10"]


def test_non_image_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("a", "b"), per_class=2)
    (root / "a" / "notes.txt").write_text("not a picture")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0")  # hidden junk: skipped silently
    with pytest.warns(UserWarning) as record:
        ds = load_dataset(root, test_fraction=0)
    messages = [str(w.message) for w in record]
    assert any("notes.txt: not an image, skipped" in m for m in messages)
    assert any("broken.png: not an image, skipped" in m for m in messages)
    assert not any(".DS_Store" in m for m in messages)
    assert len(ds.y_train) == 4


def test_truncated_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("a", "b"), per_class=2, size=(64, 64), mode="RGB", fmt="jpg")
    path = root / "a" / "0.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = load_dataset(root, test_fraction=0)
    assert any("0.jpg" in str(w.message) for w in record)
    assert len(ds.y_train) == 3


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: folder is empty"):
        load_dataset(tmp_path / "empty")


def test_class_folder_without_images(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "p", ("a",), per_class=2)
    (root / "b").mkdir()
    (root / "b" / "readme.txt").write_text("nothing here")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=r"p[/\\]b: class folder has no images"):
            load_dataset(root)


def test_folder_of_loose_files_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "loose" / "a.png")
    with pytest.raises(DataError, match=r"loose: no dataset found here; looked for IDX files"):
        load_dataset(tmp_path / "loose")
