"""Route Python warnings raised on a worker thread to that worker, instead of stderr.

``warnings.catch_warnings`` swaps module-wide state and is unsafe when two threads use it at once,
so the worker threads share one hook on ``warnings.showwarning`` that dispatches by thread id.
Warnings from other threads (the GUI thread, pytest) go on to whatever handler was there before.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

WarningSink = Callable[[str], None]

_lock = threading.Lock()
_sinks: dict[int, WarningSink] = {}
_previous: Any = None


def _dispatch(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              file: Any = None, line: str | None = None) -> None:
    sink = _sinks.get(threading.get_ident())
    if sink is not None:
        sink(f"{category.__name__}: {message}")
        return
    previous = _previous
    if previous is not None:
        previous(message, category, filename, lineno, file, line)


@contextmanager
def warnings_to(sink: WarningSink) -> Iterator[None]:
    """While active, warnings raised on the calling thread are passed to ``sink`` as one-line text."""
    global _previous
    ident = threading.get_ident()
    with _lock:
        if warnings.showwarning is not _dispatch:
            _previous = warnings.showwarning
            warnings.showwarning = _dispatch
        _sinks[ident] = sink
    try:
        yield
    finally:
        with _lock:
            _sinks.pop(ident, None)
            if not _sinks and warnings.showwarning is _dispatch:
                warnings.showwarning = _previous
                _previous = None


def forget_shown_warnings(prefixes: tuple[str, ...] = ("engine", "cnn_studio")) -> None:
    """Forget which warnings the modules under ``prefixes`` have shown, so each shows again.

    Python keeps a ``__warningregistry__`` per module and, by default, shows a given warning from a
    given line only once per process: a dataset loaded a second time would skip its bad files silently.
    """
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in prefixes:
            registry = getattr(module, "__warningregistry__", None)
            if isinstance(registry, dict):
                registry.clear()
