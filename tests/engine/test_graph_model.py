"""Branching networks in the engine: Add, Concatenate and fan-out, against finite differences and an
independent NumPy reference; fusion of single-consumer runs; Grad-CAM's activation and gradient."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Model, load_weights, save_weights
from engine.layers import LAYER_TYPES, Add, Concatenate
from engine.layers.fusion import AddRelu, ConvBatchNorm, ConvBatchNormRelu, ConvMaxPool
from engine.losses import softmax_cross_entropy
from engine.resources import asset_path
from tests.helpers.engine_factories import CONCAT, EVERY_LAYER, RESIDUAL, RESNET_BN, arch
from tests.helpers.gradcheck import check_layer_gradients, check_model_gradients, numeric_grad, sample_indices
from tests.helpers.numpy_reference import run_reference

GRAPHS = {"residual": RESIDUAL, "resnet_bn": RESNET_BN, "concat": CONCAT}


def randomized(doc: dict, seed: int = 0) -> Model:
    """A float64 model whose biases and batch-norm scales are non-trivial."""
    model = Model(doc, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 100)
    for name, value in model.parameters().items():
        if name.endswith((".bias", ".beta")):
            value[...] = rng.normal(0, 0.3, value.shape)
        elif name.endswith(".gamma"):
            value[...] = rng.uniform(0.5, 1.5, value.shape)
    return model


def test_every_layer_type_is_covered_by_the_test_networks():
    used = {spec["type"] for doc in (EVERY_LAYER, RESIDUAL, CONCAT) for spec in doc["layers"]}
    assert used == set(LAYER_TYPES)


@pytest.mark.parametrize("name", GRAPHS)
def test_graph_matches_the_numpy_reference(name):
    """Forward, input gradient and every parameter gradient against an independent implementation."""
    doc = GRAPHS[name]
    model = randomized(doc, seed=4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, *model.input_shape))
    y = rng.integers(0, 3, 5)
    loss, logits, d_x, d_params = run_reference(doc, model.tensors(), x, y)
    ours_logits = model.forward_logits(x, training=True)
    ours_loss, grad, _ = softmax_cross_entropy(ours_logits, y)
    d_ours = model.backward(grad, input_grad=True)
    np.testing.assert_allclose(ours_logits, logits, rtol=1e-10, atol=1e-12)
    assert ours_loss == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(d_ours, d_x, rtol=1e-9, atol=1e-13)
    gradients = model.gradients()
    assert list(gradients) == list(model.parameters())
    for key, value in gradients.items():
        np.testing.assert_allclose(value, d_params[key], rtol=1e-9, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("name", GRAPHS)
def test_graph_gradients_against_finite_differences(name):
    model = randomized(GRAPHS[name], seed=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *model.input_shape))
    check_model_gradients(model, x, np.array([0, 2, 1]), rng, per_tensor=4, rtol=1e-5)


def test_fan_out_into_three_consumers_sums_their_gradients():
    """One conv output read by a 1x1 conv, a ReLU and a max pooling, joined by Add and Concatenate."""
    doc = arch(
        {"id": "c", "type": "Conv2D", "filters": 3, "kernel_size": 3},
        {"id": "p", "type": "Conv2D", "filters": 3, "kernel_size": 1, "inputs": ["c"]},
        {"id": "r", "type": "ReLU", "inputs": ["c"]},
        {"id": "m", "type": "MaxPool2D", "pool_size": 3, "stride": 1, "padding": "same", "inputs": ["c"]},
        {"id": "s", "type": "Add", "inputs": ["p", "r"]},
        {"id": "j", "type": "Concatenate", "inputs": ["s", "m"]},
        {"type": "Flatten"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
        shape=(6, 6, 2),
    )
    model = randomized(doc, seed=5)
    assert model.consumers["c"] == ("p", "r", "m")
    rng = np.random.default_rng(3)
    check_model_gradients(model, rng.standard_normal((2, 6, 6, 2)), np.array([1, 0]), rng, per_tensor=8, rtol=1e-6)


@pytest.mark.parametrize("layer,shapes", [
    (Add(), [(2, 4, 5, 3)] * 3),
    (Concatenate(), [(2, 4, 5, 3), (2, 4, 5, 1), (2, 4, 5, 2)]),
    (Concatenate(), [(3, 4), (3, 7)]),
])
def test_merge_layer_gradients_float64(layer, shapes):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    out = layer.forward(xs, True)
    g = rng.standard_normal(out.shape)
    grads = layer.backward(g)
    for x, d in zip(xs, grads):
        idx = sample_indices(x.shape, rng, 10)
        numeric = numeric_grad(lambda: float((layer.forward(xs, True) * g).sum()), x, idx)
        np.testing.assert_allclose([d[i] for i in idx], numeric, rtol=1e-7, atol=1e-9)
    assert all(d.flags.c_contiguous for d in grads)


def test_check_layer_gradients_still_covers_single_input_layers():
    # The shared helper keeps working on ordinary layers next to the merge layers.
    from engine.layers import ReLU

    check_layer_gradients(ReLU(), np.random.default_rng(0).standard_normal((2, 3, 3, 2)) + 0.1,
                          np.random.default_rng(1))


def test_runs_with_one_consumer_are_fused_and_branch_points_are_not():
    doc = arch(
        {"id": "c1", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
        {"type": "BatchNorm"},
        {"id": "r", "type": "ReLU"},
        {"id": "c2", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "MaxPool2D", "pool_size": 2},
        {"id": "side", "type": "MaxPool2D", "pool_size": 2, "inputs": ["r"]},
        {"id": "sum", "type": "Add", "inputs": ["max_pool2d_1", "side"]},
        {"type": "Flatten"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
        shape=(8, 8, 1),
    )
    model = Model(doc)
    kinds = [type(step) for step in model._steps]
    # conv -> bn -> relu is fused (the relu's output feeds two layers, but it ends the run);
    # conv(relu) -> maxpool is fused; the rest run alone.
    assert kinds[:2] == [ConvBatchNormRelu, ConvMaxPool]
    assert [type(step).__name__ for step in model._steps[2:]] == ["MaxPool2D", "Add", "Flatten", "Dense"]


def test_residual_blocks_fuse_batch_norm_without_relu_and_add_with_relu():
    model = Model(RESNET_BN)
    kinds = [type(step).__name__ for step in model._steps]
    assert kinds == ["Conv2D", "ConvBatchNormRelu", "ConvBatchNorm", "AddRelu", "ConvBatchNormRelu",
                     "ConvBatchNorm", "ConvBatchNorm", "AddRelu", "GlobalAvgPool2D", "Dense"]
    assert ConvBatchNorm in map(type, model._steps) and AddRelu in map(type, model._steps)


def test_residual_blocks_fused_equal_their_layers_one_by_one_float32():
    model = Model(RESNET_BN, seed=3)
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x), model.layer_outputs(x)[-1][1], rtol=1e-5, atol=1e-6)


def test_a_chain_runs_the_same_steps_as_before():
    model = Model.from_architecture(asset_path("architectures", "seed_sample.json"))
    assert model._chain and model.is_chain
    assert [type(s).__name__ for s in model._steps] == ["ConvMaxPool", "ConvMaxPool", "Flatten", "Dense", "Dense"]


def test_graph_forward_equals_unfused_layer_outputs_float32():
    model = Model(RESIDUAL, seed=1)
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    outputs = model.layer_outputs(x)
    assert [n for n, _ in outputs] == model.names
    np.testing.assert_allclose(model.predict(x), outputs[-1][1], rtol=1e-5, atol=1e-6)
    shapes = dict((n, o.shape[1:]) for n, o in outputs)
    assert shapes["add_1"] == (8, 8, 4) and shapes["add_2"] == (4, 4, 6)


def test_layer_outputs_include_merge_layers_and_unused_branches():
    doc = arch(
        {"id": "a", "type": "Conv2D", "filters": 2, "kernel_size": 3},
        {"id": "unused", "type": "Conv2D", "filters": 5, "kernel_size": 1, "inputs": ["a"]},
        {"id": "b", "type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "inputs": ["a"]},
        {"type": "Concatenate", "inputs": ["a", "b"]},
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
        shape=(6, 6, 1),
    )
    model = Model(doc)
    assert len(model.analysis.warnings) == 1 and model.analysis.warnings[0].layer_id == "unused"
    outputs = dict(model.layer_outputs(np.ones((6, 6, 1), np.float32)))
    assert outputs["conv2d_2"].shape == (4, 4, 5) and outputs["concatenate_1"].shape == (4, 4, 4)
    # The unused branch takes no part in training: its gradients stay zero.
    x = np.ones((2, 6, 6, 1), np.float32)
    _, grad, _ = softmax_cross_entropy(model.forward_logits(x, training=True), np.array([0, 1]))
    model.backward(grad)
    assert not model.gradients()["conv2d_2.kernel"].any() and model.gradients()["conv2d_1.kernel"].any()


@pytest.mark.parametrize("layer", ["add_1", "r2", "conv2d_4", "batch_norm_1", "stem"])
def test_activation_and_gradient_against_finite_differences(layer):
    """d(logit)/d(activation): perturb the layer's output through a hook and watch the logit move."""
    model = randomized(RESIDUAL, seed=6)
    image = np.random.default_rng(2).standard_normal((8, 8, 3))
    activation, gradient, cls = model.activation_and_gradient(image, layer)
    logits = model.forward_logits(image[None])
    assert cls == int(np.argmax(logits[0]))
    index = model.index_of(layer)
    np.testing.assert_allclose(activation, model.layer_outputs(image)[index][1], rtol=1e-12)
    assert gradient.shape == activation.shape

    # The score as a function of the layer's output: run the layers after it on a perturbed copy.
    target = model.layers[index]
    original = target.forward

    def score_with(delta: np.ndarray) -> float:
        target.forward = lambda *args, **kwargs: original(*args, **kwargs) + delta
        try:
            return float(model._head(model._layer_steps[-1],
                                     model._run(model._layer_steps[:-1], image[None], False, keep=True), False)[0, cls])
        finally:
            target.forward = original

    delta = np.zeros((1, *activation.shape))
    rng = np.random.default_rng(0)
    for idx in sample_indices(delta.shape, rng, 8):
        numeric = numeric_grad(lambda: score_with(delta), delta, [idx])[0]
        assert gradient[idx[1:]] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_activation_and_gradient_on_a_chain_for_a_chosen_class():
    model = randomized(arch({"type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "relu"},
                            {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                            {"type": "Dense", "units": 4, "activation": "softmax"}, shape=(8, 8, 1)))
    image = np.random.default_rng(0).standard_normal((8, 8, 1))
    activation, gradient, cls = model.activation_and_gradient(image, "conv2d_1", class_index=2)
    assert cls == 2 and activation.shape == gradient.shape == (6, 6, 3)
    # Through max pooling only the window winners (with a positive ReLU output) get a gradient.
    assert np.count_nonzero(gradient) <= 9 * 3
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.activation_and_gradient(image, "nope")
    with pytest.raises(ValueError, match="class index 7 is out of range"):
        model.activation_and_gradient(image, "conv2d_1", class_index=7)


def test_input_gradient_of_a_graph_matches_finite_differences():
    model = randomized(CONCAT, seed=3)
    image = np.random.default_rng(4).standard_normal((9, 9, 2))
    grad, cls = model.input_gradient(image)
    idx = sample_indices(image.shape, np.random.default_rng(0), 10)
    numeric = numeric_grad(lambda: float(model.forward_logits(image[None])[0, cls]), image, idx)
    np.testing.assert_allclose([grad[i] for i in idx], numeric, rtol=1e-6, atol=1e-10)


def test_graph_weights_round_trip_and_names_stay_in_document_order(tmp_path):
    model = Model(CONCAT, seed=2)
    assert list(model.parameters())[:4] == ["conv2d_1.kernel", "conv2d_1.bias", "conv2d_2.kernel", "conv2d_2.bias"]
    path = save_weights(model, tmp_path / "graph.npz")
    loaded = load_weights(path)
    assert loaded.architecture["format"] == "cnn-studio.architecture/2"
    assert loaded.architecture["layers"][4]["inputs"] == ["b1", "b2", "b3"]
    x = np.random.default_rng(0).random((3, 9, 9, 2), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_frozen_layers_are_reported():
    doc = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "trainable": False}, {"type": "Flatten"},
               {"type": "Dense", "units": 2, "activation": "softmax"}, shape=(5, 5, 1))
    model = Model(doc)
    assert model.frozen_layers == ("conv2d_1",)
    assert model.analysis.frozen_params == 20 and model.analysis.trainable_params == 18 * 2 + 2
    assert model.analysis.non_trainable_params == 20 and "(frozen)" in model.summary()


def test_inspection_of_a_graph_covers_every_node():
    from engine.inspection import layer_statistics, probe, saliency

    model = Model(CONCAT, seed=1)
    x = np.random.default_rng(0).random((4, 9, 9, 2), dtype=np.float32)
    stats = layer_statistics(model, x)
    assert [s.name for s in stats] == model.names
    merged = {s.name: s for s in stats if s.type in ("Add", "Concatenate")}
    assert merged["concatenate_1"].output_shape == (9, 9, 10) and merged["add_1"].output_shape == (9, 9, 10)
    assert merged["concatenate_2"].units == 14 and merged["concatenate_2"].samples == 4
    seen = probe(model, x[0])
    assert len(seen.layer_outputs) == len(model.layers) and seen.probabilities.shape == (3,)
    result = saliency(model, x[0])
    assert result.gradient.shape == (9, 9, 2) and result.magnitude.max() == pytest.approx(1.0)
