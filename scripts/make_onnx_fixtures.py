"""Write the small ONNX files the import tests read, exported by PyTorch itself.

    .venv/bin/python scripts/make_onnx_fixtures.py        # needs torch (the bench extra)

The tests compare the engine against ONNX Runtime on these files, so they need neither torch nor
this script. Each network is tiny (a few kilobytes) and seeded; batch-norm statistics are made
non-trivial by a few training-mode passes before export.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "engine" / "fixtures" / "onnx"


class SequentialBatchNorm(nn.Module):
    """Conv -> BatchNorm -> ReLU -> MaxPool, twice, Flatten, Linear -> BatchNorm1d -> ReLU, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 12), nn.BatchNorm1d(12), nn.ReLU(),
                                        nn.Dropout(0.2), nn.Linear(12, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Residual(nn.Module):
    """A two-block ResNet: stem, an identity block, a downsampling block, global pooling, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 12, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Inception(nn.Module):
    """Two branches joined along the channels (Concat), then Flatten and Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 1)
        self.b = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(10 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.relu(self.a(x)), torch.tanh(self.b(x))], dim=1)
        return torch.softmax(self.fc(torch.flatten(self.pool(x), 1)), dim=1)


class AveragePooling(nn.Module):
    """Padded average pooling both ways: counting the padded zeros (PyTorch's default) and not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.with_pad = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True)
        self.without_pad = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.without_pad(self.with_pad(torch.sigmoid(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


class ReshapeGemm(nn.Module):
    """x.view(x.size(0), -1) with a dynamic batch: shape arithmetic (Shape, Gather, Concat) then Reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 5, stride=2)
        self.fc = nn.Linear(3 * 6 * 6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.elu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


class MatMulAdd(nn.Module):
    """Dense layers written as x @ W + b (MatMul then Add), with LeakyReLU between."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.w1 = nn.Parameter(torch.randn(2 * 6 * 6, 7) * 0.2)
        self.b1 = nn.Parameter(torch.randn(7) * 0.1)
        self.w2 = nn.Parameter(torch.randn(7, 3) * 0.2)
        self.b2 = nn.Parameter(torch.randn(3) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(torch.tanh(self.conv(x)), 1)
        x = nn.functional.leaky_relu(x @ self.w1 + self.b1, 0.2)
        return x @ self.w2 + self.b2


# name -> (network, input shape (C, H, W), opset, whether batch-norm nodes are kept as such)
NETWORKS = {
    "sequential_batchnorm": (SequentialBatchNorm, (3, 12, 12), 11, True),
    "residual": (Residual, (3, 8, 8), 13, True),
    "inception": (Inception, (1, 8, 8), 17, False),
    "average_pooling": (AveragePooling, (2, 9, 9), 12, False),
    "reshape_gemm": (ReshapeGemm, (1, 15, 15), 11, False),
    "matmul_add": (MatMulAdd, (1, 8, 8), 18, False),
}


def export(name: str) -> Path:
    cls, shape, opset, keep_batch_norm = NETWORKS[name]
    torch.manual_seed(sum(map(ord, name)))
    net = cls()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, *shape) * 2 + 0.5)
    net.eval()
    path = OUT / f"{name}.onnx"
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batch_norm else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(net, torch.randn(2, *shape), str(path), dynamo=False, opset_version=opset, training=mode,
                      input_names=["image"], output_names=["scores"], dynamic_axes={"image": {0: "batch"}})
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in NETWORKS:
        path = export(name)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
