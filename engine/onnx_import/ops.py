"""One function per supported ONNX operator: each reads its node's inputs and adds an engine layer,
joins a neighbour (a bias, an activation), or only changes the view of its input. A node the engine
cannot express raises Unsupported with the reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.kernels.im2col import conv_pads
from engine.layers import LAYER_TYPES
from engine.onnx_import.values import Unsupported, Value, chw_order, reorder, same_order
from engine.shapes import output_size

if TYPE_CHECKING:
    from engine.onnx_import.convert import Converter

_FLOAT = 1  # TensorProto.FLOAT
# The engine activations a Conv2D or Dense can carry itself.
_FUSABLE_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def missing_layer(node: Any, data_inputs: list[str]) -> str | None:
    """The engine layer type a node joining several data tensors needs, when the engine lacks it."""
    needed = {"Add": "Add", "Sum": "Add", "Concat": "Concatenate"}.get(node.op_type)
    if needed is None or len(data_inputs) < 2 or needed in LAYER_TYPES:
        return None
    return needed


def attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


# -- windows: convolution and pooling ------------------------------------------------------------
def _square(node: Any, values: list[int] | tuple[int, ...], what: str) -> int:
    if len(values) != 2:
        raise Unsupported(f"{what} {list(values)}: only 2-D windows are supported")
    if values[0] != values[1]:
        raise Unsupported(f"{what} {values[0]}x{values[1]}: the engine's windows are square")
    return int(values[0])


def _engine_padding(v: Value, kernel: int, stride: int, attrs: dict[str, Any], pooling: str | None) -> str | int:
    """The engine padding ('valid', 'same' or pixels per side) whose windows are exactly ONNX's."""
    h, w, _ = v.shape
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    ceil = bool(attrs.get("ceil_mode", 0))

    def onnx_axis(size: int, begin: int, end: int) -> tuple[int, int, bool]:
        """(first pad, output size, whether the last window reaches past the padded input)."""
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            out = -(-size // stride)
            total = max((out - 1) * stride + kernel - size, 0)
            return (total // 2 if auto == "SAME_UPPER" else total - total // 2), out, False
        if auto == "VALID":
            return 0, (size - kernel) // stride + 1, False
        out = output_size(size, kernel, stride, begin, end)
        if ceil:
            out = -(-(size + begin + end - kernel) // stride) + 1
            if (out - 1) * stride >= size + begin:  # a last window starting in the padding is dropped
                out -= 1
        return begin, out, (out - 1) * stride + kernel > size + begin + end

    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        raise Unsupported(f"pads {pads}: only 2-D windows are supported")
    top, ho, over_h = onnx_axis(h, pads[0], pads[2])
    left, wo, over_w = onnx_axis(w, pads[1], pads[3])
    if pooling == "avg" and (over_h or over_w):
        raise Unsupported("ceil_mode makes windows reach past the padding; the engine's average would differ")
    if ho < 1 or wo < 1:
        raise Unsupported(f"the window is larger than its {h}x{w} input")
    candidates: list[str | int] = ["valid"] if auto == "VALID" else (
        ["same", top] if auto == "SAME_UPPER" else [top, "same", "valid"])
    for candidate in candidates:
        if isinstance(candidate, int) and (candidate != left or (pooling and 2 * candidate > kernel)):
            continue
        padding: str | int = "valid" if candidate == 0 else candidate
        t, b, l, r = conv_pads(h, w, kernel, kernel, stride, padding)
        if (t, l) == (top, left) and (output_size(h, kernel, stride, t, b), output_size(w, kernel, stride, l, r)) == (
                ho, wo):
            return padding
    shown = f"auto_pad {auto}" if auto != "NOTSET" else f"pads {pads}" + (" with ceil_mode" if ceil else "")
    raise Unsupported(f"{shown}: the engine pads 'valid', 'same' (odd pixel after) or equally on every side")


def _conv_form(c: Converter, node: Any) -> tuple[np.ndarray, int, int]:
    """The weight, kernel size and stride of a Conv the engine can express, whatever its input holds."""
    weight = c.constant(node, 1, "the weight")
    attrs = attributes(node)
    if weight.ndim != 4:
        raise Unsupported(f"{weight.ndim - 2}-D convolution: only 2-D is supported")
    if attrs.get("group", 1) != 1:
        raise Unsupported(f"group {attrs['group']}: grouped and depthwise convolutions are not supported")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise Unsupported(f"dilations {list(attrs['dilations'])}: dilated convolutions are not supported")
    _, _, kh, kw = weight.shape
    kernel = _square(node, attrs.get("kernel_shape", [kh, kw]), "kernel")
    if (kh, kw) != (kernel, kernel):
        raise Unsupported(f"kernel_shape {kernel} does not match the weight's {kh}x{kw}")
    return weight, kernel, _square(node, attrs.get("strides", [1, 1]), "strides")


def conv(c: Converter, node: Any, name: str) -> None:
    v = c.feature_map(node)
    weight, kernel, stride = _conv_form(c, node)
    bias = c.constant(node, 2, "the bias", required=False)
    attrs = attributes(node)
    filters, channels = weight.shape[:2]
    if channels != v.shape[2]:
        raise Unsupported(f"the weight expects {channels} input channels, the input has {v.shape[2]}")
    padding = _engine_padding(v, kernel, stride, attrs, None)
    tensors = {"kernel": weight.transpose(2, 3, 1, 0)}
    if bias is not None:
        tensors["bias"] = bias.reshape(-1)
    settings = {"filters": int(filters), "kernel_size": kernel, "stride": stride, "padding": padding,
                "use_bias": bias is not None}
    layer = c.emit(node, name, "Conv2D", [v], settings, tensors)
    h, w = (output_size(s, kernel, stride, *p) for s, p in zip(v.shape[:2], _pairs(v, kernel, stride, padding)))
    c.bind(node.output[0], Value(layer, (h, w, int(filters)), "nchw", (int(filters), h, w)))


def _pairs(v: Value, kernel: int, stride: int, padding: str | int) -> tuple[tuple[int, int], tuple[int, int]]:
    t, b, l, r = conv_pads(v.shape[0], v.shape[1], kernel, kernel, stride, padding)
    return (t, b), (l, r)


def _pool_form(c: Converter, node: Any) -> tuple[int, int]:
    """The window and stride of a pooling the engine can express, whatever its input holds."""
    attrs = attributes(node)
    if len(node.output) > 1 and node.output[1] and c.consumers[node.output[1]]:
        raise Unsupported("its indices output is used")
    if attrs.get("storage_order", 0) != 0:
        raise Unsupported("storage_order 1 is not supported")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise Unsupported(f"dilations {list(attrs['dilations'])}: dilated pooling is not supported")
    kernel = _square(node, attrs.get("kernel_shape", []), "kernel_shape")
    return kernel, _square(node, attrs.get("strides", [1, 1]), "strides")


def pool(c: Converter, node: Any, name: str) -> None:
    v = c.feature_map(node)
    attrs = attributes(node)
    kernel, stride = _pool_form(c, node)
    average = node.op_type == "AveragePool"
    padding = _engine_padding(v, kernel, stride, attrs, "avg" if average else "max")
    settings: dict[str, Any] = {"pool_size": kernel, "stride": stride, "padding": padding}
    if average and not attrs.get("count_include_pad", 0):
        settings["count_include_pad"] = False
    layer = c.emit(node, name, "AvgPool2D" if average else "MaxPool2D", [v], settings)
    h, w = (output_size(s, kernel, stride, *p) for s, p in zip(v.shape[:2], _pairs(v, kernel, stride, padding)))
    c.bind(node.output[0], Value(layer, (h, w, v.shape[2]), "nchw", (v.shape[2], h, w)))


def global_average_pool(c: Converter, node: Any, name: str) -> None:
    v = c.feature_map(node)
    layer = c.emit(node, name, "GlobalAvgPool2D", [v], {})
    channels = v.shape[2]
    c.bind(node.output[0], Value(layer, (channels,), "vector", (channels, 1, 1)))


def reduce_mean(c: Converter, node: Any, name: str) -> None:
    """ReduceMean over height and width (Keras' global average pooling through tf2onnx)."""
    v = c.value(node)
    attrs = attributes(node)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = c.constant(node, 1, "axes").tolist()
    spatial = {"nchw": {2, 3}, "nhwc": {1, 2}}.get(v.layout)
    if spatial is None or axes is None or {a % 4 for a in axes} != spatial:
        raise Unsupported("only a mean over height and width (global average pooling) is supported")
    layer = c.emit(node, name, "GlobalAvgPool2D", [v], {})
    channels = v.shape[2]
    keep = attrs.get("keepdims", 1)
    onnx_shape = ((channels, 1, 1) if v.layout == "nchw" else (1, 1, channels)) if keep else (channels,)
    c.bind(node.output[0], Value(layer, (channels,), "vector", onnx_shape))


# -- dense layers --------------------------------------------------------------------------------
def _vector(c: Converter, node: Any) -> Value:
    v = c.value(node)
    if v.layout != "vector":
        raise Unsupported(f"expects a vector of features, not a {v.describe()} feature map (flatten it first)")
    return v


def gemm(c: Converter, node: Any, name: str) -> None:
    v = _vector(c, node)
    attrs = attributes(node)
    if attrs.get("transA", 0):
        raise Unsupported("transA 1 is not supported")
    weight = c.constant(node, 1, "the weight")
    bias = c.constant(node, 2, "the bias", required=False)
    if weight.ndim != 2:
        raise Unsupported(f"the weight has {weight.ndim} dimensions")
    kernel = weight.T if attrs.get("transB", 0) else weight  # (in, out)
    if kernel.shape[0] != v.size:
        raise Unsupported(f"the weight expects {kernel.shape[0]} features, the input has {v.size}")
    units = kernel.shape[1]
    tensors = {"kernel": reorder(kernel, v.order) * np.float32(attrs.get("alpha", 1.0))}
    if bias is not None:
        tensors["bias"] = _per_unit(bias, units) * np.float32(attrs.get("beta", 1.0))
    layer = c.emit(node, name, "Dense", [v], {"units": int(units), "use_bias": bias is not None}, tensors)
    c.bind(node.output[0], Value(layer, (units,), "vector", (units,)))


def _per_unit(bias: np.ndarray, units: int) -> np.ndarray:
    """A bias broadcast over the batch: (units,), (1, units) or a scalar."""
    if bias.size == 1:
        return np.full(units, bias.reshape(-1)[0], np.float32)
    if bias.size != units or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
        raise Unsupported(f"a bias of shape {list(bias.shape)} for {units} units")
    return bias.reshape(-1)


def matmul(c: Converter, node: Any, name: str) -> None:
    v = _vector(c, node)
    weight = c.constant(node, 1, "the weight")
    if weight.ndim != 2 or weight.shape[0] != v.size:
        raise Unsupported(f"a {list(weight.shape)} weight for {v.size} features")
    units = weight.shape[1]
    layer = c.emit(node, name, "Dense", [v], {"units": int(units), "use_bias": False},
                   {"kernel": reorder(weight, v.order)})
    c.bind(node.output[0], Value(layer, (units,), "vector", (units,)))


def add(c: Converter, node: Any, name: str) -> None:
    operands = [i for i in node.input if i]
    known = [i for i in operands if i in c.constants]
    if known:
        if len(operands) != 2:
            raise Unsupported("adds constants")
        data = 0 if operands[1] in c.constants else 1
        _add_bias(c, node, c.value(node, data), c.constants[operands[1 - data]], operands[data])
        return
    values = [c.values[i] for i in operands]
    first = values[0]
    for other in values[1:]:
        if other.layout != first.layout or other.shape != first.shape or not same_order(other.order, first.order):
            raise Unsupported(f"adds a {first.describe()} and a {other.describe()} tensor; the engine adds equal "
                              "shapes only")
    layer = c.emit(node, name, "Add", values, {})
    c.bind(node.output[0], Value(layer, first.shape, first.layout, first.onnx_shape, first.order))


def _add_bias(c: Converter, node: Any, v: Value, constant: np.ndarray, data: str) -> None:
    """x + constant, where x comes straight from a Conv or a MatMul: the constant joins its bias."""
    spec = c.specs.get(v.layer)
    if spec is None or spec["type"] not in ("Conv2D", "Dense") or spec.get("activation") or not c.sole_reader(node, v):
        raise Unsupported("adds a constant; the engine adds constants only as the bias of a Conv or Dense layer")
    units = spec["filters"] if spec["type"] == "Conv2D" else spec["units"]
    shape = [d for d in constant.shape]
    if spec["type"] == "Conv2D":
        # Broadcast against (N, C, H, W): a per-channel bias is (C, 1, 1) or (1, C, 1, 1).
        if v.layout != "nchw" or constant.size not in (1, units) or (
                constant.size == units and units > 1 and (len(shape) < 3 or shape[-3] != units)):
            raise Unsupported(f"adds a constant of shape {shape} that is not a per-channel bias")
    elif constant.size not in (1, units) or (constant.ndim > 1 and constant.shape[-1] != constant.size):
        raise Unsupported(f"adds a constant of shape {shape} that is not a per-unit bias")
    bias = np.broadcast_to(constant.reshape(-1).astype(np.float32), (units,))
    tensors = c.layer_tensors[v.layer]
    tensors["bias"] = tensors["bias"] + bias if "bias" in tensors else bias.copy()
    spec["use_bias"] = True
    c.bind(node.output[0], v, data)


def concat(c: Converter, node: Any, name: str) -> None:
    values = [c.value(node, i) for i in range(len(node.input)) if node.input[i]]
    axis = attributes(node).get("axis", 1)
    first = values[0]
    if any(v.layout != first.layout for v in values):
        raise Unsupported("joins tensors of different kinds")
    rank = len(first.onnx_shape) + 1
    axis = axis % rank
    if first.layout == "vector":
        if axis != 1 or any(len(v.onnx_shape) != 1 for v in values):
            raise Unsupported(f"axis {axis}: vectors are joined along their features only")
        offsets = np.cumsum([0] + [v.size for v in values[:-1]])
        order = None
        if any(v.order is not None for v in values):
            order = np.concatenate([(v.order if v.order is not None else np.arange(v.size)) + o
                                    for v, o in zip(values, offsets)])
        total = int(sum(v.size for v in values))
        layer = c.emit(node, name, "Concatenate", values, {})
        c.bind(node.output[0], Value(layer, (total,), "vector", (total,), order))
        return
    if axis != {"nchw": 1, "nhwc": 3}[first.layout]:
        raise Unsupported(f"axis {axis}: feature maps are joined along their channels only")
    if any(v.shape[:2] != first.shape[:2] for v in values):
        raise Unsupported("joins feature maps of different heights or widths")
    h, w = first.shape[:2]
    channels = int(sum(v.shape[2] for v in values))
    layer = c.emit(node, name, "Concatenate", values, {})
    onnx_shape = (channels, h, w) if first.layout == "nchw" else (h, w, channels)
    c.bind(node.output[0], Value(layer, (h, w, channels), first.layout, onnx_shape))


# -- normalisation and activations -----------------------------------------------------------------
def batch_norm(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    attrs = attributes(node)
    if v.layout == "nhwc":
        raise Unsupported("normalises a channels-last tensor along its height")
    if attrs.get("training_mode", 0):
        raise Unsupported("training_mode 1 (batch statistics at inference) is not supported")
    if attrs.get("spatial", 1) != 1:
        raise Unsupported("spatial 0 is not supported")
    if any(o and c.consumers[o] for o in node.output[1:]):
        raise Unsupported("its running-statistics outputs are used")
    arrays = [c.constant(node, i, what) for i, what in
              enumerate(("scale", "bias", "mean", "variance"), start=1)]
    width = v.shape[-1]
    if any(a.size != width for a in arrays):
        raise Unsupported(f"statistics of {arrays[0].size} values for {width} channels")
    keys = ("gamma", "beta", "moving_mean", "moving_variance")
    tensors = {key: reorder(a.reshape(-1), v.order) for key, a in zip(keys, arrays)}
    settings = {"momentum": _float32_setting(attrs.get("momentum", 0.9)),
                "epsilon": _float32_setting(attrs.get("epsilon", 1e-5))}
    layer = c.emit(node, name, "BatchNorm", [v], settings, tensors)
    c.bind(node.output[0], Value(layer, v.shape, v.layout, v.onnx_shape, v.order))


def activation(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    attrs = attributes(node)
    fused = _FUSABLE_ACTIVATIONS.get(node.op_type)
    spec = c.specs.get(v.layer)
    if (fused and spec is not None and spec["type"] in ("Conv2D", "Dense") and not spec.get("activation")
            and c.sole_reader(node, v)):
        spec["activation"] = fused  # e.g. Conv -> Relu becomes one Conv2D with activation 'relu'
        c.bind(node.output[0], v, node.input[0])
        return
    type_name, settings = {
        "Relu": ("ReLU", {}),
        "Sigmoid": ("Sigmoid", {}),
        "Tanh": ("Tanh", {}),
        "LeakyRelu": ("LeakyReLU", {"alpha": _float32_setting(attrs.get("alpha", 0.01))}),
        "Elu": ("ELU", {"alpha": _float32_setting(attrs.get("alpha", 1.0))}),
    }[node.op_type]
    layer = c.emit(node, name, type_name, [v], settings)
    c.bind(node.output[0], Value(layer, v.shape, v.layout, v.onnx_shape, v.order))


def _float32_setting(value: float) -> float:
    """An attribute stored as float32 (0.01 arrives as 0.009999999776) as the decimal it was written as."""
    return float(np.format_float_positional(np.float32(value), unique=True))


def softmax(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    rank = len(v.onnx_shape) + 1
    axis = attributes(node).get("axis", -1 if c.opset >= 13 else 1) % rank
    if v.layout == "vector":
        ok = axis == 1 and (c.opset < 13 or len(v.onnx_shape) == 1 or v.size == v.onnx_shape[0])
    elif v.layout == "nchw":
        ok = axis == 1 and (c.opset >= 13 or v.size == v.shape[2])
    else:
        ok = axis == 3
    if not ok:
        raise Unsupported(f"axis {axis} of a {v.describe()} tensor: the engine's softmax runs over channels or "
                          "features")
    spec = c.specs.get(v.layer)
    if (v.layout == "vector" and spec is not None and spec["type"] == "Dense" and not spec.get("activation")
            and c.sole_reader(node, v)):
        spec["activation"] = "softmax"
        c.bind(node.output[0], v, node.input[0])
        return
    layer = c.emit(node, name, "Softmax", [v], {})
    c.bind(node.output[0], Value(layer, v.shape, v.layout, v.onnx_shape, v.order))


def dropout(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    if len(node.output) > 1 and node.output[1] and c.consumers[node.output[1]]:
        raise Unsupported("its mask output is used")
    rate = attributes(node).get("ratio", 0.5)
    if len(node.input) > 1 and node.input[1]:
        rate = float(c.constant(node, 1, "the ratio"))
    if len(node.input) > 2 and node.input[2] and bool(c.constant(node, 2, "training_mode")):
        raise Unsupported("training_mode is on: it would drop values at inference")
    rate = _float32_setting(rate)
    if rate == 0:
        c.bind(node.output[0], v, node.input[0])
        return
    layer = c.emit(node, name, "Dropout", [v], {"rate": rate})
    c.bind(node.output[0], Value(layer, v.shape, v.layout, v.onnx_shape, v.order))


# -- views: the data does not change, only ONNX's picture of it ---------------------------------------
def identity(c: Converter, node: Any, name: str) -> None:
    c.bind(node.output[0], c.value(node), node.input[0])


def cast(c: Converter, node: Any, name: str) -> None:
    if attributes(node).get("to") != _FLOAT:
        raise Unsupported("casts the data to another type than float32")
    c.bind(node.output[0], c.value(node), node.input[0])


def transpose(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    perm = list(attributes(node).get("perm", []))
    if v.layout == "nhwc" and perm == [0, 3, 1, 2]:
        h, w, ch = v.shape
        c.bind(node.output[0], Value(v.layer, v.shape, "nchw", (ch, h, w)), node.input[0])
    elif v.layout == "nchw" and perm == [0, 2, 3, 1]:
        c.bind(node.output[0], Value(v.layer, v.shape, "nhwc", v.shape), node.input[0])
    elif v.layout == "vector" and perm and perm[0] == 0 and sorted(perm) == list(range(len(v.onnx_shape) + 1)) and (
            sum(d > 1 for d in v.onnx_shape) <= 1):
        shape = tuple(v.onnx_shape[p - 1] for p in perm[1:])
        c.bind(node.output[0], Value(v.layer, v.shape, "vector", shape, v.order), node.input[0])
    else:
        raise Unsupported(f"perm {perm} of a {v.describe()} tensor: only channels-first <-> channels-last "
                          "transposes are supported")


def _flatten_value(c: Converter, node: Any, name: str, v: Value) -> None:
    """The tensor as a vector: a Flatten layer for a feature map, a new view of a vector."""
    if v.layout == "vector":
        c.bind(node.output[0], Value(v.layer, v.shape, "vector", (v.size,), v.order), node.input[0])
        return
    layer = c.emit(node, name, "Flatten", [v], {})
    order = chw_order(v.shape) if v.layout == "nchw" else None
    c.bind(node.output[0], Value(layer, (v.size,), "vector", (v.size,), order))


def flatten(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    if attributes(node).get("axis", 1) % (len(v.onnx_shape) + 1) != 1:
        raise Unsupported(f"axis {attributes(node)['axis']}: only flattening each sample (axis 1) is supported")
    _flatten_value(c, node, name, v)


def reshape(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    target = [int(d) for d in c.constant(node, 1, "the shape").reshape(-1)]
    current = [c.batch, *v.onnx_shape]
    if not attributes(node).get("allowzero", 0):
        target = [current[i] if d == 0 and i < len(current) else d for i, d in enumerate(target)]
    try:
        result = np.empty(current, dtype=bool).reshape(target).shape
    except ValueError:
        raise Unsupported(f"cannot reshape {current} to {target}") from None
    if result[0] != c.batch:
        raise Unsupported(f"reshapes {current} to {list(result)}, across the samples of a batch")
    per_sample = tuple(result[1:])
    if per_sample == v.onnx_shape:
        c.bind(node.output[0], v, node.input[0])
    elif len(per_sample) == 1:
        _flatten_value(c, node, name, v)
    elif v.layout == "vector" and sum(d > 1 for d in per_sample) <= 1:
        c.bind(node.output[0], Value(v.layer, v.shape, "vector", per_sample, v.order), node.input[0])
    else:
        raise Unsupported(f"reshapes {current} to {list(result)}; only flattening is supported")


def squeeze(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    axes = attributes(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = c.constant(node, 1, "axes").tolist()
    rank = len(v.onnx_shape) + 1
    axes = sorted({a % rank for a in axes}) if axes is not None else [
        i + 1 for i, d in enumerate(v.onnx_shape) if d == 1]
    if 0 in axes or any(v.onnx_shape[a - 1] != 1 for a in axes):
        raise Unsupported(f"axes {axes} of a {v.describe()} tensor")
    shape = tuple(d for i, d in enumerate(v.onnx_shape, start=1) if i not in axes)
    if v.layout == "vector":
        c.bind(node.output[0], Value(v.layer, v.shape, "vector", shape, v.order), node.input[0])
    elif len(shape) == 1:
        _flatten_value(c, node, name, v)  # a 1x1 feature map becoming its channels
    else:
        raise Unsupported(f"axes {axes} of a {v.describe()} tensor")


def shape_of(c: Converter, node: Any, name: str) -> None:
    v = c.value(node)
    full = np.array([c.batch, *v.onnx_shape], np.int64)
    attrs = attributes(node)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    c.constants[node.output[0]] = full[start:end]


# The checks that need only a node's attributes and weights, not what it reads.
_FORMS: dict[str, Callable[[Converter, Any], object]] = {"Conv": _conv_form, "MaxPool": _pool_form,
                                                        "AveragePool": _pool_form}


def form_problem(c: Converter, node: Any) -> str | None:
    """Why ``node`` cannot be imported whatever its input holds (a grouped or dilated convolution, a
    rectangular window), or None. Asked of the nodes after one that failed too, so that one message
    names every node to change, not only the first on each path."""
    check = _FORMS.get(node.op_type)
    if check is None or any(i not in c.constants for i in node.input[1:] if i):
        return None  # weights computed from what failed are not the node's own fault
    try:
        check(c, node)
    except Unsupported as exc:
        return str(exc)
    return None


HANDLERS: dict[str, Callable[[Converter, Any, str], None]] = {
    "Conv": conv,
    "MaxPool": pool,
    "AveragePool": pool,
    "GlobalAveragePool": global_average_pool,
    "ReduceMean": reduce_mean,
    "BatchNormalization": batch_norm,
    "Relu": activation,
    "LeakyRelu": activation,
    "Elu": activation,
    "Sigmoid": activation,
    "Tanh": activation,
    "Softmax": softmax,
    "Gemm": gemm,
    "MatMul": matmul,
    "Add": add,
    "Sum": add,
    "Concat": concat,
    "Flatten": flatten,
    "Reshape": reshape,
    "Squeeze": squeeze,
    "Transpose": transpose,
    "Dropout": dropout,
    "Identity": identity,
    "Cast": cast,
    "Shape": shape_of,
}

# Operators that only reshape, relabel or feed others; a user changing a model thinks in the rest.
_PLUMBING = {"Identity", "Cast", "Shape", "Squeeze", "Transpose", "Sum", "ReduceMean"}
LAYER_OPERATORS = tuple(op for op in HANDLERS if op not in _PLUMBING)
