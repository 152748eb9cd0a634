"""One checkpoint file per epoch: a trainer's whole state (engine.training_state) in one ``.npz``.

Keys: ``__format__``, ``__state__`` (JSON text: epoch, step, settings, optimizer counters, random
generator states, schedule, early stopping, epoch metrics, and the names of the arrays), then the
arrays: ``weights/<tensor>`` (parameters and batch-norm statistics, as a weight file names them),
``optimizer/<parameter>/<slot>``, ``best/<tensor>`` (early stopping's best epoch, when it is not
this one) and ``log/batch_loss``, ``log/batch_accuracy``, ``log/batch_lr``. No pickled objects.
The zip format checks each member's CRC on reading, so a damaged file is noticed, not loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine import atomic
from engine.errors import RunError
from engine.training_state import TrainerState

CHECKPOINT_FORMAT = "cnn-studio.checkpoint/1"


class CheckpointError(RunError):
    """A checkpoint file that is missing, truncated, damaged or not a checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: TrainerState) -> Path:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file or none)."""
    path = Path(path)
    meta, arrays = state.to_file_parts()
    contents: dict[str, Any] = {"__format__": np.array(CHECKPOINT_FORMAT), "__state__": np.array(json.dumps(meta))}
    contents.update({name: np.ascontiguousarray(value) for name, value in arrays.items()})
    with atomic.atomic_write(path) as handle:
        np.savez(handle, **contents)
    return path


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The checkpoint's arrays (read lazily) and its state description, the file closed after."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    # The file is opened here, not by np.load, so that a damaged one is closed again too.
    with open(path, "rb") as handle:
        try:
            data = np.load(handle, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise CheckpointError(f"{path.name} is damaged or truncated ({exc})") from None
        with data:
            try:
                if str(data["__format__"]) != CHECKPOINT_FORMAT:
                    raise CheckpointError(f"{path.name} is not a CNN Studio checkpoint")
                meta = json.loads(str(data["__state__"]))
            except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise CheckpointError(f"{path.name} is damaged ({exc})") from None
            try:
                yield data, meta
            except (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise CheckpointError(f"{path.name} is damaged ({type(exc).__name__}: {exc})") from None


def load_checkpoint(path: str | os.PathLike) -> TrainerState:
    """The state in a checkpoint file; CheckpointError (naming the file) if it cannot be trusted."""
    with _opened(Path(path)) as (data, meta):
        arrays = {key: data[key] for key in data.files if not key.startswith("__")}
        return TrainerState.from_file_parts(meta, arrays)


def load_checkpoint_weights(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """(architecture, preprocessing, tensors) of a checkpoint, reading only the weights: what a
    viewer of an epoch needs (see engine.weights.build_model)."""
    with _opened(Path(path)) as (data, meta):
        tensors = {name: data[f"weights/{name}"] for name in meta["weights"]}
        return meta["architecture"], meta["preprocessing"], tensors
