"""Where a project's runs live: ``<project>.runs/`` beside the project file, one run folder per run
(engine.runs). An untitled project's runs go to a temporary folder that moves beside the project
when it is first saved; Save As copies the runs to the new name's folder.

The store only decides where runs go and lists them; the training worker writes each run, and
``restore`` turns a run folder back into curves, results and weights.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.errors import EngineError, RunError
from engine.runs import RunFolder, RunSummary, runs_in, unique_child
from engine.runs.folder import LOCK, RECORD, SWEEP_MANIFEST
from engine.runs.lock import is_locked

log = logging.getLogger(__name__)
RUNS_SUFFIX = ".runs"


def runs_folder_for(project: str | Path) -> Path:
    """``<folder>/<name>.runs`` for the project file ``<folder>/<name>.cnnproj``."""
    project = Path(project)
    return project.with_name(project.stem + RUNS_SUFFIX)


def _busy(run: Path) -> bool:
    """Whether the run (or a run of the sweep folder) is being trained right now."""
    if (run / SWEEP_MANIFEST).is_file():
        return any(is_locked(child / LOCK) for child in run.iterdir() if child.is_dir())
    return is_locked(run / LOCK)


class ProjectRuns(QObject):
    """The run folder of one project document.

    Signals: changed() (runs were added, moved, finished or the project is another one),
    warning(str) (a folder could not be moved or copied, in one line).
    """

    changed = Signal()
    warning = Signal(str)

    def __init__(self, document: QObject, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self._temp: Path | None = None  # the untitled project's folder, made on first use
        self._pending: list[tuple[Path, Path]] = []  # (run, destination folder) moves waiting for a run to end
        self.moved: dict[str, Path] = {}  # where moved runs went: old path -> new path
        self._summaries: dict[str, tuple[tuple[int, int], RunSummary]] = {}  # by run folder: (file stamp, summary)

    # -- where ----------------------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The folder the project's runs are in (a temporary one while the project is untitled)."""
        path = getattr(self._document, "file_path", None)
        if path is not None:
            return runs_folder_for(path)
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix="cnn-studio-runs-"))
        return self._temp

    @property
    def temporary(self) -> bool:
        return getattr(self._document, "file_path", None) is None

    def new_run_path(self, label: str) -> Path:
        """A fresh folder name for a new run (not created yet)."""
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        return unique_child(folder, label)

    def runs(self) -> list[RunSummary]:
        """Every readable run of the project, oldest first. A record read before is read again only when
        its file changed (records hold every batch's loss: a project of many runs stays quick to list)."""
        if self.temporary and self._temp is None:
            return []  # (no temporary folder is made just to find it empty)
        folder = self.folder
        if not folder.is_dir():
            return []
        found, cache = [], {}
        for path in runs_in(folder):
            try:
                stat = (path / RECORD).stat()
            except OSError:
                continue
            key = (stat.st_mtime_ns, stat.st_size)
            cached = self._summaries.get(str(path))
            if cached is not None and cached[0] == key and cached[1].status != "running":
                summary = cached[1]
            else:
                try:
                    summary = RunSummary.of(RunFolder.open(path))
                except EngineError as exc:
                    log.info("run folder skipped: %s", exc)
                    continue
            cache[str(path)] = (key, summary)
            found.append(summary)
        self._summaries = cache
        return sorted(found, key=lambda r: (r.created, r.id))

    def notify_changed(self) -> None:
        self._finish_pending_moves()
        self.changed.emit()

    # -- the project's life ------------------------------------------------------------------------------
    def project_saved(self, old_path: str | Path | None, new_path: str | Path) -> None:
        """The project was written to ``new_path`` (it was ``old_path``, or untitled): its runs follow.

        An untitled project's runs move out of the temporary folder; a project saved under a new name
        gets a copy of its runs (the old project keeps its own). A run training right now moves once
        it ends.
        """
        target = runs_folder_for(new_path)
        if not old_path:
            source, self._temp = self._temp, None
            if source is not None and source.is_dir():
                self._move_runs(source, target)
        elif Path(old_path) != Path(new_path):
            source = runs_folder_for(old_path)
            if source.is_dir() and source.resolve() != target.resolve():
                self._copy_runs(source, target)
        self.changed.emit()

    def adopt_temporary(self, folder: Path) -> None:
        """Take ``folder`` as the untitled project's runs folder (its runs before a crash)."""
        self.discard_temporary()
        self._temp = Path(folder)
        self.changed.emit()

    def project_replaced(self) -> None:
        """Another project took this one's place: an untitled project's runs were discarded with it."""
        self.discard_temporary()
        self.changed.emit()

    def discard_temporary(self) -> None:
        """Delete the untitled project's temporary folder (its runs were never saved), unless a run
        still trains in it."""
        temp = self._temp
        if temp is None or not temp.is_dir():
            self._temp = None
            return
        if any(_busy(run) for run in temp.iterdir() if run.is_dir()):
            return  # the run still writes there; the folder stays (it is temporary anyway)
        self._temp = None
        shutil.rmtree(temp, ignore_errors=True)

    # -- moving -------------------------------------------------------------------------------------------
    def _move_runs(self, source: Path, target: Path) -> None:
        if not any(run.is_dir() for run in source.iterdir()):
            shutil.rmtree(source, ignore_errors=True)  # no run to move: no runs folder beside the project
            return
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.warning.emit(f"The runs could not be moved beside the project ({exc.strerror or exc}); they "
                              f"stay in {source}")
            return
        for run in sorted(source.iterdir()):
            if not run.is_dir():
                continue
            if _busy(run):
                self._pending.append((run, target))
                continue
            self._move(run, target)
        if not self._pending:
            with contextlib.suppress(OSError):
                source.rmdir()

    def _move(self, run: Path, target: Path) -> None:
        destination = unique_child(target, run.name)
        try:
            shutil.move(str(run), str(destination))
            self.moved[str(run)] = destination
        except OSError as exc:
            self.warning.emit(f"The run {run.name} could not be moved beside the project ({exc.strerror or exc}); "
                              f"it stays in {run.parent}")

    def _finish_pending_moves(self) -> None:
        waiting, self._pending = self._pending, []
        for run, target in waiting:
            if not run.is_dir():
                continue
            if _busy(run):
                self._pending.append((run, target))
            else:
                self._move(run, target)
                with contextlib.suppress(OSError):
                    run.parent.rmdir()  # the temporary folder, once empty

    def _copy_runs(self, source: Path, target: Path) -> None:
        runs = [run for run in sorted(source.iterdir()) if run.is_dir()]
        if not runs:
            return
        try:
            target.mkdir(parents=True, exist_ok=True)
            for run in runs:
                if run.is_dir():
                    shutil.copytree(run, unique_child(target, run.name), ignore=shutil.ignore_patterns(LOCK))
        except (OSError, RunError) as exc:
            self.warning.emit(f"The runs could not be copied to {target} ({getattr(exc, 'strerror', None) or exc})")
