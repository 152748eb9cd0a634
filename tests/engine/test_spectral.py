"""Convolution through the Fourier transform (engine/kernels/spectral.py): the same values as the
direct convolution and the seed's loops, forward and backward, and where the engine takes it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine import Model, memory, parallel
from engine.architecture import analyze
from engine.kernels import spectral, transform_paths
from engine.kernels.spectral import worthwhile
from engine.losses import softmax_cross_entropy
from tests.helpers.gradcheck import check_model_gradients
from tests.helpers.threads import alone_and_split
from tests.helpers.transform_checks import (
    check_chunks_and_threads,
    check_conv_layer_gradients,
    check_matches_direct,
    check_memory_estimate,
    check_scratch_reused,
    check_seed_loops,
    check_trains_alike,
    check_without_bias_or_input_gradient,
    first_conv_transformed,
)


@pytest.fixture
def always_spectral(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stride-1 convolution with a 4x4 or larger kernel takes the spectral path."""
    monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, 0.0))


CASES = [
    # (N, H, W, C), kernel, filters, padding
    ((3, 9, 11, 3), 5, 4, "same"),
    ((2, 10, 8, 2), 4, 3, "same"),  # an even kernel: 'same' pads one pixel more after than before
    ((2, 14, 14, 5), 7, 6, "valid"),
    ((2, 8, 9, 2), 5, 3, 1),  # one pixel of padding each side
    ((1, 6, 6, 3), 6, 2, "valid"),  # the kernel covers the whole image
    ((2, 5, 7, 4), 5, 2, 3),  # more padding than 'same'
]


@pytest.mark.parametrize("x_shape,k,filters,padding", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_matches_the_direct_convolution_forward_and_backward(x_shape, k, filters, padding, relu):
    check_matches_direct(transform_paths.SPECTRAL, x_shape, k, filters, padding, relu, atol=1e-11,
                         seed=k * 10 + filters)


def test_matches_the_seed_loops_in_float32():
    check_seed_loops(transform_paths.SPECTRAL, 5, 2)


def test_without_bias_or_input_gradient():
    check_without_bias_or_input_gradient(transform_paths.SPECTRAL, 5, atol=1e-11)


def test_chunks_threads_and_reused_scratch_give_the_same_gradients(monkeypatch):
    check_chunks_and_threads(monkeypatch, transform_paths.SPECTRAL, 5,
                             lambda patched: patched.setattr(spectral, "CHUNK_IMAGES", 2))


def test_which_convolutions_take_the_spectral_path():
    # The k5 benchmark's second convolution and the k7 network's 'valid' one: several times fewer
    # multiply-adds in the frequency domain.
    assert worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "input")
    assert worthwhile((32, 14, 14, 32), (7, 7, 32, 64), 1, "valid", "input")
    # 3x3 kernels, strides, and first layers with a few channels stay direct.
    assert not worthwhile((32, 16, 16, 32), (3, 3, 32, 64), 1, "same", "input")
    assert not worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 2, "same", "input")
    assert not worthwhile((32, 32, 32, 3), (5, 5, 3, 32), 1, "same", "kernel")
    assert not worthwhile((32, 28, 28, 1), (7, 7, 1, 32), 1, "same", "kernel")
    # A forward alone needs a larger saving: few channels on large images gain in training only.
    assert worthwhile((32, 64, 64, 16), (5, 5, 16, 32), 1, "same", "input")
    assert not worthwhile((32, 64, 64, 16), (5, 5, 16, 32), 1, "same", "forward")
    assert worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "forward")


def test_the_choice_does_not_depend_on_the_batch_size():
    """Two processes splitting an odd batch must take the same path (their batch norms meet)."""
    shapes = [((5, 5, 16, 16), (6, 6, 16)), ((5, 5, 8, 16), (28, 28, 8)), ((3, 3, 32, 64), (16, 16, 32))]
    for kernel_shape, image in shapes:
        answers = {worthwhile((n, *image), kernel_shape, 1, "same", "input") for n in (1, 9, 10, 32, 64, 256)}
        assert len(answers) == 1


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setattr(spectral, "enabled", False)
    assert not worthwhile((32, 16, 16, 32), (5, 5, 32, 64), 1, "same", "input")


def test_conv2d_layer_gradients_through_the_spectral_path(always_spectral):
    check_conv_layer_gradients(transform_paths.SPECTRAL, 5)


def network(pool: bool) -> dict:
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 5, "padding": "same", "activation": "relu"}]
    if pool:
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Conv2D", "filters": 3, "kernel_size": 4, "padding": "valid", "activation": "tanh"},
               {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [9, 9, 2]}, "layers": layers}


@pytest.mark.parametrize("pool", [False, True])
def test_network_gradients_through_the_spectral_path(always_spectral, pool):
    rng = np.random.default_rng(7)
    model = Model(network(pool), seed=1, dtype=np.float64)
    x, y = rng.standard_normal((3, 9, 9, 2)), rng.integers(0, 3, 3)
    check_model_gradients(model, x, y, rng)


def take_spectral(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    """A switch: every 4x4 or larger stride-1 convolution through the Fourier transform, or none."""
    def take(on: bool) -> None:
        monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, 0.0 if on else float("inf")))
    return take



@pytest.mark.parametrize("pool", [False, True])
def test_a_network_trains_alike_on_either_path(monkeypatch, pool):
    """Forward, gradients and a saliency-style backward after an inference forward agree."""
    rng = np.random.default_rng(8)
    check_trains_alike(take_spectral(monkeypatch), network(pool), rng.standard_normal((4, 9, 9, 2)),
                       rng.integers(0, 3, 4), first_conv_transformed)


def test_threads_split_the_spectral_kernel_gradient(monkeypatch, always_spectral):
    rng = np.random.default_rng(9)
    model_input = rng.standard_normal((6, 9, 9, 2))
    labels = rng.integers(0, 3, 6)

    def run():
        model = Model(network(True), seed=2, dtype=np.float64)
        _, grad, _ = softmax_cross_entropy(model.forward_logits(model_input, training=True), labels)
        model.backward(grad, input_grad=False)
        return {name: value.copy() for name, value in model.gradients().items()}

    before = parallel.get_num_threads()
    alone, split = alone_and_split(monkeypatch, run)
    assert parallel.get_num_threads() == before
    for name in alone:
        np.testing.assert_allclose(split[name], alone[name], atol=1e-11, err_msg=name)


def test_the_memory_estimate_counts_what_the_spectral_path_holds():
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [16, 16, 32]}, "layers": [
        {"type": "Conv2D", "filters": 64, "kernel_size": 5, "padding": "same", "activation": "relu"},
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    scratch = memory.estimate_training(analyze(doc), 32).part("scratch")
    assert scratch >= spectral.memory_bytes((32, 16, 16, 32), (5, 5, 32, 64), "same", 2)
    check_memory_estimate(transform_paths.SPECTRAL, (32, 16, 16, 32), (5, 5, 32, 64), threads=1)


def batch_norm_network(tail: str) -> dict:
    """A 5x5 Conv2D -> BatchNorm [-> ReLU [-> MaxPool2D]], the runs the engine fuses."""
    layers: list[dict] = [{"type": "Conv2D", "filters": 4, "kernel_size": 5, "padding": "same", "activation": None},
                          {"type": "BatchNorm"}]
    if tail in ("relu", "pool"):
        layers.append({"type": "ReLU"})
    if tail == "pool":
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [8, 8, 3]}, "layers": layers}


@pytest.mark.parametrize("tail", ["none", "relu", "pool"])
def test_fused_batch_norm_steps_run_layer_by_layer_on_the_spectral_path(monkeypatch, tail):
    rng = np.random.default_rng(11)
    check_trains_alike(take_spectral(monkeypatch), batch_norm_network(tail), rng.standard_normal((4, 8, 8, 3)),
                       rng.integers(0, 3, 4), first_conv_transformed)


@pytest.mark.parametrize("tail", ["none", "pool"])
def test_batch_norm_network_gradients_through_the_spectral_path(always_spectral, tail):
    rng = np.random.default_rng(12)
    model = Model(batch_norm_network(tail), seed=4, dtype=np.float64)
    check_model_gradients(model, rng.standard_normal((3, 8, 8, 3)), rng.integers(0, 3, 3), rng)


def test_batches_of_changing_sizes_reuse_one_set_of_scratch_arrays():
    kernel = np.random.default_rng(13).standard_normal((5, 5, 4, 6))
    workspace = check_scratch_reused(transform_paths.SPECTRAL, kernel, (8, 8, 4))
    largest = max(array.nbytes for _, array in workspace._arrays.values())
    assert largest <= 7 * 8 * 8 * 32 * 16  # never more than the largest batch needs
