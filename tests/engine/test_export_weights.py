"""Weight files: .npz and .safetensors round trips, and imports that refuse a different architecture."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import WeightsError
from engine.export import export_model, import_weight_file, load_weight_file, read_any_weight_file
from engine.model import Model
from engine.weights import import_weights, load_weights
from tests.engine.test_export_cases import ARCHITECTURES, SEED_SAMPLE, normalized, randomized_model, raw_batch
from tests.helpers.extras import require

require("safetensors")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip_is_bit_identical(tmp_path, name, suffix) -> None:
    model = randomized_model(name)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.25] * model.input_shape[2], "std": [0.5] * model.input_shape[2]}
    path = tmp_path / f"net{suffix}"
    assert export_model(model, path) == [path]
    back = load_weight_file(path)
    assert back.architecture == model.architecture
    assert back.preprocessing == model.preprocessing
    assert list(back.tensors()) == list(model.tensors())
    for key, value in model.tensors().items():
        assert np.array_equal(back.tensors()[key], value), key
    x = normalized(model, raw_batch(model))
    assert np.array_equal(back.predict(x), model.predict(x))


def test_npz_export_is_the_engines_own_weight_file(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")
    export_model(model, tmp_path / "w.npz")
    back = load_weights(tmp_path / "w.npz")
    assert all(np.array_equal(back.tensors()[k], v) for k, v in model.tensors().items())


def test_safetensors_metadata_holds_architecture_and_layer_order(tmp_path) -> None:
    from safetensors import safe_open

    model = randomized_model("gray_odd_every_kind")
    path = export_model(model, tmp_path / "w.safetensors")[0]
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        stored_keys = list(handle.keys())
    assert json.loads(metadata["architecture"]) == model.architecture
    assert json.loads(metadata["order"]) == list(model.tensors())
    assert json.loads(metadata["preprocessing"]) == model.preprocessing
    # The file sorts its keys; the order record is what restores layer order.
    assert stored_keys == sorted(model.tensors()) != list(model.tensors())
    _, _, tensors = read_any_weight_file(path)
    assert list(tensors) == list(model.tensors())


def test_safetensors_keeps_non_contiguous_snapshots_intact(tmp_path) -> None:
    model = randomized_model("gray_odd_every_kind")
    # A snapshot whose arrays are transposed or strided views, as a careless caller might pass.
    snapshot = {k: np.asfortranarray(v) if v.ndim > 1 else v[::-1][::-1] for k, v in model.get_weights().items()}
    assert any(not v.flags.c_contiguous for v in snapshot.values())
    path = export_model(model, tmp_path / "w.safetensors", weights=snapshot)[0]
    back = load_weight_file(path)
    for key, value in model.tensors().items():
        assert np.array_equal(back.tensors()[key], value), key


def test_every_reader_takes_the_safetensors_export_told_by_content_not_name(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")
    path = export_model(model, tmp_path / "w.safetensors")[0]
    renamed = tmp_path / "w.weights"
    renamed.write_bytes(path.read_bytes())
    for source in (path, renamed):
        back = load_weights(source)  # engine.weights: what cnn-engine evaluate loads
        assert back.architecture == model.architecture
        assert all(np.array_equal(back.tensors()[k], v) for k, v in model.tensors().items()), source
        for importer in (import_weights, import_weight_file):  # the engine's and the studio's import
            target = Model.from_architecture(ARCHITECTURES["rgb_global_pool"], seed=9)
            importer(target, source)
            assert all(np.array_equal(target.tensors()[k], v) for k, v in model.tensors().items()), source
    onnx = tmp_path / "model.weights"
    onnx.write_bytes(b"\x08\x01\x12\x07pytorch")
    with pytest.raises(WeightsError, match=r"model\.weights: not a CNN Studio weight file: it is an ONNX model"):
        read_any_weight_file(onnx)


def test_export_uses_the_given_snapshot_not_the_live_weights(tmp_path) -> None:
    model = randomized_model("dense_no_softmax")
    snapshot = model.get_weights()
    model.tensors()["dense_1.kernel"][...] = 0.0  # training moved on after the snapshot was taken
    back = load_weight_file(export_model(model, tmp_path / "w.npz", weights=snapshot)[0])
    assert np.array_equal(back.tensors()["dense_1.kernel"], snapshot["dense_1.kernel"])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_import_into_the_same_architecture(tmp_path, suffix) -> None:
    source = randomized_model("rgb_global_pool", seed=5)
    path = export_model(source, tmp_path / f"w{suffix}")[0]
    target = Model.from_architecture(ARCHITECTURES["rgb_global_pool"], seed=9)
    import_weight_file(target, path)
    x = normalized(source, raw_batch(source))
    assert np.array_equal(target.predict(x), source.predict(x))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_import_of_a_different_architecture_is_refused_naming_the_tensor(tmp_path, suffix) -> None:
    path = export_model(Model.from_architecture(SEED_SAMPLE), tmp_path / f"seed{suffix}")[0]
    wider = json.loads(SEED_SAMPLE.read_text())
    wider["layers"][5]["units"] = 64  # dense_1: 128 -> 64 units
    target = Model.from_architecture(wider)
    before = target.get_weights()
    with pytest.raises(WeightsError) as caught:
        import_weight_file(target, path)
    message = str(caught.value)
    assert "'dense_1.kernel'" in message and str(path) in message
    assert all(np.array_equal(target.tensors()[k], v) for k, v in before.items()), "a refused import changed weights"


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_import_with_a_missing_layer_names_the_missing_tensor(tmp_path, suffix) -> None:
    path = export_model(randomized_model("dense_no_softmax"), tmp_path / f"w{suffix}")[0]
    longer = json.loads(json.dumps(ARCHITECTURES["dense_no_softmax"]))
    longer["layers"].insert(2, {"type": "Dense", "units": 7})
    with pytest.raises(WeightsError, match="'batch_norm_1.gamma'|'dense_2.kernel'"):
        import_weight_file(Model.from_architecture(longer), path)


def test_unreadable_files_are_refused_with_the_file_named(tmp_path) -> None:
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(WeightsError, match="fake.safetensors"):
        load_weight_file(fake)
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(WeightsError, match="not a CNN Studio weight file"):
        load_weight_file(foreign)
    with pytest.raises(WeightsError, match=r"\.onnx"):
        read_any_weight_file(tmp_path / "model.onnx")
    with pytest.raises(WeightsError, match="no such file"):
        load_weight_file(tmp_path / "missing.safetensors")
