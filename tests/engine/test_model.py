"""The Model: whole-network gradients, determinism, weight files."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Model, load_weights, save_weights
from engine.errors import WeightsError
from engine.layers import LAYER_TYPES
from engine.weights import import_weights
from tests.helpers.engine_factories import CONCAT, EVERY_LAYER, RESIDUAL, SMALL_CNN, arch
from tests.helpers.gradcheck import check_model_gradients


def test_every_layer_type_is_in_the_full_architecture():
    # Merge layers need branches: the graph factories hold them.
    assert {spec["type"] for spec in EVERY_LAYER["layers"]} == set(LAYER_TYPES) - {"Add", "Concatenate"}
    assert {spec["type"] for doc in (RESIDUAL, CONCAT) for spec in doc["layers"]} >= {"Add", "Concatenate"}


def test_whole_network_gradients_float64():
    model = Model(EVERY_LAYER, seed=3, dtype=np.float64)
    for layer in model.layers:
        if layer.type_name == "Dropout":
            layer.config["rate"] = 0.0  # dropout off so the loss is a deterministic function
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 11, 13, 3))
    check_model_gradients(model, x, np.array([0, 1, 2, 1]), rng)


def test_same_seed_same_weights_and_outputs_float32():
    x = np.random.default_rng(1).random((5, 11, 13, 3), dtype=np.float32)
    a, b = Model(EVERY_LAYER, seed=7), Model(EVERY_LAYER, seed=7)
    assert all(np.array_equal(a.tensors()[k], b.tensors()[k]) for k in a.tensors())
    out = a.predict(x)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    np.testing.assert_array_equal(out, b.predict(x))
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    assert not np.array_equal(Model(EVERY_LAYER, seed=8).predict(x), out)


def test_layer_outputs_for_one_image():
    model = Model(SMALL_CNN)
    outputs = model.layer_outputs(np.zeros((12, 12, 1), np.float32))
    assert [name for name, _ in outputs] == ["conv2d_1", "max_pool2d_1", "flatten_1", "dense_1"]
    assert [o.shape for _, o in outputs] == [(10, 10, 4), (5, 5, 4), (100,), (3,)]


def test_wrong_input_shape_is_refused():
    with pytest.raises(ValueError, match=r"the model expects \(N, 12, 12, 1\)"):
        Model(SMALL_CNN).forward(np.zeros((2, 28, 28, 1), np.float32))


def test_weights_round_trip_is_bit_identical(tmp_path):
    model = Model(EVERY_LAYER, seed=2)
    model.layers[1].state["moving_mean"][...] = [0.1, 0.2, 0.3, 0.4]
    path = save_weights(model, tmp_path / "w.npz")
    loaded = load_weights(path)
    x = np.random.default_rng(3).random((6, 11, 13, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.architecture == model.architecture
    assert set(np.load(path).files) >= {"__architecture__", "batch_norm_1.moving_mean", "conv2d_1.kernel"}
    assert not list(tmp_path.glob(".*tmp"))


def test_loading_into_another_architecture_names_the_first_mismatch(tmp_path):
    path = save_weights(Model(SMALL_CNN), tmp_path / "w.npz")
    wider = arch({"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
                 {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                 {"type": "Dense", "units": 3, "activation": "softmax"})
    with pytest.raises(WeightsError, match=r"tensor 'conv2d_1.kernel' has shape \(3, 3, 1, 4\) in the file"):
        import_weights(Model(wider), path)
    other = arch({"type": "Flatten"}, {"type": "Dense", "units": 3})
    with pytest.raises(WeightsError, match="tensor 'dense_1.kernel'"):
        import_weights(Model(other), path)


def test_bad_weight_files(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match="junk.npz: not a CNN Studio weight file"):
        load_weights(junk)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(WeightsError, match="foreign.npz: not a CNN Studio weight file"):
        load_weights(foreign)


def test_failed_save_leaves_old_file_intact(tmp_path, monkeypatch):
    model = Model(SMALL_CNN)
    path = save_weights(model, tmp_path / "w.npz")
    before = path.read_bytes()

    def boom(handle, **arrays):
        handle.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="No space"):
        save_weights(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
