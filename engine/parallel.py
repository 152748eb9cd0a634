"""The engine's worker threads: heavy kernels split their batch across the CPU cores.

numpy's element-wise operations run on one core, and only its BLAS is multi-threaded; a laptop's
second core would sit idle during every copy, mask and pooling pass. So the engine runs its large
kernels itself on a few threads (numpy releases the GIL inside its loops), each thread taking a
contiguous range of images and calling single-threaded BLAS. BLAS's own thread pool is then set to
one thread (through threadpoolctl): two pools on the same cores would fight, and BLAS threads
busy-wait after every call.

Without threadpoolctl the engine stays on one thread and leaves BLAS's threads as they are. The
thread count comes from ``set_num_threads``, else the CNN_ENGINE_THREADS environment variable, else
the cores this process may use (at most 8).
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

Result = TypeVar("Result")

MAX_DEFAULT_THREADS = 8


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def positive_setting(variable: str) -> int | None:
    """The positive whole number environment ``variable`` holds, or None (unset or anything else)."""
    configured = os.environ.get(variable, "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else None


def _default_threads() -> int:
    return positive_setting("CNN_ENGINE_THREADS") or min(_usable_cores(), MAX_DEFAULT_THREADS)


def _single_thread_blas() -> bool:
    """Limit numpy's BLAS to one thread per call; False when that is not possible."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(1, user_api="blas")
    return True


class _Helper:
    """One daemon thread running (function, start, stop) tasks from its own queue."""

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue[tuple[contextvars.Context, Callable[[int, int, int], Any], int, int, int]
                                      | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="cnn-engine-worker", daemon=True).start()

    def _serve(self) -> None:
        while (task := self.tasks.get()) is not None:
            context, work, part, start, stop = task
            try:
                self.results.put((True, context.run(work, part, start, stop)))
            except BaseException as error:  # handed to the caller, which re-raises it
                self.results.put((False, error))


class _Pool:
    """Helper threads plus the calling thread. Helpers are started once, when the engine is imported
    (a long-running process then never sees threads come and go); ``threads`` says how many of
    them kernels use."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.pid = os.getpid()
        # At least one helper even on one core, so that asking for two threads later starts none.
        self.helpers = [_Helper() for _ in range(max(threads, 2) - 1)]
        self.blas_checked = False
        # One caller at a time (e.g. the training thread); others run their kernels serially.
        self.busy = threading.Lock()

    def use(self, threads: int) -> None:
        self.helpers += [_Helper() for _ in range(threads - 1 - len(self.helpers))]
        self.threads = threads
        self.blas_checked = False

    def ready_threads(self) -> int:
        """Threads usable now: BLAS must first be made single-threaded, else the engine uses one."""
        if not self.blas_checked:
            self.blas_checked = True
            if not _single_thread_blas():
                self.threads = 1
        return self.threads


_lock = threading.Lock()
_pool = _Pool(_default_threads())
# Set while this context's kernels must stay on the calling thread (see ``serial``).
_serial: contextvars.ContextVar[bool] = contextvars.ContextVar("cnn_engine_serial", default=False)


def set_num_threads(threads: int) -> None:
    """Use ``threads`` engine threads from now on (1 = everything in the calling thread)."""
    if threads < 1:
        raise ValueError(f"thread count must be at least 1, not {threads}")
    with _lock:
        _get_pool().use(int(threads))


def get_num_threads() -> int:
    """The number of threads the engine's kernels use."""
    with _lock:
        return _get_pool().ready_threads()


class serial:
    """``with serial():`` runs the engine's kernels on the calling thread only, e.g. while another
    process (a model replica) has the other cores. Cheaper than ``set_num_threads``, which
    re-checks BLAS's thread pools, and limited to the calling context."""

    def __enter__(self) -> None:
        # BLAS is limited to one thread on first use of the pool (see ready_threads), which kernels
        # inside serial() never reach: a program that starts in serial() would otherwise run BLAS
        # on every core, its threads spinning beside the other process this context leaves them to.
        with _lock:
            _get_pool().ready_threads()
        self._token = _serial.set(True)

    def __exit__(self, *exc: object) -> None:
        _serial.reset(self._token)


def is_serial() -> bool:
    """Whether kernels run on the calling thread alone here (inside ``serial``, or one thread)."""
    return _serial.get() or _pool.threads <= 1


def _get_pool() -> _Pool:
    global _pool, _forked
    # A forked child inherits the pool object but not its threads. os.getpid is a system call
    # (paid on every kernel call), so where the platform reports forks, a flag says when to look.
    if (_forked or not hasattr(os, "register_at_fork")) and _pool.pid != os.getpid():
        _pool = _Pool(_pool.threads)
    _forked = False
    return _pool


_forked = False


def _mark_forked() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) as at most ``parts`` contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def parallel_for(n: int, work: Callable[[int, int, int], Result], min_items: int = 1) -> list[Result]:
    """Run ``work(part, start, stop)`` over [0, n) split into one range per thread; results in order.

    ``part`` numbers the ranges from 0 (for per-thread scratch). Ranges hold at least
    ``min_items`` items, so small jobs stay on the calling thread. The calling thread runs the
    first range itself; helpers run theirs in a copy of the caller's context, so numpy's
    ``errstate`` applies to them too. An exception in any range is re-raised here after all
    ranges finished.
    """
    if _serial.get():
        return [work(0, 0, n)] if n > 0 else []
    with _lock:
        pool = _get_pool()
        threads = pool.ready_threads()
    parts = min(threads, max(1, n // max(min_items, 1)))
    if parts <= 1 or not pool.busy.acquire(blocking=False):
        return [work(0, 0, n)] if n > 0 else []
    try:
        ranges = split(n, parts)
        helpers = pool.helpers[: len(ranges) - 1]
        for helper, (part, (start, stop)) in zip(helpers, enumerate(ranges[1:], start=1)):
            # The caller's context (e.g. numpy's errstate) holds in the helper too.
            helper.tasks.put((contextvars.copy_context(), work, part, start, stop))
        results: list[Any] = [None] * len(ranges)
        failure: BaseException | None = None
        try:
            results[0] = work(0, *ranges[0])
        except BaseException as error:
            failure = error
        for i, helper in enumerate(helpers, start=1):
            ok, value = helper.results.get()
            if ok:
                results[i] = value
            elif failure is None:
                failure = value
        if failure is not None:
            raise failure
        return results
    finally:
        pool.busy.release()
