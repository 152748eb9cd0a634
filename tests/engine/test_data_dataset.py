"""Dataset, Normalization, splits and batching, on arrays built in memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.data import Augmentation, DataError, Dataset, Normalization


def make(n_train: int = 40, n_test: int = 10, k: int = 4, c: int | None = None, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    shape = (6, 5) if c is None else (6, 5, c)
    x = rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8)
    xt = rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8)
    return Dataset.from_arrays(x, np.arange(n_train) % k, xt, np.arange(n_test) % k, name="toy")


# ------------------------------------------------------------------------------------- Normalization
def test_normalization_apply_scales_and_centres_per_channel() -> None:
    x = np.array([[[[0, 255, 51]]]], dtype=np.uint8)  # (1, 1, 1, 3)
    norm = Normalization(scale=1 / 255, mean=(0.0, 0.5, 0.2), std=(1.0, 0.5, 0.1))
    out = norm.apply(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == x.shape
    np.testing.assert_allclose(out.ravel(), [0.0, 1.0, 0.0], atol=1e-6)


def test_normalization_apply_returns_a_new_array_even_for_float32_input() -> None:
    x = np.ones((2, 3, 3, 1), dtype=np.float32)
    out = Normalization(scale=1.0).apply(x)
    out[...] = 5
    assert x.max() == 1.0


def test_normalization_dict_round_trip_is_json_safe() -> None:
    norm = Normalization(scale=1 / 255, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    again = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again == norm
    assert Normalization.from_dict({}) == Normalization()


@pytest.mark.parametrize("kwargs", [
    {"scale": 0}, {"scale": float("nan")}, {"mean": (0.5,)}, {"mean": (0.5,), "std": (0.0,)},
    {"mean": (0.1, 0.2), "std": (0.3,)},
])
def test_normalization_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(DataError, match="normalization"):
        Normalization(**kwargs)


def test_normalization_from_dict_rejects_garbage() -> None:
    with pytest.raises(DataError):
        Normalization.from_dict({"scale": "x"})
    with pytest.raises(DataError, match="unknown keys"):
        Normalization.from_dict({"scale": 1.0, "offset": 2})
    with pytest.raises(DataError):
        Normalization.from_dict([1, 2])  # type: ignore[arg-type]


def test_normalization_channel_mismatch_is_a_data_error() -> None:
    with pytest.raises(DataError, match="channel"):
        Normalization(mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)).apply(np.zeros((1, 2, 2, 1), np.uint8))


# ------------------------------------------------------------------------------------- from_arrays
def test_from_arrays_adds_channel_axis_and_defaults() -> None:
    ds = make()
    assert ds.x_train.shape == (40, 6, 5, 1) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.input_shape == (6, 5, 1)
    assert ds.class_names == ["0", "1", "2", "3"] and ds.num_classes == 4
    assert ds.normalization == Normalization(scale=1 / 255)


def test_from_arrays_without_test_gives_an_empty_test_part() -> None:
    ds = Dataset.from_arrays(np.zeros((5, 4, 4, 3), np.uint8), np.zeros(5, np.int64))
    assert ds.x_test.shape == (0, 4, 4, 3) and ds.y_test.shape == (0,)
    assert list(ds.batches(None, 4, part="test")) == []


def test_from_arrays_does_not_copy_uint8_storage_and_protects_it() -> None:
    x = np.zeros((5, 4, 4, 1), np.uint8)
    ds = Dataset.from_arrays(x, np.zeros(5, np.int64))
    assert np.shares_memory(ds.x_train, x)
    assert x.flags.writeable and not ds.x_train.flags.writeable


def test_from_arrays_floats() -> None:
    ds = Dataset.from_arrays(np.full((3, 2, 2), 0.5, np.float64), [0, 1, 1])
    assert ds.x_train.dtype == np.float32 and ds.normalization.scale == 1.0
    ds255 = Dataset.from_arrays(np.full((3, 2, 2), 200.0), [0, 1, 1])
    assert ds255.normalization.scale == pytest.approx(1 / 255)


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((3, 4)), [0, 1, 2], "shape"),
    (np.zeros((3, 4, 4), np.uint8), [0, 1], "2 training labels but 3 images"),
    (np.full((3, 4, 4), 300, np.int32), [0, 1, 2], "0..255"),
    (np.zeros((3, 4, 4), np.uint8), [0, -1, 2], "outside the class range"),
    (np.zeros((3, 4, 4), np.uint8), [0.5, 1, 2], "whole numbers"),
    (np.zeros((0, 4, 4), np.uint8), np.zeros(0, np.int64), "no images"),
    (np.full((3, 4, 4), np.nan), [0, 1, 2], "NaN"),
])
def test_from_arrays_validates(x: np.ndarray, y: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        Dataset.from_arrays(x, y, source="mine.npz")  # type: ignore[arg-type]


def test_from_arrays_class_names_checked() -> None:
    x = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(DataError, match="outside the class range"):
        Dataset.from_arrays(x, [0, 1, 2], class_names=["a", "b"])
    with pytest.raises(DataError, match="twice"):
        Dataset.from_arrays(x, [0, 1, 1], class_names=["a", "a"])
    with pytest.raises(DataError, match="test images"):
        Dataset.from_arrays(x, [0, 1, 1], np.zeros((2, 5, 5), np.uint8), [0, 1])


def test_from_arrays_accepts_one_hot_labels() -> None:
    ds = Dataset.from_arrays(np.zeros((3, 2, 2), np.uint8), np.eye(3)[[2, 0, 1]])
    assert ds.y_train.tolist() == [2, 0, 1]


# ------------------------------------------------------------------------------------- standardized
def test_standardized_matches_numpy_and_shares_storage() -> None:
    ds = make(n_train=50, c=3)
    st = ds.standardized()
    ref = ds.x_train.astype(np.float64) / 255
    np.testing.assert_allclose(st.normalization.mean, ref.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(st.normalization.std, ref.std(axis=(0, 1, 2)), rtol=1e-6)
    assert np.shares_memory(st.x_train, ds.x_train)
    out = st.normalized("train")
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_standardized_constant_channel_has_finite_std() -> None:
    ds = Dataset.from_arrays(np.full((4, 3, 3), 7, np.uint8), [0, 1, 0, 1]).standardized()
    assert np.isfinite(ds.normalized("train")).all()


# ------------------------------------------------------------------------------------- split
def test_split_is_seeded_disjoint_and_stratified() -> None:
    ds = make(n_train=100, k=4)
    tr, va = ds.split(0.2, seed=3)
    assert len(va) == 20 and len(tr) == 80
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == list(range(100))
    assert np.bincount(ds.y_train[va]).tolist() == [5, 5, 5, 5]
    tr2, va2 = ds.split(0.2, seed=3)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not np.array_equal(va, ds.split(0.2, seed=4)[1])
    assert tr.dtype == np.int64 and va.dtype == np.int64


def test_split_zero_gives_empty_validation() -> None:
    tr, va = make().split(0.0, seed=0)
    assert len(va) == 0 and len(tr) == 40


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2, "x"])
def test_split_rejects_bad_fractions(fraction: object) -> None:
    with pytest.raises(DataError, match="fraction"):
        make().split(fraction, seed=0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- batches
def test_batches_cover_indices_in_order_without_rng() -> None:
    ds = make(n_train=10)
    idx = np.array([9, 3, 4, 0, 1])
    got = list(ds.batches(idx, 2))
    assert [len(y) for _, y in got] == [2, 2, 1]
    ys = np.concatenate([y for _, y in got])
    assert ys.tolist() == ds.y_train[idx].tolist()
    x0, _ = got[0]
    assert x0.dtype == np.float32 and x0.flags.c_contiguous and x0.shape == (2, 6, 5, 1)
    np.testing.assert_allclose(x0, ds.x_train[[9, 3]] / 255, rtol=1e-6)


def test_batches_shuffle_with_seed() -> None:
    ds = make(n_train=30)
    idx = np.arange(30)

    def order(seed: int) -> list[int]:
        xs = [x for x, _ in ds.batches(idx, 7, rng=np.random.default_rng(seed))]
        flat = np.concatenate(xs).reshape(30, -1)
        ref = ds.normalized("train").reshape(30, -1)
        return [int(np.flatnonzero((ref == row).all(axis=1))[0]) for row in flat]

    a, b = order(1), order(1)
    assert a == b and sorted(a) == list(range(30)) and a != list(range(30)) and a != order(2)


def test_batches_test_part_and_augmentation() -> None:
    ds = make().standardized()
    xs = list(ds.batches(None, 4, part="test"))
    assert sum(len(y) for _, y in xs) == 10
    aug = Augmentation(shift=1, hflip=True, rotation=10)
    xb, yb = next(ds.batches(np.arange(8), 8, rng=np.random.default_rng(0), augmentation=aug))
    assert xb.shape == (8, 6, 5, 1) and xb.dtype == np.float32 and xb.flags.c_contiguous
    assert yb.dtype == np.int64


def test_batches_reject_bad_arguments() -> None:
    ds = make()
    with pytest.raises(DataError, match="batch size"):
        next(ds.batches(None, 0))
    with pytest.raises(DataError, match="part"):
        next(ds.batches(None, 4, part="validation"))
    with pytest.raises(DataError, match="indices"):
        next(ds.batches(np.array([0, 40]), 4))
    with pytest.raises(DataError, match="indices"):
        next(ds.batches(np.array([0.5]), 4))


def test_normalized_rows() -> None:
    ds = make()
    out = ds.normalized("test", np.array([2, 0]))
    np.testing.assert_allclose(out, ds.x_test[[2, 0]] / 255, rtol=1e-6)
    assert ds.normalized("train").shape == (40, 6, 5, 1)


# ------------------------------------------------------------------------------------- subset
def test_subset_is_balanced_and_seeded() -> None:
    ds = make(n_train=100, n_test=40, k=4)
    sub = ds.subset(20, 8, seed=1)
    assert np.bincount(sub.y_train).tolist() == [5, 5, 5, 5]
    assert np.bincount(sub.y_test).tolist() == [2, 2, 2, 2]
    assert sub.class_names == ds.class_names and sub.name == ds.name
    again = ds.subset(20, 8, seed=1)
    assert np.array_equal(sub.x_train, again.x_train)


def test_subset_with_uneven_classes_and_too_many_requested() -> None:
    y = np.array([0] * 2 + [1] * 10 + [2] * 10)
    ds = Dataset.from_arrays(np.zeros((22, 2, 2), np.uint8), y)
    sub = ds.subset(12, 0)
    assert np.bincount(sub.y_train).tolist() == [2, 5, 5]
    assert len(ds.subset(1000, 0).y_train) == 22
    with pytest.raises(DataError):
        ds.subset(0, 0)


def test_constructor_rejects_mixed_storage_types() -> None:
    x = np.zeros((2, 3, 3, 1), np.uint8)
    with pytest.raises(DataError, match="float32"):
        Dataset("d", "d.npz", x, np.array([0, 1]), x.astype(np.float32), np.array([0, 1]), ["a", "b"])
    with pytest.raises(DataError, match="uint8 or float32"):
        Dataset("d", "d.npz", x.astype(np.int16), np.array([0, 1]), x, np.array([0, 1]), ["a", "b"])
