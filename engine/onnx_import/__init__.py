"""Importing convolutional networks from ONNX files (PyTorch's ``torch.onnx.export``, Keras via tf2onnx).

    from engine.onnx_import import import_onnx, write_imported
    imported = import_onnx("resnet.onnx")          # refuses, naming every unsupported node
    model = imported.model()                       # an ordinary engine Model, weights loaded
    write_imported(imported, "resnet.npz")         # the engine's weight file, architecture inside

The network becomes an ordinary architecture document (a graph where the ONNX graph branches) with
its tensors in the engine's layout: kernels (kh, kw, in, out) from ONNX's (out, in, kh, kw), Dense
kernels (in, out) with the rows after a channels-first Flatten put in the engine's (H, W, C) order.
The engine's input is always (N, H, W, C): ``predict`` on a batch gives what the ONNX model gives on
the same values transposed to its own layout (``input_layout``, "NCHW" for PyTorch, "NHWC" for a
Keras model; the document's "source" record keeps it, with the file, producer and opset). The weight
file's preprocessing record says how raw pixels become those values; the ONNX file does not say, so
it is scaling to [0, 1] unless given (or unless the file was exported by CNN Studio, whose metadata
says).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.normalization import Normalization
from engine.errors import DataError, EngineError, brief
from engine.export.formats import require
from engine.json_files import parse_json
from engine.onnx_import.convert import Converted, Converter, Problem
from engine.onnx_import.loading import OnnxImportError, load_onnx, opset_version
from engine.onnx_import.ops import LAYER_OPERATORS

__all__ = ["ImportedNetwork", "OnnxImportError", "check_against_onnx", "import_onnx", "write_imported"]


@dataclass
class ImportedNetwork:
    """An ONNX network as the engine holds it: the document, tensors by "<layer>.<param>", and facts."""

    source: Path
    architecture: dict[str, Any]
    tensors: dict[str, np.ndarray]
    preprocessing: dict[str, Any]
    input_layout: str  # "NCHW" or "NHWC": how the ONNX model takes its input
    opset: int
    producer: str
    notes: list[str] = field(default_factory=list)

    def model(self) -> Any:
        """The engine Model, tensors loaded (raises WeightsError if the document does not build)."""
        from engine.weights import build_model

        return build_model(self.architecture, self.preprocessing, self.tensors, source=self.source)

    def to_onnx_layout(self, x: np.ndarray) -> np.ndarray:
        """An engine (N, H, W, C) batch in the layout the ONNX model takes."""
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.input_layout == "NCHW" else x)


def import_onnx(path: str | os.PathLike, preprocessing: dict[str, Any] | None = None) -> ImportedNetwork:
    """Read an ONNX file into an engine network, or raise OnnxImportError with one line: a file that
    is not ONNX, or every node that cannot be imported (operator, name and why)."""
    path = Path(path)
    proto = load_onnx(path)
    try:
        return _import(path, proto, preprocessing)
    except EngineError:
        raise
    except Exception as exc:  # a model that passed the checker yet is malformed in a way no rule foresaw
        raise OnnxImportError(f"{path}: the ONNX model is damaged or malformed ({type(exc).__name__}: "
                              f"{brief(exc, 160)})") from None


def _import(path: Path, proto: Any, preprocessing: dict[str, Any] | None) -> ImportedNetwork:
    result = Converter(proto).run()
    if not isinstance(result, Converted):
        raise refusal(path, result)
    metadata = {p.key: p.value for p in proto.metadata_props}
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p) or "unknown"
    chosen = preprocessing if preprocessing is not None else _recorded_preprocessing(metadata)
    try:
        chosen = Normalization.from_dict(chosen).to_dict()
    except DataError as exc:
        raise OnnxImportError(f"preprocessing: {exc}") from None
    architecture = dict(result.architecture)
    # Where the network came from and how it took its input (the engine's is always (N, H, W, C)).
    architecture["source"] = {"kind": "onnx", "file": path.name, "producer": producer, "opset": opset_version(proto),
                              "input_layout": result.input_layout}
    imported = ImportedNetwork(
        source=path, architecture=architecture, tensors=result.tensors, preprocessing=chosen,
        input_layout=result.input_layout, opset=opset_version(proto), producer=producer, notes=list(result.notes),
    )
    try:
        imported.model()
    except EngineError as exc:
        raise OnnxImportError(f"{path}: the imported network does not build: {exc}") from None
    return imported


def refusal(path: Path, problems: list[Problem]) -> OnnxImportError:
    """One line naming every culprit and what to do: "net.onnx: cannot import 2 nodes: Gelu '/Gelu' (not
    supported); Conv '/c1/Conv' (group 2: ...). Change them in the original model and export it again
    (CNN Studio imports ...)"."""
    whole = [str(p) for p in problems if p.whole_model]
    nodes = [p for p in problems if not p.whole_model]
    count = f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}"
    listing = "; ".join(str(p) for p in nodes)
    if whole:
        message = f"{path}: cannot import it: {'; '.join(whole)}" + (f"; and {count}: {listing}" if nodes else "")
    else:
        message = f"{path}: cannot import {count}: {listing}"
    advice = ""
    if nodes:
        advice = f"Change {'it' if len(nodes) == 1 else 'them'} in the original model and export it again"
        if any(p.reason == "not supported" for p in nodes):
            advice += f" (the operators CNN Studio imports: {', '.join(LAYER_OPERATORS)})"
        message += f". {advice}"
    return OnnxImportError(message, [str(p) for p in problems], advice + "." if advice else "")


def _recorded_preprocessing(metadata: dict[str, str]) -> dict[str, Any]:
    """What CNN Studio's own ONNX export records; otherwise scaling pixels to [0, 1]."""
    text = metadata.get("preprocessing")
    try:
        recorded = parse_json(text, "preprocessing") if isinstance(text, str) else None
        return Normalization.from_dict(recorded).to_dict()
    except EngineError:  # absent or unreadable: the usual [0, 1] scaling
        return Normalization().to_dict()


def check_against_onnx(imported: ImportedNetwork, samples: int = 4, seed: int = 0) -> float | None:
    """Largest difference between ONNX Runtime's outputs and the engine's on random inputs, scaled by
    the outputs' size (max |a - b| / max(1, max |a|)); None when onnxruntime is not installed."""
    try:
        ort = require("onnxruntime", "Checking an import", "pip install onnxruntime")
    except EngineError:
        return None
    model = imported.model()
    x = np.random.default_rng(seed).standard_normal((samples, *model.input_shape)).astype(np.float32)
    try:
        session = ort.InferenceSession(str(imported.source), providers=["CPUExecutionProvider"])
        graph_input = session.get_inputs()[0]
        # A model exported with a fixed batch size runs on batches of exactly that size.
        step = graph_input.shape[0] if isinstance(graph_input.shape[0], int) and graph_input.shape[0] > 0 else samples
        x = x[: max(step, samples - samples % step)]
        expected = np.concatenate([session.run(None, {graph_input.name: imported.to_onnx_layout(x[i : i + step])})[0]
                                   for i in range(0, len(x), step)])
    except Exception as exc:  # onnxruntime's exceptions have no stable importable names
        raise OnnxImportError(f"{imported.source}: ONNX Runtime cannot run it to check the import "
                              f"({' '.join(str(exc).split())[:160]})") from None
    got = model.predict(x)
    if got.ndim == 4 and imported.input_layout == "NCHW" and expected.ndim == 4:
        got = got.transpose(0, 3, 1, 2)
    expected = expected.reshape(got.shape)
    return float(np.max(np.abs(got - expected)) / max(1.0, float(np.max(np.abs(expected)))))


def write_imported(imported: ImportedNetwork, out: str | os.PathLike) -> Path:
    """Write the engine's weight file (architecture inside) atomically; returns its path."""
    from engine.weights import save_weights

    return save_weights(imported.model(), out)
