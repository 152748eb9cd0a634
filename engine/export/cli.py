"""``cnn-engine export``: turn a weight file into another format from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.export.formats import FORMATS, ExportError


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to the CLI's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "export",
        help="export a weight file as .npz, .safetensors, ONNX, a NumPy predictor or PyTorch code",
        description="Export trained weights. predictor, pytorch and pytorch-train write a folder holding "
                    "predict.py, model.py or a PyTorch training project (train.py, model.py, a README) plus "
                    "weights.npz; the other formats write one file.",
    )
    p.add_argument("weights", help="weight file to export (.npz or .safetensors)")
    p.add_argument("--format", choices=tuple(FORMATS), help="output format (default: from the --out suffix)")
    p.add_argument("--out", required=True,
                   help="output file (its folder must exist), or the folder for predictor, pytorch and pytorch-train")
    p.add_argument("--class-names", help="comma-separated class names to label the outputs")
    p.add_argument("--train-settings", metavar="FILE",
                   help="pytorch-train: the training settings, from a project (.cnnproj), a run folder (or its "
                        "run.json) or a JSON object of settings (epochs, batch_size, optimizer, learning_rate, ...); "
                        "by default those of the run folder the weights are in, else the engine's defaults")
    p.add_argument("--quantize", choices=("int8",),
                   help="onnx: write an int8 model (static quantization calibrated on --data's training images) "
                        "and report its size and test accuracy beside the float model's")
    p.add_argument("--data", help="--quantize: the dataset (name or path, as for train) to calibrate and test on")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize image folders")
    p.add_argument("--color", choices=("grayscale", "rgb"), help="colour mode for image folders")
    p.add_argument("--calibration-images", type=int, default=300, metavar="N",
                   help="--quantize: training images to calibrate on (default 300)")
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    """Load ``args.weights``, export it to ``args.out`` and list what was written; errors propagate
    as EngineError (the CLI prints them as one line)."""
    from engine.export import export_model, load_weight_file
    from engine.export.formats import check_output_file, format_for_path

    model = load_weight_file(args.weights)
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    if getattr(args, "quantize", None):
        return _run_quantize(args, model, names)
    if not format_for_path(args.out, args.format).folder:
        check_output_file(args.out, suffixes=())  # a folder that does not exist, said in the option's words
    settings = None
    if getattr(args, "train_settings", None):
        settings = read_train_settings(args.train_settings)
    elif (args.format or "").lower() in ("pytorch-train", "pytorch_train", "torch-train", "train"):
        from engine.runs.folder import RECORD

        # Weights kept in a run folder come with the settings they were trained with.
        run = Path(args.weights).resolve().parent / RECORD
        if run.is_file():
            settings = read_train_settings(str(run))
            print(f"training settings from {run}")
    written = export_model(model, Path(args.out), args.format, class_names=names, train_settings=settings)
    for path in written:
        print(f"wrote {path}")
    return 0


def read_train_settings(path: str) -> dict[str, Any]:
    """Training settings from a project file's "training" object, a run folder's record ("config"),
    or a JSON object of settings."""
    from engine.runs.folder import RECORD
    from engine.training import TrainConfig

    source = Path(path)
    if source.is_dir():
        source = source / RECORD
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        from engine.file_kind import describe_file

        raise ExportError(f"{path}: not a JSON file of training settings: it is {describe_file(source)} (give a "
                          "project file .cnnproj, a run folder or its run.json)") from None
    except (OSError, ValueError, RecursionError) as exc:  # broken JSON, huge integers, deep nesting
        raise ExportError(f"{path}: not a JSON file of training settings ({exc})") from None
    nested = next((key for key in ("training", "config") if isinstance(doc, dict) and key in doc), None)
    settings = doc.get(nested) if nested else doc if isinstance(doc, dict) else None
    if not isinstance(settings, dict):
        raise ExportError(f"{path}: expected a JSON object of training settings")
    known = set(TrainConfig().to_dict())
    unknown = sorted(set(settings) - known)
    if unknown and nested is None:
        raise ExportError(f"{path}: unknown training setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        return TrainConfig.from_dict(settings).to_dict()
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{path}: {exc}") from None


def _run_quantize(args: argparse.Namespace, model: Any, names: list[str] | None) -> int:
    from engine.data import load_dataset
    from engine.export.formats import format_for_path
    from engine.export.quantize import quantize_for_dataset

    if format_for_path(args.out, args.format).name != "onnx":
        raise ExportError("--quantize int8 writes an ONNX model: end --out in .onnx")
    if not args.data:
        raise ExportError("--quantize int8 needs --data: the training images calibrate it, the test images "
                          "measure its accuracy")
    if args.calibration_images < 1:
        raise ExportError(f"--calibration-images must be at least 1, not {args.calibration_images}")
    size = tuple(args.image_size) if args.image_size else None
    dataset = load_dataset(args.data, image_size=size, color_mode=args.color)
    report = quantize_for_dataset(model, args.out, dataset, args.calibration_images, names)
    print(f"wrote {report.path}")
    for line in report.lines():
        print(f"  {line}")
    return 0
