"""3x3 convolution by Winograd's F(2x2, 3x3) (engine/kernels/winograd.py): the same values as the
direct convolution and the seed's loops, forward and backward, and where the engine takes it."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Model, memory, parallel
from engine.architecture import analyze
from engine.kernels import spectral, transform_paths, winograd
from engine.kernels.winograd import worthwhile
from engine.layers import Conv2D
from tests.helpers.gradcheck import check_model_gradients
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


def take_winograd(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Every 3x3 stride-1 convolution takes the Winograd path (on) or none does."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", dict.fromkeys(("forward", "kernel", "input"), 1 if on else 1 << 30))
    monkeypatch.setattr(winograd, "MAX_WASTE", 100.0)


@pytest.fixture
def always_winograd(monkeypatch: pytest.MonkeyPatch) -> None:
    take_winograd(monkeypatch, True)


CASES = [
    # (N, H, W, C), filters, padding
    ((3, 9, 11, 3), 4, "same"),  # odd sizes: a tile row and column hang over the output
    ((2, 10, 8, 2), 3, "valid"),
    ((2, 8, 9, 2), 3, 1),
    ((2, 5, 7, 4), 2, 2),  # more padding than 'same'
    ((1, 3, 3, 2), 3, "valid"),  # a single output pixel
    ((2, 2, 2, 3), 2, "same"),  # one tile
    ((2, 1, 6, 2), 3, "same"),  # a single image row
]


@pytest.mark.parametrize("x_shape,filters,padding", CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_matches_the_direct_convolution_forward_and_backward(x_shape, filters, padding, relu):
    check_matches_direct(transform_paths.WINOGRAD, x_shape, 3, filters, padding, relu, atol=1e-12,
                         seed=x_shape[1] * 10 + filters)


def test_matches_the_seed_loops_in_float32():
    check_seed_loops(transform_paths.WINOGRAD, 3, 1)


def test_without_bias_or_input_gradient():
    check_without_bias_or_input_gradient(transform_paths.WINOGRAD, 3, atol=1e-12)


def one_image_chunks(patched: pytest.MonkeyPatch) -> None:
    patched.setattr(winograd, "CHUNK_BYTES", 1)
    patched.setattr(winograd, "MIN_CHUNK_TILES", 1)


def test_chunks_threads_and_reused_scratch_give_the_same_gradients(monkeypatch):
    check_chunks_and_threads(monkeypatch, transform_paths.WINOGRAD, 3, one_image_chunks)


def on_machine(monkeypatch: pytest.MonkeyPatch, min_channels: int) -> None:
    """The thresholds of a machine where the path pays from ``min_channels`` channels."""
    monkeypatch.setattr(winograd, "machine_min_channels", lambda: min_channels)


def test_which_convolutions_take_the_winograd_path(monkeypatch):
    on_machine(monkeypatch, winograd.WIDE_FROM)
    # The wide256 benchmark's 3x3 convolutions with 128 channels and more on both sides.
    assert worthwhile((32, 8, 8, 128), (3, 3, 128, 256), 1, "same", "input")
    assert worthwhile((32, 4, 4, 256), (3, 3, 256, 256), 1, "same", "forward")
    assert worthwhile((32, 16, 16, 128), (3, 3, 128, 128), 1, "valid", "kernel")
    # Narrower layers, other kernels and strides stay direct.
    assert not worthwhile((32, 16, 16, 64), (3, 3, 64, 128), 1, "same", "input")
    assert not worthwhile((32, 28, 28, 16), (3, 3, 16, 16), 1, "same", "input")
    assert not worthwhile((32, 7, 7, 64), (3, 3, 64, 64), 1, "same", "input")
    assert not worthwhile((32, 32, 32, 3), (3, 3, 3, 64), 1, "same", "kernel")
    assert not worthwhile((32, 16, 16, 128), (3, 3, 128, 128), 2, "same", "input")
    assert not worthwhile((32, 16, 16, 128), (5, 5, 128, 128), 1, "same", "input")
    # A 3x3 output would compute 4x4: too much thrown away.
    assert not worthwhile((32, 5, 5, 256), (3, 3, 256, 256), 1, "valid", "input")
    # Large images: the transformed input kept for backward would be hundreds of megabytes a batch.
    assert worthwhile((32, 32, 32, 128), (3, 3, 128, 128), 1, "same", "input")
    assert not worthwhile((32, 56, 56, 128), (3, 3, 128, 128), 1, "same", "input")
    assert not worthwhile((32, 224, 224, 128), (3, 3, 128, 128), 1, "same", "forward")


def test_where_multiply_adds_cost_more_64_channels_take_it(monkeypatch):
    on_machine(monkeypatch, winograd.NARROWER_FROM)
    assert worthwhile((32, 16, 16, 64), (3, 3, 64, 128), 1, "same", "input")
    assert worthwhile((32, 14, 14, 64), (3, 3, 64, 64), 1, "same", "forward")
    assert not worthwhile((32, 16, 16, 32), (3, 3, 32, 64), 1, "same", "input")
    assert not worthwhile((32, 28, 28, 16), (3, 3, 16, 16), 1, "same", "input")


@pytest.mark.parametrize("machine", [winograd.NARROWER_FROM, winograd.WIDE_FROM])
def test_odd_outputs_that_waste_a_fifth_need_twice_the_channels(monkeypatch, machine):
    """A 7x7 output computes 8x8 (1.31x) and a 9x9 one 10x10 (1.23x); 11x11 and up waste less."""
    on_machine(monkeypatch, machine)
    for size in (7, 9):
        assert not worthwhile((32, size, size, machine), (3, 3, machine, machine), 1, "same", "input")
        assert not worthwhile((32, size, size, 2 * machine - 1), (3, 3, 2 * machine - 1, 512), 1, "same", "input")
        assert worthwhile((32, size, size, 2 * machine), (3, 3, 2 * machine, 2 * machine), 1, "same", "input")
    assert worthwhile((32, 11, 11, machine), (3, 3, machine, machine), 1, "same", "input")
    assert worthwhile((32, 8, 8, machine), (3, 3, machine, machine), 1, "same", "input")


@pytest.mark.parametrize("gflops,expected", [(185.0, winograd.WIDE_FROM), (100.0, winograd.NARROWER_FROM)])
def test_the_machine_threshold_follows_its_product_speed(monkeypatch, gflops, expected):
    monkeypatch.delenv(winograd.ENVIRONMENT, raising=False)
    monkeypatch.setattr(winograd, "product_gflops", lambda: gflops)
    winograd._machine_min_channels.cache_clear()
    try:
        assert winograd.machine_min_channels() == expected
    finally:
        winograd._machine_min_channels.cache_clear()


def test_a_given_threshold_is_taken_without_measuring(monkeypatch):
    """How the replica process gets the training process's threshold."""
    monkeypatch.setenv(winograd.ENVIRONMENT, "96")
    monkeypatch.setattr(winograd, "product_gflops", lambda: pytest.fail("measured"))
    winograd._machine_min_channels.cache_clear()
    try:
        assert winograd.machine_min_channels() == 96
        assert not worthwhile((32, 8, 8, 64), (3, 3, 64, 64), 1, "same", "input")
        assert worthwhile((32, 8, 8, 96), (3, 3, 96, 96), 1, "same", "input")
    finally:
        winograd._machine_min_channels.cache_clear()


def test_the_product_speed_is_measured():
    assert 0.1 < winograd.product_gflops(size=64, repeats=2) < 1e5


def test_the_choice_does_not_depend_on_the_batch_size():
    """Two processes splitting an odd batch must take the same path (their batch norms meet)."""
    for kernel_shape, image in [((3, 3, 128, 256), (8, 8, 128)), ((3, 3, 128, 128), (7, 7, 128))]:
        answers = {worthwhile((n, *image), kernel_shape, 1, "same", "input") for n in (1, 9, 10, 32, 64, 256)}
        assert len(answers) == 1


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setattr(winograd, "enabled", False)
    assert not worthwhile((32, 8, 8, 128), (3, 3, 128, 256), 1, "same", "input")


def test_at_most_one_transform_path_fits_a_convolution():
    for k in range(1, 8):
        for c, f in ((1, 8), (32, 64), (128, 128), (256, 256)):
            for passes in ("forward", "kernel", "input"):
                fitting = [path.name for path in transform_paths.PATHS
                           if path.worthwhile((32, 16, 16, c), (k, k, c, f), 1, "same", passes)]
                assert len(fitting) <= 1, (k, c, f, passes, fitting)


def test_conv2d_layer_gradients_through_the_winograd_path(always_winograd):
    check_conv_layer_gradients(transform_paths.WINOGRAD, 3)


def network(pool: bool) -> dict:
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}]
    if pool:
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "valid", "activation": "tanh"},
               {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [9, 9, 2]}, "layers": layers}


@pytest.mark.parametrize("pool", [False, True])
def test_network_gradients_through_the_winograd_path(always_winograd, pool):
    rng = np.random.default_rng(7)
    model = Model(network(pool), seed=1, dtype=np.float64)
    x, y = rng.standard_normal((3, 9, 9, 2)), rng.integers(0, 3, 3)
    check_model_gradients(model, x, y, rng)



@pytest.mark.parametrize("pool", [False, True])
def test_a_network_trains_alike_on_either_path(monkeypatch, pool):
    """Forward, gradients and a saliency-style backward after an inference forward agree."""
    rng = np.random.default_rng(8)
    check_trains_alike(lambda on: take_winograd(monkeypatch, on), network(pool), rng.standard_normal((4, 9, 9, 2)),
                       rng.integers(0, 3, 4), first_conv_transformed)


def batch_norm_network(tail: str) -> dict:
    """A 3x3 Conv2D -> BatchNorm [-> ReLU [-> MaxPool2D]], the runs the engine fuses."""
    layers: list[dict] = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": None},
                          {"type": "BatchNorm"}]
    if tail in ("relu", "pool"):
        layers.append({"type": "ReLU"})
    if tail == "pool":
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    return {"format": "cnn-studio.architecture/2", "input": {"shape": [8, 8, 3]}, "layers": layers}


@pytest.mark.parametrize("tail", ["none", "relu", "pool"])
def test_fused_batch_norm_steps_run_layer_by_layer_on_the_winograd_path(monkeypatch, tail):
    rng = np.random.default_rng(11)
    check_trains_alike(lambda on: take_winograd(monkeypatch, on), batch_norm_network(tail),
                       rng.standard_normal((4, 8, 8, 3)), rng.integers(0, 3, 4), first_conv_transformed)


@pytest.mark.parametrize("tail", ["none", "pool"])
def test_batch_norm_network_gradients_through_the_winograd_path(always_winograd, tail):
    rng = np.random.default_rng(12)
    model = Model(batch_norm_network(tail), seed=4, dtype=np.float64)
    check_model_gradients(model, rng.standard_normal((3, 8, 8, 3)), rng.integers(0, 3, 3), rng)


def test_the_memory_estimate_counts_what_the_winograd_path_holds():
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [8, 8, 128]}, "layers": [
        {"type": "Conv2D", "filters": 128, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    scratch = memory.estimate_training(analyze(doc), 32).part("scratch")
    assert scratch >= winograd.memory_bytes((32, 8, 8, 128), (3, 3, 128, 128), "same", 2)
    check_memory_estimate(transform_paths.WINOGRAD, (32, 8, 8, 128), (3, 3, 128, 128), parallel.get_num_threads())


def test_batches_of_changing_sizes_reuse_one_set_of_scratch_arrays(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHUNK_TILES", 1)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 16 * 16 * 6 * 8 * 3)  # three images per chunk
    check_scratch_reused(transform_paths.WINOGRAD, np.random.default_rng(13).standard_normal((3, 3, 4, 6)), (8, 8, 4))


def test_spectral_and_winograd_layers_in_one_network(always_winograd, monkeypatch):
    """A 5x5 convolution through the Fourier transform feeding a 3x3 one through Winograd's."""
    monkeypatch.setattr(spectral, "MIN_SAVING", dict.fromkeys(spectral.MIN_SAVING, 0.0))
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [8, 8, 2]}, "layers": [
        {"type": "Conv2D", "filters": 3, "kernel_size": 5, "padding": "same", "activation": "relu"},
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    rng = np.random.default_rng(14)
    model = Model(doc, seed=5, dtype=np.float64)
    x = rng.standard_normal((2, 8, 8, 2))
    paths = [layer.transform_path(x.shape[:3] + (layer.params["kernel"].shape[2],), True)
             for layer in model.layers if isinstance(layer, Conv2D)]
    assert paths == [transform_paths.SPECTRAL, transform_paths.WINOGRAD]
    check_model_gradients(model, x, rng.integers(0, 3, 2), rng)
