"""The generated PyTorch model.py: same predictions as the engine, loaders for both weight formats,
and a way back to an engine weight file after training in PyTorch."""

from __future__ import annotations

import importlib.util
import os
import uuid

import numpy as np
import pytest

from engine.export import export_model, load_weight_file
from engine.export.torch_codegen import generate_torch_module
from tests.engine.test_export_cases import ARCHITECTURES, normalized, randomized_model, raw_batch, trained_model

try:  # PyTorch is only the benchmarks' reference: the tests that run the generated code need it
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (it is only the benchmarks' "
                                 "reference); the generated code is still checked for what it says")

TOLERANCE = 1e-4


def import_generated(path):
    spec = importlib.util.spec_from_file_location(f"generated_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_torch
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_pytorch_module_matches_the_engine(tmp_path, name) -> None:
    model = randomized_model(name)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.5] * model.input_shape[2], "std": [0.25] * model.input_shape[2]}
    written = export_model(model, tmp_path / "torch", format="pytorch")
    assert [p.name for p in written] == ["model.py", "weights.npz"]
    generated = import_generated(written[0])
    net = generated.load_npz()  # default: weights.npz beside model.py
    assert not net.training
    raw = raw_batch(model, 7)
    expected = model.predict(normalized(model, raw))
    got = generated.predict(net, raw)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < TOLERANCE


@needs_torch
def test_trained_batch_norm_statistics_carry_over(tmp_path) -> None:
    model = trained_model("gray_odd_every_kind")
    generated = import_generated(export_model(model, tmp_path / "t", format="pytorch")[0])
    net = generated.load_npz(tmp_path / "t" / "weights.npz")
    x = normalized(model, raw_batch(model, 5))
    with torch.no_grad():
        got = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.max(np.abs(got - model.predict(x))) < TOLERANCE


@needs_torch
def test_safetensors_loader_and_logits_for_further_training(tmp_path) -> None:
    model = randomized_model("gray_odd_every_kind")
    generated = import_generated(export_model(model, tmp_path / "t", format="pytorch")[0])
    export_model(model, tmp_path / "w.safetensors")
    net = generated.load_safetensors(tmp_path / "w.safetensors")
    x = generated.preprocess(raw_batch(model, 6))
    with torch.no_grad():
        logits = net(x, logits=True)
        probabilities = net(x)
    assert torch.allclose(torch.softmax(logits, dim=-1), probabilities, atol=1e-6)
    assert np.max(np.abs(logits.numpy() - model.forward_logits(x.numpy().transpose(0, 2, 3, 1)))) < TOLERANCE
    # One optimiser step on the logits works: the module is ready to be trained further.
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(net(x, logits=True), torch.tensor([0, 1, 2, 3, 4, 0]))
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in net.parameters())


@needs_torch
def test_weights_trained_in_pytorch_come_back_to_the_engine(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")
    generated = import_generated(export_model(model, tmp_path / "t", format="pytorch")[0])
    net = generated.load_npz(tmp_path / "t" / "weights.npz")
    with torch.no_grad():
        net.dense_1.weight.mul_(2.0)
    assert hasattr(net, "stem_conv")  # the layer named "stem conv" became a valid attribute
    generated.save_npz(net, tmp_path / "back.npz")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "back.npz").stat().st_mode & 0o777 == 0o666 & ~mask  # a new file's usual permissions
    back = load_weight_file(tmp_path / "back.npz")
    assert np.allclose(back.tensors()["dense_1.kernel"], 2 * model.tensors()["dense_1.kernel"])
    assert np.array_equal(back.tensors()["stem conv.kernel"], model.tensors()["stem conv.kernel"])
    raw = raw_batch(model, 4)
    assert np.max(np.abs(generated.predict(net, raw) - back.predict(normalized(back, raw)))) < TOLERANCE


@needs_torch
def test_loader_refuses_weights_of_another_network(tmp_path) -> None:
    generated = import_generated(export_model(randomized_model("dense_no_softmax"), tmp_path / "t",
                                              format="pytorch")[0])
    other = dict(np.load(tmp_path / "t" / "weights.npz"))
    other["dense_2.kernel"] = np.zeros((7, 4), np.float32)
    with pytest.raises(ValueError, match="'dense_2.kernel'"):
        generated.load_tensors(generated.Net(), {k: v for k, v in other.items() if not k.startswith("__")})


def test_generated_code_is_plain_readable_pytorch() -> None:
    source = generate_torch_module(randomized_model("gray_odd_every_kind"), ["a", "b", "c", "d", "e"])
    assert "nn.Conv2d(1, 4, 3, stride=2, padding=1, bias=True)" in source
    assert 'F.pad(x, (1, 1, 0, 1), value=float("-inf"))' in source  # max pool's odd pixel after
    assert "x.permute(0, 2, 3, 1).flatten(1)" in source
    assert "nn.BatchNorm2d(4, eps=0.001, momentum=0.1)" in source
    assert "nn.BatchNorm1d(10, eps=1e-05, momentum=0.2)" in source
    assert "CLASS_NAMES: list[str] = ['a', 'b', 'c', 'd', 'e']" in source
    compile(source, "model.py", "exec")
