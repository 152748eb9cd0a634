"""The node editor's structural edits as pure functions: connect, disconnect, insert on a wire, delete
with reconnection, moves, the output rule and the topological order, checked against the analysis."""

from __future__ import annotations

import pytest

from cnn_studio import graph
from cnn_studio.builder import composites
from cnn_studio.graph import ENTRY, INPUT, OUTPUT, GraphEditError, Wire
from engine.architecture import FORMAT, analyze


def spec(layer_id: str, type_name: str, *inputs: str, **settings) -> dict:
    out = {"id": layer_id, "type": type_name, **settings}
    if inputs:
        out["inputs"] = list(inputs)
    return out


def chain() -> list[dict]:
    return graph.with_explicit_inputs([
        spec("a", "Conv2D", filters=4, kernel_size=3, padding="same"),
        spec("b", "Conv2D", filters=4, kernel_size=3, padding="same"),
        spec("f", "Flatten"),
        spec("d", "Dense", units=10),
    ])


def analysis_of(layers: list[dict], shape=(8, 8, 4)):
    return analyze({"format": FORMAT, "input": {"shape": list(shape)}, "layers": layers})


def inputs(layers: list[dict]) -> dict[str, list[str]]:
    return {s["id"]: s["inputs"] for s in layers}


def assert_topological(layers: list[dict]) -> None:
    seen = {INPUT}
    for s in layers:
        assert set(s["inputs"]) <= seen, f"{s['id']} uses a layer listed after it"
        seen.add(s["id"])


def test_implicit_inputs_become_explicit_and_compact_back():
    layers = chain()
    assert inputs(layers) == {"a": [INPUT], "b": ["a"], "f": ["b"], "d": ["f"]}
    assert all("inputs" not in s for s in graph.compact_inputs(layers))
    branched = graph.connect(layers, INPUT, "f")  # f now takes the input, not b
    assert [s.get("inputs") for s in graph.compact_inputs(branched)][2] == [INPUT]


def test_wires_list_targets_in_document_order_then_the_output():
    assert graph.wires(chain()) == [Wire(INPUT, "a"), Wire("a", "b"), Wire("b", "f"), Wire("f", "d"),
                                    Wire("d", OUTPUT)]


def test_insert_on_a_wire_and_on_the_output_wire():
    layers = graph.insert_on_wire(chain(), [spec("n", "ReLU")], Wire("a", "b"))
    assert graph.ids(layers) == ["a", "n", "b", "f", "d"]
    assert inputs(layers)["n"] == ["a"] and inputs(layers)["b"] == ["n"]
    appended = graph.insert_on_wire(chain(), [spec("s", "Softmax")], Wire("d", OUTPUT))
    assert graph.output_id(appended) == "s" and inputs(appended)["s"] == ["d"]
    with pytest.raises(GraphEditError):
        graph.insert_on_wire(chain(), [spec("x", "ReLU")], Wire("a", "f"))  # no such wire
    with pytest.raises(GraphEditError):
        graph.insert_on_wire(chain(), [spec("a", "ReLU")], Wire("a", "b"))  # id taken


def test_connect_makes_a_skip_connection_into_a_merge_and_replaces_a_single_input():
    layers = graph.insert_on_wire(chain(), [spec("add", "Add")], Wire("b", "f"))
    assert inputs(layers)["add"] == ["b"]
    assert not analysis_of(layers).ok  # an Add with one input
    joined = graph.connect(layers, INPUT, "add")
    assert inputs(joined)["add"] == ["b", INPUT]
    assert analysis_of(joined).ok
    # A layer that takes one input gets the new one instead of the old.
    rewired = graph.connect(joined, "a", "f")
    assert inputs(rewired)["f"] == ["a"]
    with pytest.raises(GraphEditError, match="already feeds"):
        graph.connect(joined, INPUT, "add")


def test_connect_refuses_a_loop_and_reorders_the_list_when_needed():
    layers = chain()
    with pytest.raises(GraphEditError, match="loop"):
        graph.connect(layers, "f", "a")
    with pytest.raises(GraphEditError, match="itself"):
        graph.connect(layers, "b", "b")
    # A side branch listed after the layer it is connected to moves up the list.
    layers = graph.with_explicit_inputs([spec("a", "Conv2D", filters=4), spec("m", "Concatenate", "a"),
                                         spec("side", "Conv2D", INPUT, filters=2), spec("d", "Flatten", "m")])
    joined = graph.connect(layers, "side", "m")
    assert_topological(joined)
    assert graph.ids(joined).index("side") < graph.ids(joined).index("m")
    assert graph.output_id(joined) == "d"


def test_disconnect_keeps_every_layer_fed():
    layers = graph.connect(graph.insert_on_wire(chain(), [spec("add", "Add")], Wire("b", "f")), INPUT, "add")
    cut = graph.disconnect(layers, Wire(INPUT, "add", 1))
    assert inputs(cut)["add"] == ["b"]
    with pytest.raises(GraphEditError, match="needs an input"):
        graph.disconnect(chain(), Wire("a", "b"))
    with pytest.raises(GraphEditError):
        graph.disconnect(chain(), Wire("d", OUTPUT))


def test_delete_reconnects_what_the_layer_fed_to_its_input():
    layers = graph.remove(chain(), "b")
    assert graph.ids(layers) == ["a", "f", "d"] and inputs(layers)["f"] == ["a"]
    # Deleting the output makes its input the output, even when a side branch is listed after it.
    side = graph.with_explicit_inputs([spec("a", "Conv2D", filters=4), spec("f", "Flatten"),
                                       spec("side", "Conv2D", "a", filters=2), spec("d", "Dense", "f", units=3)])
    assert graph.output_id(graph.remove(side, "d")) == "f"
    # A merge's consumers take its first input; a merge losing a duplicate keeps one.
    merged = graph.connect(graph.insert_on_wire(chain(), [spec("add", "Add")], Wire("b", "f")), INPUT, "add")
    gone = graph.remove(merged, "add")
    assert inputs(gone)["f"] == ["b"]
    assert inputs(graph.remove(merged, "b"))["add"] == ["a", INPUT]


def test_output_can_be_chosen_among_layers_that_feed_nothing():
    layers = graph.with_explicit_inputs([spec("a", "Conv2D", filters=4), spec("f", "Flatten"),
                                         spec("g", "GlobalAvgPool2D", "a"), spec("d", "Dense", "f", units=3)])
    moved = graph.set_output(layers, "g")
    assert graph.output_id(moved) == "g"
    assert_topological(moved)
    with pytest.raises(GraphEditError, match="feeds other layers"):
        graph.set_output(layers, "a")
    assert graph.connectable_targets(layers, "g") >= {OUTPUT, "d"}
    assert "a" not in graph.connectable_targets(layers, "f")  # a feeds f: a loop
    assert graph.connectable_sources(layers, OUTPUT) == {"g"}


def test_chain_moves_swap_neighbours_and_move_to_index_matches_the_old_list_semantics():
    down = graph.move_in_chain(chain(), "a", +1)
    assert graph.ids(down) == ["b", "a", "f", "d"] and inputs(down)["b"] == [INPUT]
    assert graph.move_in_chain(down, "a", -1) == chain()
    with pytest.raises(GraphEditError):
        graph.move_in_chain(chain(), "a", -1)
    moved = graph.move_to_index(chain(), "a", 2)
    assert graph.ids(moved) == ["b", "f", "a", "d"]
    onto = graph.move_onto_wire(chain(), "b", Wire("f", "d"))
    assert graph.ids(onto) == ["a", "f", "b", "d"] and inputs(onto)["f"] == ["a"]


def test_insert_after_a_layer_feeding_several_moves_all_its_wires():
    layers = graph.connect(graph.insert_on_wire(chain(), [spec("add", "Add")], Wire("b", "f")), "a", "add")
    after = graph.insert_after(layers, [spec("r", "ReLU")], "a")
    assert inputs(after)["b"] == ["r"] and inputs(after)["add"] == ["b", "r"] and inputs(after)["r"] == ["a"]


@pytest.mark.parametrize("key", list(composites.COMPOSITES))
@pytest.mark.parametrize("shape", [(8, 8, 4), (8, 8, 32), (8, 8, 1)])
def test_each_composite_block_fits_its_input_whatever_the_width(key, shape):
    group = composites.COMPOSITES[key].build(shape)
    assert any(ENTRY in s["inputs"] for s in group)
    layers = graph.insert_on_wire(chain(), group, Wire(INPUT, "a"))  # the block receives the input
    assert_topological(layers)
    analysis = analysis_of(layers, shape)
    assert analysis.ok, analysis.problems
    assert not analysis.warnings
    out = {i.id: i.output_shape for i in analysis.layers}[group[-1]["id"]]
    if key == "residual_down":
        assert out[:2] == (shape[0] // 2, shape[1] // 2) and out[2] == max(16, 2 * shape[2])
    else:
        assert out[:2] == shape[:2]


def test_a_residual_block_uses_the_input_as_its_shortcut_only_when_sizes_match():
    same = composites.residual_block((8, 8, 32))
    assert not any(s["type"] == "Conv2D" and s["kernel_size"] == 1 for s in same)
    assert same[-2]["type"] == "Add" and ENTRY in same[-2]["inputs"]
    projected = composites.residual_block((8, 8, 32), downsample=True)
    projection = [s for s in projected if s["type"] == "Conv2D" and s["kernel_size"] == 1]
    assert len(projection) == 1 and projection[0]["stride"] == 2 and projection[0]["filters"] == 64


def test_moving_up_stops_at_the_start_of_a_branch():
    # a feeds both b (the branch) and the Add: b moving up would leave its branch for the trunk.
    layers = graph.connect(graph.insert_on_wire(chain(), [spec("add", "Add")], Wire("b", "f")), "a", "add")
    with pytest.raises(GraphEditError, match="first on its branch: conv2d_1 above it feeds several layers"):
        graph.move_in_chain(layers, "b", -1)
    # Within a chain it still swaps with its neighbour.
    assert graph.ids(graph.move_in_chain(chain(), "b", -1))[:2] == ["b", "a"]
