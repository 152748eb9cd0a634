"""The Layer profile workspace: the Train menu's Profile action, the profile dock and the canvas colouring."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from cnn_studio.diagnose.fixes import layer_ids_by_name
from cnn_studio.diagnose.profile_view import ProfileRunner, ProfileView
from cnn_studio.messages import show_message
from cnn_studio.turning_splitter import vertically_scrolling
from engine.profiler import Profile

DOCK_TITLE = "Layer profile"
PROFILE_HEIGHT = 280


def block_heat(profile: Profile, ids_by_name: dict[str, str]) -> dict[str, tuple[float, str]]:
    """Layer id -> (share relative to the slowest layer, "4.1 ms · 34%") for the canvas."""
    shares = profile.layer_shares()
    top = max(shares.values(), default=0.0) or 1.0
    heat = {}
    for name, share in shares.items():
        if name in ids_by_name:
            heat[ids_by_name[name]] = (share / top, f"{share * profile.step_s * 1e3:.1f} ms · {share:.0%}")
    return heat


class ProfileWorkspace(QObject):
    def __init__(self, window: Any, session: Any, training: Any) -> None:
        super().__init__(window)
        self.window, self.session, self.training = window, session, training
        self.document = window.document
        self.view = ProfileView()
        self.runner = ProfileRunner(self)
        # It shares the bottom strip with the one-line Problems list: scrolling keeps that strip low
        # (its table and explanation would otherwise set the strip's least height for every tab).
        self.dock = window.add_dock(vertically_scrolling(self.view), DOCK_TITLE,
                                    Qt.DockWidgetArea.BottomDockWidgetArea)
        if "Problems" in window.docks:
            window.tabifyDockWidget(window.docks["Problems"], self.dock)
        self.action = QAction("Profile &Layers", self)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.action.setToolTip("Time each layer's forward and backward pass over a few training steps")
        self.action.setStatusTip(self.action.toolTip())
        self.action.triggered.connect(lambda _checked=False: self.profile())
        window.addAction(self.action)
        window.menus["Train"].addSeparator()
        window.menus["Train"].addAction(self.action)
        self._pending = False
        self._discard = False  # the profile under way belongs to a project that has been replaced
        self.view.profile_requested.connect(self.profile)
        self.view.cancel_requested.connect(self.runner.cancel)
        self.view.colour_toggled.connect(lambda _on: self._colour())
        self.runner.progressed.connect(lambda f: self.view.set_busy(True, f))
        self.runner.finished.connect(self._finished)
        self.runner.failed.connect(self._failed)
        self.document.changed.connect(self._design_changed)
        self.document.project_replaced.connect(self._project_replaced)
        training.datasets.ready.connect(self._dataset_ready)
        training.datasets.failed.connect(lambda _message: setattr(self, "_pending", False))
        window.close_guards.append(self._close)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.runner.shutdown)

    def _say(self, title: str, text: str) -> None:
        show_message(self.window, "warning", title, text)

    def profile(self) -> bool:
        """Start profiling the current design on the chosen dataset (loading it first if needed)."""
        if self.runner.running:
            return False
        if self.session.runner.running:
            self._say("Cannot profile now", "Training is running: stop it first (the profile would time both).")
            return False
        problems = self.document.analysis().problems
        if problems:
            self._say("Cannot profile", f"Fix the architecture first: {problems[0].message}")
            return False
        self.dock.show()
        self.dock.raise_()
        dataset = self.training.dataset
        if dataset is None:
            self._pending = True
            self.view.summary.setText("Loading the dataset first\u2026")
            self.training.load_dataset()
            return True
        self._start(dataset)
        return True

    def _dataset_ready(self, dataset: Any, _change: str) -> None:
        if self._pending:
            self._pending = False
            self._start(dataset)

    def _start(self, dataset: Any) -> None:
        self._discard = False
        config = self.training.form.config()
        self.view.set_busy(True, 0.0)
        self.view.summary.setText(f"Profiling {self.view.steps.value()} training steps of {config.batch_size} "
                                  f"images on {dataset.name}\u2026")
        self._described = f"{dataset.name}, {config.optimizer}, batch size {config.batch_size}"
        self.runner.start(self.document.architecture(), dataset, config, self.view.steps.value())

    def _finished(self, profile: Profile) -> None:
        if self._discard:
            self.view.clear()
            return
        self.view.set_profile(profile, self._described)
        wanted = min(PROFILE_HEIGHT, self.window.height() // 4)
        if not self.dock.isFloating() and self.dock.height() < wanted:
            # Room for a good part of the table (a first profile in a dock sized for the problem list).
            self.window.resizeDocks([self.dock], [wanted], Qt.Orientation.Vertical)
        self._colour()
        self.window.statusBar().showMessage(
            f"Profiled: a training step takes {profile.step_s * 1e3:.1f} ms; the slowest layer is "
            f"{max(profile.rows, key=lambda r: r.total_s).name}.", 8000)

    def _failed(self, message: str) -> None:
        self.view.set_busy(False)
        if self._discard:
            self.view.clear()
            return
        if not message:
            self.view.summary.setText("Profiling cancelled.")
            return
        self.view.summary.setText(f"Could not profile: {message}")
        self._say("Cannot profile", message)

    def _colour(self) -> None:
        canvas = self.window.canvas
        profile = self.view.profile
        if profile is None or not self.view.colour_box.isChecked() or "(an earlier design)" in self.view.summary.text():
            canvas.set_heat(None)
            return
        canvas.set_heat(block_heat(profile, layer_ids_by_name(self.document)))

    def _design_changed(self) -> None:
        if self.view.profile is not None:
            self.view.mark_stale()
            self.window.canvas.set_heat(None)

    def _project_replaced(self) -> None:
        # The table timed another project's network: it must not stand beside this one (New, Open).
        self._pending = False
        if self.runner.running:
            self._discard = True
            self.runner.cancel()
        self.view.clear()
        self.window.canvas.set_heat(None)

    def _close(self) -> bool:
        self.runner.shutdown()
        return True


def install_profiler(window: Any, session: Any, training: Any) -> ProfileWorkspace:
    return ProfileWorkspace(window, session, training)
