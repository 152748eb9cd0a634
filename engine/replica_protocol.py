"""What a training process and its replica process exchange: messages over a pipe and one
shared-memory block.

Messages are a fixed header (command, three numbers) with an optional payload; replies are one
byte, ``OK`` or ``FAILED`` followed by an error message. The shared block holds, in the model's
dtype: the parameters (written by the training process before each step), the replica's
gradients, already weighted by its share of the batch (written by the replica), the replica's
share of the batch; then its labels (int64), two float64 results (the share's loss and its
count of correct predictions), the batch-norm sync slots, and the states of the replica's dropout
generators (uint64 words, see ``pack_generator``: the training process owns them and lends them
for each step, so its checkpoints hold every random state of a run). Both processes build the
same ``Layout`` from the same model description, so each sees the same named arrays at the same
offsets.

Why the replica's stdin and stdout rather than a ``multiprocessing`` Pipe: the replica is a
plain ``python -m`` process, so that its BLAS is limited to one thread before numpy loads and the
caller's ``__main__`` (the studio, with Qt) is not imported again, as ``spawn`` would; a forked
child of a threaded GUI process is not safe. A Connection for such a process needs a socket
passed by descriptor (POSIX only) or a listener whose accept cannot time out (a replica dying at
start would hang training), where the standard pipes work everywhere.
"""

from __future__ import annotations

import os
import select
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

BUILD, STEP = 1, 2  # commands
OK, FAILED = b"K", b"E"  # replies
SYNC = b"S"  # either way, during a step: my batch-norm sums are in my sync slot (see batch_sync)
# command, an integer (rows or payload bytes), two floats (label smoothing, gradient weight)
_HEADER = struct.Struct("<qqdd")
_LENGTH = struct.Struct("<q")
# A process waiting for the other's word inside a step polls for this long before it blocks in
# read(). A blocked process's core goes idle, and on a virtual machine the work after waking ran
# slower (ResNet-8's split step: the training process's own half 44 ms when it polled, 50 ms when
# it blocked at each batch-norm exchange): waits inside a step are mostly shorter than this.
# OpenMP's threads poll after their tasks for the same reason.
SPIN_SECONDS = 0.003


class ProtocolError(ConnectionError):
    """The other process closed its end of the pipe (it stopped or crashed)."""


def _readable(fd: int, timeout: float) -> bool:
    """Whether the pipe has data (or was closed) within ``timeout`` seconds. select.poll where there
    is one: select.select cannot watch descriptors numbered 1024 or more, which a studio with many
    files open can reach."""
    if hasattr(select, "poll"):
        watch = select.poll()
        watch.register(fd, select.POLLIN)
        return bool(watch.poll(max(0, int(timeout * 1000 + 0.999))))
    return bool(select.select([fd], [], [], timeout)[0])


def poll(fd: int, seconds: float) -> None:
    """Return once the pipe has data or after ``seconds`` of busy polling (POSIX; elsewhere at once)."""
    if seconds <= 0 or os.name != "posix":
        return
    deadline = time.perf_counter() + seconds
    while not _readable(fd, 0) and time.perf_counter() < deadline:
        pass


def read_exact(fd: int, size: int, timeout: float | None = None, spin: float = 0.0) -> bytes:
    """``size`` bytes from the pipe; ProtocolError if it closes first or (POSIX, with ``timeout``)
    if nothing comes for ``timeout`` seconds. ``spin``: seconds to poll before blocking."""
    poll(fd, spin)
    data = b""
    while len(data) < size:
        if timeout is not None and os.name == "posix" and not _readable(fd, timeout):
            raise ProtocolError(f"no answer within {timeout:g} s")
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise ProtocolError("the pipe was closed")
        data += chunk
    return data


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, command: int, number: int = 0, values: tuple[float, float] = (0.0, 0.0),
         payload: bytes = b"") -> None:
    write_all(fd, _HEADER.pack(command, number, *values) + payload)


def receive(fd: int, spin: float = 0.0) -> tuple[int, int, float, float]:
    return _HEADER.unpack(read_exact(fd, _HEADER.size, spin=spin))


def reply_failed(fd: int, message: str) -> None:
    data = message.encode("utf-8", "replace")
    write_all(fd, FAILED + _LENGTH.pack(len(data)) + data)


def read_reply(fd: int, expected: bytes = OK, timeout: float | None = None, spin: float = 0.0) -> str | None:
    """None for the ``expected`` byte, else the error message the replica sent (``spin``: see read_exact)."""
    status = read_exact(fd, 1, timeout, spin)
    if status == expected:
        return None
    if status != FAILED:
        return f"the replica process is out of step (sent {status!r}, expected {expected!r})"
    (size,) = _LENGTH.unpack(read_exact(fd, _LENGTH.size))
    return read_exact(fd, size).decode("utf-8", "replace")


ALIGN = 64  # each region starts on a cache line
GENERATOR_WORDS = 6  # a PCG64 state: state and increment (128 bits each), has_uint32, uinteger
_LOW = (1 << 64) - 1


def pack_generator(rng: np.random.Generator, out: np.ndarray) -> None:
    """Write a PCG64 generator's whole state into ``out`` (GENERATOR_WORDS uint64)."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators travel between processes, not {state['bit_generator']}")
    s, inc = state["state"]["state"], state["state"]["inc"]
    out[:] = (s & _LOW, s >> 64, inc & _LOW, inc >> 64, state["has_uint32"], state["uinteger"])


def unpack_generator(words: np.ndarray, rng: np.random.Generator) -> None:
    """Give ``rng`` (PCG64) the state pack_generator wrote."""
    w = [int(v) for v in words]
    state = {"state": w[0] | w[1] << 64, "inc": w[2] | w[3] << 64}
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": state, "has_uint32": w[4], "uinteger": w[5]}


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@dataclass(frozen=True)
class SharedArrays:
    """Views of one shared block: parameters and gradients by name, the batch share (max_rows,
    *input_shape), its labels (max_rows,), the results (loss, correct count) and float64 slots
    for batch-norm sums, (2, 2, sync_values): two sets used in turn, each with the training
    process's slot, then the replica's (see ``exchange``)."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    x: np.ndarray
    labels: np.ndarray
    results: np.ndarray
    sync: np.ndarray
    generators: np.ndarray  # (generators, GENERATOR_WORDS) uint64


class Layout:
    """Where each array lies in the block, from the parameters' names and shapes."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype: Any, input_shape: tuple[int, ...],
                 max_rows: int, sync_values: int = 0, generators: int = 0) -> None:
        self.shapes = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
        self.dtype = np.dtype(dtype)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.max_rows = int(max_rows)
        self.sync_values = int(sync_values)
        self.generators = int(generators)
        offset = 0
        self._params: dict[str, int] = {}
        self._grads: dict[str, int] = {}
        for table in (self._params, self._grads):
            for name, shape in self.shapes.items():
                table[name] = offset
                offset = _aligned(offset + int(np.prod(shape)) * self.dtype.itemsize)
        self._x = offset
        offset = _aligned(offset + self.max_rows * int(np.prod(self.input_shape)) * self.dtype.itemsize)
        self._labels = offset
        offset = _aligned(offset + self.max_rows * 8)
        self._results = offset
        self._sync = _aligned(offset + 2 * 8)
        self._generators = _aligned(self._sync + 4 * self.sync_values * 8)
        self.nbytes = self._generators + self.generators * GENERATOR_WORDS * 8

    def to_dict(self) -> dict[str, Any]:
        return {"shapes": {k: list(v) for k, v in self.shapes.items()}, "dtype": self.dtype.str,
                "input_shape": list(self.input_shape), "max_rows": self.max_rows, "sync_values": self.sync_values,
                "generators": self.generators}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Layout:
        return cls({k: tuple(v) for k, v in d["shapes"].items()}, d["dtype"], tuple(d["input_shape"]), d["max_rows"],
                   d["sync_values"], d.get("generators", 0))

    def arrays(self, buffer: Any) -> SharedArrays:
        def at(offset: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.ndarray(shape, dtype, buffer=buffer, offset=offset)

        return SharedArrays(
            params={k: at(o, self.shapes[k], self.dtype) for k, o in self._params.items()},
            grads={k: at(o, self.shapes[k], self.dtype) for k, o in self._grads.items()},
            x=at(self._x, (self.max_rows, *self.input_shape), self.dtype),
            labels=at(self._labels, (self.max_rows,), np.int64),
            results=at(self._results, (2,), np.float64),
            sync=at(self._sync, (2, 2, self.sync_values), np.float64),
            generators=at(self._generators, (self.generators, GENERATOR_WORDS), np.uint64),
        )


def exchange(mine: np.ndarray, slots: np.ndarray, count: int, own: int, send_fd: int, receive_fd: int,
             timeout: float | None = None) -> np.ndarray:
    """The ``count``-th exchange of a step: put ``mine`` in slot ``own`` of one set of ``slots``,
    tell the other process, wait for its word and return a copy of its slot. Raises
    ProtocolError if the pipe closes, RuntimeError with the other process's message if it failed.

    The sets alternate: once the other's word has come, this process may go on to its next
    exchange while the other is still copying this one's slot, so the next write goes to the
    other set, and the one after that only follows the other's next word, sent after its copy.
    """
    slot = slots[count % 2]
    slot[own, : len(mine)] = mine
    write_all(send_fd, SYNC)
    message = read_reply(receive_fd, SYNC, timeout, SPIN_SECONDS)
    if message is not None:
        raise RuntimeError(message)
    return slot[1 - own, : len(mine)].copy()
