"""Exports of branching networks, and the registry that gives each layer type its export rules."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np

from engine.export import export_model, load_weight_file, onnx_export, predictor_codegen, torch_codegen
from engine.export.rules import RULES
from engine.layers import LAYER_TYPES
from tests.engine.test_export_cases import normalized, randomized_model, raw_batch, trained_model
from tests.helpers.extras import require

TOLERANCE = 1e-4


def test_every_layer_type_has_onnx_pytorch_and_predictor_rules():
    assert set(RULES) == set(LAYER_TYPES)
    source = predictor_codegen.layer_functions()
    for kind, rule in RULES.items():
        assert f"{kind!r}: {rule.predict.__name__}," in source
        assert f"def {rule.predict.__name__}(" in source


def test_exporters_hold_no_rules_of_their_own():
    """Adding a layer type touches engine/export/rules.py only: the exporters name no layer type."""
    for module in (onnx_export, torch_codegen, predictor_codegen):
        text = Path(module.__file__).read_text()
        assert not re.search(r"\.type\s*(==|!=|in\b)", text), f"{module.__name__} branches on layer types"
    template = Path(predictor_codegen.TEMPLATE).read_text()
    network = template[template.index("class Network"):template.index("def preprocess(")]
    assert not [kind for kind in LAYER_TYPES if f'"{kind}"' in network]


def test_onnx_graph_of_a_residual_network_has_add_and_concat_nodes(tmp_path):
    onnx = require("onnx")
    model = randomized_model("residual")
    path = export_model(model, tmp_path / "res.onnx")[0]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Add") == 3  # add_1 (two inputs) and add_2 (three inputs: two binary Adds)
    inception = export_model(randomized_model("inception_fan_out"), tmp_path / "inc.onnx")[0]
    proto = onnx.load(str(inception))
    onnx.checker.check_model(proto, full_check=True)
    concat = [node for node in proto.graph.node if node.op_type == "Concat"]
    assert len(concat) == 2 and all(attr.i == 1 for node in concat for attr in node.attribute)
    # The unused branch contributes no nodes; the count-exclusive average pool is marked so.
    assert not [node for node in proto.graph.node if node.name.startswith("conv2d_5")]
    pool = next(node for node in proto.graph.node if node.op_type == "AveragePool")
    assert {a.name: a.i for a in pool.attribute}["count_include_pad"] == 0


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"generated_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_trained_residual_network_round_trips_through_every_format(tmp_path):
    """npz, safetensors, ONNX (onnxruntime), the NumPy predictor and the PyTorch module all give the
    engine's outputs for a residual network whose batch-norm statistics come from training."""
    model = trained_model("residual")
    raw = raw_batch(model, 9)
    x = normalized(model, raw)
    expected = model.predict(x)

    for suffix in (".npz", ".safetensors"):
        if suffix == ".safetensors" and importlib.util.find_spec("safetensors") is None:
            continue
        back = load_weight_file(export_model(model, tmp_path / f"w{suffix}")[0])
        assert back.architecture == model.architecture
        assert np.array_equal(back.predict(x), expected)

    if importlib.util.find_spec("onnxruntime") is not None:
        from engine.export.onnx_export import run_onnx

        path = export_model(model, tmp_path / "w.onnx")[0]
        assert np.max(np.abs(run_onnx(path, x) - expected)) < TOLERANCE

    folder = tmp_path / "predictor"
    export_model(model, folder, format="predictor")
    np.save(tmp_path / "raw.npy", raw)
    result = subprocess.run([sys.executable, str(folder / "predict.py"), str(tmp_path / "raw.npy"), "--save",
                             str(tmp_path / "p.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.max(np.abs(np.load(tmp_path / "p.npy") - expected)) < TOLERANCE

    if importlib.util.find_spec("torch") is not None:
        generated = _import(export_model(model, tmp_path / "torch", format="pytorch")[0])
        got = generated.predict(generated.load_npz(), raw)
        assert np.max(np.abs(got - expected)) < TOLERANCE


def test_pytorch_code_of_a_graph_names_each_branch():
    source = torch_codegen.generate_torch_module(randomized_model("inception_fan_out"))
    assert "concatenate_1 = torch.cat([conv2d_1, conv2d_3, conv2d_4, avg_pool2d_1], dim=1)" in source
    assert "add_1 = dense_1 + dense_2" in source
    assert "self.conv2d_5 = nn.Conv2d(2, 2, 3" in source  # the unused branch's weights still load
    assert "conv2d_5 = self.conv2d_5" not in source  # but it never runs
    assert "F.avg_pool2d(" in source  # average pooling without the padded zeros
    compile(source, "model.py", "exec")
