"""Suite-wide test settings: Qt runs offscreen, and no test may leave a thread running or a window open.

Two rooms: tests/engine imports no Qt (it runs with numpy, Pillow, threadpoolctl and pytest alone);
tests/studio drives the app with pytest-qt. tests/helpers holds what both use."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Subprocesses (the CLI, benchmarks, the replica) find the project even where it is not installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)

import atexit  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

# Image-folder caches (engine.data.image_cache) go to a folder of this session, never the user's cache.
_CACHE = tempfile.mkdtemp(prefix="cnn-studio-test-cache-")
os.environ["CNN_STUDIO_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)
# And the studio's recovery files (cnn_studio.recovery) to a folder of this session too.
_RECOVERY = tempfile.mkdtemp(prefix="cnn-studio-test-recovery-")
os.environ["CNN_STUDIO_RECOVERY_DIR"] = _RECOVERY
atexit.register(shutil.rmtree, _RECOVERY, True)

try:  # hypothesis is a test extra; tests/engine also runs without it (the fuzz tests then skip)
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - bare environment
    settings = None
if settings is not None:
    # The fuzz tests scale their example counts from the profile's max_examples (tests/helpers/fuzz.py).
    # "ci" (the default, the normal suite): a few hundred per reader, the same examples every run, so a
    # shared machine's suite is repeatable. "long": `pytest -m fuzz --hypothesis-profile=long`, thousands,
    # freshly drawn each run, failures remembered in .hypothesis/.
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
              HealthCheck.large_base_example]
    settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                              suppress_health_check=_quiet, print_blob=True)
    settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=_quiet,
                              print_blob=True)
    settings.load_profile("ci")

# How long a test's threads get to wind down after it ends before they count as left running.
GRACE_SECONDS = 3.0
# Process-wide pools that live as long as the interpreter by design (the engine's kernel threads).
PROCESS_POOL_THREADS = ("cnn-engine-worker",)


def _new_python_threads(before: set[int]) -> list[threading.Thread]:
    # Dummy entries stand for threads Python did not start (e.g. a QThread that ran Python code);
    # they never leave threading's table, so QThreads are checked through the session registry instead.
    return [t for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and not isinstance(t, threading._DummyThread)
            and not (t.daemon and t.name in PROCESS_POOL_THREADS)]


def _live_qthreads() -> list:
    threads = sys.modules.get("cnn_studio.training.threads")
    return threads.live_threads() if threads is not None else []


def _process_events() -> None:
    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        app.processEvents()


def _open_windows() -> tuple[list, list]:
    """(visible top-level windows without a parent, visible windows owned by another widget)."""
    if "PySide6.QtWidgets" not in sys.modules:
        return [], []
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return [], []
    transient = (Qt.WindowType.Popup, Qt.WindowType.ToolTip, Qt.WindowType.SplashScreen)
    owned, orphans = [], []
    for widget in app.topLevelWidgets():
        if not widget.isVisible() or widget.windowType() in transient:
            continue
        (owned if widget.parentWidget() is not None else orphans).append(widget)
    return orphans, owned


@contextlib.contextmanager
def _no_garbage_collection() -> Iterator[None]:
    """A collection while walking Qt's list of windows could delete a Python-owned widget and, with it,
    top-level children (menus, dialogs) further down the list, which then crash when touched: walk and
    close with the collector paused (a full collection here would cost a third of a second per test)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _describe(widget) -> str:
    title = widget.windowTitle()
    return f"{type(widget).__name__}" + (f" {title!r}" if title else "")


@pytest.fixture(autouse=True)
def no_threads_or_windows_left():
    """Fail a test that leaves a thread running or a top-level window open (then clean up after it)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + GRACE_SECONDS
    while (_new_python_threads(before) or _live_qthreads()) and time.monotonic() < deadline:
        _process_events()
        time.sleep(0.01)
    problems = []
    threads = _new_python_threads(before)
    if threads:
        problems.append("threads still running: " + ", ".join(t.name for t in threads))
    qthreads = _live_qthreads()
    if qthreads:
        problems.append("QThreads still running: " + ", ".join(t.objectName() or "QThread" for t in qthreads))
        for thread in qthreads:  # stop them, or the interpreter would abort when they are destroyed
            thread.requestInterruption()
            thread.quit()
            thread.wait(10_000)
    _process_events()
    with _no_garbage_collection():
        orphans, owned = _open_windows()
        if orphans:
            problems.append("windows left open: " + ", ".join(_describe(w) for w in orphans))
        for widget in orphans + owned:  # later tests start from a clean screen either way
            widget.close()
        del orphans, owned
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
