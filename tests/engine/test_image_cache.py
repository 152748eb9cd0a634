"""Image folders decoded once into a memory-mapped cache: reused while the folder is unchanged, rebuilt
when it changes, with progress and cancel, and never held in memory twice."""

from __future__ import annotations

import os
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from engine.data import image_cache, image_folder, load_dataset
from engine.errors import DataError, LoadCancelled
from engine.training import TrainConfig, prepare
from tests.helpers.data_factories import make_image_folder
from tests.helpers.engine_factories import arch


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(image_cache.CACHE_ENV, str(folder))
    return folder


def complete_caches(cache_dir: Path) -> list[Path]:
    return sorted(p.parent for p in cache_dir.rglob("meta.json"))


def memmapped(a: np.ndarray) -> bool:
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = a.base if isinstance(a.base, np.ndarray) else None
    return False


def test_a_cached_folder_gives_the_same_data_from_a_read_only_memory_map(tmp_path, cache_dir):
    root = make_image_folder(tmp_path / "pets", ("cat", "dog", "owl"), per_class=6, mode="RGB")
    plain = load_dataset(root, cache=False)
    cached = load_dataset(root, cache=True)
    assert len(complete_caches(cache_dir)) == 1
    for part in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(cached, part), getattr(plain, part), err_msg=part)
    assert memmapped(cached.x_train) and memmapped(cached.x_test)
    assert np.shares_memory(cached.x_train, cached.x_train) and not cached.x_train.flags.writeable
    with pytest.raises(ValueError):
        cached.x_train[0, 0, 0, 0] = 1
    assert cached.class_names == ["cat", "dog", "owl"] and cached.input_shape == (8, 10, 3)


def test_the_cache_is_reused_without_decoding_until_the_folder_changes(tmp_path, cache_dir, monkeypatch):
    root = make_image_folder(tmp_path / "pets", per_class=4)
    first = load_dataset(root, cache=True)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached folder was decoded again")

    with monkeypatch.context() as patched:
        patched.setattr(image_folder, "picture_pixels", no_decoding)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = load_dataset(root, cache=True)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    old = complete_caches(cache_dir)
    # A file changed (same name, new time and pixels): a fresh cache replaces the stale one.
    changed = root / "dog" / "0.png"
    make_image_folder(tmp_path / "other", ("dog",), per_class=1, seed=9)
    changed.write_bytes((tmp_path / "other" / "dog" / "0.png").read_bytes())
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    rebuilt = load_dataset(root, cache=True)
    assert complete_caches(cache_dir) != old and len(complete_caches(cache_dir)) == 1
    assert not np.array_equal(np.concatenate([rebuilt.x_train, rebuilt.x_test]),
                              np.concatenate([first.x_train, first.x_test]))


def test_other_settings_are_cached_apart(tmp_path, cache_dir):
    root = make_image_folder(tmp_path / "pets", per_class=4, mode="RGB")
    small = load_dataset(root, cache=True, image_size=(4, 5), color_mode="grayscale")
    full = load_dataset(root, cache=True)
    assert small.input_shape == (4, 5, 1) and full.input_shape == (8, 10, 3)
    assert len(complete_caches(cache_dir)) == 2


def test_progress_reports_every_file_and_cancel_leaves_nothing_behind(tmp_path, cache_dir):
    root = make_image_folder(tmp_path / "pets", per_class=5)
    seen: list[tuple[str, int, int]] = []
    load_dataset(root, cache=True, progress=lambda *step: seen.append(step))
    assert [s for s in seen if s[0] == "scanning"][-1] == ("scanning", 10, 10)
    assert [s for s in seen if s[0] == "decoding"][-1] == ("decoding", 10, 10)
    for entry in cache_dir.rglob("*"):
        if entry.is_dir() and entry.name.startswith(".building-"):
            pytest.fail(f"a build folder was left: {entry}")

    other = make_image_folder(tmp_path / "birds", ("owl", "tit"), per_class=5)
    decoded = []

    def progress(stage, done, total):
        if stage == "decoding":
            decoded.append(done)

    with pytest.raises(LoadCancelled):
        load_dataset(other, cache=True, progress=progress, cancel=lambda: len(decoded) >= 3)
    assert len(decoded) == 3
    assert not any(p.name.startswith(".building-") for p in cache_dir.rglob("*"))
    assert not any("birds" in str(p) for p in complete_caches(cache_dir))
    assert len(load_dataset(other, cache=True).y_train) == 8  # nothing stale in the way afterwards


def test_skipped_files_are_remembered_by_the_cache(tmp_path, cache_dir):
    root = make_image_folder(tmp_path / "pets", per_class=4)
    broken = root / "cat" / "1.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a header that reads, pixels that do not
    with pytest.warns(UserWarning, match="not an image, skipped"):
        first = load_dataset(root, cache=True)
    with pytest.warns(UserWarning, match="1 unreadable file"):
        again = load_dataset(root, cache=True)
    assert len(first.y_train) + len(first.y_test) == 7
    np.testing.assert_array_equal(again.y_train, first.y_train)


def test_large_folders_are_cached_by_default(tmp_path, cache_dir, monkeypatch):
    root = make_image_folder(tmp_path / "pets", per_class=3)
    load_dataset(root)
    assert not complete_caches(cache_dir)  # small: decoded into memory
    monkeypatch.setattr(image_folder, "CACHE_THRESHOLD", 1)
    assert memmapped(load_dataset(root).x_train) and len(complete_caches(cache_dir)) == 1


def test_no_disk_space_for_a_requested_cache(tmp_path, cache_dir, monkeypatch):
    root = make_image_folder(tmp_path / "pets", per_class=3)
    monkeypatch.setattr(image_folder, "enough_disk", lambda *a: False)
    with pytest.raises(DataError, match="not enough free disk space for its image cache"):
        load_dataset(root, cache=True)
    assert load_dataset(root).y_train.size  # automatic caching falls back to memory


def test_a_folder_is_never_held_in_memory_twice(tmp_path, cache_dir):
    # 1,500 images of 32x32x3 (4.6 MB decoded): loading in memory allocates them once (training and
    # test parts are views of one array), the cache keeps them out of the heap altogether.
    root = make_image_folder(tmp_path / "many", ("a", "b", "c"), per_class=500, size=(32, 32), mode="RGB")
    decoded = 1500 * 32 * 32 * 3
    for cache, limit in ((False, 1.3 * decoded), (True, 0.5 * decoded)):
        tracemalloc.start()
        try:
            data = load_dataset(root, cache=cache)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < limit, f"cache={cache}: {peak / decoded:.2f} times the decoded size"
        assert len(data.y_train) + len(data.y_test) == 1500
        base = data.x_train.base if data.x_train.base is not None else data.x_train
        assert np.shares_memory(data.x_train, base) and np.shares_memory(data.x_test, base)


def test_a_cached_folder_trains(tmp_path, cache_dir):
    root = make_image_folder(tmp_path / "pets", per_class=12, size=(8, 8))
    data = load_dataset(root, cache=True)
    doc = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
               {"type": "Dense", "units": 2, "activation": "softmax"}, shape=(8, 8, 1))
    model, trainer = prepare(doc, data, TrainConfig(epochs=1, batch_size=4))
    history = trainer.fit()
    assert history.finished.reason == "completed" and np.isfinite(history.epochs[0].train_loss)
