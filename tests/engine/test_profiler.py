"""The per-layer training profile: rows per step of the run plan that add up to the measured step."""

from __future__ import annotations

import numpy as np
import pytest

from engine.explain import Cancelled
from engine.model import Model
from engine.optimizers import make_optimizer
from engine.profiler import profile_training
from tests.helpers.engine_factories import CONCAT, SMALL_CNN, stripes_dataset


def batches(model: Model, n: int = 96):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (n, *model.input_shape)).astype(np.float32)
    return x, rng.integers(0, model.output_shape[0], n)


def test_the_rows_add_up_to_the_measured_step():
    model = Model(SMALL_CNN, seed=0)
    x, y = batches(model)
    seen: list[float] = []
    profile = profile_training(model, x, y, make_optimizer("sgd", lr=0.01, momentum=0.9), batch_size=32, steps=4,
                               progress=seen.append)
    assert seen == [0.2, 0.4, 0.6, 0.8, 1.0]  # one warm-up step, then four timed ones
    measured = sum(row.total_s for row in profile.rows)
    assert measured + profile.overhead_s == pytest.approx(profile.step_s, rel=1e-12)
    # What the rows leave out is Python between the kernels: a small part of a step.
    assert 0 <= profile.overhead_s < 0.25 * profile.step_s
    assert sum(profile.share(row) for row in profile.rows) == pytest.approx(1 - profile.overhead_s / profile.step_s)
    names = [row.name for row in profile.rows]
    # The convolution and its pooling run as one kernel in training: timed as they run.
    assert names == ["conv2d_1 + max_pool2d_1", "flatten_1", "dense_1", "loss (softmax cross-entropy)",
                     "update (sgd)"]
    conv = profile.rows[0]
    assert conv.forward_s > 0 and conv.backward_s > 0
    assert conv.activation_bytes == 32 * 5 * 5 * 4 * 4  # the pooled float32 output of one batch
    # The fused kernel's time goes to its layers in the parts measured for them one by one.
    assert len(conv.parts) == 2 and sum(conv.parts) == pytest.approx(1)
    shares = profile.layer_shares()
    assert shares["conv2d_1"] + shares["max_pool2d_1"] == pytest.approx(profile.share(conv))
    assert all(part > 0 for part in conv.parts)
    assert "step" in profile.table() and "images/s" in profile.table()


def test_a_branching_network_is_profiled_layer_by_layer_and_left_as_it_was():
    model = Model(CONCAT, seed=0)
    x, y = batches(model, 40)
    profile = profile_training(model, x, y, make_optimizer("adam", lr=1e-3), batch_size=20, steps=2)
    covered = [name for row in profile.rows for name in row.layers]
    assert sorted(covered) == sorted(model.names)  # every live layer exactly once
    assert all("forward" not in vars(layer) for layer in model.layers)  # the timers are gone
    assert profile.images_per_second > 0


def test_profiling_can_be_cancelled_and_needs_images():
    model = Model(SMALL_CNN, seed=0)
    data = stripes_dataset(64, 8)
    x, y = data.normalized("train"), data.y_train
    calls = []
    with pytest.raises(Cancelled):
        profile_training(model, x, y, make_optimizer("sgd", lr=0.01), steps=5, cancelled=lambda: len(calls) > 1,
                         progress=calls.append)
    assert all("forward" not in vars(layer) for layer in model.layers)
    with pytest.raises(ValueError, match="at least one training image"):
        profile_training(model, x[:0], y[:0], make_optimizer("sgd", lr=0.01))


def test_the_command_line_prints_the_profile(capsys):
    from engine.cli import main

    assert main(["profile", "assets/architectures/seed_sample.json", "--limit", "200", "--steps", "1",
                 "--batch-size", "32", "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1 + max_pool2d_1" in out and "update (sgd)" in out and "32 images" in out


def test_a_fused_convolution_and_batch_norm_split_their_time_as_measured(monkeypatch):
    """The canvas's colouring shows each fused layer's own time, as measured running them one by one
    (here with a clock that charges each layer a fixed cost, so that the split is known)."""
    doc = {"format": "cnn-studio.architecture/2", "input": {"shape": [16, 16, 8]}, "layers": [
        {"type": "Conv2D", "filters": 32, "kernel_size": 3, "padding": "same", "use_bias": False},
        {"type": "BatchNorm"}, {"type": "ReLU"},
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]}
    model = Model(doc, seed=0)
    x, y = batches(model, 64)
    profile = profile_training(model, x, y, make_optimizer("sgd", lr=0.01), batch_size=32, steps=2)
    fused = profile.rows[0]
    assert fused.layers == ("conv2d_1", "batch_norm_1", "relu_1")
    shares = profile.layer_shares()
    conv, norm, relu = (shares[name] for name in fused.layers)
    assert conv + norm + relu == pytest.approx(profile.share(fused))

    # The split itself, with layers that take known times: 6, 3 and 1 units, forward and backward.
    import engine.profiler as profiler_module

    costs = {"conv2d_1": 6, "batch_norm_1": 3, "relu_1": 1}
    clock = [0.0]

    def charging(real, cost: float):
        def timed(*args, **kwargs):
            clock[0] += cost
            return real(*args, **kwargs)
        return timed

    for layer, name in zip(model.layers, model.names):
        if name in costs:
            for method in ("forward", "backward"):
                monkeypatch.setattr(layer, method, charging(getattr(layer, method), costs[name]))
    monkeypatch.setattr(profiler_module.time, "perf_counter", lambda: clock[0])
    node = next(n for n in model._nodes if len(profiler_module._node_layers(model, n)) == 3)
    parts = profiler_module._fused_parts(model, node, x[:8])
    assert parts == pytest.approx((0.6, 0.3, 0.1))
