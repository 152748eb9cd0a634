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
        description="Export trained weights. predictor and pytorch write a folder holding predict.py or "
                    "model.py plus weights.npz; the other formats write one file.",
    )
    p.add_argument("weights", help="weight file to export (.npz or .safetensors)")
    p.add_argument("--format", choices=tuple(FORMATS), help="output format (default: from the --out suffix)")
    p.add_argument("--out", required=True, help="output file, or folder for predictor/pytorch")
    p.add_argument("--class-names", help="comma-separated class names to label the outputs")
    p.add_argument("--train-settings", metavar="FILE",
                   help="pytorch-train: the training settings, from a project (.cnnproj) or a JSON object of "
                        "settings (epochs, batch_size, optimizer, learning_rate, ...); the engine's defaults "
                        "otherwise")
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    """Load ``args.weights``, export it to ``args.out`` and list what was written; errors propagate
    as EngineError (the CLI prints them as one line)."""
    from engine.export import export_model, load_weight_file

    model = load_weight_file(args.weights)
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    settings = read_train_settings(args.train_settings) if getattr(args, "train_settings", None) else None
    written = export_model(model, Path(args.out), args.format, class_names=names, train_settings=settings)
    for path in written:
        print(f"wrote {path}")
    return 0


def read_train_settings(path: str) -> dict[str, Any]:
    """Training settings from a project file's "training" object or a JSON object of settings."""
    from engine.training import TrainConfig

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not a JSON file of training settings ({exc})") from None
    settings = doc.get("training", doc) if isinstance(doc, dict) else None
    if not isinstance(settings, dict):
        raise ExportError(f"{path}: expected a JSON object of training settings")
    known = set(TrainConfig().to_dict())
    unknown = sorted(set(settings) - known)
    if unknown and "training" not in doc:
        raise ExportError(f"{path}: unknown training setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        return TrainConfig.from_dict(settings).to_dict()
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{path}: {exc}") from None
