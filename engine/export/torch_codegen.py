"""Generates ``model.py``: a PyTorch ``nn.Module`` equivalent to an architecture, with weight loaders.

The file is ``torch_template.py`` (loaders, ``save_npz``, ``preprocess``) with two marked blocks
replaced: the constants (architecture, preprocessing, class names, the engine-tensor -> module map)
and the ``Net`` class written out layer by layer, so users read and edit plain PyTorch. Generating
needs no PyTorch; running the result does.
"""

from __future__ import annotations

import json
import keyword
import pprint
import re
from pathlib import Path

from engine.export.formats import WEIGHTS_FILE_NAME, ExportError
from engine.export.plan import LayerStep, build_plan, ends_in_softmax
from engine.model import Model

TEMPLATE = Path(__file__).with_name("torch_template.py")
_BLOCKS = ("constants", "network")
# Names an nn.Module already uses for its own attributes and methods.
_RESERVED = {"training", "forward", "eval", "train", "state_dict", "parameters", "buffers", "modules",
             "children", "to", "cuda", "cpu", "float", "double", "half", "type", "apply", "zero_grad", "T_destination",
             "dump_patches", "call_super_init", "logits", "x", "self"}


def _attribute_names(names: list[str]) -> list[str]:
    """A unique Python identifier per layer name (engine names may hold any characters)."""
    taken: set[str] = set()
    out = []
    for name in names:
        ident = re.sub(r"\W", "_", name) or "layer"
        if ident[0].isdigit() or keyword.iskeyword(ident) or ident in _RESERVED or ident.startswith("_"):
            ident = f"layer_{ident}"
        base, n = ident, 2
        while ident in taken:
            ident, n = f"{base}_{n}", n + 1
        taken.add(ident)
        out.append(ident)
    return out


def _activation(kind: str | None, spatial: bool, alpha: float | None = None) -> str | None:
    """The PyTorch expression applying an engine activation to ``x``."""
    if kind is None:
        return None
    return {
        "relu": "F.relu(x)",
        "leaky_relu": f"F.leaky_relu(x, {0.01 if alpha is None else alpha!r})",
        "elu": f"F.elu(x, {1.0 if alpha is None else alpha!r})",
        "sigmoid": "torch.sigmoid(x)",
        "tanh": "torch.tanh(x)",
        # The engine's softmax runs over the last axis: channels, which sit on dim 1 in NCHW.
        "softmax": f"torch.softmax(x, dim={1 if spatial else -1})",
    }[kind]


def _symmetric(pads: tuple[int, int, int, int]) -> bool:
    return pads[0] == pads[1] and pads[2] == pads[3]


def _padding_argument(pads: tuple[int, int, int, int]) -> str:
    """The built-in padding of a layer with symmetric pads (asymmetric ones get an explicit F.pad)."""
    if not _symmetric(pads):
        return "0"
    return str(pads[0]) if pads[0] == pads[2] else f"({pads[0]}, {pads[2]})"


def _pad_line(pads: tuple[int, int, int, int], value: str = "") -> str:
    top, bottom, left, right = pads
    fill = f", value={value}" if value else ""
    return f"x = F.pad(x, ({left}, {right}, {top}, {bottom}){fill})  # the engine's 'same': odd pixel after"


class _Writer:
    def __init__(self) -> None:
        self.init: list[str] = []
        self.forward: list[str] = []
        self.tensors: dict[str, tuple[str, str, str]] = {}

    def map(self, step: LayerStep, attribute: str, pairs: dict[str, str], layout: str = "") -> None:
        for key, target in pairs.items():
            if key in step.tensors:
                own_layout = layout if key == "kernel" else ""
                self.tensors[f"{step.name}.{key}"] = (attribute, target, own_layout)


def _layer(w: _Writer, step: LayerStep, attr: str, last: bool) -> None:
    cfg, pads = step.config, step.pads
    w.forward.append(f"# {step.name}: {step.type} -> {step.output_shape}")
    if step.type == "Conv2D":
        k, f, cin = cfg["kernel_size"], cfg["filters"], step.input_shape[2]
        padding = _padding_argument(pads)
        if not _symmetric(pads):
            w.forward.append(_pad_line(pads))
        w.init.append(f"self.{attr} = nn.Conv2d({cin}, {f}, {k}, stride={step.stride}, padding={padding}, "
                      f"bias={cfg['use_bias']})")
        w.forward.append(f"x = self.{attr}(x)")
        w.map(step, attr, {"kernel": "weight", "bias": "bias"}, "conv")
    elif step.type in ("MaxPool2D", "AvgPool2D"):
        k, s = cfg["pool_size"], step.stride
        padding = _padding_argument(pads)
        if not _symmetric(pads):
            w.forward.append(_pad_line(pads, 'float("-inf")' if step.type == "MaxPool2D" else ""))
        if step.type == "MaxPool2D":
            w.init.append(f"self.{attr} = nn.MaxPool2d({k}, stride={s}, padding={padding})")
        else:  # the engine divides by the whole window, padded zeros included
            w.init.append(f"self.{attr} = nn.AvgPool2d({k}, stride={s}, padding={padding}, count_include_pad=True)")
        w.forward.append(f"x = self.{attr}(x)")
    elif step.type == "GlobalAvgPool2D":
        w.forward.append("x = x.mean(dim=(2, 3))")
    elif step.type == "Flatten":
        if step.spatial:
            w.forward.append("x = x.permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order, as the engine flattens")
        else:
            w.forward.append("x = x.flatten(1)")
    elif step.type == "Dense":
        w.init.append(f"self.{attr} = nn.Linear({step.input_shape[0]}, {cfg['units']}, bias={cfg['use_bias']})")
        w.forward.append(f"x = self.{attr}(x)")
        w.map(step, attr, {"kernel": "weight", "bias": "bias"}, "dense")
    elif step.type == "BatchNorm":
        kind = "BatchNorm2d" if step.spatial else "BatchNorm1d"
        w.init.append(f"self.{attr} = nn.{kind}({step.input_shape[-1]}, eps={cfg['epsilon']!r}, "
                      f"momentum={round(1.0 - cfg['momentum'], 12)!r})")
        w.forward.append(f"x = self.{attr}(x)")
        w.map(step, attr, {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                           "moving_variance": "running_var"})
    elif step.type == "Dropout":
        w.init.append(f"self.{attr} = nn.Dropout(p={cfg['rate']!r})")
        w.forward.append(f"x = self.{attr}(x)")
    elif step.type in ("ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax"):
        kind = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu"}.get(step.type, step.type.lower())
        _activation_line(w, kind, step.spatial, cfg.get("alpha"), last)
        return
    else:
        raise ExportError(f"layer {step.name}: {step.type} has no PyTorch form yet")
    if step.activation:
        _activation_line(w, step.activation, len(step.output_shape) == 3, None, last)


def _activation_line(w: _Writer, kind: str, spatial: bool, alpha: float | None, last: bool) -> None:
    expression = _activation(kind, spatial, alpha)
    if last and kind == "softmax":
        w.forward.append(f"if not logits:  # the final softmax; skip it to get logits for training\n"
                         f"    x = {expression}")
    else:
        w.forward.append(f"x = {expression}")


def _network_block(model: Model, steps: list[LayerStep]) -> tuple[str, dict[str, tuple[str, str, str]]]:
    w = _Writer()
    attributes = _attribute_names([s.name for s in steps])
    for i, (step, attr) in enumerate(zip(steps, attributes)):
        _layer(w, step, attr, last=i == len(steps) - 1)
    h, wd, c = model.input_shape
    output = "probabilities" if ends_in_softmax(steps) else "outputs"
    output_shape = ", ".join(map(str, model.output_shape))
    lines = [
        "class Net(nn.Module):",
        f'    """{len(steps)} layers; input (N, {c}, {h}, {wd}) normalized float32, '
        f'output {output} (N, {output_shape})."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *[f"        {line}" for line in w.init],
        "",
        "    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:",
        '        """(N, C, H, W) -> the engine\'s output; ``logits=True`` stops before a final softmax."""',
    ]
    for line in w.forward:
        lines += [f"        {part}" for part in line.split("\n")]
    if len(model.output_shape) == 3:
        lines.append("        x = x.permute(0, 2, 3, 1)  # feature maps back to the engine's (N, H, W, C)")
    lines.append("        return x")
    return "\n".join(lines) + "\n", w.tensors


def _constants_block(model: Model, class_names: list[str], tensors: dict, weights_file: str) -> str:
    lines = ["# Generated by CNN Studio for this network (the weight files it loads must hold the same layers):"]
    lines += [f"#   {row}".rstrip() for row in model.summary().splitlines()]
    lines += [
        "ARCHITECTURE: dict = " + _literal(model.architecture),
        "PREPROCESSING: dict = " + _literal(model.preprocessing),
        "CLASS_NAMES: list[str] = [" + ", ".join(repr(str(n)) for n in class_names) + "]",
        f"INPUT_SHAPE = {tuple(model.input_shape)!r}  # (H, W, C), the engine's order",
        f"WEIGHTS_FILE = {weights_file!r}",
        "# engine tensor name -> (module name in Net, its parameter or buffer, layout in the engine's file)",
        "TENSORS: dict[str, tuple[str, str, str]] = {",
        *[f"    {name!r}: {target!r}," for name, target in tensors.items()],
        "}",
    ]
    return "\n".join(lines) + "\n"


def _literal(value: dict) -> str:
    """A readable Python literal of a JSON document (a round trip through JSON keeps it JSON-safe)."""
    return pprint.pformat(json.loads(json.dumps(value)), width=100, sort_dicts=False)


def _replace_block(text: str, block: str, body: str) -> str:
    begin, end = f"# --- generated {block}: begin\n", f"# --- generated {block}: end\n"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ExportError(f"{TEMPLATE}: the PyTorch template has lost its {block!r} markers")
    return text[: start + len(begin)] + body + text[stop:]


def generate_torch_module(model: Model, class_names: list[str] | None = None,
                          weights_file: str = WEIGHTS_FILE_NAME) -> str:
    """The source text of ``model.py`` for ``model`` (weights in ``weights_file`` beside it)."""
    steps = build_plan(model)
    network, tensors = _network_block(model, steps)
    text = TEMPLATE.read_text(encoding="utf-8")
    text = _replace_block(text, "constants", _constants_block(model, list(class_names or []), tensors, weights_file))
    return _replace_block(text, "network", network)
