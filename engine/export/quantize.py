"""An int8 ONNX model for deployment: static quantization with ONNX Runtime's tools.

The float model is the engine's ONNX export; ONNX Runtime's ``quantize_static`` calibrates the
activation ranges on a few hundred training images (min-max, per-channel weights, QDQ format) and
writes the int8 model. Both models are then run by ONNX Runtime on the test images, so the report
shows what quantization costs in accuracy beside what it saves in size.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.atomic import atomic_write
from engine.export.formats import ExportError, require
from engine.export.onnx_export import build_onnx_model
from engine.model import Model

_INSTALL = "pip install onnx onnxruntime"
CALIBRATION_IMAGES = 300


@dataclass(frozen=True)
class QuantizationReport:
    path: Path
    float_bytes: int
    int8_bytes: int
    float_accuracy: float
    int8_accuracy: float
    test_images: int
    calibration_images: int

    @property
    def ratio(self) -> float:
        return self.float_bytes / max(self.int8_bytes, 1)

    def lines(self) -> list[str]:
        size = (f"{self.ratio:.1f}x smaller" if self.ratio >= 1 else
                 "larger: so few weights that the scales and zero points outweigh them")
        return [
            f"float32 model: {self.float_bytes / 1024:,.1f} KiB, test accuracy {self.float_accuracy:.2%}",
            f"int8 model:    {self.int8_bytes / 1024:,.1f} KiB ({size}), test accuracy "
            f"{self.int8_accuracy:.2%} ({self.int8_accuracy - self.float_accuracy:+.2%})",
            f"measured by ONNX Runtime on {self.test_images:,} test images; calibrated on "
            f"{self.calibration_images:,} training images",
        ]


def _calibration_reader(quantization: Any, batches: list[np.ndarray]) -> Any:
    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.items, None)
            return None if batch is None else {"input": batch}

    return Reader()


def _accuracy(ort: Any, path: Path, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predictions = [session.run(None, {"input": x[i : i + batch]})[0].argmax(axis=1) for i in range(0, len(x), batch)]
    return float((np.concatenate(predictions) == y).mean()) if len(x) else float("nan")


def quantize_int8(
    model: Model,
    path: str | os.PathLike,
    calibration: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    weights: dict[str, np.ndarray] | None = None,
    class_names: list[str] | None = None,
) -> QuantizationReport:
    """Write ``model`` as an int8 ONNX model to ``path`` (atomically) and compare it with the float one.

    ``calibration`` and ``x_test`` are normalized (N, H, W, C) float32 images (a few hundred suffice
    for calibration); ``y_test`` the test labels. Raises MissingDependency or ExportError.
    """
    onnx = require("onnx", "Quantizing to int8", _INSTALL)
    ort = require("onnxruntime", "Quantizing to int8", _INSTALL)
    quantization = require("onnxruntime.quantization", "Quantizing to int8", _INSTALL)
    if len(calibration) == 0:
        raise ExportError("quantizing needs training images to calibrate on; the dataset has none")
    path = Path(path)
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    x_test = np.ascontiguousarray(x_test, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="cnn-quantize-") as work:
        float_path, int8_path = Path(work) / "float.onnx", Path(work) / "int8.onnx"
        onnx.save(build_onnx_model(model, weights, class_names), str(float_path))
        prepared = Path(work) / "prepared.onnx"
        try:
            # Shape inference and graph optimisation first, as ONNX Runtime's quantizer asks.
            quantization.quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
            quantization.quantize_static(
                str(prepared), str(int8_path), _calibration_reader(quantization, list(np.array_split(
                    calibration, max(1, -(-len(calibration) // 32))))),
                quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                calibrate_method=quantization.CalibrationMethod.MinMax,
            )
        except Exception as exc:  # onnxruntime's quantizer raises plain exceptions of many kinds
            reason = " ".join(str(exc).split())[:200]
            raise ExportError(f"ONNX Runtime could not quantize the network ({reason})") from None
        quantized = onnx.load(str(int8_path))
        # The float model's metadata (architecture, preprocessing, class names) travels along.
        del quantized.metadata_props[:]
        for prop in onnx.load(str(float_path), load_external_data=False).metadata_props:
            quantized.metadata_props.add(key=prop.key, value=prop.value)
        quantized.metadata_props.add(key="quantization", value="int8 static (QDQ, per-channel weights, min-max)")
        data = quantized.SerializeToString()
        int8_path.write_bytes(data)
        float_accuracy = _accuracy(ort, float_path, x_test, y_test)
        int8_accuracy = _accuracy(ort, int8_path, x_test, y_test)
        float_bytes = float_path.stat().st_size
    with atomic_write(path) as handle:
        handle.write(data)
    return QuantizationReport(path, float_bytes, len(data), float_accuracy, int8_accuracy, len(x_test),
                              len(calibration))


def calibration_rows(available: int, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """``count`` of ``available`` training rows picked at random (sorted; the same for the same seed)."""
    return np.sort(np.random.default_rng(seed).permutation(available)[:count])


def quantize_for_dataset(model: Model, path: str | os.PathLike, dataset: Any, count: int = CALIBRATION_IMAGES,
                         class_names: list[str] | None = None) -> QuantizationReport:
    """quantize_int8 with calibration and test images from ``dataset``, normalized as the model says."""
    from engine.data import Normalization

    if tuple(dataset.input_shape) != tuple(model.input_shape):
        raise ExportError(f"the network takes {'x'.join(map(str, model.input_shape))} images but the dataset "
                          f"{dataset.name!r} has {'x'.join(map(str, dataset.input_shape))}")
    norm = Normalization.from_dict(model.preprocessing)
    rows = calibration_rows(len(dataset.x_train), count)
    return quantize_int8(model, path, norm.apply(dataset.x_train[rows]), norm.apply(dataset.x_test),
                         dataset.y_test, class_names=class_names)
