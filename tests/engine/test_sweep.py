"""Sweep axes: parsing, grid and random points, layer fields, and clear refusals."""

from __future__ import annotations

import pytest

from engine.errors import RunError
from engine.runs.sweep import apply_point, parse_axis, sweep_points
from engine.training import TrainConfig
from tests.helpers.engine_factories import arch

NET = arch(
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu", "id": "first"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dropout", "rate": 0.3},
    {"type": "Dense", "units": 3, "activation": "softmax"},
)


def test_axes_and_the_grid():
    axes = [parse_axis("lr=0.1,0.03", NET), parse_axis("batch_size=32,64", NET),
            parse_axis("dropout_1.rate=0.2,0.5", NET), parse_axis("first.filters=8", NET),
            parse_axis("optimizer=sgd,adam", NET)]
    assert [a.key for a in axes] == ["learning_rate", "batch_size", "dropout_1.rate", "first.filters", "optimizer"]
    assert axes[1].values == (32, 64) and axes[3].values == (8,) and axes[4].values == ("sgd", "adam")
    points = sweep_points(axes)
    assert len(points) == 16 and points[0] == {"learning_rate": 0.1, "batch_size": 32, "dropout_1.rate": 0.2,
                                               "first.filters": 8, "optimizer": "sgd"}
    doc, config = apply_point(NET, TrainConfig(), points[-1], {"adam": 0.001})
    assert doc["layers"][0]["filters"] == 8 and doc["layers"][3]["rate"] == 0.5 and NET["layers"][3]["rate"] == 0.3
    assert (config.learning_rate, config.batch_size, config.optimizer) == (0.03, 64, "adam")
    _, config = apply_point(NET, TrainConfig(), {"optimizer": "adam"}, {"adam": 0.001})
    assert config.learning_rate == 0.001


def test_random_points():
    grid = [parse_axis("lr=0.1,0.03,0.01", NET), parse_axis("weight_decay=0,0.001", NET)]
    drawn = sweep_points(grid, random=4, seed=1)
    assert len(drawn) == 4 and len({tuple(p.values()) for p in drawn}) == 4
    assert drawn == sweep_points(grid, random=4, seed=1) != sweep_points(grid, random=4, seed=2)
    assert len(sweep_points(grid, random=50)) == 6  # never more than the grid holds
    ranged = [parse_axis("lr=1e-4..1e-1", NET), parse_axis("first.filters=2..8", NET),
              parse_axis("label_smoothing=0..0.2", NET)]
    points = sweep_points(ranged, random=20, seed=0)
    assert all(1e-4 <= p["learning_rate"] <= 1e-1 and isinstance(p["first.filters"], int)
               and 2 <= p["first.filters"] <= 8 and 0 <= p["label_smoothing"] <= 0.2 for p in points)
    # log-uniform: about as many rates below 1e-2.5 as above
    below = sum(p["learning_rate"] < 10 ** -2.5 for p in points)
    assert 4 <= below <= 16


@pytest.mark.parametrize("text, message", [
    ("lr", "is not KEY=VALUE"),
    ("speed=1,2", "unknown setting 'speed'"),
    ("epochs=1,2", "the same for every run"),
    ("batch_size=32,4.5", "whole numbers"),
    ("dense_9.units=2", "no layer 'dense_9'"),
    ("dropout_1.size=2", "has no setting 'size'"),
    ("lr=0.1..0.01", "from low to high"),
    ("optimizer=sgd..adam", "not numeric"),
])
def test_bad_axes_are_named(text, message):
    with pytest.raises(RunError, match=message):
        parse_axis(text, NET)


def test_points_that_break_the_network_or_need_random_search():
    with pytest.raises(RunError, match="first.filters=0 makes the network impossible"):
        apply_point(NET, TrainConfig(), {"first.filters": 0})
    with pytest.raises(RunError, match="needs random search"):
        sweep_points([parse_axis("lr=0.001..0.1", NET)])
    with pytest.raises(RunError, match="one --grid only"):
        sweep_points([parse_axis("lr=0.1", NET), parse_axis("learning_rate=0.2", NET)])


def test_architecture_differences_are_named():
    from engine.architecture_diff import diff_architectures, same_network

    wider = arch(*NET["layers"][:1], {"type": "BatchNorm"}, *NET["layers"][1:3],
                 {"type": "Dense", "units": 3, "activation": "softmax"})
    diff = diff_architectures(NET, wider)
    assert [c.kind for c in diff.changes] == ["added", "removed"]
    assert diff.describe() == "batch_norm_1 (BatchNorm) added; dropout_1 (Dropout) removed; +16 parameters"
    assert diff.params_delta == 16 and not diff.same and not same_network(NET, wider)
    renamed_ids = arch(*({**spec, "id": f"block{i}"} for i, spec in enumerate(NET["layers"])))
    assert same_network(NET, renamed_ids) and diff_architectures(NET, renamed_ids).same
    plain = arch(*({k: v for k, v in spec.items() if k != "id"} for spec in NET["layers"]))
    inserted = arch(*plain["layers"][:1], {"type": "Conv2D", "filters": 2, "kernel_size": 1}, *plain["layers"][1:])
    assert diff_architectures(plain, inserted).describe() == "conv2d_2 (Conv2D) added; -140 parameters"
    changed = arch(*NET["layers"][:3], {"type": "Dropout", "rate": 0.5}, NET["layers"][4])
    assert diff_architectures(NET, changed).describe() == "dropout_1 (Dropout): rate 0.3 -> 0.5"
