"""Training-step and inference speed of the NumPy engine against PyTorch on the CPU, in one process.

Both sides get the same network with the same weights, the same float32 batches and the same
number of threads. Rounds interleave (a few steps of ours, a few of PyTorch's, the order flipping
every round) so that a noisy shared machine slows both sides alike; the figure that counts is the
median of the per-round speed ratios (ours / PyTorch, above 1 means the engine is faster).

    python benchmarks/engine_vs_torch.py                 # every network, 20 rounds
    python benchmarks/engine_vs_torch.py --nets seed --rounds 30 --steps 5
    python benchmarks/engine_vs_torch.py --split-vs-threads   # the engine: 2 processes against 1

Without PyTorch (``pip install -e .[bench]`` installs it) only the engine's figures are printed.
--threads (default 2) sets both the engine's worker threads (each calls BLAS single-threaded)
and torch.set_num_threads. On a shared machine, run it when the load average is low: the
ratio is only meaningful when both sides get the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = "cnn-studio.architecture/1"


# -- the networks ---------------------------------------------------------------------------------
def seed_network(batch_norm: bool = False) -> dict[str, Any]:
    """The seed's sample CNN (28x28x1 -> 10); with batch_norm each conv is Conv -> BatchNorm -> ReLU."""
    layers: list[dict[str, Any]] = []
    for filters in (32, 64):
        if batch_norm:
            layers += [
                {"type": "Conv2D", "filters": filters, "kernel_size": 3},
                {"type": "BatchNorm"},
                {"type": "ReLU"},
            ]
        else:
            layers.append({"type": "Conv2D", "filters": filters, "kernel_size": 3, "activation": "relu"})
        layers.append({"type": "MaxPool2D", "pool_size": 2})
    layers += [
        {"type": "Flatten"},
        {"type": "Dense", "units": 128, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return {"format": FORMAT, "input": {"shape": [28, 28, 1]}, "layers": layers}


def vgg_network() -> dict[str, Any]:
    """32x32x3 VGG style: 3 blocks of two 3x3 'same' convs + 2x2 max pooling (32/64/128), then Dense."""
    layers: list[dict[str, Any]] = []
    for filters in (32, 64, 128):
        conv = {"type": "Conv2D", "filters": filters, "kernel_size": 3, "padding": "same", "activation": "relu"}
        layers += [dict(conv), dict(conv), {"type": "MaxPool2D", "pool_size": 2}]
    layers += [
        {"type": "Flatten"},
        {"type": "Dense", "units": 128, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return {"format": FORMAT, "input": {"shape": [32, 32, 3]}, "layers": layers}


def _conv(filters: int, kernel: int, stride: int = 1, padding: str = "same", activation: str | None = "relu",
          **extra: Any) -> dict[str, Any]:
    return {"type": "Conv2D", "filters": filters, "kernel_size": kernel, "stride": stride, "padding": padding,
            "activation": activation, **extra}


def _classifier(units: int = 10, hidden: int | None = None) -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = [{"type": "Flatten"}]
    if hidden:
        layers.append({"type": "Dense", "units": hidden, "activation": "relu"})
    return layers + [{"type": "Dense", "units": units, "activation": "softmax"}]


def _network(shape: list[int], layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": FORMAT, "input": {"shape": shape}, "layers": layers}


def template(name: str) -> dict[str, Any]:
    """A template the studio offers (assets/templates/<name>.json)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "templates", f"{name}.json")
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def resnet8_network() -> dict[str, Any]:
    """The ResNet-8 template (28x28x1, residual blocks with batch norm, 1x1 stride-2 projections)."""
    return template("resnet8")


def drawn_network() -> dict[str, Any]:
    """What a user might draw without copying a paper, 32x32x3: odd widths, 'valid' padding, a 5x5 stride-2
    stem, overlapping 3x3 / 2 max pooling, leaky ReLU and tanh, average pooling, dropout."""
    return _network([32, 32, 3], [
        _conv(20, 5, stride=2, padding="valid", activation="leaky_relu"),
        _conv(40, 3, padding="valid", activation="relu"),
        {"type": "MaxPool2D", "pool_size": 3, "stride": 2},
        _conv(72, 3, padding="same", activation="tanh"),
        {"type": "AvgPool2D", "pool_size": 2},
        {"type": "Flatten"}, {"type": "Dropout", "rate": 0.3},
        {"type": "Dense", "units": 100, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ])


def k1_network() -> dict[str, Any]:
    """Network-in-network style, 32x32x3: 3x3 convolutions each followed by a 1x1 one, global pooling."""
    pool = {"type": "MaxPool2D", "pool_size": 2}
    return _network([32, 32, 3], [
        _conv(32, 3), _conv(32, 1), pool,
        _conv(64, 3), _conv(64, 1), pool,
        _conv(128, 3), _conv(128, 1),
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 10, "activation": "softmax"},
    ])


def k5_network() -> dict[str, Any]:
    """The classic CIFAR network with 5x5 'same' convolutions, 32x32x3."""
    pool = {"type": "MaxPool2D", "pool_size": 2}
    return _network([32, 32, 3], [_conv(32, 5), pool, _conv(64, 5), pool, *_classifier(hidden=128)])


def k7_network() -> dict[str, Any]:
    """7x7 kernels on 28x28x1 Fashion-MNIST: a 7x7 'same' stem, pooling, a 7x7 'valid' convolution."""
    pool = {"type": "MaxPool2D", "pool_size": 2}
    return _network([28, 28, 1], [_conv(32, 7), pool, _conv(64, 7, padding="valid"), pool,
                                  *_classifier(hidden=128)])


def s2same_network() -> dict[str, Any]:
    """All-convolutional, 32x32x3: stride-2 'same' convolutions instead of pooling, global pooling."""
    return _network([32, 32, 3], [
        _conv(32, 3), _conv(32, 3, stride=2), _conv(64, 3), _conv(64, 3, stride=2), _conv(128, 3),
        _conv(128, 3, stride=2),
        {"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 10, "activation": "softmax"},
    ])


def wide256_network() -> dict[str, Any]:
    """Widths up to 256, 32x32x3: 64, 128, 256 and 256 filters with batch norm, then global pooling."""
    layers: list[dict[str, Any]] = []
    for filters in (64, 128, 256, 256):
        layers += [_conv(filters, 3, activation=None, use_bias=False), {"type": "BatchNorm"}, {"type": "ReLU"},
                   {"type": "MaxPool2D", "pool_size": 2}]
    layers += [{"type": "GlobalAvgPool2D"}, {"type": "Dense", "units": 10, "activation": "softmax"}]
    return _network([32, 32, 3], layers)


def in64_network() -> dict[str, Any]:
    """64x64x3 input (e.g. a small photo dataset): four conv + pooling blocks, 16 to 64 filters."""
    pool = {"type": "MaxPool2D", "pool_size": 2}
    return _network([64, 64, 3], [_conv(16, 3), pool, _conv(32, 3), pool, _conv(64, 3), pool, _conv(64, 3), pool,
                                  *_classifier(hidden=128)])


def drawn2_network() -> dict[str, Any]:
    """Another, 64x64x3: a 7x7 stride-2 stem with batch norm and ELU, padded 3x3 / 2 max and average
    pooling, sigmoid, dropout on feature maps, a 1x1 convolution, batch norm after a Dense layer."""
    return _network([64, 64, 3], [
        _conv(24, 7, stride=2, activation=None, use_bias=False), {"type": "BatchNorm"}, {"type": "ELU"},
        {"type": "MaxPool2D", "pool_size": 3, "stride": 2, "padding": "same"},
        _conv(48, 3, activation="sigmoid"),
        {"type": "AvgPool2D", "pool_size": 3, "stride": 2, "padding": 1},
        {"type": "Dropout", "rate": 0.2},
        _conv(64, 1),
        {"type": "GlobalAvgPool2D"},
        {"type": "Dense", "units": 64, "activation": None}, {"type": "BatchNorm"}, {"type": "ReLU"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ])


NETWORKS: dict[str, Callable[[], dict[str, Any]]] = {
    "seed": seed_network,
    "seed+bn": lambda: seed_network(batch_norm=True),
    "vgg32": vgg_network,
    "resnet8": resnet8_network,
    "k1": k1_network,
    "k5": k5_network,
    "k7": k7_network,
    "s2same": s2same_network,
    "wide256": wide256_network,
    "in64": in64_network,
    "lenet5": lambda: template("lenet5"),
    "inception": lambda: template("inception_lite"),
    "drawn": drawn_network,
    "drawn2": drawn2_network,
    "mlp": lambda: template("mlp_baseline"),
}


# -- threads and environment ----------------------------------------------------------------------
def processes_option(text: str) -> int | str:
    """--processes: 1, 2 or auto (engine.training.TrainConfig.processes)."""
    if text not in ("1", "2", "auto"):
        raise argparse.ArgumentTypeError(f"choose 1, 2 or auto, not {text!r}")
    return text if text == "auto" else int(text)


def set_engine_threads(threads: int) -> str:
    """Give the engine ``threads`` worker threads; returns a line describing them and numpy's BLAS.

    The engine splits each kernel's batch across its threads, each calling BLAS single-threaded
    (the engine sets numpy's BLAS to one thread), so both sides use ``threads`` cores.
    """
    from engine import parallel

    parallel.set_num_threads(threads)
    line = f"engine: {parallel.get_num_threads()} worker threads"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return line + " (threadpoolctl missing: numpy's BLAS threads as configured)"
    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            line += (f", numpy BLAS {info.get('internal_api')} {info.get('version')} kernel "
                     f"{info.get('architecture')} at {info.get('num_threads')} thread per call")
    return line


def import_torch(threads: int) -> Any:
    """PyTorch set to ``threads`` threads, or None (with a line saying so) when it is not installed."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: engine figures only (pip install -e '.[bench]').")
        return None
    torch.set_num_threads(threads)
    return torch


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "load average unknown"


def environment_warnings() -> list[str]:
    found = [name for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ]
    if not found:
        return []
    return [f"warning: {', '.join(found)} set; it pins an old OpenBLAS kernel and slows numpy. Run with "
            f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...` for representative figures."]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    Linux keeps ru_maxrss across exec (a child started by a large parent inherits its peak), so
    VmHWM from /proc is preferred; ru_maxrss is KiB on Linux and bytes on macOS.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# -- the engine side --------------------------------------------------------------------------------
class EngineRunner:
    """One training step exactly as engine.training.Trainer.train_batch does it, and inference."""

    def __init__(self, architecture: dict[str, Any], lr: float, momentum: float, processes: Any = "auto") -> None:
        from engine.model import Model
        from engine.optimizers import SGD

        self.model = Model.from_architecture(architecture, seed=0)
        self.optimizer = SGD(lr=lr, momentum=momentum)
        self.processes = processes

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        from engine.training import train_step

        return train_step(self.model, self.optimizer, x, y, processes=self.processes)[0]

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.model.forward(x, training=False)


# -- the PyTorch side -------------------------------------------------------------------------------
def torch_network(architecture: dict[str, Any], weights: dict[str, np.ndarray]) -> Any:
    """The same network as a torch.nn.Module in NCHW (a chain or a graph), holding a copy of the
    engine's weights.

    Only the layer types the benchmark networks use are translated. 'same' padding that puts the
    odd pixel after (a stride-2 convolution on an even size) is an explicit F.pad, as the engine's
    PyTorch export writes it; symmetric padding is the convolution's own. The engine flattens
    (H, W, C) and PyTorch (C, H, W), so the rows of a Dense kernel after Flatten are permuted.
    """
    import torch
    from torch import nn
    from torch.nn import functional

    from engine.architecture import INPUT_ID, analyze
    from engine.kernels.im2col import conv_pads

    analysis = analyze(architecture)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    class Pad(nn.Module):
        def __init__(self, pads: tuple[int, int, int, int], value: float = 0.0) -> None:
            super().__init__()
            top, bottom, left, right = pads
            self.pads, self.value = (left, right, top, bottom), value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return functional.pad(x, self.pads, value=self.value)

    class Merge(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            if self.kind == "Add":
                out = xs[0] + xs[1]
                for x in xs[2:]:
                    out = out + x
                return out
            return torch.cat(xs, dim=1)

    class Graph(nn.Module):
        def __init__(self, steps: list[tuple[str, tuple[str, ...], nn.Module]]) -> None:
            super().__init__()
            self.order = [(layer_id, inputs) for layer_id, inputs, _ in steps]
            self.steps = nn.ModuleList(module for _, _, module in steps)
            self.chain = all(inputs == (previous,) for (previous, _), (_, inputs)
                             in zip([(INPUT_ID, ())] + self.order, self.order))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.chain:
                for step in self.steps:
                    x = step(x)
                return x
            values = {INPUT_ID: x}
            for (layer_id, inputs), step in zip(self.order, self.steps):
                values[layer_id] = step(*(values[i] for i in inputs))
            return values[self.order[-1][0]]

    # Activation layers, and a layer's "activation" setting through the layer type it stands for.
    ACTIVATION_MODULES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
        "ReLU": lambda cfg: nn.ReLU(),
        "LeakyReLU": lambda cfg: nn.LeakyReLU(cfg.get("alpha", 0.01)),
        "ELU": lambda cfg: nn.ELU(cfg.get("alpha", 1.0)),
        "Sigmoid": lambda cfg: nn.Sigmoid(),
        "Tanh": lambda cfg: nn.Tanh(),
    }
    ACTIVATION_TYPES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "sigmoid": "Sigmoid",
                        "tanh": "Tanh"}
    flattened: dict[str, tuple[int, ...]] = {}  # layer id -> the (H, W, C) shape its Flatten unrolled
    steps: list[tuple[str, tuple[str, ...], nn.Module]] = []
    for info in analysis.layers:
        cfg, name = info.config, info.name
        modules: list[nn.Module] = []
        if info.type == "Conv2D":
            h, w, c = info.input_shape
            k, stride = cfg["kernel_size"], cfg["stride"]
            top, bottom, left, right = conv_pads(h, w, k, k, stride, cfg["padding"])
            if (top, left) != (bottom, right):
                modules.append(Pad((top, bottom, left, right)))
                top = left = 0
            conv = nn.Conv2d(c, cfg["filters"], k, stride=stride, padding=(top, left), bias=cfg["use_bias"])
            with torch.no_grad():
                conv.weight.copy_(tensor(weights[f"{name}.kernel"].transpose(3, 2, 0, 1)))
                if cfg["use_bias"]:
                    conv.bias.copy_(tensor(weights[f"{name}.bias"]))
            modules.append(conv)
        elif info.type == "Dense":
            kernel = weights[f"{name}.kernel"]
            if info.inputs[0] in flattened:
                h, w, c = flattened[info.inputs[0]]
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            dense = nn.Linear(kernel.shape[0], kernel.shape[1], bias=cfg["use_bias"])
            with torch.no_grad():
                dense.weight.copy_(tensor(kernel.T))
                if cfg["use_bias"]:
                    dense.bias.copy_(tensor(weights[f"{name}.bias"]))
            modules.append(dense)
        elif info.type in ("MaxPool2D", "AvgPool2D"):
            h, w, _ = info.input_shape
            k, stride = cfg["pool_size"], cfg["stride"] or cfg["pool_size"]
            top, bottom, left, right = conv_pads(h, w, k, k, stride, cfg["padding"])
            if info.type == "MaxPool2D":
                if (top, left) != (bottom, right):
                    modules.append(Pad((top, bottom, left, right), float("-inf")))
                    top = left = 0
                modules.append(nn.MaxPool2d(k, stride=stride, padding=(top, left)))
            else:
                include = cfg.get("count_include_pad", True)
                if (top, left) != (bottom, right):
                    if not include:
                        raise ValueError("the benchmark translates uneven average pooling only with count_include_pad")
                    modules.append(Pad((top, bottom, left, right)))
                    top = left = 0
                modules.append(nn.AvgPool2d(k, stride=stride, padding=(top, left), count_include_pad=include))
        elif info.type == "GlobalAvgPool2D":
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif info.type == "BatchNorm":
            # Keras keeps `momentum` of the old running value, PyTorch moves by `momentum`.
            kind = nn.BatchNorm2d if len(info.input_shape) == 3 else nn.BatchNorm1d
            bn = kind(info.input_shape[-1], eps=cfg["epsilon"], momentum=1 - cfg["momentum"])
            with torch.no_grad():
                bn.weight.copy_(tensor(weights[f"{name}.gamma"]))
                bn.bias.copy_(tensor(weights[f"{name}.beta"]))
                bn.running_mean.copy_(tensor(weights[f"{name}.moving_mean"]))
                bn.running_var.copy_(tensor(weights[f"{name}.moving_variance"]))
            modules.append(bn)
        elif info.type in ACTIVATION_MODULES:
            modules.append(ACTIVATION_MODULES[info.type](cfg))
        elif info.type == "Flatten":
            if len(info.input_shape) == 3:
                flattened[str(info.id)] = tuple(info.input_shape)
            modules.append(nn.Flatten())
        elif info.type in ("Add", "Concatenate"):
            modules.append(Merge(info.type))
        elif info.type == "Dropout":
            if info.inputs[0] in flattened:  # the Dense after it still needs Flatten's order
                flattened[str(info.id)] = flattened[info.inputs[0]]
            modules.append(nn.Dropout(cfg["rate"]))
        else:
            raise ValueError(f"the benchmark does not translate {info.type} layers to PyTorch")
        activation = cfg.get("activation")
        # A final softmax stays out: cross_entropy takes logits, as the engine's fused loss does.
        if activation not in (None, "softmax"):
            modules.append(ACTIVATION_MODULES[ACTIVATION_TYPES[activation]]({}))
        module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
        steps.append((str(info.id), tuple(info.inputs), module))
    return Graph(steps)


class TorchRunner:
    def __init__(self, architecture: dict[str, Any], weights: dict[str, np.ndarray], lr: float,
                 momentum: float) -> None:
        import torch

        self.torch = torch
        self.net = torch_network(architecture, weights)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=momentum)
        self.loss = torch.nn.CrossEntropyLoss()

    def train_step(self, x: Any, y: Any) -> float:
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.net(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def infer(self, x: Any) -> Any:
        self.net.eval()
        with self.torch.inference_mode():
            return self.torch.softmax(self.net(x), dim=1)


# -- timing ---------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    label: str
    batch: int
    ours: list[float]  # images per second, one per round
    theirs: list[float]

    def line(self) -> str:
        ours = statistics.median(self.ours)
        text = f"{self.label:<28} ours {ours:9.0f} img/s"
        if self.theirs:
            ratios = [a / b for a, b in zip(self.ours, self.theirs)]
            text += (f"   torch {statistics.median(self.theirs):9.0f} img/s   ratio ours/torch median "
                     f"{statistics.median(ratios):5.2f} (rounds {min(ratios):.2f}..{max(ratios):.2f})")
        return text


def images_per_second(step: Callable[[int], Any], steps: int, batch: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def compare(label: str, batch: int, ours: Callable[[int], Any], theirs: Callable[[int], Any] | None,
            rounds: int, steps: int, pause: float) -> Comparison:
    """Interleaved rounds; warm-up steps first so allocations and caches settle on both sides.

    Both thread pools busy-wait for a while after their last task (OpenBLAS for up to ~0.1 s,
    OpenMP briefly), which would steal cores from the other side: each side's turn starts after
    a pause long enough for the other's threads to go to sleep.
    """
    for i in range(2):
        ours(i)
        if theirs is not None:
            theirs(i)
    result = Comparison(label, batch, [], [])
    for r in range(rounds):
        order = [("ours", ours), ("theirs", theirs)] if r % 2 == 0 else [("theirs", theirs), ("ours", ours)]
        for side, fn in order:
            if fn is not None:
                time.sleep(pause)
                getattr(result, side).append(images_per_second(fn, steps, batch))
    return result


def make_batches(shape: tuple[int, ...], batch: int, count: int, classes: int, seed: int = 0, real: bool = True):
    """``count`` float32 batches: Fashion-MNIST images and labels for 28x28x1 networks (the full set
    when installed, else the bundled subset) unless ``real`` is False, else uniform noise.

    Real images with their labels make the comparison a training run's: PyTorch's speed depends
    on the values (denormal floats slow it down), the engine's hardly does.
    """
    rng = np.random.default_rng(seed)
    if real and tuple(shape) == (28, 28, 1):
        from engine.data import known_datasets, load_dataset

        available = {info.name for info in known_datasets() if info.available}
        dataset = load_dataset("fashion-mnist" if "fashion-mnist" in available else "fashion-mnist-mini")
        rows = rng.choice(len(dataset.y_train), size=(count, batch), replace=False)
        return ([dataset.normalized("train", r) for r in rows], [dataset.y_train[r] for r in rows])
    xs = [rng.random((batch, *shape), dtype=np.float32) for _ in range(count)]
    ys = [rng.integers(0, classes, batch) for _ in range(count)]
    return xs, ys


def check_agreement(engine: EngineRunner, torch_side: TorchRunner, x: np.ndarray) -> float:
    """Largest difference between both sides' class probabilities on one batch."""
    import torch

    ours = engine.infer(x)
    theirs = torch_side.infer(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    return float(np.abs(ours - theirs).max())


def bench_network(name: str, args: argparse.Namespace, have_torch: bool) -> list[Comparison]:
    architecture = NETWORKS[name]()
    engine = EngineRunner(architecture, args.lr, args.momentum, args.processes)
    shape = tuple(engine.model.input_shape)
    classes = engine.model.output_shape[-1]
    # Many distinct batches: a few repeated ones are soon fitted, and the tiny gradients that
    # follow are denormal floats, which slow PyTorch (not the engine) severalfold.
    xs, ys = make_batches(shape, args.batch, 64, classes, real=not args.noise)
    xs_inf, _ = make_batches(shape, args.inference_batch, 2, classes, seed=1, real=not args.noise)
    torch_side = None
    if have_torch:
        import torch

        torch_side = TorchRunner(architecture, engine.model.get_weights(), args.lr, args.momentum)
        difference = check_agreement(engine, torch_side, xs_inf[0])
        print(f"{name}: {engine.model.analysis.trainable_params:,} parameters; same weights, largest "
              f"probability difference engine vs torch {difference:.1e}")
        txs = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in xs]
        tys = [torch.from_numpy(y) for y in ys]
        txs_inf = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in xs_inf]
    else:
        print(f"{name}: {engine.model.analysis.trainable_params:,} parameters")

    def ours_train(i: int) -> float:
        return engine.train_step(xs[i % len(xs)], ys[i % len(ys)])

    def ours_infer(i: int) -> np.ndarray:
        return engine.infer(xs_inf[i % len(xs_inf)])

    theirs_train = theirs_infer = None
    if torch_side is not None:
        def theirs_train(i: int) -> float:
            return torch_side.train_step(txs[i % len(txs)], tys[i % len(tys)])

        def theirs_infer(i: int) -> Any:
            return torch_side.infer(txs_inf[i % len(txs_inf)])

    results = [
        compare(f"{name} train b{args.batch}", args.batch, ours_train, theirs_train, args.rounds, args.steps,
                args.pause),
        compare(f"{name} infer b{args.inference_batch}", args.inference_batch, ours_infer, theirs_infer,
                args.rounds, args.steps, args.pause),
    ]
    for result in results:
        print("  " + result.line(), flush=True)
    return results


def bench_processes(name: str, args: argparse.Namespace) -> None:
    """The engine's training step on two processes against one process on ``--threads`` threads,
    paired rounds like the PyTorch comparison: does splitting the step pay for this network?"""
    split = EngineRunner(NETWORKS[name](), args.lr, args.momentum, processes=2)
    alone = EngineRunner(NETWORKS[name](), args.lr, args.momentum, processes=1)
    shape, classes = tuple(split.model.input_shape), split.model.output_shape[-1]
    xs, ys = make_batches(shape, args.batch, 64, classes, real=not args.noise)
    result = compare(f"{name} train b{args.batch}", args.batch,
                     lambda i: split.train_step(xs[i % len(xs)], ys[i % len(ys)]),
                     lambda i: alone.train_step(xs[i % len(xs)], ys[i % len(ys)]), args.rounds, args.steps, args.pause)
    ratios = [a / b for a, b in zip(result.ours, result.theirs)]
    print(f"  {result.label:<28} 2 processes {statistics.median(result.ours):7.0f} img/s   1 process "
          f"{statistics.median(result.theirs):7.0f} img/s   ratio 2/1 median {statistics.median(ratios):5.2f} "
          f"(rounds {min(ratios):.2f}..{max(ratios):.2f})", flush=True)


def engine_memory(args: argparse.Namespace) -> None:
    """Run in a child process without PyTorch: peak RSS of the engine alone over every network."""
    for name in args.nets:
        engine = EngineRunner(NETWORKS[name](), args.lr, args.momentum, args.processes)
        shape, classes = tuple(engine.model.input_shape), engine.model.output_shape[-1]
        xs, ys = make_batches(shape, args.batch, 2, classes)
        xs_inf, _ = make_batches(shape, args.inference_batch, 1, classes)
        for i in range(3):
            engine.train_step(xs[i % 2], ys[i % 2])
            engine.infer(xs_inf[0])
    from engine import replica

    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "replica_rss_mb": replica.peak_rss_mb()}))


def measure_engine_memory(args: argparse.Namespace) -> dict[str, float | None] | None:
    """Peak RSS in MB of the engine's process ("peak_rss_mb") and of its replica process, if one ran."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", "--threads", str(args.threads),
               "--batch", str(args.batch), "--inference-batch", str(args.inference_batch), "--nets", *args.nets,
               "--processes", str(args.processes)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def keep_freed_memory() -> None:
    """Have glibc keep the memory this process frees, as the engine's replica process does
    (engine/replica.py): neither side's steps then fault fresh pages in. PyTorch gains more from it
    than the engine (benchmarks/README.md), so the default measures both sides as a user runs them."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        print("--keep-freed-memory: not glibc on Linux, ignored")
        return
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    if libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30):
        print("glibc keeps the memory this process frees (--keep-freed-memory)")
    else:
        print("--keep-freed-memory: mallopt refused, ignored")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (at least 15 for the report)")
    parser.add_argument("--steps", type=int, default=4, help="steps per side per round")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--inference-batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="threads for both the engine and PyTorch")
    parser.add_argument("--processes", type=processes_option, default="auto",
                        help="processes per engine training step: 1, 2 or auto (default, as the CLI and studio)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--pause", type=float, default=0.01,
                        help="seconds of rest before each side's turn, so the other side's threads stop spinning")
    parser.add_argument("--noise", action="store_true", help="uniform noise instead of Fashion-MNIST images")
    parser.add_argument("--no-torch", action="store_true", help="measure the engine alone")
    parser.add_argument("--split-vs-threads", action="store_true",
                        help="instead of PyTorch: the engine on 2 processes against 1 process on --threads")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc keeps freed memory in this process (both sides' steps then fault no fresh pages)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.keep_freed_memory:
        keep_freed_memory()
    engine_threads = set_engine_threads(args.threads)
    if args.memory_child:
        engine_memory(args)
        return 0
    if args.split_vs_threads:
        print(f"{engine_threads}; {load_average()}")
        for name in args.nets:
            bench_processes(name, args)
        print(f"finished, {load_average()}")
        return 0
    torch = None if args.no_torch else import_torch(args.threads)
    have_torch = torch is not None
    for warning in environment_warnings():
        print(warning)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, {load_average()}")
    print(engine_threads)
    if have_torch:
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, oneDNN "
              f"{'on' if torch.backends.mkldnn.is_available() else 'off'}")
    print(f"float32; SGD lr {args.lr} momentum {args.momentum}; {args.rounds} interleaved rounds of {args.steps} "
          f"steps per side, {args.pause} s rest before each\n")
    for name in args.nets:
        bench_network(name, args, have_torch)
    memory = measure_engine_memory(args)
    if memory is not None:
        other = memory.get("replica_rss_mb")
        print(f"\nengine peak RSS (separate process without torch, all networks above): {memory['peak_rss_mb']:.0f} MB"
              + (f" + {other:.0f} MB its replica process = {memory['peak_rss_mb'] + other:.0f} MB" if other else ""))
    print(f"finished, {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
