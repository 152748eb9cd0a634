"""How each layer type is exported: its ONNX nodes, its PyTorch code and its NumPy predictor function.

One ``LayerRules`` per engine layer type, registered in ``RULES``; a new layer type adds its three
rules here (and its layer class in engine/layers), nothing else. The exporters walk the layers of
a plan (engine/export/plan.py) in document order and ask each layer's rules for its part:

- ``onnx(g, step, inputs)``: add the layer's nodes to the ONNX graph builder ``g`` reading the
  tensors named ``inputs`` and return the name of its output. Feature maps travel in ONNX's
  (N, C, H, W) layout, vectors as (N, F).
- ``torch(w, step, inputs, out)``: write the layer's modules (``w.module``) and forward lines
  (``w.line``) for PyTorch, reading the variables ``inputs`` and assigning ``out``. Feature maps
  are (N, C, H, W) tensors there too.
- ``predict(xs, cfg, t)``: the standalone NumPy inference function of ``predict.py``, given the
  input arrays (N, H, W, C or N, F), the layer's settings and its tensors. Its source is copied into
  the generated file, so it may use only NumPy and the kernels of predictor_template.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.export.formats import ExportError
from engine.export.plan import LayerStep
from engine.export.predictor_template import ACTIVATION_TYPES, activate, batch_norm, conv2d, dense, pool2d

if TYPE_CHECKING:
    from engine.export.onnx_export import OnnxGraph
    from engine.export.torch_codegen import TorchWriter


@dataclass(frozen=True)
class LayerRules:
    onnx: Callable[[OnnxGraph, LayerStep, list[str]], str]
    torch: Callable[[TorchWriter, LayerStep, list[str], str], None]
    predict: Callable[[list[np.ndarray], dict, dict], np.ndarray]


RULES: dict[str, LayerRules] = {}


def rules_for(type_name: str) -> LayerRules:
    if type_name not in RULES:
        raise ExportError(f"{type_name} layers cannot be exported yet")
    return RULES[type_name]


def _onnx_pads(pads: tuple[int, int, int, int]) -> list[int]:
    top, bottom, left, right = pads
    return [top, left, bottom, right]  # ONNX: all begins, then all ends


def _symmetric(pads: tuple[int, int, int, int]) -> bool:
    return pads[0] == pads[1] and pads[2] == pads[3]


def _torch_padding(pads: tuple[int, int, int, int]) -> str:
    """The built-in padding argument for symmetric pads (asymmetric ones get an explicit F.pad)."""
    if not _symmetric(pads):
        return "0"
    return str(pads[0]) if pads[0] == pads[2] else f"({pads[0]}, {pads[2]})"


def _torch_pad(pads: tuple[int, int, int, int], x: str, value: str = "") -> str:
    top, bottom, left, right = pads
    fill = f", value={value}" if value else ""
    return f"F.pad({x}, ({left}, {right}, {top}, {bottom}){fill})"


# -- Conv2D ------------------------------------------------------------------------------------------
def conv2d_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    t, name = step.tensors, step.name
    args = [inputs[0], g.initializer(f"{name}.weight", t["kernel"].transpose(3, 2, 0, 1))]  # OIHW
    if "bias" in t:
        args.append(g.initializer(f"{name}.bias", t["bias"]))
    k = step.config["kernel_size"]
    out = g.node("Conv", name, args, kernel_shape=[k, k], strides=[step.stride] * 2, pads=_onnx_pads(step.pads))
    return g.activation(name, out, step.activation, rank=3)


def conv2d_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    cfg, pads = step.config, step.pads
    attr = w.module(step, f"nn.Conv2d({step.input_shape[2]}, {cfg['filters']}, {cfg['kernel_size']}, "
                          f"stride={step.stride}, padding={_torch_padding(pads)}, bias={cfg['use_bias']})")
    x = inputs[0]
    if not _symmetric(pads):
        w.line(f"{out} = {_torch_pad(pads, x)}  # the engine's 'same': odd pixel after")
        x = out
    w.line(f"{out} = self.{attr}({x})")
    w.map(step, attr, {"kernel": "weight", "bias": "bias"}, "conv")
    w.activation(step, out, step.activation)


def predict_conv2d(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return activate(conv2d(xs[0], t, cfg), cfg.get("activation"))


RULES["Conv2D"] = LayerRules(conv2d_onnx, conv2d_torch, predict_conv2d)


# -- MaxPool2D and AvgPool2D -------------------------------------------------------------------------
def pool_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    k = step.config["pool_size"]
    attributes: dict[str, Any] = dict(kernel_shape=[k, k], strides=[step.stride] * 2, pads=_onnx_pads(step.pads),
                                      ceil_mode=0)
    if step.type == "MaxPool2D":
        return g.node("MaxPool", step.name, inputs, **attributes)
    # The engine divides by the whole window, padded zeros included, unless count_include_pad is off.
    include = int(step.config.get("count_include_pad", True))
    return g.node("AveragePool", step.name, inputs, count_include_pad=include, **attributes)


def pool_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    k, s, pads, x = step.config["pool_size"], step.stride, step.pads, inputs[0]
    if step.type == "MaxPool2D":
        attr = w.module(step, f"nn.MaxPool2d({k}, stride={s}, padding={_torch_padding(pads)})")
        if not _symmetric(pads):
            padded = _torch_pad(pads, x, 'float("-inf")')
            w.line(f"{out} = {padded}  # the engine's 'same': odd pixel after")
            x = out
        w.line(f"{out} = self.{attr}({x})")
        return
    if step.config.get("count_include_pad", True) or not any(pads):
        attr = w.module(step, f"nn.AvgPool2d({k}, stride={s}, padding={_torch_padding(pads)}, "
                              "count_include_pad=True)")
        if not _symmetric(pads):
            w.line(f"{out} = {_torch_pad(pads, x)}  # the engine's 'same': odd pixel after")
            x = out
        w.line(f"{out} = self.{attr}({x})")
        return
    # Each window divided by the pixels it really covers: window sums over window counts.
    ones = f"torch.ones_like({x}[:, :1])"
    w.line(f"{out} = F.avg_pool2d({_torch_pad(pads, x)}, {k}, {s}) / F.avg_pool2d({_torch_pad(pads, ones)}, {k}, "
           f"{s})  # divided by the real pixels of each window")


def predict_max_pool(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return pool2d(xs[0], cfg, "max")


def predict_avg_pool(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return pool2d(xs[0], cfg, "avg")


RULES["MaxPool2D"] = LayerRules(pool_onnx, pool_torch, predict_max_pool)
RULES["AvgPool2D"] = LayerRules(pool_onnx, pool_torch, predict_avg_pool)


# -- GlobalAvgPool2D ---------------------------------------------------------------------------------
def global_pool_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    pooled = g.node("GlobalAveragePool", step.name, inputs)
    return g.node("Flatten", step.name, [pooled], axis=1)


def global_pool_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    w.line(f"{out} = {inputs[0]}.mean(dim=(2, 3))")


def predict_global_pool(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return xs[0].mean(axis=(1, 2), dtype=xs[0].dtype)


RULES["GlobalAvgPool2D"] = LayerRules(global_pool_onnx, global_pool_torch, predict_global_pool)


# -- Flatten -----------------------------------------------------------------------------------------
def flatten_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    x = g.to_nhwc(step.name, inputs[0]) if step.spatial else inputs[0]  # the engine flattens in (H, W, C) order
    return g.node("Flatten", step.name, [x], axis=1)


def flatten_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    if step.spatial:
        w.line(f"{out} = {inputs[0]}.permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order, as the engine flattens")
    else:
        w.line(f"{out} = {inputs[0]}.flatten(1)")


def predict_flatten(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return xs[0].reshape(xs[0].shape[0], -1)


RULES["Flatten"] = LayerRules(flatten_onnx, flatten_torch, predict_flatten)


# -- Dense -------------------------------------------------------------------------------------------
def dense_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    t, name = step.tensors, step.name
    args = [inputs[0], g.initializer(f"{name}.weight", t["kernel"].T)]  # (units, in) for transB
    if "bias" in t:
        args.append(g.initializer(f"{name}.bias", t["bias"]))
    return g.activation(name, g.node("Gemm", name, args, transB=1), step.activation, rank=1)


def dense_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    cfg = step.config
    attr = w.module(step, f"nn.Linear({step.input_shape[0]}, {cfg['units']}, bias={cfg['use_bias']})")
    w.line(f"{out} = self.{attr}({inputs[0]})")
    w.map(step, attr, {"kernel": "weight", "bias": "bias"}, "dense")
    w.activation(step, out, step.activation)


def predict_dense(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return activate(dense(xs[0], t), cfg.get("activation"))


RULES["Dense"] = LayerRules(dense_onnx, dense_torch, predict_dense)


# -- BatchNorm ---------------------------------------------------------------------------------------
def batch_norm_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    t, name = step.tensors, step.name
    args = inputs + [g.initializer(f"{name}.{key}", t[key]) for key in ("gamma", "beta", "moving_mean",
                                                                         "moving_variance")]
    return g.node("BatchNormalization", name, args, epsilon=float(step.config["epsilon"]))


def batch_norm_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    cfg = step.config
    kind = "BatchNorm2d" if step.spatial else "BatchNorm1d"
    attr = w.module(step, f"nn.{kind}({step.input_shape[-1]}, eps={cfg['epsilon']!r}, "
                          f"momentum={round(1.0 - cfg['momentum'], 12)!r})")
    w.line(f"{out} = self.{attr}({inputs[0]})")
    w.map(step, attr, {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                       "moving_variance": "running_var"})


def predict_batch_norm(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return batch_norm(xs[0], t, cfg)


RULES["BatchNorm"] = LayerRules(batch_norm_onnx, batch_norm_torch, predict_batch_norm)


# -- Dropout (nothing at inference) ------------------------------------------------------------------
def dropout_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    return g.node("Identity", step.name, inputs)


def dropout_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    attr = w.module(step, f"nn.Dropout(p={step.config['rate']!r})")
    w.line(f"{out} = self.{attr}({inputs[0]})")


def predict_dropout(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return xs[0]


RULES["Dropout"] = LayerRules(dropout_onnx, dropout_torch, predict_dropout)


# -- activation layers -------------------------------------------------------------------------------
ACTIVATION_KINDS = ACTIVATION_TYPES  # layer type -> the activation's name, as Conv2D and Dense spell it


def activation_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    return g.activation(step.name, inputs[0], ACTIVATION_KINDS[step.type], step.config.get("alpha"),
                        rank=len(step.input_shape), alone=True)


def activation_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    w.activation(step, out, ACTIVATION_KINDS[step.type], step.config.get("alpha"), source=inputs[0])


def predict_activation(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return activate(xs[0], ACTIVATION_TYPES[cfg["type"]], cfg.get("alpha"))


for _type in ACTIVATION_KINDS:
    RULES[_type] = LayerRules(activation_onnx, activation_torch, predict_activation)


# -- Add ---------------------------------------------------------------------------------------------
def add_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    total = inputs[0]
    for other in inputs[1:]:
        total = g.node("Add", step.name, [total, other])
    return total


def add_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    w.line(f"{out} = {' + '.join(inputs)}")


def predict_add(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


RULES["Add"] = LayerRules(add_onnx, add_torch, predict_add)


# -- Concatenate (channels of feature maps, features of vectors: axis 1 in ONNX and PyTorch) -----------
def concatenate_onnx(g: OnnxGraph, step: LayerStep, inputs: list[str]) -> str:
    return g.node("Concat", step.name, inputs, axis=1)


def concatenate_torch(w: TorchWriter, step: LayerStep, inputs: list[str], out: str) -> None:
    w.line(f"{out} = torch.cat([{', '.join(inputs)}], dim=1)")


def predict_concatenate(xs: list[np.ndarray], cfg: dict, t: dict) -> np.ndarray:
    return np.concatenate(xs, axis=-1)


RULES["Concatenate"] = LayerRules(concatenate_onnx, concatenate_torch, predict_concatenate)
