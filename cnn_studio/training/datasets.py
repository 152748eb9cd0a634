"""DatasetSource: the dataset the project trains on, loaded in the background and kept while it stays chosen."""

from __future__ import annotations

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cnn_studio.training.dataset_loader import DatasetLoader
from cnn_studio.training.threads import new_thread
from engine.data import Dataset


class DatasetSource(QObject):
    """Loads datasets (a known name or a path) on short-lived worker threads; holds the latest one loaded.

    Only the latest request counts: a load that finishes after another dataset was asked for is dropped.

    Signals (GUI thread):
      loading(ref)            a load started
      loaded(ref, Dataset)    the latest request loaded; ``warnings`` then lists what the loader said
      failed(ref, message)    the latest request failed, in one line
      cancelled(ref)          the latest request was cancelled (``abort``)
      progressed(ref, stage, done, total)   how far the latest request is (image folders)
      changed()               ``current`` is another dataset
    """

    loading = Signal(str)
    loaded = Signal(str, object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    progressed = Signal(str, str, int, int)
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._loads: list[tuple[QThread, DatasetLoader]] = []
        self._current: Dataset | None = None
        self._current_ref: str | None = None
        self._requested: str | None = None
        self.warnings: tuple[str, ...] = ()  # what the loader said about the current dataset (skipped files)

    @property
    def current(self) -> Dataset | None:
        return self._current

    @property
    def current_ref(self) -> str | None:
        """The name or path ``current`` was loaded from."""
        return self._current_ref

    @property
    def loading_ref(self) -> str | None:
        """The name or path being loaded now (None when no load is pending)."""
        return self._requested

    def has(self, ref: str) -> bool:
        """True when ``ref`` is loaded and no other dataset was asked for since."""
        return self._current is not None and self._current_ref == ref and self._requested is None

    def request(self, ref: str) -> bool:
        """Make ``ref`` current, loading it in the background unless it is loaded or on its way.

        Returns True when a load started.
        """
        if ref == self._requested or self.has(ref):
            return False
        self._requested = ref
        loader = DatasetLoader(ref)
        thread = new_thread("dataset-loader", loader)
        thread.started.connect(loader.run)
        loader.loaded.connect(self._on_loaded)
        loader.failed.connect(self._on_failed)
        loader.cancelled.connect(self._on_cancelled)
        loader.progressed.connect(self._on_progressed)
        # Each load gets its own short-lived thread: the loader ends it as soon as the job is done.
        self._loads = [(t, w) for t, w in self._loads if t.isRunning()] + [(thread, loader)]
        thread.start()
        self.loading.emit(ref)
        return True

    def use(self, dataset: Dataset, ref: str | None = None) -> None:
        """Make a dataset already in memory current (scripts, tests), as if loaded from ``ref``."""
        self._requested = None
        self.warnings = ()
        self._set_current(dataset, ref or dataset.name)
        self.loaded.emit(self._current_ref, dataset)

    def cancel(self) -> None:
        """Forget a pending request: its result, when it comes, is dropped."""
        self._requested = None

    def abort(self) -> None:
        """Stop the pending load itself (a Cancel button): the loader stops at its next file, keeps
        nothing, and ``cancelled`` follows."""
        for thread, loader in self._loads:
            if loader.ref == self._requested and thread.isRunning():
                loader.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Join every loader thread; True when all of them ended."""
        threads = [t for t, _ in self._loads]
        for thread in threads:
            thread.quit()
        ok = all(thread.wait(max(0, int(timeout_ms))) for thread in threads)
        self._loads = [(t, w) for t, w in self._loads if t.isRunning()]
        return ok

    def _set_current(self, dataset: Dataset, ref: str) -> None:
        changed = dataset is not self._current
        self._current, self._current_ref = dataset, ref
        if changed:
            self.changed.emit()

    @Slot(str, object, object)
    def _on_loaded(self, ref: str, dataset: Dataset, warnings: tuple[str, ...]) -> None:
        if ref != self._requested:
            return  # another dataset was chosen meanwhile
        self._requested = None
        self.warnings = tuple(warnings)
        self._set_current(dataset, ref)
        self.loaded.emit(ref, dataset)

    @Slot(str)
    def _on_cancelled(self, ref: str) -> None:
        if ref != self._requested:
            return
        self._requested = None
        self.cancelled.emit(ref)

    @Slot(str, str, int, int)
    def _on_progressed(self, ref: str, stage: str, done: int, total: int) -> None:
        if ref == self._requested:
            self.progressed.emit(ref, stage, done, total)

    @Slot(str, str)
    def _on_failed(self, ref: str, message: str) -> None:
        if ref != self._requested:
            return
        self._requested = None
        self.failed.emit(ref, message)
