"""``cnn-engine``: summary, train, resume, runs, sweep, evaluate (and export) from the command line.

Every error a user can cause is printed as one line on stderr with a non-zero exit; no tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import time
import typing
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from engine.errors import ArchitectureError, EngineError


class ArchitectureProblems(EngineError):
    """Every problem of an architecture, in one line: the first, then the others after semicolons."""

    def __init__(self, problems: Sequence[ArchitectureError], source: object = "") -> None:
        prefix = f"{source}: " if source else ""
        texts = [_one_line(p)[len(prefix):] if prefix and str(p).startswith(prefix) else _one_line(p)
                 for p in problems]
        many = f"{len(texts)} problems: " if len(texts) > 1 else ""
        super().__init__(prefix + many + "; ".join(texts))
        self.problems = list(problems)


def checked_architecture(doc_or_path: object, source: object = ""):
    """The analysis of an architecture; problems raise ArchitectureProblems (one line, naming ``source``
    or the file), warnings of a sound architecture go to stderr."""
    from engine.architecture import analyze, in_source

    analysis = analyze(doc_or_path)
    source = source or (doc_or_path if isinstance(doc_or_path, (str, os.PathLike)) else "")
    if analysis.problems:
        raise ArchitectureProblems([in_source(p, source) for p in analysis.problems], source)
    for warning in analysis.warnings:
        print(f"cnn-engine: warning: {_one_line(warning)}", file=sys.stderr)
    return analysis


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


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
            if event.note:
                print(f"  {event.note}", file=self.stream)
        elif isinstance(event, TrainingFinished) and (event.reason != "completed" or event.message):
            print(f"training {'stopped early' if event.stopped_early else event.reason}: {event.message}",
                  file=self.stream)


def diagnosing(printer: Any, doctor: Any) -> Any:
    """``printer`` followed, after each epoch and at the end, by a ``diagnosis:`` line for each new
    problem the training doctor finds."""

    def callback(event: object) -> None:
        from engine.training import EpochEnd, TrainingFinished

        printer(event)
        doctor.observe(event)
        if isinstance(event, (EpochEnd, TrainingFinished)):
            for found in doctor.take_new():
                print(f"diagnosis: {_one_line(found.line())}", file=printer.stream)
        if isinstance(event, TrainingFinished) and not doctor.diagnoses:
            for note in doctor.notes():
                print(f"doctor: {note}", file=printer.stream)

    return callback


def _load_data(args: argparse.Namespace):
    from engine.data import load_dataset

    size = tuple(args.image_size) if getattr(args, "image_size", None) else None
    return load_dataset(args.data, image_size=size, color_mode=getattr(args, "color", None))


def cmd_summary(args: argparse.Namespace) -> int:
    from engine.architecture import summary
    from engine.memory import available_memory, estimate_model, estimate_training, format_bytes

    analysis = checked_architecture(_document(args), args.architecture)
    print(summary(analysis))
    build, train = estimate_model(analysis), estimate_training(analysis, 64)
    free = available_memory()
    print(f"Memory to build: about {format_bytes(build.total)}; to train at batch size 64: about "
          f"{format_bytes(train.total)}" + (f" ({format_bytes(free)} available)" if free is not None else ""))
    if free is not None and train.total > free:
        print(f"Will not fit: {train.culprit}; {train.advice}")
    return 0


def _processes(text: str) -> int | str:
    if text not in ("1", "2", "auto"):
        raise argparse.ArgumentTypeError(f"choose 1, 2 or auto, not {text!r}")
    return text if text == "auto" else int(text)


# The options that set each TrainConfig field, for messages about settings.
_OPTIONS = {"learning_rate": "--lr", "early_stopping": "--early-stopping", "restore_best": "--no-restore-best"}


def _check_settings(config: object) -> None:
    """The engine's check of the settings, with the options' names in its messages."""
    from engine.errors import SettingError
    from engine.preflight import check_settings

    try:
        check_settings(config)
    except SettingError as exc:
        option = _OPTIONS.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise EngineError(f"{option} {exc.requirement}, not {exc.value}") from None


def _limited(dataset: Any, args: argparse.Namespace) -> Any:
    if args.limit:
        return dataset.subset(min(args.limit, len(dataset.y_train)), len(dataset.y_test), seed=args.seed)
    return dataset


def _refuse_oversized(args: argparse.Namespace) -> None:
    """Refuse a network whose weights would not fit in memory before any data is read."""
    from engine.architecture import analyze
    from engine.memory import check_model

    analysis = analyze(_document(args))
    if analysis.ok:
        check_model(analysis, args.architecture)


def _read_start(args: argparse.Namespace) -> None:
    """Where an architecture file is expected, a weight file is the network it holds with its weights:
    ``summary`` shows it, ``train`` and ``profile`` start from it (fine-tuning), ``args.start`` keeps
    it. An ONNX file is refused with the command that imports it."""
    from engine.file_kind import describe_file

    args.start = None
    path = Path(args.architecture)
    if not path.is_file():
        return  # reading the architecture says what is missing
    kind = describe_file(path)
    if path.suffix.lower() == ".onnx" and kind in ("an ONNX model", "a binary file of another kind"):
        raise EngineError(f"{path}: an ONNX model, not an architecture file: `cnn-engine import {path} --out "
                          f"{path.with_suffix('.npz').name}` makes it an engine weight file, which "
                          f"{args.command} takes")
    if kind not in ("a zip archive", "a safetensors file"):
        return
    if args.command == "sweep":
        raise EngineError(f"{path}: a weight file; a sweep trains every run from fresh weights, so give it an "
                          "architecture file")
    from engine.export import load_weight_file

    args.start = load_weight_file(path)


def _document(args: argparse.Namespace) -> dict[str, Any] | str:
    """The architecture the command works on: the weight file's network, or the architecture file."""
    start = getattr(args, "start", None)
    return start.architecture if start is not None else args.architecture


def _architecture(args: argparse.Namespace, dataset: Any) -> dict[str, Any]:
    return _network(args, dataset)[0]


def _network(args: argparse.Namespace, dataset: Any) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """The document to train, adapted and frozen as the options say, and the weights it starts from
    (None: fresh ones), those of a weight file given as the architecture less a replaced head."""
    from engine.architecture import analyze, load_architecture_file, with_input_shape

    start = getattr(args, "start", None)
    doc = start.architecture if start is not None else load_architecture_file(args.architecture)
    shape = tuple(dataset.input_shape)
    if args.adapt_input and analyze(doc).input_shape != shape:
        if start is not None:
            raise EngineError(f"--adapt-input: the weights in {args.architecture} are for "
                              f"{'x'.join(map(str, start.input_shape))} images, and {dataset.name} has "
                              f"{'x'.join(map(str, shape))}; trained weights keep their input, so train on images "
                              "of that size (--image-size for a folder of images)")
        doc = with_input_shape(doc, dataset.input_shape)
    weights = start.tensors() if start is not None else None
    if args.adapt_output and start is not None:
        model = _with_new_head(start, dataset.num_classes)
        doc, weights = model.architecture, model.tensors()
    elif args.adapt_output:
        doc = with_output_classes(doc, dataset.num_classes)
    if args.freeze:
        doc = _frozen(doc, args.freeze)
    checked_architecture(doc, args.architecture)
    return doc, weights


def _with_new_head(model: Any, classes: int) -> Any:
    """``model`` with its last Dense layer given ``classes`` units and fresh weights, every other layer's
    kept; the model itself when it has that many outputs already."""
    from engine.errors import ArchitectureError
    from engine.fine_tuning import head_index, replace_head

    try:
        index = head_index(model.architecture)
        units = model.architecture["layers"][index].get("units")
        if units == classes:
            return model
        fresh = replace_head(model, classes)
    except ArchitectureError as exc:
        raise EngineError(f"--adapt-output: {exc}") from None
    print(f"--adapt-output: {model.names[index]} now has {classes} units (it had {units}), one per class of the "
          "dataset, with fresh weights; every other layer keeps its trained weights")
    return fresh


def _frozen(doc: dict[str, Any], names: str) -> dict[str, Any]:
    """``doc`` with the layers ``--freeze`` names (comma-separated names or ids, or "backbone": every
    layer before the last Dense one) frozen."""
    from engine.architecture import layer_names, upgrade
    from engine.errors import ArchitectureError
    from engine.fine_tuning import freeze_all_but_head, set_trainable

    doc = upgrade(doc)  # a format 1 list too
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    try:
        if wanted == ["backbone"]:
            return freeze_all_but_head(doc)
        return set_trainable(doc, wanted, False)
    except ArchitectureError as exc:
        raise EngineError(f"--freeze: {exc} (its layers: {', '.join(layer_names(doc))}; or backbone)") from None


def with_output_classes(doc: dict[str, Any], classes: int) -> dict[str, Any]:
    """``doc`` with the Dense layer that makes the network's output (the last one on the way up from
    the output through first inputs) given ``classes`` units; says so when that changes anything."""
    from engine.architecture import analyze, upgrade

    analysis = analyze(doc)
    infos = {info.id: info for info in analysis.layers}
    node = analysis.layers[-1] if analysis.layers else None
    while node is not None and node.type != "Dense":
        node = infos.get(node.inputs[0]) if node.inputs else None
    if node is None:
        raise EngineError("--adapt-output: no Dense layer makes the network's output; end the network in "
                          f"Flatten and Dense with {classes} units")
    if node.config.get("units") == classes:
        return doc
    out = upgrade(doc)
    for spec in out["layers"]:
        if spec.get("id") == node.id:
            spec["units"] = classes
    print(f"--adapt-output: {node.name} now has {classes} units (it had {node.config.get('units')}), "
          f"one per class of the dataset")
    return out


def _config(args: argparse.Namespace) -> Any:
    from engine.optimizers import DEFAULT_LEARNING_RATES
    from engine.training import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.lr if args.lr is not None else DEFAULT_LEARNING_RATES[args.optimizer],
        momentum=args.momentum, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        schedule=args.schedule, validation_split=args.validation_split, seed=args.seed,
        augment_shift=args.augment_shift, augment_hflip=args.augment_hflip,
        monitor=args.monitor, min_delta=args.min_delta, early_stopping=args.early_stopping,
        restore_best=not args.no_restore_best, plateau_patience=args.plateau_patience,
        plateau_factor=args.plateau_factor, processes=args.processes,
    )


def _dataset_ref(dataset: Any, args: argparse.Namespace) -> dict[str, Any]:
    from engine.runs import dataset_reference

    return dataset_reference(dataset, args.data, image_size=tuple(args.image_size) if args.image_size else None,
                             color=args.color, limit=args.limit, limit_seed=args.seed)


def _describe(dataset: Any) -> None:
    print(f"dataset {dataset.name}: {len(dataset.y_train)} train / {len(dataset.y_test)} test images, "
          f"{'x'.join(map(str, dataset.input_shape))}, {dataset.num_classes} classes")


def _refuse_existing_run(run_dir: Path, doc: dict[str, Any]) -> None:
    from engine.architecture_diff import diff_architectures, same_network
    from engine.runs import RunFolder, is_run

    if not is_run(run_dir):
        return
    existing = RunFolder.open(run_dir)
    if not same_network(existing.record["architecture"], doc):
        difference = diff_architectures(existing.record["architecture"], doc).describe()
        raise EngineError(f"{run_dir} holds a run of another network ({difference}); "
                          "choose another --run-dir")
    raise EngineError(f"{run_dir} already holds a run of this network ({existing.status}, epoch "
                      f"{existing.epochs_completed}/{existing.epochs_planned}); continue it with "
                      f"`cnn-engine resume {run_dir}` or choose another --run-dir")


def _finish_run(outcome: Any, out: str | None) -> int:
    from engine.weights import save_weights

    folder = outcome.folder
    if outcome.evaluation is not None:
        print(f"test accuracy {outcome.evaluation.accuracy:.2%} ({len(outcome.evaluation.labels)} images)")
    if out:
        save_weights(outcome.trainer.model, out)
        print(f"weights saved to {out}")
    print(f"run {folder.status}: {folder.path}")
    return _outcome_status(outcome.history.finished)


def _outcome_status(finished: Any) -> int:
    """0 for a run that completed; else 3, with one line on stderr saying why (a diverged loss, ...)."""
    if finished is not None and finished.reason == "completed":
        return 0
    reason = f"training {finished.reason}: {finished.message}" if finished is not None else "training did not finish"
    print(f"cnn-engine: error: {_one_line(reason)}", file=sys.stderr)
    return 3


def _prepare(doc: dict[str, Any], dataset: Any, config: Any, weights: dict[str, np.ndarray] | None = None,
             args: argparse.Namespace | None = None) -> tuple[Any, Any]:
    """The model and trainer; with ``weights``, the weight file's preprocessing (``args.start``)
    normalises the data as the weights were trained."""
    from engine.errors import ClassCountError, InputShapeError
    from engine.training import prepare

    start = getattr(args, "start", None) if weights is not None else None
    try:
        return prepare(doc, dataset, config, weights=weights, preprocessing=start.preprocessing if start else None)
    except InputShapeError as exc:
        raise EngineError(f"{exc} (--adapt-input gives the network the dataset's shape)") from None
    except ClassCountError as exc:
        raise EngineError(f"{exc} (--adapt-output gives the last Dense layer {exc.classes} units)") from None


def cmd_train(args: argparse.Namespace) -> int:
    from engine.doctor import TrainingDoctor
    from engine.weights import save_weights

    config = _config(args)
    _check_settings(config)  # before the dataset loads
    _refuse_oversized(args)
    run_dir = Path(args.run_dir) if args.run_dir else None
    dataset = _limited(_load_data(args), args)
    doc, weights = _network(args, dataset)
    if run_dir is not None:
        _refuse_existing_run(run_dir, doc)
    _describe(dataset)
    model, trainer = _prepare(doc, dataset, config, weights, args)
    if weights is not None:
        print(f"starting from the weights in {args.architecture}")
    if not args.out and run_dir is None:
        # Said before training, so a long run can still be stopped and started again with --out.
        print("note: the trained weights will not be saved: add --out FILE.npz (or --run-dir DIR) to keep them")
    printer = ProgressPrinter(sys.stdout)
    if run_dir is not None:
        from engine.runs import new_run, train_in_folder
        from engine.runs.session import architecture_name

        folder, trainer = new_run(run_dir, model, dataset, config, _dataset_ref(dataset, args), retention=args.keep,
                                  name=args.name or "", architecture_name=architecture_name(args.architecture, doc),
                                  trainer=trainer, from_weights=weights is not None)
        print(f"run folder {folder.path}")
        callback = diagnosing(printer, TrainingDoctor(trainer))
        with _interrupted_hint(run_dir):
            outcome = train_in_folder(folder, trainer, callback)
        if outcome.history.finished is not None:
            callback(outcome.history.finished)  # the run folder's training keeps the end to itself
        return _finish_run(outcome, args.out)
    doctor = TrainingDoctor(trainer)
    history = trainer.fit(diagnosing(printer, doctor))
    result = trainer.evaluate()
    print(f"test accuracy {result.accuracy:.2%} ({len(result.labels)} images)")
    if args.out:
        save_weights(model, args.out)
        print(f"weights saved to {args.out}")
    else:
        print("weights not saved (no --out given)")
    return _outcome_status(history.finished)


@contextlib.contextmanager
def _interrupted_hint(run_dir: Path) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        print(f"cnn-engine: interrupted; continue with `cnn-engine resume {run_dir}`", file=sys.stderr)
        raise SystemExit(130) from None


def _resumable_run(path: Path) -> Path:
    """``path`` if it is a run, else the one run in it that can be resumed."""
    from engine.runs import RunFolder, is_run, runs_in

    if is_run(path):
        return path
    candidates = [p for p in runs_in(path) if RunFolder.open(p).resumable]
    if not candidates:
        raise EngineError(f"{path} holds no interrupted run")
    if len(candidates) > 1:
        raise EngineError(f"{path} holds {len(candidates)} interrupted runs; name one: "
                          + ", ".join(str(p) for p in candidates))
    return candidates[0]


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.runs import prepare_resume, train_in_folder

    path = _resumable_run(Path(args.run))
    dataset = None
    if args.data:
        from engine.runs import RunFolder

        ref = RunFolder.open(path).record["dataset"]
        dataset = _load_data(args)
        limit = ref.get("limit")
        if limit:
            dataset = dataset.subset(min(int(limit["train"]), len(dataset.y_train)), len(dataset.y_test),
                                     seed=int(limit.get("seed", 0)))
    folder, trainer = prepare_resume(path, dataset, epochs=args.epochs)
    start = trainer.epoch
    print(f"resuming {folder.path} after epoch {start} of {trainer.config.epochs}"
          + ("" if start else " (from the start: no checkpoint)"))
    from engine.doctor import TrainingDoctor

    callback = diagnosing(ProgressPrinter(sys.stdout), TrainingDoctor(trainer))
    with _interrupted_hint(folder.path):
        outcome = train_in_folder(folder, trainer, callback)
    if outcome.history.finished is not None:
        callback(outcome.history.finished)
    return _finish_run(outcome, args.out)


def cmd_runs(args: argparse.Namespace) -> int:
    from engine.runs import list_runs, runs_table

    runs = list_runs(args.folder)
    if args.json:
        import json

        print(json.dumps([{k: v for k, v in vars(r).items() if k != "record"} | {"path": str(r.path)}
                          for r in runs], indent=1, default=str))
        return 0
    if not runs:
        print(f"no runs in {args.folder}")
        return 0
    print(runs_table(runs))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.optimizers import DEFAULT_LEARNING_RATES
    from engine.runs.session import architecture_name
    from engine.runs.sweep import Sweep, label, parse_axis, sweep_points

    config = _config(args)
    _check_settings(config)
    _refuse_oversized(args)
    dataset = _limited(_load_data(args), args)
    doc = _architecture(args, dataset)
    _prepare(doc, dataset, config)  # the network fits the data (each point is checked again)
    axes = [parse_axis(text, doc) for text in args.grid]
    points = sweep_points(axes, args.random, seed=args.seed)
    sweep = Sweep(Path(args.out), doc, config, axes, points, retention=args.keep,
                  architecture_name=architecture_name(args.architecture, doc),
                  lr_defaults=None if args.lr is not None else DEFAULT_LEARNING_RATES)
    _describe(dataset)
    print(f"sweep of {len(points)} runs into {args.out}")
    printer = ProgressPrinter(sys.stdout)
    total = len(points)

    def on_start(run: Any) -> None:
        print(f"\nrun {run.index + 1}/{total}: {label(run.point)}")

    def on_done(run: Any, outcome: Any) -> None:
        if run.error:
            print(f"  failed: {run.error}")
        elif outcome is None and run.summary is not None:
            print("  already completed")

    with _interrupted_hint(Path(args.out)):
        sweep.run(dataset, _dataset_ref(dataset, args), on_start=on_start, on_event=lambda run, e: printer(e),
                  on_done=on_done)
    print()
    print(sweep.table())
    best = sweep.ranked()[0] if sweep.runs else None
    if best is not None and best.summary is not None:
        print(f"best: {label(best.point)} ({best.path})")
    return 0 if all(r.summary and r.summary.status == "completed" for r in sweep.runs) else 3


def cmd_profile(args: argparse.Namespace) -> int:
    from engine.profiler import profile_training

    config = _config(args)
    _check_settings(config)
    dataset = _limited(_load_data(args), args)
    doc = _architecture(args, dataset)
    model, trainer = _prepare(doc, dataset, config)
    rows = trainer.train_idx[: max(config.batch_size * (args.steps + 1), config.batch_size)]
    profile = profile_training(model, trainer.dataset.normalized("train", rows), trainer.dataset.y_train[rows],
                               trainer.optimizer, config.batch_size, steps=args.steps,
                               label_smoothing=config.label_smoothing)
    print(profile.table())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.export import refuse_onnx
    from engine.metrics import evaluate
    from engine.weights import load_weights

    refuse_onnx(args.weights)
    model = load_weights(args.weights)
    dataset = _load_data(args)
    if tuple(dataset.input_shape) != tuple(model.input_shape):
        h, w, c = model.input_shape
        folder = Path(args.data)
        hint = ""
        if folder.is_dir() and any(sub.is_dir() for sub in folder.iterdir()):
            hint = (f" (a folder of images is resized with --image-size {h} {w} "
                    f"--color {'grayscale' if c == 1 else 'rgb'})")
        raise EngineError(f"{args.weights} expects {'x'.join(map(str, model.input_shape))} images but "
                          f"{args.data} has {'x'.join(map(str, dataset.input_shape))}{hint}")
    from engine.data import Normalization

    x = Normalization.from_dict(model.preprocessing).apply(dataset.x_test)
    result = evaluate(model, x, dataset.y_test)
    print(f"test accuracy {result.accuracy:.2%} on {len(result.labels)} images, loss {result.loss:.4f}")
    width = max(len(n) for n in dataset.class_names)
    for name, acc in zip(dataset.class_names, result.per_class_accuracy):
        print(f"  {name.ljust(width)}  {acc:7.2%}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line too, pointing at --help (the sub-commands' parsers are of this class)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from engine.schedules import MONITORS, SCHEDULES

    parser = _Parser(prog="cnn-engine", description="Train and inspect CNNs with the NumPy engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="print the layer table of an architecture file")
    p.add_argument("architecture", help="architecture JSON file (or a weight file: the network it holds)")
    p.set_defaults(func=cmd_summary)

    def add_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="fashion-mnist-mini",
                       help="dataset name (fashion-mnist-mini, fashion-mnist) or path (IDX folder, CIFAR-10 "
                            "folder, image folder, .npz)")
        p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize image folders")
        p.add_argument("--color", choices=("grayscale", "rgb"), help="colour mode for image folders")

    def add_settings(p: argparse.ArgumentParser, epochs: int = 1, weights: bool = True) -> None:
        p.add_argument("architecture", help="architecture JSON file" + (
            ", or a weight file (.npz, .safetensors) to train on from its weights (fine-tuning)" if weights else ""))
        add_data(p)
        p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the training images (default {epochs})")
        p.add_argument("--batch-size", type=int, default=64, help="images per training step (default 64)")
        p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
        p.add_argument("--lr", type=float, help="learning rate (default 0.01 for sgd, 0.001 for adam)")
        p.add_argument("--momentum", type=float, default=0.9, help="sgd's momentum, adam's beta1 (default 0.9)")
        p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default 0)")
        p.add_argument("--label-smoothing", type=float, default=0.0,
                       help="share of each label spread over the other classes (default 0)")
        p.add_argument("--schedule", choices=SCHEDULES, default="constant",
                       help="learning-rate schedule; plateau lowers it when the monitored metric stalls")
        p.add_argument("--validation-split", type=float, default=0.1,
                       help="share of the training images held out for validation (default 0.1)")
        p.add_argument("--augment-shift", type=int, default=0, help="random shifts of up to N pixels")
        p.add_argument("--augment-hflip", action="store_true", help="random horizontal flips")
        p.add_argument("--seed", type=int, default=0, help="random seed: the same seed trains the same (default 0)")
        p.add_argument("--limit", type=int, help="train on at most N images (a quick run)")
        p.add_argument("--processes", type=_processes, default="auto", metavar="{1,2,auto}",
                       help="processes per training step: 2 splits each step with a helper process, auto "
                            "(default) when the step is large enough to gain")
        p.add_argument("--adapt-input", action="store_true",
                       help="use the dataset's image shape as the network's input shape")
        p.add_argument("--adapt-output", action="store_true",
                       help="give the Dense layer that makes the output one unit per class of the dataset (from a "
                            "weight file: the last Dense layer, with fresh weights; the others keep theirs)")
        p.add_argument("--freeze", metavar="LAYERS",
                       help="comma-separated layer names to freeze (no updates in training), or backbone: every "
                            "layer before the last Dense one")
        p.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without improvement of --monitor (0: off)")
        p.add_argument("--monitor", choices=MONITORS, default="val_loss",
                       help="what early stopping, the plateau schedule and the best epoch follow")
        p.add_argument("--min-delta", type=float, default=0.0, help="smallest change that counts as an improvement")
        p.add_argument("--no-restore-best", action="store_true",
                       help="after early stopping keep the last epoch's weights, not the best epoch's")
        p.add_argument("--plateau-patience", type=int, default=2,
                       help="--schedule plateau: epochs without improvement before the rate drops")
        p.add_argument("--plateau-factor", type=float, default=0.5,
                       help="--schedule plateau: factor applied to the learning rate")
        p.add_argument("--keep", default=None, metavar="all|best|N",
                       help="checkpoints to keep in a run folder: every epoch (all, the default for train), "
                            "the best and the last (best, the default for sweep), or the last N")

    p = sub.add_parser("train", help="train an architecture on a dataset",
                       description="Train an architecture on a dataset, or fine-tune a trained network: given a "
                                   "weight file, training starts from its weights (--adapt-output gives it a new "
                                   "head for the dataset's classes, --freeze keeps layers as they are).")
    add_settings(p)
    p.add_argument("--out", help="where to save the trained weights (.npz)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="keep the run in this folder: record, a checkpoint per epoch, final weights")
    p.add_argument("--name", help="a label for the run (with --run-dir)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("profile", help="time each layer's forward and backward pass over a few training steps")
    add_settings(p)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after one warm-up step)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("resume", help="continue an interrupted run to its planned number of epochs")
    p.add_argument("run", metavar="DIR", help="the run folder (or a folder holding one interrupted run)")
    p.add_argument("--out", help="also save the final weights here (.npz)")
    p.add_argument("--epochs", type=int, help="train on to this many epochs in all (more than planned)")
    p.add_argument("--data", help="where the run's dataset is now, if it moved (it must be the same data)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="resize image folders")
    p.add_argument("--color", choices=("grayscale", "rgb"), help="colour mode for image folders")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("runs", help="list the runs in a folder")
    p.add_argument("folder", metavar="DIR", help="a folder of runs (or one run)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("sweep", help="train one run per point of a grid or random search")
    add_settings(p, epochs=1, weights=False)
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2|KEY=LOW..HIGH",
                   help="a setting and its values, e.g. lr=0.1,0.03, batch_size=32,64, dropout_1.rate=0.2,0.5, "
                        "conv2d_2.filters=16,32; a range LOW..HIGH with --random (repeatable)")
    p.add_argument("--random", type=int, metavar="N", help="random search: N runs drawn from the axes")
    p.add_argument("--out", required=True, metavar="DIR", help="the sweep's folder (one run folder per point)")
    p.set_defaults(func=cmd_sweep, keep_default="best")

    p = sub.add_parser("evaluate", help="evaluate saved weights on a dataset's test part")
    p.add_argument("weights", help="weight file (.npz, or .safetensors as File > Export writes it)")
    add_data(p)
    p.set_defaults(func=cmd_evaluate)

    from engine.export.cli import add_export_parser
    from engine.onnx_import.cli import add_import_parser

    add_export_parser(sub)
    add_import_parser(sub)
    return parser


def _validate_args(args: argparse.Namespace) -> None:
    """Options the training settings' check does not cover, and the files they name."""
    if args.command in ("train", "resume") and args.out:
        from engine.export.formats import check_output_file

        check_output_file(args.out)  # before training: a misspelt folder must not cost the run
    if hasattr(args, "architecture"):
        _read_start(args)
    random = getattr(args, "random", None)
    if random is not None and random < 1:
        raise EngineError(f"--random must be at least 1, not {random}")
    if hasattr(args, "keep"):
        from engine.runs import Retention

        if args.keep is None:
            args.keep = getattr(args, "keep_default", "all")
        try:
            Retention.parse(args.keep)
        except ValueError as exc:
            raise EngineError(f"--keep: {exc}") from None


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    # One line each (a network that takes most of the memory, skipped files), no source line.
    print(f"cnn-engine: warning: {_one_line(message)}", file=sys.stderr)


def _stdout_closed() -> bool:
    """Whether standard output's reader has closed the pipe; if so, it is pointed at the null device so
    that Python's own flush at exit does not complain a second time."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()  # the write end of a pipe nobody reads any more reports an error
        poller.register(fd, select.POLLOUT)
        closed = any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or stdout is no file
        return False
    if closed:
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return closed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _validate_args(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = args.func(args)
            sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
            return status
    except (EngineError, ValueError) as exc:
        print(f"cnn-engine: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnn-engine: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as exc:
        if _stdout_closed():
            return 1  # the reader (head, less) has gone: stop quietly, as command-line tools do
        print(f"cnn-engine: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cnn-engine: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("cnn-engine: error: out of memory (the computer has too little free memory for this network, "
              "batch size or dataset)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, and said to be one
        print(f"cnn-engine: internal error: {type(exc).__name__}: {_one_line(exc)} (please report this)",
              file=sys.stderr)
        return 70


if __name__ == "__main__":
    raise SystemExit(main())
