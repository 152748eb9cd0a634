"""``cnn-engine``: summary, train, evaluate (and export) from the command line.

Every error a user can cause is printed as one line on stderr with a non-zero exit; no tracebacks.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TextIO

import numpy as np

from engine.errors import ArchitectureError, EngineError


class ArchitectureProblems(EngineError):
    """Every problem of an architecture, printed one per line."""

    def __init__(self, problems: Sequence[ArchitectureError]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def checked_architecture(doc_or_path: object):
    """The analysis of an architecture; warnings go to stderr, problems raise ArchitectureProblems."""
    from engine.architecture import analyze

    analysis = analyze(doc_or_path)
    for warning in analysis.warnings:
        print(f"cnn-engine: warning: {warning}", file=sys.stderr)
    if analysis.problems:
        raise ArchitectureProblems(analysis.problems)
    return analysis


def _bar(done: int, total: int, width: int = 28) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressPrinter:
    """A per-epoch progress bar (images/s, ETA) on a terminal, and one line per finished epoch."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0

    def __call__(self, event: object) -> None:
        from engine.training import BatchEnd, EpochEnd, TrainingFinished, TrainingStarted

        if isinstance(event, TrainingStarted):
            print(f"training on {event.train_size} images, validating on {event.validation_size}; "
                  f"{event.batches_per_epoch} batches per epoch", file=self.stream)
        elif isinstance(event, BatchEnd):
            now = time.monotonic()
            if self.tty and (now - self._last > 0.1 or event.batch == event.batches):
                self._last = now
                self.stream.write(
                    f"\repoch {event.epoch} {_bar(event.batch, event.batches)} {event.batch}/{event.batches} "
                    f"loss {event.loss:.4f}  {event.images_per_second:,.0f} img/s  ETA {_duration(event.eta)} "
                )
                self.stream.flush()
        elif isinstance(event, EpochEnd):
            if self.tty:
                self.stream.write("\r\033[K")
            val = "" if np.isnan(event.val_loss) else (
                f"  val_loss {event.val_loss:.4f}  val_acc {event.val_accuracy:.2%}")
            print(f"epoch {event.epoch}/{event.epochs}  loss {event.train_loss:.4f}  acc {event.train_accuracy:.2%}"
                  f"{val}  {_duration(event.elapsed)} elapsed", file=self.stream)
        elif isinstance(event, TrainingFinished) and event.reason != "completed":
            print(f"training {event.reason}: {event.message}", file=self.stream)


def _load_data(args: argparse.Namespace):
    from engine.data import load_dataset

    size = tuple(args.image_size) if getattr(args, "image_size", None) else None
    return load_dataset(args.data, image_size=size, color_mode=getattr(args, "color", None))


def cmd_summary(args: argparse.Namespace) -> int:
    from engine.architecture import summary

    print(summary(checked_architecture(args.architecture)))
    return 0


def _processes(text: str) -> int | str:
    if text not in ("1", "2", "auto"):
        raise argparse.ArgumentTypeError(f"choose 1, 2 or auto, not {text!r}")
    return text if text == "auto" else int(text)


# The options that set each TrainConfig field, for messages about settings.
_OPTIONS = {"learning_rate": "--lr"}


def cmd_train(args: argparse.Namespace) -> int:
    from engine.architecture import load_architecture_file, with_input_shape
    from engine.errors import InputShapeError
    from engine.training import TrainConfig, prepare
    from engine.weights import save_weights

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 0.001),
        momentum=args.momentum, validation_split=args.validation_split, seed=args.seed,
        augment_shift=args.augment_shift, augment_hflip=args.augment_hflip, processes=args.processes,
    )
    _check_settings(config)  # before the dataset loads
    dataset = _load_data(args)
    if args.limit:
        dataset = dataset.subset(min(args.limit, len(dataset.y_train)), len(dataset.y_test), seed=args.seed)
    doc = load_architecture_file(args.architecture)
    if doc.get("input", {}).get("shape") != list(dataset.input_shape) and args.adapt_input:
        doc = with_input_shape(doc, dataset.input_shape)
    checked_architecture(doc)
    print(f"dataset {dataset.name}: {len(dataset.y_train)} train / {len(dataset.y_test)} test images, "
          f"{'x'.join(map(str, dataset.input_shape))}, {dataset.num_classes} classes")
    try:
        model, trainer = prepare(doc, dataset, config)
    except InputShapeError as exc:
        raise EngineError(f"{exc} (--adapt-input gives the network the dataset's shape)") from None
    history = trainer.fit(ProgressPrinter(sys.stdout))
    result = trainer.evaluate()
    print(f"test accuracy {result.accuracy:.2%} ({len(result.labels)} images)")
    if args.out:
        save_weights(model, args.out)
        print(f"weights saved to {args.out}")
    return 0 if history.finished and history.finished.reason == "completed" else 3


def _check_settings(config: object) -> None:
    """The engine's check of the settings, with the options' names in its messages."""
    from engine.errors import SettingError
    from engine.preflight import check_settings

    try:
        check_settings(config)
    except SettingError as exc:
        option = _OPTIONS.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise EngineError(f"{option} {exc.requirement}, not {exc.value}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.metrics import evaluate
    from engine.weights import load_weights

    model = load_weights(args.weights)
    dataset = _load_data(args)
    if tuple(dataset.input_shape) != tuple(model.input_shape):
        raise EngineError(f"{args.weights} expects {'x'.join(map(str, model.input_shape))} images but "
                          f"{args.data} has {'x'.join(map(str, dataset.input_shape))}")
    from engine.data import Normalization

    x = Normalization.from_dict(model.preprocessing).apply(dataset.x_test)
    result = evaluate(model, x, dataset.y_test)
    print(f"test accuracy {result.accuracy:.2%} on {len(result.labels)} images, loss {result.loss:.4f}")
    width = max(len(n) for n in dataset.class_names)
    for name, acc in zip(dataset.class_names, result.per_class_accuracy):
        print(f"  {name.ljust(width)}  {acc:7.2%}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnn-engine", description="Train and inspect CNNs with the NumPy engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="print the layer table of an architecture file")
    p.add_argument("architecture", help="architecture JSON file")
    p.set_defaults(func=cmd_summary)

    def add_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="fashion-mnist-mini",
                       help="dataset name (fashion-mnist-mini, fashion-mnist) or path (IDX folder, CIFAR-10 "
                            "folder, image folder, .npz)")
        p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize image folders")
        p.add_argument("--color", choices=("grayscale", "rgb"), help="colour mode for image folders")

    p = sub.add_parser("train", help="train an architecture on a dataset")
    p.add_argument("architecture", help="architecture JSON file")
    add_data(p)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--validation-split", type=float, default=0.1)
    p.add_argument("--augment-shift", type=int, default=0, help="random shifts of up to N pixels")
    p.add_argument("--augment-hflip", action="store_true", help="random horizontal flips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="train on at most N images (a quick run)")
    p.add_argument("--processes", type=_processes, default="auto", metavar="{1,2,auto}",
                   help="processes per training step: 2 splits each step with a helper process, auto (default) "
                        "when the step is large enough to gain")
    p.add_argument("--adapt-input", action="store_true",
                   help="use the dataset's image shape as the network's input shape")
    p.add_argument("--out", help="where to save the trained weights (.npz)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate saved weights on a dataset's test part")
    p.add_argument("weights", help="weight file (.npz)")
    add_data(p)
    p.set_defaults(func=cmd_evaluate)

    from engine.export.cli import add_export_parser
    from engine.onnx_import.cli import add_import_parser

    add_export_parser(sub)
    add_import_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ArchitectureProblems as exc:
        for problem in exc.problems:
            print(f"cnn-engine: error: {problem}", file=sys.stderr)
        return 2
    except (EngineError, ValueError) as exc:
        print(f"cnn-engine: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn-engine: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"cnn-engine: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
