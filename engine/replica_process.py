"""The replica process: ``python -m engine.replica_process``, started by ``engine.replica``.

It holds a copy of the training process's model and, for each step, runs forward and backward on
its share of the batch with the parameters the training process left in shared memory, writing
its gradients, loss and correct count back there. Commands come on stdin, replies go to stdout
(see ``engine.replica_protocol``); it exits when stdin closes, i.e. when the training process
ends, however it ends.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import signal
import sys
import traceback
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from engine import batch_sync, parallel
from engine.layers import Dropout
from engine.losses import softmax_cross_entropy
from engine.model import Model
from engine.replica_protocol import (
    BUILD,
    OK,
    SPIN_SECONDS,
    STEP,
    Layout,
    ProtocolError,
    SharedArrays,
    exchange,
    pack_generator,
    read_exact,
    receive,
    reply_failed,
    unpack_generator,
    write_all,
)


def attach(name: str) -> shared_memory.SharedMemory:
    """Open the training process's block without adopting it: the training process unlinks it.

    Before Python 3.13 every attach registers the block with this process's resource tracker,
    which would unlink it (and warn) when this process exits; registration is skipped instead.
    """
    try:
        return shared_memory.SharedMemory(name, track=False)  # type: ignore[call-arg]
    except TypeError:
        from multiprocessing import resource_tracker

        register = resource_tracker.register
        resource_tracker.register = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            return shared_memory.SharedMemory(name)
        finally:
            resource_tracker.register = register  # type: ignore[assignment]


class Replica:
    """The model copy and the shared arrays it works on."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.model = Model(spec["architecture"], seed=spec["seed"], dtype=spec["layout"]["dtype"])
        # The replica's dropout masks must not repeat the training process's: its generators'
        # states come with each step (the training process keeps them; see replica_generators).
        self.dropouts = [layer for layer in self.model.layers if isinstance(layer, Dropout)]
        for index, layer in enumerate(self.model.layers):
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng([spec["seed"], 1, index])
        self.layout = Layout.from_dict(spec["layout"])
        own = {k: tuple(v.shape) for k, v in self.model.parameters().items()}
        if own != self.layout.shapes:
            raise ValueError(f"the replica's parameters {own} differ from the shared layout {self.layout.shapes}")
        self.block = attach(spec["block"])
        self.shared: SharedArrays = self.layout.arrays(self.block.buf)
        # The layers work on the shared arrays themselves: parameters as the training process
        # wrote them, gradients where it reads them (every layer reads its parameters when it
        # runs and writes its gradients in place). step() checks that and copies if not.
        for name, layer in zip(self.model.names, self.model.layers):
            for key in layer.params:
                shared_param = self.shared.params[f"{name}.{key}"]
                shared_param[...] = layer.params[key]
                layer.params[key] = shared_param
                layer.grads[key] = self.shared.grads[f"{name}.{key}"]

    def step(self, rows: int, label_smoothing: float, weight: float, commands: int, replies: int) -> None:
        """Forward and backward of the shared batch share, the loss's gradient times ``weight``
        (the share's part of the whole batch), so that the training process adds the gradients up."""
        shared = self.shared
        for name, param in self.model.parameters().items():
            if param is not shared.params[name]:  # a layer replaced its array: copy instead
                np.copyto(param, shared.params[name])
        x, y = shared.x[:rows], shared.labels[:rows]
        for words, layer in zip(shared.generators, self.dropouts):
            unpack_generator(words, layer.rng)

        exchanges = itertools.count()

        def swap(mine: np.ndarray) -> np.ndarray:
            return exchange(mine, shared.sync, next(exchanges), 1, replies, commands)

        with np.errstate(over="ignore", invalid="ignore"), batch_sync.exchanged(self.model, swap):
            logits = self.model.forward_logits(x, training=True)
            loss, grad, probs = softmax_cross_entropy(logits, y, label_smoothing)
            grad *= grad.dtype.type(weight)
            self.model.backward(grad)
        for name, g in self.model.gradients().items():
            if g is not shared.grads[name]:
                np.copyto(shared.grads[name], g)
        shared.results[0] = loss
        shared.results[1] = np.count_nonzero(probs.argmax(axis=1) == y)
        for words, layer in zip(shared.generators, self.dropouts):
            pack_generator(layer.rng, words)

    def close(self) -> None:
        # Views of the block must be gone before it can close; a view kept alive elsewhere only
        # keeps this process's mapping until it exits (the training process unlinks the block).
        del self.shared, self.model
        try:
            self.block.close()
        except BufferError:
            gc.collect()
            with contextlib.suppress(BufferError):
                self.block.close()


def serve(commands: int, replies: int) -> None:
    """Answer commands until the training process closes the pipe (or stops reading replies)."""
    replica: Replica | None = None
    try:
        while True:
            try:
                # The next step usually follows within milliseconds (see SPIN_SECONDS).
                command, number, value, weight = receive(commands, SPIN_SECONDS)
            except ProtocolError:
                return
            try:
                if command == BUILD:
                    spec = json.loads(read_exact(commands, number))
                    if replica is not None:
                        replica.close()
                        replica = None
                    replica = Replica(spec)
                elif command == STEP:
                    if replica is None:
                        raise RuntimeError("a step came before the model")
                    replica.step(number, value, weight, commands, replies)
                else:
                    raise RuntimeError(f"unknown command {command}")
                write_all(replies, OK)
            except (ProtocolError, BrokenPipeError):
                return  # the training process went away, or gave this replica up, mid-command
            except Exception as error:  # reported to the training process, which carries on without us
                # The message becomes the user's one-line warning; the traceback goes to stderr.
                traceback.print_exc()
                try:
                    reply_failed(replies, f"{type(error).__name__}: {error}")
                except BrokenPipeError:
                    return
    finally:
        if replica is not None:
            replica.close()


def main() -> None:
    # The other cores are the training process's: one thread here (BLAS was limited by the
    # environment before numpy loaded).
    parallel.set_num_threads(1)
    # Ctrl+C in a terminal reaches the whole process group: the training process decides, and
    # this one ends when its stdin closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies get stdout's pipe to themselves: anything printed goes to stderr instead.
    replies = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(sys.stdin.fileno(), replies)


if __name__ == "__main__":
    main()
