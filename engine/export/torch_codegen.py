"""Generates ``model.py``: a PyTorch ``nn.Module`` equivalent to an architecture, with weight loaders.

The file is ``torch_template.py`` (loaders, ``save_npz``, ``preprocess``) with two marked blocks
replaced: the constants (architecture, preprocessing, class names, the engine-tensor -> module map)
and the ``Net`` class written out layer by layer (each layer's code comes from its export rules in
engine/export/rules.py), so users read and edit plain PyTorch. A chain passes ``x`` along; a
branching network names each layer's output after the layer. Generating needs no PyTorch;
running the result does.
"""

from __future__ import annotations

import json
import keyword
import pprint
import re
from pathlib import Path

from engine.architecture import INPUT_ID
from engine.export.formats import WEIGHTS_FILE_NAME, ExportError
from engine.export.plan import LayerStep, build_plan, ends_in_softmax
from engine.export.rules import rules_for
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


def _activation(kind: str, x: str, spatial: bool, alpha: float | None = None) -> str:
    """The PyTorch expression applying an engine activation to the variable ``x``."""
    return {
        "relu": f"F.relu({x})",
        "leaky_relu": f"F.leaky_relu({x}, {0.01 if alpha is None else alpha!r})",
        "elu": f"F.elu({x}, {1.0 if alpha is None else alpha!r})",
        "sigmoid": f"torch.sigmoid({x})",
        "tanh": f"torch.tanh({x})",
        # The engine's softmax runs over the last axis: channels, which sit on dim 1 in NCHW.
        "softmax": f"torch.softmax({x}, dim={1 if spatial else -1})",
    }[kind]


class TorchWriter:
    """Collects Net's modules, forward lines and the engine-tensor map while the layers' rules
    (engine/export/rules.py) write theirs."""

    def __init__(self, attributes: dict[str, str], output: str) -> None:
        self.attributes = attributes  # layer name -> its module attribute
        self.output = output  # the layer name of the network's output
        self.init: list[str] = []
        self.forward: list[str] = []
        self.tensors: dict[str, tuple[str, str, str]] = {}

    def module(self, step: LayerStep, constructor: str) -> str:
        """Declare the layer's module in __init__; returns its attribute name."""
        attribute = self.attributes[step.name]
        self.init.append(f"self.{attribute} = {constructor}")
        return attribute

    def line(self, code: str) -> None:
        self.forward.append(code)

    def map(self, step: LayerStep, attribute: str, pairs: dict[str, str], layout: str = "") -> None:
        for key, target in pairs.items():
            if key in step.tensors:
                own_layout = layout if key == "kernel" else ""
                self.tensors[f"{step.name}.{key}"] = (attribute, target, own_layout)

    def activation(self, step: LayerStep, out: str, kind: str | None, alpha: float | None = None,
                   source: str | None = None) -> None:
        """``out = kind(source)`` (``source`` defaults to ``out``); a final softmax only without logits."""
        source = source or out
        if kind is None:
            if source != out:
                self.line(f"{out} = {source}")
            return
        expression = _activation(kind, source, len(step.output_shape) == 3, alpha)
        if step.name == self.output and kind == "softmax":
            if source != out:
                self.line(f"{out} = {source}")
            self.line(f"if not logits:  # the final softmax; skip it to get logits for training\n"
                      f"    {out} = {_activation(kind, out, len(step.output_shape) == 3, alpha)}")
        else:
            self.line(f"{out} = {expression}")


def _network_block(model: Model, steps: list[LayerStep]) -> tuple[str, dict[str, tuple[str, str, str]]]:
    attributes = dict(zip((s.name for s in steps), _attribute_names([s.name for s in steps])))
    w = TorchWriter(attributes, steps[-1].name)
    # A chain passes one tensor along as ``x``; a branching network names each layer's output
    # after its layer, so every branch reads what it takes.
    chain = model.is_chain
    variables = {INPUT_ID: "x"}
    for step in steps:
        out = "x" if chain else attributes[step.name]
        if not step.live:  # an unused branch: its modules exist (their weights load), it never runs
            before = len(w.forward)
            rules_for(step.type).torch(w, step, [variables.get(i, "x") for i in step.inputs], out)
            del w.forward[before:]
            continue
        w.line(f"# {step.name}: {step.type} -> {step.output_shape}")
        rules_for(step.type).torch(w, step, [variables[i] for i in step.inputs], out)
        variables[step.id] = out
    result = variables[steps[-1].id]
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
        lines.append(f"        {result} = {result}.permute(0, 2, 3, 1)  # maps back to the engine's (N, H, W, C)")
    lines.append(f"        return {result}")
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
