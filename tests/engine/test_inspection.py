"""engine.inspection: statistics, filter pictures, probes, saliency against finite differences, pictures in."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.data import Normalization
from engine.errors import DataError
from engine.inspection import (
    MISTAKE_ORDERS,
    conv_layer_names,
    dead_units,
    filter_images,
    grid_shape,
    histogram,
    image_to_input,
    image_to_pixels,
    input_to_image,
    layer_statistics,
    list_mistakes,
    probe,
    saliency,
)
from engine.layers.activations import softmax
from engine.metrics import evaluate
from engine.model import Model
from tests.helpers.engine_factories import EVERY_LAYER, SMALL_CNN, arch

SALIENCY_CNN = arch(
    {"type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "tanh"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 4, "kernel_size": 2, "padding": "same", "activation": "elu"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 5, "activation": "softmax"},
    shape=(8, 8, 2),
)


def class_logit(model: Model, x: np.ndarray, k: int) -> float:
    return float(model.forward_logits(x[None])[0, k])


def finite_difference_gradient(model: Model, x: np.ndarray, k: int, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = class_logit(model, x, k)
        x[idx] = old - eps
        minus = class_logit(model, x, k)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


# -- saliency ----------------------------------------
@pytest.mark.parametrize("doc", [SALIENCY_CNN, EVERY_LAYER], ids=["conv-pool-dense", "every-layer"])
def test_saliency_matches_finite_differences_of_the_predicted_class_score(doc):
    model = Model.from_architecture(doc, seed=3, dtype=np.float64)
    x = np.random.default_rng(1).normal(size=model.input_shape)
    result = saliency(model, x)
    predicted = int(np.argmax(model.forward(x[None])[0]))
    assert result.class_index == predicted
    numeric = finite_difference_gradient(model, x.copy(), predicted)
    assert result.gradient.shape == x.shape
    np.testing.assert_allclose(result.gradient, numeric, rtol=1e-4, atol=1e-6)
    magnitude = np.abs(numeric).max(axis=-1)
    np.testing.assert_allclose(result.magnitude, magnitude / magnitude.max(), rtol=1e-3, atol=1e-5)


def test_saliency_of_a_chosen_class_differs_from_the_predicted_one():
    model = Model.from_architecture(SALIENCY_CNN, seed=0, dtype=np.float64)
    x = np.random.default_rng(2).normal(size=model.input_shape)
    predicted = saliency(model, x).class_index
    other = (predicted + 1) % 5
    result = saliency(model, x, class_index=other)
    assert result.class_index == other
    np.testing.assert_allclose(result.gradient, finite_difference_gradient(model, x.copy(), other),
                               rtol=1e-4, atol=1e-6)


# -- probe ----------------------------------------
def test_probe_gives_every_layer_output_and_probabilities_matching_predict():
    model = Model.from_architecture(SMALL_CNN, seed=0)
    x = np.random.default_rng(0).random(model.input_shape, dtype=np.float32)
    result = probe(model, x)
    assert [name for name, _ in result.layer_outputs] == model.names
    assert [out.shape for _, out in result.layer_outputs] == [(10, 10, 4), (5, 5, 4), (100,), (3,)]
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(result.probabilities, model.predict(x[None])[0], rtol=1e-6)


def test_probe_applies_softmax_when_the_network_has_none():
    doc = arch({"type": "Flatten"}, {"type": "Dense", "units": 4}, shape=(3, 3, 1))
    model = Model.from_architecture(doc, seed=0)
    x = np.random.default_rng(0).random((3, 3, 1), dtype=np.float32)
    result = probe(model, x)
    np.testing.assert_allclose(result.probabilities, softmax(model.forward(x[None]))[0], rtol=1e-5)
    assert result.probabilities.sum() == pytest.approx(1.0)


# -- statistics ----------------------------------------
def test_dead_units_are_the_channels_zero_for_every_sample_and_position():
    a = np.zeros((3, 4, 4, 5), np.float32)
    a[0, 1, 2, 0] = 1.0  # channel 0 fires once
    a[2, :, :, 3] = 0.5  # channel 3 fires everywhere in one sample
    a[:, :, :, 4] = -1.0  # negative is not firing
    np.testing.assert_array_equal(dead_units(a), [False, True, True, False, True])
    np.testing.assert_array_equal(dead_units(np.array([[0.0, 2.0], [0.0, 0.0]])), [True, False])


def test_layer_statistics_count_dead_relu_units_and_histogram_every_value():
    doc = arch(
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "Flatten"},
        {"type": "Dense", "units": 6},
        {"type": "ReLU"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
        shape=(6, 6, 1),
    )
    model = Model.from_architecture(doc, seed=0)
    params = model.parameters()
    params["conv2d_1.bias"][[1, 3]] = -1000.0  # these two channels can never fire on inputs in [0, 1]
    params["dense_1.bias"][:] = 0.0
    params["dense_1.bias"][0] = -1e6
    x = np.random.default_rng(0).random((16, 6, 6, 1), dtype=np.float32)
    stats = layer_statistics(model, x, bins=20)
    assert [s.name for s in stats] == model.names
    conv, flat, dense, relu, out = stats
    assert conv.relu and conv.units == 4 and conv.dead_units == 2 and conv.dead_fraction == 0.5
    assert relu.relu and relu.units == 6 and relu.dead_units >= 1
    outputs = dict(model.layer_outputs(x))
    assert relu.dead_units == int(dead_units(outputs[relu.name]).sum())
    for s in (flat, dense, out):
        assert not s.relu and s.dead_fraction is None
    assert flat.weights is None and np.isnan(flat.weight_mean)
    assert conv.weights.total == params["conv2d_1.kernel"].size
    assert conv.weight_label == "kernel"
    assert conv.weight_mean == pytest.approx(float(params["conv2d_1.kernel"].mean()))
    for s in stats:
        assert s.activations.total == 16 * int(np.prod(s.output_shape))
        assert s.samples == 16
    assert conv.zero_fraction >= 0.5
    assert conv.activation_mean == pytest.approx(float(outputs[conv.name].mean()), rel=1e-5)


def test_batch_norm_statistics_histogram_gamma():
    model = Model.from_architecture(EVERY_LAYER, seed=0)
    stats = layer_statistics(model, np.random.default_rng(0).random((4, *model.input_shape), dtype=np.float32))
    bn = [s for s in stats if s.type == "BatchNorm"]
    assert bn and all(s.weight_label.startswith("gamma") for s in bn)


def test_histogram_of_a_constant_keeps_every_value_and_skips_nan():
    h = histogram(np.full(7, 3.0), bins=5)
    assert h.total == 7 and h.edges[0] < 3.0 < h.edges[-1]
    assert histogram(np.array([np.nan, 1.0, 2.0]), bins=4).total == 2


# -- filters ----------------------------------------
def test_filter_images_grayscale_keep_zero_and_scale_each_filter_to_one():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 2, 5)).astype(np.float32)
    kernel[..., 4] = 0.0
    pictures = filter_images(kernel, rgb=False)
    assert pictures.shape == (5, 2, 3, 3)
    for f in range(4):
        assert np.abs(pictures[f]).max() == pytest.approx(1.0)
        ratio = kernel[..., f].transpose(2, 0, 1) / pictures[f]
        np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)  # one positive factor per filter
        assert ratio.flat[0] > 0
    np.testing.assert_array_equal(pictures[4], 0.0)


def test_filter_images_rgb_stretch_each_filter_to_the_unit_range():
    kernel = np.random.default_rng(1).normal(size=(5, 5, 3, 4)).astype(np.float32)
    pictures = filter_images(kernel, rgb=True)
    assert pictures.shape == (4, 5, 5, 3)
    for f in range(4):
        assert pictures[f].min() == pytest.approx(0.0) and pictures[f].max() == pytest.approx(1.0)
        np.testing.assert_allclose(pictures[f, 1, 2], (kernel[1, 2, :, f] - kernel[..., f].min())
                                   / (kernel[..., f].max() - kernel[..., f].min()), rtol=1e-5)
    with pytest.raises(ValueError, match="3 input channels"):
        filter_images(kernel[:, :, :2], rgb=True)


def test_conv_layer_names_lists_the_layers_with_conv_kernels():
    assert conv_layer_names(Model.from_architecture(EVERY_LAYER)) == ["conv2d_1", "conv2d_2", "conv2d_3"]


# -- pictures in ----------------------------------------
def test_image_file_becomes_a_grayscale_input_normalized_like_the_dataset(tmp_path):
    rgb = np.zeros((56, 84, 3), np.uint8)
    rgb[:, :42] = (255, 0, 0)  # left half red, right half white
    rgb[:, 42:] = 255
    path = tmp_path / "half.png"
    Image.fromarray(rgb).save(path)
    norm = Normalization(scale=1 / 255, mean=(0.25,), std=(0.5,))
    x = image_to_input(path, (28, 28, 1), norm)
    assert x.shape == (28, 28, 1) and x.dtype == np.float32
    red_luma = Image.fromarray(np.array([[[255, 0, 0]]], np.uint8)).convert("L").getpixel((0, 0))
    np.testing.assert_allclose(x[:, :12, 0], (red_luma / 255 - 0.25) / 0.5, atol=1e-6)
    np.testing.assert_allclose(x[:, 16:, 0], (1.0 - 0.25) / 0.5, atol=1e-6)
    # The dict form (a model's preprocessing) gives the same input.
    np.testing.assert_array_equal(image_to_input(path, (28, 28, 1), norm.to_dict()), x)


def test_pixels_match_color_input_invert_and_transparency():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255  # top half opaque grey, bottom half transparent
    pixels = image_to_pixels(rgba, (4, 4, 3))
    assert pixels.shape == (4, 4, 3)
    np.testing.assert_array_equal(pixels[:2], 200)
    np.testing.assert_array_equal(pixels[2:], 0)  # transparent counts as black
    inverted = image_to_pixels(rgba, (4, 4, 3), invert=True)
    np.testing.assert_array_equal(inverted, 255 - pixels)
    floats = image_to_pixels(np.full((2, 2), 0.5), (2, 2, 1))
    np.testing.assert_array_equal(floats, 128)


def test_input_to_image_undoes_the_normalization():
    norm = Normalization(scale=1 / 255, mean=(0.1, 0.2, 0.3), std=(0.2, 0.3, 0.4))
    pixels = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    x = image_to_input(pixels, (5, 6, 3), norm)
    np.testing.assert_allclose(input_to_image(x, norm), pixels / 255, atol=1e-6)


def test_unreadable_pictures_raise_data_errors_naming_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.png"):
        image_to_input(tmp_path / "missing.png", (8, 8, 1))
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    with pytest.raises(DataError, match="notes.png"):
        image_to_input(bad, (8, 8, 1))
    with pytest.raises(DataError, match="1 or 3 channels"):
        image_to_input(np.zeros((8, 8), np.uint8), (8, 8, 2))


# -- mistakes ----------------------------------------
def test_list_mistakes_is_exactly_the_misclassified_samples_in_each_order():
    model = Model.from_architecture(SMALL_CNN, seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12, 1), dtype=np.float32)
    y = rng.integers(0, 3, 40)
    ev = evaluate(model, x, y)
    for order in MISTAKE_ORDERS:
        mistakes = list_mistakes(ev, order)
        assert sorted(m.index for m in mistakes) == ev.mistakes.tolist()
        for m in mistakes:
            assert m.true_class == y[m.index] and m.predicted_class == ev.predictions[m.index] != y[m.index]
            assert m.confidence == pytest.approx(ev.probabilities[m.index].max())
            assert m.true_probability == pytest.approx(ev.probabilities[m.index, y[m.index]])
    confidences = [m.confidence for m in list_mistakes(ev, "most confident")]
    assert confidences == sorted(confidences, reverse=True)
    assert [m.confidence for m in list_mistakes(ev, "least confident")] == sorted(confidences)
    assert [m.true_class for m in list_mistakes(ev, "true class")] == sorted(m.true_class for m in
                                                                               list_mistakes(ev, "index"))
    with pytest.raises(ValueError, match="order"):
        list_mistakes(ev, "random")


def test_grid_shape_is_square_ish_and_holds_every_cell():
    assert grid_shape(0) == (0, 0)
    assert grid_shape(1) == (1, 1)
    assert grid_shape(32) == (6, 6)
    assert grid_shape(64) == (8, 8)
    for n in range(1, 130):
        rows, cols = grid_shape(n)
        assert rows * cols >= n > (rows - 1) * cols and abs(rows - cols) <= 1
