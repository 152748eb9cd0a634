"""Transfer learning: a new head for another dataset; frozen layers that do not change in training."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from engine.errors import ArchitectureError
from engine.fine_tuning import head_index, replace_head, replace_head_document
from engine.model import Model
from engine.training import TrainConfig, Trainer
from tests.helpers.engine_factories import arch, stripes_dataset
from tests.helpers.gradcheck import numeric_grad, sample_indices

BACKBONE = (
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "BatchNorm"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 16, "activation": "relu"},
)
TEN_CLASSES = arch(*BACKBONE, {"type": "Dropout", "rate": 0.1}, {"type": "Dense", "units": 10, "activation": "softmax"})


def test_replace_head_keeps_every_other_tensor_and_fits_the_classes():
    model = Model(TEN_CLASSES, seed=0)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    new = replace_head(model, 3, seed=5)
    assert new.output_shape == (3,)
    old, fresh = model.tensors(), new.tensors()
    head = new.names[-1]
    assert fresh[f"{head}.kernel"].shape == (16, 3) and fresh[f"{head}.bias"].shape == (3,)
    for name, value in old.items():
        if not name.startswith(f"{head}."):
            np.testing.assert_array_equal(fresh[name], value)
    assert new.preprocessing == model.preprocessing
    assert new.architecture["layers"][-1]["activation"] == "softmax"
    # The original is untouched.
    assert model.output_shape == (10,)


def test_a_logits_network_gets_a_softmax_head_and_trains():
    """An imported network often ends in a Dense without softmax; the new head makes it a classifier."""
    logits = arch(*BACKBONE, {"type": "Dense", "units": 7})
    model = replace_head(Model(logits, seed=0), 3)
    assert model.softmax_head
    history = Trainer(model, stripes_dataset(n_train=96, n_test=30),
                      TrainConfig(epochs=1, batch_size=32, validation_split=0.0)).fit()
    assert history.finished.reason == "completed"


def test_a_softmax_layer_after_the_head_stays_and_the_head_stays_linear():
    doc = arch(*BACKBONE, {"type": "Dense", "units": 10}, {"type": "Softmax"})
    new = replace_head_document(doc, 4)
    assert new["layers"][-2]["units"] == 4 and "activation" not in new["layers"][-2]
    assert new["layers"][-1] == {"type": "Softmax"}
    assert head_index(new) == len(new["layers"]) - 2


def test_replace_head_refuses_networks_without_a_dense_head():
    with pytest.raises(ArchitectureError, match="no Dense layer"):
        replace_head_document(arch({"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "GlobalAvgPool2D"}), 3)
    with pytest.raises(ArchitectureError, match="followed by a BatchNorm"):
        replace_head_document(arch(*BACKBONE, {"type": "BatchNorm"}), 3)
    with pytest.raises(ArchitectureError, match="whole number of classes"):
        replace_head_document(TEN_CLASSES, 0)


# -- frozen layers ("trainable": false) ----------------------------------------------------------------------
def frozen(doc: dict, *indices: int) -> dict:
    doc = copy.deepcopy(doc)
    for i in indices:
        doc["layers"][i]["trainable"] = False
    return doc


def spread_statistics(model: Model, rng: np.random.Generator, top: float, spread: float) -> None:
    """Batch-norm running statistics away from their initial 0 and 1."""
    for name, value in model.state().items():
        value[...] = rng.uniform(0.5, top, value.shape) if name.endswith("variance") else rng.normal(0, spread,
                                                                                                        value.shape)


CONV_BN = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "use_bias": False},
    {"type": "BatchNorm", "momentum": 0.5},
    {"type": "ReLU"},
    {"type": "MaxPool2D", "pool_size": 2},          # Conv -> BatchNorm -> ReLU -> MaxPool: one fused step
    {"type": "Conv2D", "filters": 5, "kernel_size": 3},
    {"type": "BatchNorm", "momentum": 0.5},
    {"type": "ReLU"},                                # Conv -> BatchNorm -> ReLU: another
    {"type": "Flatten"},
    {"type": "BatchNorm", "momentum": 0.5},          # a batch norm on its own
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


@pytest.mark.parametrize("processes", [1, 2])
def test_frozen_layers_get_no_updates_and_keep_their_statistics(processes):
    doc = frozen(CONV_BN, 0, 1, 4, 5, 8)
    model = Model(doc, seed=0)
    rng = np.random.default_rng(0)
    spread_statistics(model, rng, 1.5, 0.3)
    before = model.get_weights()
    history = Trainer(model, stripes_dataset(n_train=128, n_test=30),
                      TrainConfig(epochs=1, batch_size=32, validation_split=0.0, processes=processes,
                                  optimizer="adamw", weight_decay=0.1)).fit()
    assert history.finished.reason == "completed"
    after = model.tensors()
    frozen_layers = {model.names[i] for i in (0, 1, 4, 5, 8)}
    for name, value in after.items():
        if name.split(".")[0] in frozen_layers:
            np.testing.assert_array_equal(value, before[name], err_msg=name)  # kernels, gamma, beta, statistics
    assert not np.array_equal(after["dense_1.kernel"], before["dense_1.kernel"])
    assert set(model.trainable_parameters()) == {"dense_1.kernel", "dense_1.bias"}


def test_a_frozen_batch_norm_normalises_with_its_running_statistics_in_training():
    """Training and inference give the same outputs when every batch norm is frozen (fused or alone)."""
    model = Model(frozen(CONV_BN, 1, 5, 8), seed=1, dtype=np.float64)
    rng = np.random.default_rng(1)
    spread_statistics(model, rng, 2.0, 0.5)
    x = rng.normal(0.3, 1.0, (6, 12, 12, 1))
    np.testing.assert_allclose(model.forward(x, training=True), model.forward(x, training=False), rtol=1e-12)
    unfrozen = Model(CONV_BN, seed=1, dtype=np.float64)
    unfrozen.set_weights(model.tensors())
    assert not np.allclose(unfrozen.forward(x, training=True), unfrozen.forward(x, training=False))


def test_gradients_through_frozen_batch_norms_match_finite_differences():
    model = Model(frozen(CONV_BN, 1, 5, 8), seed=2, dtype=np.float64)
    rng = np.random.default_rng(2)
    spread_statistics(model, rng, 2.0, 0.5)
    x = rng.normal(0.3, 1.0, (4, 12, 12, 1))
    g = rng.standard_normal((4, 3))

    def scalar() -> float:
        return float((model.forward_logits(x, training=True) * g).sum())

    scalar()
    model.backward(g)
    for name in ("conv2d_1.kernel", "conv2d_2.kernel", "conv2d_2.bias", "dense_1.kernel"):
        param = model.parameters()[name]
        indices = sample_indices(param.shape, rng, 6)
        analytic = np.array([model.gradients()[name][i] for i in indices])
        np.testing.assert_allclose(analytic, numeric_grad(scalar, param, indices), rtol=1e-5, atol=1e-8,
                                   err_msg=name)


RESIDUAL = arch(
    {"id": "stem", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"id": "a", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"id": "b", "type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same"},
    {"id": "sum", "type": "Add", "inputs": ["b", "stem"]},
    {"id": "pool", "type": "GlobalAvgPool2D"},
    {"id": "head", "type": "Dense", "units": 3, "activation": "softmax"},
)


CHAIN = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Conv2D", "filters": 5, "kernel_size": 3, "activation": "tanh"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 8, "activation": "relu"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


@pytest.mark.parametrize("doc,frozen_at", [(CHAIN, (0, 1, 2)), (CHAIN, (0, 4)), (RESIDUAL, (0,)),
                                           (RESIDUAL, (0, 1, 2))])
def test_backward_leaves_out_what_only_frozen_layers_need(doc, frozen_at):
    """Frozen layers that feed no trainable layer get no backward (their gradients are not computed),
    and the trainable layers' gradients are exactly those of the same network with nothing frozen."""
    model = Model(frozen(doc, *frozen_at), seed=3, dtype=np.float64)
    reference = Model(doc, seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.normal(0.3, 1.0, (5, 12, 12, 1))
    g = rng.standard_normal((5, 3))
    for m in (model, reference):
        for value in m.gradients().values():
            value[...] = np.nan
        m.forward_logits(x, training=True)
        m.backward(g)
    trainable = model.trainable_gradients()
    assert trainable and set(trainable) < set(model.gradients())
    for name, grad in trainable.items():
        np.testing.assert_allclose(grad, reference.gradients()[name], rtol=1e-12, err_msg=name)
    # Frozen layers upstream of every trainable one were left alone; one between trainable layers
    # (CHAIN's frozen Dense) still passes the gradient on, so its own may be computed.
    first_trainable = min(i for i, layer in enumerate(model.layers) if layer.trainable and layer.params)
    skipped = [f"{model.names[i]}.kernel" for i in frozen_at if i < first_trainable and model.layers[i].params]
    assert skipped and all(np.isnan(model.gradients()[name]).all() for name in skipped)
    # Saliency still reaches the input through every layer, frozen or not.
    saliency, _ = model.input_gradient(x[0])
    np.testing.assert_allclose(saliency, reference.input_gradient(x[0])[0], rtol=1e-10)


def test_summary_counts_frozen_parameters():
    model = Model(frozen(CONV_BN, 0, 1), seed=0)
    text = model.summary()
    assert "(frozen)" in text and "frozen: 44" in text
