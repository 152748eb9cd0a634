"""Training steps split across two processes: this one and a replica of the model in another.

numpy releases the GIL inside each operation but takes it back between them, so the engine's
threads spend much of a step waiting for each other (two threads gain far less than a second
core could give). A second process has no GIL to share: it holds a copy of the model and, each
step, runs forward and backward on the second half of the batch while this process runs the
first half on one thread. Parameters go to it and its gradients come back through one block of
shared memory (see ``engine.replica_protocol``); a step costs two pipe messages and a few
copies of the parameters' size. Each half's loss gradient is weighted by its share of the batch,
so the two halves' gradients add up to exactly the whole batch's, up to float rounding.

Batch normalisation must see the whole batch: for the length of a split step its layers swap
their per-channel sums with the other process (``engine.batch_sync``; one more pipe message each
way per batch-norm layer and direction), so the statistics, and the gradients through them, are
the whole batch's as well.

One replica process serves the whole program (started on first use, reused by every model);
if it cannot start or stops, steps run in this process again and nothing is lost.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import subprocess
import sys
import threading
import warnings
import weakref
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from engine import batch_sync, parallel
from engine.kernels import winograd
from engine.layers import Dropout
from engine.layers.normalization import BatchNorm
from engine.losses import softmax_cross_entropy
from engine.model import Model
from engine.replica_protocol import (
    BUILD,
    SPIN_SECONDS,
    STEP,
    Layout,
    ProtocolError,
    SharedArrays,
    exchange,
    pack_generator,
    read_reply,
    send,
    unpack_generator,
)

# With processes "auto", a step is split only when it has at least this many multiply-adds or
# this many layer outputs (forward, whole batch): below both, the pipe messages and copies cost
# more than the second core saves (benchmarks/README.md: the networks measured on each side).
MIN_STEP_MACS = 1 << 26
MIN_STEP_VALUES = 1 << 18
MIN_ROWS = 8  # each process's share of the batch, at least
# A replica that has not answered for this long is given up (a step takes milliseconds to seconds).
REPLY_TIMEOUT = 300.0
_ENVIRONMENT = "CNN_ENGINE_PROCESSES"  # "1": processes "auto" means one process


# How the replica process is started (tests start one with faults of their own).
COMMAND = (sys.executable, "-m", "engine.replica_process")
# glibc hands large freed blocks back to the system: arrays from 128 KB up get a mapping of their
# own until its dynamic threshold has risen, and the heap's free top is trimmed. So the fresh
# arrays of every replica step fault their pages in again, which is dear on virtual machines. The
# replica keeps the memory it has used instead (its peak stays the same): ResNet-8's split step
# took 45 -> 42 ms on a 2-core virtual machine, its waits at the batch-norm exchanges 4.5 -> 1.4
# ms (benchmarks/README.md). Other C libraries ignore the variables; values already set are kept.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


class ReplicaError(RuntimeError):
    """The replica process could not start, failed a command or stopped."""


def sync_values(model: Model) -> int:
    """Room in each sync slot for batch_sync's largest exchange: a count and three vectors per
    channel of the widest batch-norm layer."""
    return 1 + 3 * max((layer.params["gamma"].size for layer in model.layers if isinstance(layer, BatchNorm)),
                       default=0)


def wanted(model: Model, batch_size: int, always: bool = False) -> bool:
    """Whether steps of ``model`` at ``batch_size`` are split with a replica process: whenever they
    can be with ``always``, else only when they are worth it (and the environment allows)."""
    if _disabled.is_set():
        return False
    # Batch norm shares its batch sums between the processes (batch_sync); any other layer with
    # state could not.
    if any(layer.state and not isinstance(layer, BatchNorm) for layer in model.layers):
        return False
    if always:
        return batch_size >= 2
    if os.environ.get(_ENVIRONMENT, "").strip() == "1":
        return False
    analysis = model.analysis
    if batch_size < 2 * MIN_ROWS or (analysis.macs * batch_size < MIN_STEP_MACS
                                     and analysis.activation_bytes // 4 * batch_size < MIN_STEP_VALUES):
        return False
    return parallel.get_num_threads() >= 2


class ReplicaProcess:
    """The replica process, its pipes and the shared block of the model it holds."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # One thread in the replica: BLAS limited before numpy loads, the engine's own threads off.
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CNN_ENGINE_THREADS="1")
        # Which convolutions take Winograd's path is decided from this machine's speed: given, not
        # measured again, so that both halves of a step take the same path.
        env[winograd.ENVIRONMENT] = str(winograd.machine_min_channels())
        for name, value in KEEP_FREED_MEMORY.items():
            env.setdefault(name, value)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            # Its own process group: Ctrl+C in a terminal signals the training process alone, which
            # decides (the replica, started mid-interrupt, would otherwise print a traceback).
            group = {} if sys.platform == "win32" else {"process_group": 0}
            self.process = subprocess.Popen(list(COMMAND), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                            bufsize=0, **group)
        except OSError as error:
            raise ReplicaError(f"the replica process did not start: {error}") from error
        assert self.process.stdin is not None and self.process.stdout is not None
        self.commands = self.process.stdin.fileno()
        self.replies = self.process.stdout.fileno()
        self.block: shared_memory.SharedMemory | None = None
        self.shared: SharedArrays | None = None
        # The model the replica copies: its architecture's key, the last model object, and rows.
        self.model_key: tuple[Any, ...] | None = None
        self.model_ref: weakref.ref[Model] | None = None
        self.capacity = 0
        # A step was sent and its reply not read (the wait was interrupted): the pipe is out of step.
        self.in_flight = False
        self.exchanges = itertools.count()  # batch_sync's exchanges in this step, as the replica counts them

    # -- commands ---------------------------------------------------------------------------------
    def _check(self, what: str, spin: float = 0.0) -> None:
        try:
            message = read_reply(self.replies, timeout=REPLY_TIMEOUT, spin=spin)
        except (ProtocolError, OSError) as error:
            raise ReplicaError(f"the replica process stopped {what} ({error}; exit code "
                               f"{self.process.poll()})") from error
        if message is not None:
            raise ReplicaError(f"the replica process failed {what}: {message}")

    def hold(self, model: Model, rows: int) -> SharedArrays:
        """Make the replica a copy of ``model``'s architecture with room for ``rows`` images."""
        if self.model_ref is not None and self.model_ref() is model and self.capacity >= rows:
            assert self.shared is not None
            return self.shared  # the same model as last step (its architecture never changes)
        layout_key = (json.dumps(model.architecture, sort_keys=True), model.dtype.str, model.seed)
        if self.model_key == layout_key and self.capacity >= rows:
            assert self.shared is not None
            self.model_ref = weakref.ref(model)
            return self.shared
        layout = Layout({k: v.shape for k, v in model.parameters().items()}, model.dtype, model.input_shape, rows,
                        sync_values(model), len(replica_generators(model)))
        self._release_block()
        self.block = shared_memory.SharedMemory(create=True, size=layout.nbytes)
        self.shared = layout.arrays(self.block.buf)
        spec = json.dumps({"architecture": model.architecture, "seed": model.seed, "layout": layout.to_dict(),
                           "block": self.block.name}).encode()
        self.model_key, self.model_ref, self.capacity = None, None, 0
        try:
            send(self.commands, BUILD, len(spec), payload=spec)
        except OSError as error:
            raise ReplicaError("the replica process stopped before it got the model") from error
        self._check("while building the model")
        self.model_key, self.model_ref, self.capacity = layout_key, weakref.ref(model), rows
        return self.shared

    def start_step(self, rows: int, label_smoothing: float, weight: float) -> None:
        """Start forward and backward of the shared batch share; its gradients come back times ``weight``."""
        try:
            send(self.commands, STEP, rows, (label_smoothing, weight))
        except OSError as error:
            raise ReplicaError("the replica process stopped before a step") from error
        self.in_flight = True
        self.exchanges = itertools.count()

    def exchange(self, mine: np.ndarray) -> np.ndarray:
        """Swap batch-norm sums with the replica in the middle of a step (see batch_sync)."""
        assert self.shared is not None
        try:
            return exchange(mine, self.shared.sync, next(self.exchanges), 0, self.commands, self.replies,
                            REPLY_TIMEOUT)
        except (ProtocolError, OSError) as error:
            raise ReplicaError(f"the replica process stopped during a training step ({error}; exit code "
                               f"{self.process.poll()})") from error
        except RuntimeError as error:
            raise ReplicaError(f"the replica process failed during a training step: {error}") from error

    def finish_step(self) -> tuple[float, float]:
        """Wait for the step; returns the replica's (loss, correct count)."""
        self._check("during a training step", SPIN_SECONDS)
        self.in_flight = False
        assert self.shared is not None
        return float(self.shared.results[0]), float(self.shared.results[1])

    # -- lifetime ---------------------------------------------------------------------------------
    def _release_block(self) -> None:
        self.shared = None
        if self.block is not None:
            self.block.close()
            self.block.unlink()
            self.block = None

    def peak_rss_mb(self) -> float | None:
        """The replica's peak resident memory in MB, where /proc tells (Linux)."""
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._release_block()


_lock = threading.Lock()  # one step at a time uses the replica; others run in-process
_replica: ReplicaProcess | None = None
_disabled = threading.Event()  # set after the replica failed: this program then trains in-process


def _get() -> ReplicaProcess:
    global _replica
    if _replica is not None and _replica.in_flight:
        # An interrupted step (e.g. Ctrl+C while waiting) left a reply unread: start afresh.
        _replica.close()
        _replica = None
    if _replica is None:
        _replica = ReplicaProcess()
    elif _replica.process.poll() is not None:
        raise ReplicaError(f"the replica process stopped (exit code {_replica.process.returncode})")
    return _replica


def shutdown() -> None:
    """Stop the replica process (it is started again when next needed)."""
    global _replica
    with _lock:
        if _replica is not None:
            _replica.close()
            _replica = None


atexit.register(shutdown)


def peak_rss_mb() -> float | None:
    """The replica process's peak resident memory in MB, or None (none running, or unknown)."""
    return None if _replica is None else _replica.peak_rss_mb()


def train_gradients(model: Model, x: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0,
                    always: bool = False) -> tuple[float, float] | None:
    """Forward and backward of one training batch, split with the replica process.

    Fills ``model``'s gradients with the whole batch's and returns (loss, accuracy), as a
    one-process step would; returns None, having done nothing, when the replica is busy or the
    split was not wanted (see ``wanted``; the caller then runs the step itself).
    """
    if not wanted(model, len(x), always) or not _lock.acquire(blocking=False):
        return None
    # Batch norm's running statistics, as they were: a failed split step must leave no trace.
    state = {name: value.copy() for name, value in model.state().items()}
    try:
        return _split_step(model, x, y, label_smoothing)
    except ReplicaError as error:
        # Train on in one process; the replica is not tried again in this program.
        for name, value in model.state().items():
            value[...] = state[name]
        _disabled.set()
        global _replica
        if _replica is not None:
            _replica.close()
            _replica = None
        warnings.warn(f"{error}; training goes on in one process", RuntimeWarning, stacklevel=2)
        return None
    finally:
        _lock.release()


def _split_step(model: Model, x: np.ndarray, y: np.ndarray, label_smoothing: float) -> tuple[float, float]:
    n = len(x)
    own = n // 2
    rows = n - own
    replica = _get()
    shared = replica.hold(model, rows)
    params = model.parameters()
    for name, param in params.items():
        np.copyto(shared.params[name], param)
    np.copyto(shared.x[:rows], x[own:], casting="same_kind")
    shared.labels[:rows] = y[own:]
    generators = list(replica_generators(model).values())
    for words, rng in zip(shared.generators, generators):
        pack_generator(rng, words)
    replica.start_step(rows, label_smoothing, rows / n)
    # If this half fails, the replica stays in flight (it may be waiting for batch-norm sums):
    # the next step replaces it (see _get).
    with parallel.serial(), np.errstate(over="ignore", invalid="ignore"), batch_sync.exchanged(model, replica.exchange):
        logits = model.forward_logits(x[:own], training=True)
        loss, grad, probs = softmax_cross_entropy(logits, y[:own], label_smoothing)
        # Each half's loss is its own mean: weighted by its share of the batch, the two halves'
        # gradients (and batch norm's sums over both) add up to the whole batch's.
        grad *= grad.dtype.type(own / n)
        model.backward(grad)
    correct = float(np.count_nonzero(probs.argmax(axis=1) == y[:own]))
    other_loss, other_correct = replica.finish_step()
    for words, rng in zip(shared.generators, generators):
        unpack_generator(words, rng)
    for name, g in model.trainable_gradients().items():  # a frozen layer's are not computed
        g += shared.grads[name]
    return (own * loss + rows * other_loss) / n, (correct + other_correct) / n


# The generators the replica's Dropout layers draw from, kept here per model: each split step
# lends their states to the replica and takes them back advanced, so a model's checkpoint (see
# generator_states) holds them however often the replica process is replaced.
_generators: weakref.WeakKeyDictionary[Model, dict[str, np.random.Generator]] = weakref.WeakKeyDictionary()


def replica_generators(model: Model) -> dict[str, np.random.Generator]:
    """The replica's dropout generators for ``model``, by layer name, in layer order. Seeded apart
    from the model's own, so the two halves of a batch never draw the same masks."""
    generators = _generators.get(model)
    if generators is None:
        layers = enumerate(zip(model.names, model.layers))
        generators = {name: np.random.default_rng([model.seed, 1, index])
                      for index, (name, layer) in layers if isinstance(layer, Dropout)}
        _generators[model] = generators
    return generators


def generator_states(model: Model) -> dict[str, Any]:
    """The states of the replica's dropout generators for ``model`` (JSON-safe), by layer name."""
    return {name: json.loads(json.dumps(rng.bit_generator.state)) for name, rng in replica_generators(model).items()}


def set_generator_states(model: Model, states: dict[str, Any]) -> None:
    """Give the replica's dropout generators for ``model`` these states (see generator_states)."""
    for name, rng in replica_generators(model).items():
        if name in states:
            rng.bit_generator.state = states[name]
