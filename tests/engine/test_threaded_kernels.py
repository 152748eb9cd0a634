"""Every layer and every fused step gives the same numbers split across threads and blocks as unsplit
on one thread.

Normally only large jobs are split (a share must hold 2**18 values or 2**23 multiply-adds) and blocks
hold megabytes, so small test networks never leave the calling thread. Here the thresholds are
lowered so that every kernel splits its batch across three threads and into blocks of a single
image, and each result is compared, in float64, with one thread and the usual thresholds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine import Model, parallel
from engine.layers import LAYER_TYPES
from engine.layers.fusion import ConvBatchNormRelu, ConvBatchNormReluMaxPool, ConvMaxPool, ReluMaxPool
from engine.losses import softmax_cross_entropy
from tests.helpers.engine_factories import arch
from tests.helpers.threads import alone_and_split

SPLITS: list[int] = []  # how many ranges each split job had, in split mode


def _in_both_modes(monkeypatch: pytest.MonkeyPatch, run: Callable[[], dict[str, np.ndarray]]):
    """(results on one thread with the usual thresholds, results split everywhere on three threads)."""
    SPLITS.clear()
    original = parallel.split

    def count_splits(patched: pytest.MonkeyPatch) -> None:
        patched.setattr(parallel, "split", lambda n, parts: SPLITS.append(parts) or original(n, parts))

    return alone_and_split(monkeypatch, run, count_splits)


def _compare(unsplit: dict[str, np.ndarray], split: dict[str, np.ndarray], what: str) -> None:
    assert unsplit.keys() == split.keys()
    for name, value in unsplit.items():
        np.testing.assert_allclose(split[name], value, rtol=1e-10, atol=1e-12, err_msg=f"{what}: {name}")


SINGLE_LAYERS = [
    ({"type": "Conv2D", "filters": 5, "kernel_size": 3}, (9, 8, 1)),
    ({"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}, (9, 8, 3)),
    ({"type": "Conv2D", "filters": 6, "kernel_size": 2, "stride": 2, "padding": 1, "activation": "tanh"}, (9, 7, 6)),
    ({"type": "Conv2D", "filters": 3, "kernel_size": 1, "use_bias": False}, (5, 6, 7)),
    ({"type": "MaxPool2D", "pool_size": 2}, (9, 8, 3)),
    ({"type": "MaxPool2D", "pool_size": 3, "stride": 2, "padding": "same"}, (9, 8, 2)),
    ({"type": "AvgPool2D", "pool_size": 2, "padding": "same"}, (9, 7, 3)),
    ({"type": "AvgPool2D", "pool_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}, (6, 7, 2)),
    ({"type": "GlobalAvgPool2D"}, (6, 5, 4)),
    ({"type": "BatchNorm"}, (7, 6, 5)),
    ({"type": "BatchNorm"}, (13,)),
    ({"type": "ReLU"}, (7, 6, 3)),
    ({"type": "LeakyReLU", "alpha": 0.2}, (7, 6, 3)),
    ({"type": "ELU"}, (7, 6, 3)),
    ({"type": "Sigmoid"}, (7, 6, 3)),
    ({"type": "Tanh"}, (11,)),
    ({"type": "Softmax"}, (11,)),
    ({"type": "Flatten"}, (4, 5, 3)),
    ({"type": "Dense", "units": 9, "activation": "relu"}, (40,)),
    ({"type": "Dense", "units": 7, "activation": "elu"}, (33,)),
]


@pytest.mark.parametrize("spec, shape", SINGLE_LAYERS, ids=lambda v: str(v.get("type")) if isinstance(v, dict) else "")
def test_every_layer_alone(monkeypatch, spec, shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, *shape)) * 2 + 0.5
    layer = LAYER_TYPES[spec["type"]](**{k: v for k, v in spec.items() if k != "type"})
    layer.build(shape, np.random.default_rng(1), np.float64)
    for value in layer.params.values():
        value[...] = rng.standard_normal(value.shape)
    out_shape = layer.output_shape(shape)
    grad = rng.standard_normal((10, *out_shape))

    def run() -> dict[str, np.ndarray]:
        layer.needs_input_grad = True
        results = {}
        for training in (True, False):
            out = layer.forward(x, training)
            d_x = layer.backward(grad.copy())
            results.update({f"out {training}": out.copy(), f"d_x {training}": d_x.copy()})
            results.update({f"{k} {training}": v.copy() for k, v in layer.grads.items()})
        results.update({k: v.copy() for k, v in layer.state.items()})
        return results

    if "moving_mean" in layer.state:  # the running statistics move each training pass: start equal
        def run_from_fresh_state(inner=run) -> dict[str, np.ndarray]:
            for value in layer.state.values():
                value[...] = 0.5
            return inner()
        unsplit, split = _in_both_modes(monkeypatch, run_from_fresh_state)
    else:
        unsplit, split = _in_both_modes(monkeypatch, run)
    _compare(unsplit, split, spec["type"])
    # The kernels that split their batch must really have split it here (pooling alone, the smooth
    # activations and reshapes run whole: their fused forms are split and compared below).
    if spec["type"] in ("Conv2D", "BatchNorm", "ReLU", "Dense"):
        assert SPLITS and max(SPLITS) == 3, f"{spec['type']} never ran on three threads"


def test_merge_layers(monkeypatch):
    doc = arch(
        {"id": "a", "type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"id": "b", "type": "Conv2D", "filters": 4, "kernel_size": 1, "inputs": ["input"]},
        {"id": "sum", "type": "Add", "inputs": ["a", "b"]},
        {"id": "c", "type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same", "inputs": ["input"]},
        {"type": "Concatenate", "inputs": ["sum", "c"]},
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
        shape=(8, 7, 3),
    )
    _compare(*_model_in_both_modes(monkeypatch, doc), "Add and Concatenate")


def _model_in_both_modes(monkeypatch, doc):
    model = Model(doc, seed=2, dtype=np.float64)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, *model.input_shape)) + 0.3
    y = rng.integers(0, model.output_shape[0], 12)
    initial = {k: v.copy() for k, v in model.tensors().items()}

    def run() -> dict[str, np.ndarray]:
        model.set_weights(initial)
        logits = model.forward_logits(x, training=True)
        d_x = model.backward(softmax_cross_entropy(logits, y)[1], input_grad=True)
        results = {"logits": logits.copy(), "d_x": d_x.copy(), "inference": model.predict(x).copy()}
        results.update({k: v.copy() for k, v in model.gradients().items()})
        results.update({k: v.copy() for k, v in model.state().items()})
        return results

    return _in_both_modes(monkeypatch, run)


FUSED = {
    ConvMaxPool: arch({"type": "Conv2D", "filters": 5, "kernel_size": 3, "activation": "relu"},
                      {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                      {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(11, 10, 3)),
    ReluMaxPool: arch({"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "tanh"}, {"type": "ReLU"},
                      {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                      {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(10, 9, 1)),
    ConvBatchNormRelu: arch({"type": "Conv2D", "filters": 6, "kernel_size": 3, "padding": "same", "use_bias": False},
                            {"type": "BatchNorm"}, {"type": "ReLU"}, {"type": "GlobalAvgPool2D"},
                            {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(9, 8, 2)),
    ConvBatchNormReluMaxPool: arch({"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "BatchNorm"},
                                   {"type": "ReLU"}, {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
                                   {"type": "Dense", "units": 3, "activation": "softmax"}, shape=(10, 11, 5)),
}


@pytest.mark.parametrize("step", list(FUSED), ids=lambda s: s.__name__)
def test_every_fused_step(monkeypatch, step):
    doc = FUSED[step]
    assert any(isinstance(s, step) for s in Model(doc)._steps), f"the network no longer fuses into {step.__name__}"
    _compare(*_model_in_both_modes(monkeypatch, doc), step.__name__)
    assert SPLITS and max(SPLITS) == 3
