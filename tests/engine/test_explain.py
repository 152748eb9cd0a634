"""Attribution maps, receptive fields, the filter atlas and embeddings (engine.explain)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.explain import (
    Cancelled,
    crop,
    default_cam_layer,
    default_embedding_layer,
    embed,
    filter_atlas,
    grad_cam,
    layer_output,
    occlusion,
    pca_2d,
    receptive_fields,
    smooth_grad,
    upsample_bilinear,
)
from engine.inspection import grad_cam as inspection_grad_cam
from engine.inspection import saliency
from engine.model import Model
from tests.helpers.engine_factories import CONCAT, RESIDUAL, arch
from tests.helpers.extras import require


def conv_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The textbook loop: (H, W, C) * (k, k, C, F) -> (H-k+1, W-k+1, F)."""
    k = kernel.shape[0]
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    out = np.zeros((h, w, kernel.shape[3]))
    for i in range(h):
        for j in range(w):
            for f in range(kernel.shape[3]):
                out[i, j, f] = np.sum(x[i:i + k, j:j + k, :] * kernel[..., f]) + bias[f]
    return out


TINY = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
            {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(5, 5, 1))


def tiny_model() -> Model:
    model = Model(TINY, dtype=np.float64)
    rng = np.random.default_rng(3)
    for value in model.parameters().values():
        value[...] = rng.normal(0, 0.7, value.shape)
    return model


# -- Grad-CAM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("class_index", [None, 0, 2])
def test_grad_cam_of_a_tiny_chain_matches_the_hand_computed_formula(class_index):
    model = tiny_model()
    image = np.random.default_rng(1).normal(0, 1, (5, 5, 1))
    p = model.parameters()
    a = np.maximum(conv_valid(image, p["conv2d_1.kernel"], p["conv2d_1.bias"]), 0)  # (3, 3, 2)
    logits = a.reshape(-1) @ p["dense_1.kernel"] + p["dense_1.bias"]
    cls = int(np.argmax(logits)) if class_index is None else class_index
    # d logit_cls / d A[i, j, k] is the Dense weight of that flattened position (row-major h, w, c).
    d_a = p["dense_1.kernel"][:, cls].reshape(3, 3, 2)
    alphas = d_a.mean(axis=(0, 1))
    expected = np.maximum(alphas[0] * a[..., 0] + alphas[1] * a[..., 1], 0)

    cam = grad_cam(model, image, "conv2d_1", class_index)
    assert cam.class_index == cls
    np.testing.assert_allclose(cam.weights, alphas, rtol=1e-12)
    np.testing.assert_allclose(cam.map, expected, rtol=1e-10, atol=1e-12)
    assert cam.upsampled.shape == (5, 5)
    np.testing.assert_allclose(cam.upsampled, upsample_bilinear(expected, 5, 5), rtol=1e-10, atol=1e-12)
    assert inspection_grad_cam is grad_cam  # the name the studio and scripts use


def test_grad_cam_of_a_branching_network_matches_the_hand_computed_formula():
    # input -> conv a (relu) -> {conv b, conv c} -> Add -> GlobalAvgPool -> Dense softmax
    doc = arch({"id": "a", "type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "relu"},
               {"id": "b", "type": "Conv2D", "filters": 2, "kernel_size": 1, "inputs": ["a"]},
               {"id": "c", "type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": 1, "inputs": ["a"]},
               {"id": "sum", "type": "Add", "inputs": ["b", "c"]},
               {"id": "gap", "type": "GlobalAvgPool2D"},
               {"id": "out", "type": "Dense", "units": 4, "activation": "softmax"}, shape=(6, 6, 2))
    model = Model(doc, dtype=np.float64)
    rng = np.random.default_rng(7)
    for value in model.parameters().values():
        value[...] = rng.normal(0, 0.6, value.shape)
    p = model.parameters()
    image = rng.normal(0, 1, (6, 6, 2))
    a = np.maximum(conv_valid(image, p["conv2d_1.kernel"], p["conv2d_1.bias"]), 0)  # (4, 4, 3)
    b = conv_valid(a, p["conv2d_2.kernel"], p["conv2d_2.bias"])
    c = conv_valid(np.pad(a, ((1, 1), (1, 1), (0, 0))), p["conv2d_3.kernel"], p["conv2d_3.bias"])
    s = b + c  # (4, 4, 2)
    logits = s.mean(axis=(0, 1)) @ p["dense_1.kernel"] + p["dense_1.bias"]
    cls = int(np.argmax(logits))
    alphas = p["dense_1.kernel"][:, cls] / 16  # d logit / d s[i, j, k] = W[k, cls] / (h * w)
    expected = np.maximum(s @ alphas, 0)
    cam = grad_cam(model, image, "sum")
    np.testing.assert_allclose(cam.map, expected, rtol=1e-10, atol=1e-12)
    # Grad-CAM of the first convolution sees both branches' gradients summed.
    first = grad_cam(model, image, "conv2d_1")
    activation, gradient, _ = model.activation_and_gradient(image, "conv2d_1")
    np.testing.assert_allclose(first.map, np.maximum(activation @ gradient.mean(axis=(0, 1)), 0), rtol=1e-12)
    assert default_cam_layer(model) == "add_1"


def test_grad_cam_refuses_a_vector_layer_and_works_on_every_feature_map_of_a_graph():
    model = Model(CONCAT, dtype=np.float64)
    image = np.random.default_rng(0).normal(0, 1, (9, 9, 2))
    with pytest.raises(ValueError, match="feature-map output.*flatten_1 outputs a vector of 160 values"):
        grad_cam(model, image, "flat")
    for name in ("conv2d_1", "concatenate_1", "add_1", "max_pool2d_2"):
        cam = grad_cam(model, image, name)
        assert cam.upsampled.shape == (9, 9) and np.all(cam.map >= 0)


def test_bilinear_upsampling_uses_pixel_centres():
    values = np.array([[0.0, 1.0], [2.0, 3.0]])
    up = upsample_bilinear(values, 4, 4)
    # Half-pixel centres: the outer rows and columns repeat the edge values, the inner ones mix 3:1.
    np.testing.assert_allclose(up[0], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(up[:, 0], [0, 0.5, 1.5, 2])
    np.testing.assert_allclose(upsample_bilinear(values, 2, 2), values)


# -- SmoothGrad and occlusion ----------------------------------------------------------------------------
def test_smooth_grad_with_zero_noise_is_the_gradient_map():
    model = Model(RESIDUAL, seed=1)
    image = np.random.default_rng(2).normal(0, 1, (8, 8, 3)).astype(np.float32)
    plain = saliency(model, image)
    smooth = smooth_grad(model, image, samples=5, noise=0.0)
    assert smooth.class_index == plain.class_index
    np.testing.assert_array_equal(smooth.gradient, plain.gradient)
    np.testing.assert_array_equal(smooth.magnitude, plain.magnitude)


def test_smooth_grad_averages_noisy_gradients_and_reports_progress():
    model = tiny_model()
    image = np.random.default_rng(1).normal(0, 1, (5, 5, 1))
    seen: list[float] = []
    result = smooth_grad(model, image, class_index=1, samples=4, noise=0.2, seed=5, progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]
    sigma = 0.2 * (image.max() - image.min())
    rng = np.random.default_rng(5)
    expected = np.mean([saliency(model, image + rng.normal(0, sigma, image.shape), 1).gradient for _ in range(4)],
                       axis=0)
    np.testing.assert_allclose(result.gradient, expected, rtol=1e-5)
    with pytest.raises(Cancelled):
        smooth_grad(model, image, samples=10, cancelled=lambda: len(seen) > 5, progress=seen.append)


def test_occlusion_of_a_patch_the_network_ignores_changes_nothing():
    # A Dense layer reading the flattened pixels, blind to the left half of the image.
    model = Model(arch({"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"},
                       shape=(8, 8, 1)), seed=0)
    kernel = model.parameters()["dense_1.kernel"].reshape(8, 8, 1, 3)
    kernel[:, :4] = 0
    image = np.random.default_rng(0).normal(0, 1, (8, 8, 1)).astype(np.float32)
    result = occlusion(model, image, patch=2, stride=2, fill=5.0, batch_size=4)
    assert result.map.shape == (8, 8)
    np.testing.assert_array_equal(result.map[:, :4], 0.0)
    assert np.abs(result.map[:, 4:]).max() > 1e-3  # the half it reads does matter
    probs = model.forward(image[None])[0]
    assert result.class_index == int(np.argmax(probs))
    assert result.probability == pytest.approx(float(probs[result.class_index]))


def test_occlusion_drop_is_measured_on_the_class_probability():
    model = tiny_model()
    image = np.random.default_rng(4).normal(0, 1, (5, 5, 1))
    result = occlusion(model, image, class_index=2, patch=5, stride=1, fill=0.0)
    # One patch covers the whole image: every pixel's drop is the same.
    hidden = model.forward(np.zeros((1, 5, 5, 1)))[0, 2]
    np.testing.assert_allclose(result.map, result.probability - hidden)
    fractions: list[float] = []
    occlusion(model, image, patch=2, stride=1, batch_size=5, progress=fractions.append)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) == 4  # 16 + 1 images


# -- receptive fields, activations, atlas -----------------------------------------------------------------
def test_receptive_fields_of_a_chain_and_of_a_graph():
    doc = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3},
               {"type": "MaxPool2D", "pool_size": 2},
               {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "stride": 2},
               {"type": "Flatten"}, {"type": "Dense", "units": 2}, shape=(16, 16, 1))
    fields = receptive_fields(Model(doc))
    assert set(fields) == {"conv2d_1", "max_pool2d_1", "conv2d_2"}
    assert fields["conv2d_1"].window(0, 0) == (0, 3, 0, 3)
    assert fields["max_pool2d_1"].window(1, 2) == (2, 6, 4, 8)
    # 3x3 'same' stride 2 on a 7x7 map pads one pixel before: the window starts a pooled step (2 px) early.
    rows = fields["conv2d_2"].rows
    assert (rows.size, rows.jump, rows.start) == (8, 4, -2)
    graph = receptive_fields(Model(RESIDUAL))
    assert graph["add_1"].rows.size == 7  # the longer branch: three 3x3 convolutions
    assert graph["conv2d_4"].rows.size == 9 and graph["add_2"].rows.size == graph["conv2d_5"].rows.size == 13


def test_layer_output_runs_only_what_the_layer_needs():
    model = Model(CONCAT, seed=0)
    x = np.random.default_rng(0).normal(0, 1, (3, 9, 9, 2)).astype(np.float32)
    every = dict(model.layer_outputs(x))
    for name in ("conv2d_1", "concatenate_1", "add_1", "dense_2", "concatenate_2"):
        np.testing.assert_array_equal(layer_output(model, x, name), every[name])
    with pytest.raises(ValueError, match="do not fit"):
        layer_output(model, x[:, :5], "conv2d_1")


def test_filter_atlas_finds_the_patches_that_excite_each_channel_most():
    # Channel 0 detects a bright pixel, channel 1 a dark one (3x3 kernels with one weight each).
    model = Model(arch({"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "Flatten"},
                       {"type": "Dense", "units": 2}, shape=(6, 6, 1)), dtype=np.float64)
    kernel = model.parameters()["conv2d_1.kernel"]
    kernel[...] = 0
    kernel[1, 1, 0, 0], kernel[1, 1, 0, 1] = 1.0, -1.0
    model.parameters()["conv2d_1.bias"][...] = 0
    images = np.zeros((5, 6, 6, 1))
    images[2, 3, 4, 0] = 9.0  # the brightest pixel, seen by output position (2, 3)
    images[4, 1, 1, 0] = 4.0
    images[1, 2, 2, 0] = -7.0
    pictures = (np.arange(5 * 36).reshape(5, 6, 6, 1) % 256).astype(np.uint8)
    fractions: list[float] = []
    atlas = filter_atlas(model, images, "conv2d_1", top_k=2, pictures=pictures, batch_size=2,
                         progress=fractions.append)
    assert fractions == [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    bright, dark = atlas.channels
    assert list(bright.indices) == [2, 4] and list(bright.activations) == [9.0, 4.0]
    assert bright.positions[0].tolist() == [2, 3]
    assert bright.windows[0].tolist() == [2, 5, 3, 6]
    np.testing.assert_array_equal(bright.patches[0], pictures[2, 2:5, 3:6])
    assert dark.indices[0] == 1 and dark.activations[0] == 7.0
    assert atlas.patch_shape == (3, 3) and atlas.weights.shape == (3, 3, 1, 2)
    with pytest.raises(ValueError, match="feature-map output"):
        filter_atlas(model, images, "flatten_1")


def test_crop_fills_what_lies_outside_the_picture():
    picture = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    patch = crop(picture, (-1, 2, 2, 5), fill=255)
    assert patch[..., 0].tolist() == [[255, 255, 255], [2, 3, 255], [6, 7, 255]]


# -- embeddings ----------------------------------------------------------------------------------------------
def test_default_embedding_layer_is_the_last_hidden_dense():
    seed_like = arch({"type": "Conv2D", "filters": 2, "kernel_size": 3, "activation": "relu"}, {"type": "Flatten"},
                     {"type": "Dense", "units": 5, "activation": "relu"}, {"type": "Dropout", "rate": 0.5},
                     {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(6, 6, 1))
    assert default_embedding_layer(Model(seed_like)) == "dense_1"
    assert default_embedding_layer(Model(RESIDUAL)) == "global_avg_pool2d_1"


def test_pca_finds_the_directions_of_largest_variance():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (300, 2)) * [5.0, 2.0]
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    features = np.hstack([base, rng.normal(0, 0.01, (300, 4))]) @ rotation.T
    points, explained = pca_2d(features)
    assert explained > 0.999
    np.testing.assert_allclose(np.abs(np.corrcoef(points[:, 0], base[:, 0])[0, 1]), 1, atol=1e-4)
    wide = np.hstack([features, np.zeros((300, 400))])  # the randomised path for wide layers
    np.testing.assert_allclose(np.abs(pca_2d(wide)[0]), np.abs(points), atol=1e-6)


def test_embedding_of_a_layer_lines_up_with_a_previous_projection():
    model = tiny_model()
    images = np.random.default_rng(0).normal(0, 1, (40, 5, 5, 1))
    first = embed(model, images, "conv2d_1")
    assert first.points.shape == (40, 2) and first.dimensions == 18 and 0 < first.explained <= 1
    again = embed(model, images, "conv2d_1", reference=-first.points)
    np.testing.assert_allclose(again.points, -first.points, atol=1e-9)
    with pytest.raises(ValueError, match="method must be one of"):
        embed(model, images, method="umap")


def test_tsne_embedding_through_scikit_learn():
    require("sklearn", "t-SNE needs the optional scikit-learn (pip install 'cnn-studio[explain]')")
    model = tiny_model()
    images = np.random.default_rng(0).normal(0, 1, (60, 5, 5, 1))
    result = embed(model, images, method="tsne")
    assert result.method == "tsne" and result.points.shape == (60, 2) and np.all(np.isfinite(result.points))
