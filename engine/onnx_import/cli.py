"""``cnn-engine import``: an ONNX network into the engine's weight file."""

from __future__ import annotations

import argparse

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
    p.add_argument("--out", required=True, help="weight file to write (.npz)")
    p.add_argument("--scale", type=float,
                   help="what raw pixels are multiplied by before the network (default 1/255, i.e. [0, 1])")
    p.add_argument("--mean", type=float, nargs="+", help="per-channel mean subtracted after scaling")
    p.add_argument("--std", type=float, nargs="+", help="per-channel standard deviation divided by after that")
    p.add_argument("--no-check", action="store_true", help="skip comparing with ONNX Runtime on random inputs")
    p.set_defaults(func=run_import)
    return p


def run_import(args: argparse.Namespace) -> int:
    from engine.onnx_import import OnnxImportError, check_against_onnx, import_onnx, write_imported

    preprocessing = None
    if args.scale is not None or args.mean is not None or args.std is not None:
        preprocessing = {"scale": 1 / 255 if args.scale is None else args.scale, "mean": args.mean, "std": args.std}
    imported = import_onnx(args.model, preprocessing)
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
