"""``cnn-engine import``: an ONNX network into the engine's weight file."""

from __future__ import annotations

import argparse
import math
from typing import Any

# Beyond this (relative to the outputs' size) the import is wrong, not rounded: nothing is written.
TOLERANCE = 1e-3


def add_import_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "import",
        help="import an ONNX network (PyTorch, Keras via tf2onnx) as an engine weight file",
        description="Convert an ONNX network into the engine's weight file (.npz, architecture inside). The "
                    "engine takes (N, H, W, C) images; predictions match the ONNX model's on the same values in "
                    "its own layout. Unsupported nodes are all listed and nothing is written.",
    )
    p.add_argument("model", help="ONNX file (.onnx)")
    p.add_argument("--out", required=True, help="weight file to write (.npz); its folder must exist")
    p.add_argument("--scale", type=float,
                   help="what raw pixels are multiplied by before the network (default 1/255, i.e. [0, 1])")
    p.add_argument("--mean", type=float, nargs="+",
                   help="per-channel mean subtracted after scaling (one value, or one per channel; needs --std)")
    p.add_argument("--std", type=float, nargs="+",
                   help="per-channel standard deviation divided by after that (as many values as --mean)")
    p.add_argument("--no-check", action="store_true", help="skip comparing with ONNX Runtime on random inputs")
    p.set_defaults(func=run_import)
    return p


def run_import(args: argparse.Namespace) -> int:
    from engine.export.formats import check_output_file
    from engine.onnx_import import OnnxImportError, check_against_onnx, import_onnx, write_imported

    check_output_file(args.out)  # before the work: a misspelt folder is said at once
    preprocessing = options_preprocessing(args)
    imported = import_onnx(args.model)
    model = imported.model()
    if preprocessing is not None:
        imported.preprocessing = preprocessing_for(preprocessing, model.input_shape[-1], args.model)
        model = imported.model()
    print(f"{args.model}: opset {imported.opset}, written by {imported.producer}")
    for note in imported.notes:
        print(f"  {note}")
    print(model.summary())
    if not args.no_check:
        difference = check_against_onnx(imported)
        if difference is None:
            print("not checked: onnxruntime is not installed")
        elif difference > TOLERANCE:
            raise OnnxImportError(f"{args.model}: the imported network does not predict like the original "
                                  f"(relative difference {difference:.2g} on random inputs); nothing written")
        else:
            print(f"checked against ONNX Runtime on random inputs: largest relative difference {difference:.1e}")
    write_imported(imported, args.out)
    print(f"wrote {args.out}")
    return 0


def options_preprocessing(args: argparse.Namespace) -> dict[str, Any] | None:
    """What --scale, --mean and --std say, checked with the options' names; None when none is given."""
    from engine.onnx_import import OnnxImportError

    if args.scale is None and args.mean is None and args.std is None:
        return None
    if args.scale is not None and not (math.isfinite(args.scale) and args.scale > 0):
        raise OnnxImportError(f"--scale must be a positive number, not {args.scale:g}")
    if (args.mean is None) != (args.std is None):
        given, missing = ("--mean", "--std") if args.std is None else ("--std", "--mean")
        raise OnnxImportError(f"{given} needs {missing} too: the network's inputs are (pixel x scale - mean) / std "
                              "per channel")
    if args.mean is not None:
        if len(args.mean) != len(args.std):
            raise OnnxImportError(f"--mean has {len(args.mean)} values but --std has {len(args.std)}; give one "
                                  "per channel")
        if not all(math.isfinite(v) for v in args.mean):
            raise OnnxImportError(f"--mean must be numbers, not {' '.join(map(str, args.mean))}")
        if not all(math.isfinite(v) and v > 0 for v in args.std):
            raise OnnxImportError(f"--std must be positive numbers, not {' '.join(f'{v:g}' for v in args.std)}")
    return {"scale": 1 / 255 if args.scale is None else args.scale, "mean": args.mean, "std": args.std}


def preprocessing_for(preprocessing: dict[str, Any], channels: int, source: str) -> dict[str, Any]:
    """``preprocessing`` when its per-channel values fit a network of ``channels`` input channels; one
    value stands for every channel (ImageNet's three for a grey network do not)."""
    from engine.onnx_import import OnnxImportError

    mean, std = preprocessing["mean"], preprocessing["std"]
    if mean is None or len(mean) == channels:
        return preprocessing
    if len(mean) == 1:
        return {**preprocessing, "mean": mean * channels, "std": std * channels}
    raise OnnxImportError(f"--mean and --std give {len(mean)} values but {source} takes images of {channels} "
                          f"channel{'s' if channels != 1 else ''}; give one value per channel")
