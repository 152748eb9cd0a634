"""Networks built and exported by PyTorch here and now, imported, must predict like PyTorch (1e-4)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.helpers.extras import require

torch = pytest.importorskip("torch", reason="PyTorch is not installed (it is only the benchmarks' reference)")
require("onnx")
require("onnxruntime")

from torch import nn  # noqa: E402

from engine.layers import LAYER_TYPES  # noqa: E402
from engine.onnx_import import import_onnx  # noqa: E402


def exported(tmp_path, net: nn.Module, shape: tuple[int, int, int], opset: int = 17, preserve: bool = False,
             name: str = "net"):
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(8, *shape) * 2 + 1)  # batch-norm statistics away from 0 and 1
    net.eval()
    path = tmp_path / f"{name}.onnx"
    mode = torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(2, *shape), str(path), dynamo=False, opset_version=opset, training=mode,
                          dynamic_axes={"input": {0: "n"}}, input_names=["input"])
    return path


def assert_predicts_like_torch(net: nn.Module, path, count: int = 5):
    imported = import_onnx(path)
    model = imported.model()
    x = (np.random.default_rng(1).standard_normal((count, *model.input_shape)) * 2).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-4, atol=1e-4)
    return imported


@pytest.mark.parametrize("opset", [11, 12, 13, 14, 15, 16, 17, 18])
@pytest.mark.parametrize("preserve", [False, True])
def test_sequential_with_batch_norm_every_opset(tmp_path, opset, preserve):
    torch.manual_seed(opset)
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(5, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.LeakyReLU(0.05),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(6 * 3 * 3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 4),
    )
    path = exported(tmp_path, net, (3, 11, 11), opset, preserve)
    imported = assert_predicts_like_torch(net, path)
    types = [s["type"] for s in imported.architecture["layers"]]
    # In training-preserving exports the batch norms stay layers of their own; otherwise PyTorch folds
    # the convolutions' into the kernels and only the Dense one is left.
    assert types.count("BatchNorm") == (3 if preserve else 1)


def test_pooling_with_ceil_mode_and_odd_sizes(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                        nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
    path = exported(tmp_path, net, (1, 9, 9))
    imported = assert_predicts_like_torch(net, path)
    pools = [s for s in imported.architecture["layers"] if s["type"] == "MaxPool2D"]
    assert pools[0]["padding"] == "same"  # 7x7 -> 4x4: the extra window is the engine's 'same'


@pytest.mark.parametrize("include", [True, False])
def test_average_pooling_with_and_without_padded_zeros(tmp_path, include):
    pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=include)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Sigmoid(), pool, nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    path = exported(tmp_path, net, (2, 9, 9))
    imported = assert_predicts_like_torch(net, path)
    pool = next(s for s in imported.architecture["layers"] if s["type"] == "AvgPool2D")
    assert pool.get("count_include_pad", True) is include


def test_strides_kernels_and_elu(tmp_path):
    net = nn.Sequential(nn.Conv2d(2, 4, 5, stride=2, padding=2, bias=False), nn.ELU(0.7), nn.Conv2d(4, 4, 1),
                        nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=1))
    path = exported(tmp_path, net, (2, 10, 10))
    imported = assert_predicts_like_torch(net, path)
    assert [s["type"] for s in imported.architecture["layers"]] == [
        "Conv2D", "ELU", "Conv2D", "GlobalAvgPool2D", "Dense"]
    assert imported.architecture["layers"][-1]["activation"] == "softmax"


@pytest.mark.skipif("Add" not in LAYER_TYPES, reason="the engine has no Add layer (graph networks)")
def test_residual_block(tmp_path):
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6))
            self.head = nn.Linear(6, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            x = torch.relu(x + self.body(x))
            return self.head(x.mean(dim=(2, 3)))

    net = Block()
    path = exported(tmp_path, net, (3, 8, 8), preserve=True)
    imported = assert_predicts_like_torch(net, path)
    assert [s["type"] for s in imported.architecture["layers"]].count("Add") == 1


@pytest.mark.skipif("Concatenate" not in LAYER_TYPES, reason="the engine has no Concatenate layer (graph networks)")
def test_concatenated_branches(tmp_path):
    class TwoBranches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 3, 1)
            self.b = nn.Conv2d(2, 4, 3, padding=1)
            self.fc = nn.Linear(7 * 6 * 6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
            return self.fc(torch.flatten(x, 1))

    net = TwoBranches()
    path = exported(tmp_path, net, (2, 6, 6))
    assert_predicts_like_torch(net, path)
