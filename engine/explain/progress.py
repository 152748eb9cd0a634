"""How long computations report progress and learn that they are no longer wanted.

Every function of ``engine.explain`` that may take a while accepts ``progress(fraction)`` (called
with 0..1 as work is done) and ``cancelled()`` (polled between pieces of work; when it returns
True the function raises ``Cancelled`` and leaves nothing half-done behind). Both are optional, so
the same functions serve a script, the command line and the studio's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float], None]
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """A computation stopped because ``cancelled()`` said it was no longer wanted."""


class Reporter:
    """Calls ``progress`` with the share of ``total`` steps done; raises Cancelled when asked to stop."""

    def __init__(self, total: int, progress: Progress | None = None, cancelled: CancelCheck | None = None,
                 start: float = 0.0, end: float = 1.0) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self._progress = progress
        self._cancelled = cancelled
        self._start, self._span = float(start), float(end) - float(start)

    def check(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise Cancelled("the computation was cancelled")

    def step(self, count: int = 1) -> None:
        """``count`` more steps are done: report, then stop here if the work is no longer wanted."""
        self.done = min(self.total, self.done + count)
        if self._progress is not None:
            self._progress(self._start + self._span * self.done / self.total)
        self.check()

    def part(self, start: float, end: float, total: int) -> Reporter:
        """A reporter for a piece of the work covering ``start``..``end`` of this one's range."""
        return Reporter(total, self._progress, self._cancelled, self._start + self._span * start,
                        self._start + self._span * end)
