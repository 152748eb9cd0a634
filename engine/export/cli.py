"""``cnn-engine export``: turn a weight file into another format from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.export.formats import FORMATS


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
    p.set_defaults(func=run_export)
    return p


def run_export(args: argparse.Namespace) -> int:
    """Load ``args.weights``, export it to ``args.out`` and list what was written; errors propagate
    as EngineError (the CLI prints them as one line)."""
    from engine.export import export_model, load_weight_file

    model = load_weight_file(args.weights)
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    written = export_model(model, Path(args.out), args.format, class_names=names)
    for path in written:
        print(f"wrote {path}")
    return 0
