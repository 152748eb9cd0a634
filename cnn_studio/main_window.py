"""The studio's main window: the Design workspace (palette, canvas, inspector, problems, totals),
menus, project files, and the other workspaces wired from here.

The window makes the one ``TrainingSession`` (on the document's trained network and run history) and
hands it to the workspaces that follow training: ``training_panel``, ``inside_panel`` and
``export_controller``. They install themselves through the window's small public surface:

    window.document       the ProjectDocument
    window.tabs           central QTabWidget ("Design" first; workspaces add "Train", "Inside", ...)
    window.add_dock(widget, title, area) -> QDockWidget; window.docks {title: QDockWidget}
    window.menus          {"File", "Edit", "View", "Train", "Help", "Export" (under File)}: QMenu
    window.close_guards   callables returning False to keep the window open (after the questions)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMenu,
    QTabWidget,
    QUndoView,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from cnn_studio.autosave import Autosave
from cnn_studio.builder import style
from cnn_studio.builder.banner import LockBanner
from cnn_studio.builder.canvas import ArchitectureCanvas
from cnn_studio.builder.composites import COMPOSITES
from cnn_studio.builder.dialogs import Dialogs
from cnn_studio.builder.editor import ArchitectureEditor
from cnn_studio.builder.inspector import LayerInspector
from cnn_studio.builder.palette import BLOCKS_GROUP, LayerPalette, composite_summary
from cnn_studio.builder.problems import ProblemsPanel
from cnn_studio.builder.project import ProjectController
from cnn_studio.builder.recent import RecentFiles
from cnn_studio.builder.selection import BlockSelection
from cnn_studio.builder.templates import list_templates, seed_architecture
from cnn_studio.builder.totals import TotalsBar
from cnn_studio.document import ProjectDocument
from cnn_studio.panels import install_panels
from cnn_studio.recovery import discard, left_behind
from cnn_studio.training.session import TrainingSession
from engine.layers import CATEGORIES, LAYER_TYPES

APP_TITLE = "CNN Studio"
DEFAULT_SIZE = (1400, 900)
SHORTCUTS_HELP = """<table cellspacing=4>
<tr><td><b>Ctrl+N / Ctrl+O / Ctrl+S</b></td><td>New, open, save project (Ctrl+Shift+S: save as)</td></tr>
<tr><td><b>Ctrl+Z / Ctrl+Shift+Z</b></td><td>Undo / redo (also Ctrl+Y)</td></tr>
<tr><td><b>Delete</b></td><td>Delete the selected block (its neighbours are joined up) or wire</td></tr>
<tr><td><b>Ctrl+D</b></td><td>Duplicate the selected block</td></tr>
<tr><td><b>Alt+Up / Alt+Down</b></td><td>Move the selected block along its path</td></tr>
<tr><td><b>Up / Down</b></td><td>Select the previous / next block (canvas focused)</td></tr>
<tr><td><b>Ctrl+F</b></td><td>Filter the layer palette; Enter appends the chosen layer</td></tr>
<tr><td><b>Ctrl++ / Ctrl+- / Ctrl+0</b></td><td>Zoom in / out / fit the network (Ctrl+wheel zooms too)</td></tr>
<tr><td><b>Ctrl+1</b></td><td>Canvas at actual size (100%)</td></tr>
<tr><td><b>Ctrl+L</b></td><td>Tidy: lay the network out again</td></tr>
<tr><td><b>Drag a port</b></td><td>From a block's output port (bottom) onto another block: connect them</td></tr>
<tr><td><b>F5 / Shift+F5</b></td><td>Start / stop training</td></tr>
<tr><td><b>F6</b></td><td>Pause or resume training</td></tr>
<tr><td><b>F7</b></td><td>Train one more epoch (+1 epoch)</td></tr>
<tr><td><b>Ctrl+Shift+P</b></td><td>Profile the layers: time each layer over a few training steps</td></tr>
<tr><td><b>Left / Right, Home / End</b></td><td>Inside, after clicking the picture: previous / next,
first / last test image</td></tr>
<tr><td><b>F1</b></td><td>This list</td></tr>
</table>"""


class MainWindow(QMainWindow):
    def __init__(self, document: ProjectDocument | None = None, *, settings: QSettings | None = None,
                 dialogs: Dialogs | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings()
        self.document = document if document is not None else ProjectDocument(seed_architecture())
        self.dialogs = dialogs if dialogs is not None else Dialogs(self)
        self.selection = BlockSelection(self.document, self)
        self.editor = ArchitectureEditor(self.document, self.selection, self)
        self.recent = RecentFiles(self.settings, self)
        self.project = ProjectController(self.document, self.dialogs, self.recent, self)
        self.close_guards: list[Callable[[], bool | None]] = []
        self.menus: dict[str, QMenu] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._shown = False
        self._locked = False
        self._pending_tabs: list[tuple[QDockWidget, QDockWidget]] = []
        self.setWindowIcon(style.icon("cnn-studio"))
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self._build_design_tab()
        self._build_menus()
        self._build_docks()
        self._connect_document()
        self.resize(*DEFAULT_SIZE)
        self._update_title()
        self._update_undo_actions()
        self.statusBar().showMessage("Drag layers from the palette onto the canvas; select a block to edit it.", 8000)
        self.training_session = TrainingSession(self.document.trained, self.document.runs, self)
        workspaces = install_panels(self, self.training_session)
        self.training_panel = workspaces.training
        self.inside_panel = workspaces.inside
        self.export_controller = workspaces.export
        self.runs_workspace = workspaces.runs
        self.interop = workspaces.interop
        self.diagnostics = workspaces.diagnostics
        self.confusion_drill_down = workspaces.drill_down
        self.profiler = workspaces.profiler
        self._restore_layout()
        # Unsaved changes survive a crash: the project goes to a recovery file every 30 seconds.
        self.autosave = Autosave(self.document, self)
        self.autosave.failed.connect(lambda message: self.statusBar().showMessage(message, 15000))

    # -- public surface for workspaces -------------------------------------------------------------------------
    def add_dock(self, widget: QWidget, title: str,
                 area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Add a movable dock; its show/hide toggle goes into the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName("dock_" + "".join(ch if ch.isalnum() else "_" for ch in title.lower()))
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        self.docks[title] = dock
        toggle = dock.toggleViewAction()
        toggle.setToolTip(f"Show or hide the {title} panel")
        self.menus["Panels"].addAction(toggle)
        return dock

    # -- construction ---------------------------------------------------------------------------------------------
    def _build_design_tab(self) -> None:
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        design = QWidget(self.tabs)
        layout = QVBoxLayout(design)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.lock_banner = LockBanner(self.document, design)
        self.canvas = ArchitectureCanvas(self.document, self.editor, design)
        self.totals = TotalsBar(self.document, design)
        layout.addWidget(self.lock_banner)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.totals)
        self.design_tab = design
        self.tabs.addTab(design, "Design")
        self.tabs.setTabToolTip(0, "Design the architecture: drag layers, edit their settings, fix problems")
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        self.layer_palette = LayerPalette(self)
        self.layer_palette.layer_chosen.connect(self.editor.append_layer)
        self.layer_palette.composite_chosen.connect(self.editor.append_composite)
        self.inspector = LayerInspector(self.document, self.editor, self)
        self.problems = ProblemsPanel(self.document, self.editor, self)
        self.history = QUndoView(self.document.undo_stack, self)
        self.history.setEmptyLabel("Opened project")  # the first row: the project as it was opened
        self.history.setToolTip("Every edit so far; click one to go back to it")
        self.palette_dock = self.add_dock(self.layer_palette, "Layers", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self.add_dock(self.inspector, "Properties", Qt.DockWidgetArea.RightDockWidgetArea)
        self.problems_dock = self.add_dock(self.problems, "Problems", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.history_dock = self.add_dock(self.history, "History", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.problems_dock, self.history_dock)
        self.canvas.block_activated.connect(lambda _id: self.inspector_dock.raise_())
        self.problems.connection_chosen.connect(self._show_connection)
        self.canvas.hint.connect(self._show_hint)
        self.editor.notice.connect(lambda text: self.statusBar().showMessage(text, 6000))

    def _show_connection(self, source: str, target: str) -> None:
        """A problem with a connection was clicked: show the wire on the canvas (else its receiving layer)."""
        self.tabs.setCurrentWidget(self.design_tab)
        if not self.canvas.show_wire(source, target) and target in {s["id"] for s in self.document.layers()}:
            self.editor.selection.select(target)
        self.canvas.setFocus()

    def _action(self, text: str, slot: Callable, shortcut: QKeySequence | str | list | None = None,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, list):
            action.setShortcuts(shortcut)
        elif shortcut is not None:
            action.setShortcut(shortcut)
        action.setToolTip(tip or text.replace("&", "").replace("…", ""))
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        for name in ("File", "Edit", "View", "Train", "Help"):
            menu = bar.addMenu(f"&{name}")
            menu.setToolTipsVisible(True)
            self.menus[name] = menu
        SK = QKeySequence.StandardKey

        file = self.menus["File"]
        self.new_action = self._action("&New", lambda: self.project.new_project(), SK.New,
                                       "Start a new project with the sample network")
        file.addAction(self.new_action)
        self.templates_menu = file.addMenu("New from &Template")
        self.templates_menu.setToolTipsVisible(True)
        for template in list_templates():
            action = self.templates_menu.addAction(template.name)
            action.setToolTip(template.description)
            action.setStatusTip(template.description)
            action.triggered.connect(partial(self._new_from_template, template))
        self.open_action = self._action("&Open…", lambda: self.project.open_project(), SK.Open,
                                        "Open a .cnnproj project (or an architecture .json)")
        file.addAction(self.open_action)
        self.recent_menu = file.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.recent.changed.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file.addSeparator()
        self.save_action = self._action("&Save", self.project.save, SK.Save, "Save the project")
        self.save_as_action = self._action("Save &As…", lambda: self.project.save_as(), "Ctrl+Shift+S",
                                           "Save the project under a new name")
        file.addActions([self.save_action, self.save_as_action])
        file.addSeparator()
        self.menus["Export"] = file.addMenu("&Export")
        self.menus["Export"].setToolTipsVisible(True)
        file.addSeparator()
        self.quit_action = self._action("&Quit", self.close, SK.Quit, "Close CNN Studio")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file.addAction(self.quit_action)

        edit = self.menus["Edit"]
        self.undo_action = self._action("&Undo", self._undo, SK.Undo, "Undo the last edit")
        self.redo_action = self._action("&Redo", self._redo, [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")],
                                        "Redo the edit undone last")
        edit.addActions([self.undo_action, self.redo_action])
        edit.addSeparator()
        self.delete_action = self._action("&Delete Block", self.editor.remove, QKeySequence(Qt.Key.Key_Delete),
                                          "Delete the selected block")
        self.duplicate_action = self._action("D&uplicate Block", self.editor.duplicate, "Ctrl+D",
                                             "Insert a copy of the selected block after it")
        self.move_up_action = self._action("Move Block &Up", lambda: self.editor.move_by(-1), "Alt+Up",
                                           "Move the selected block one place towards the input")
        self.move_down_action = self._action("Move Block Do&wn", lambda: self.editor.move_by(1), "Alt+Down",
                                             "Move the selected block one place towards the output")
        edit.addActions([self.delete_action, self.duplicate_action, self.move_up_action, self.move_down_action])
        insert = edit.addMenu("&Insert Layer")
        insert.setToolTipsVisible(True)
        for category in CATEGORIES:
            sub = insert.addMenu(style.category_icon(category), category)
            sub.setToolTipsVisible(True)
            for type_name, cls in LAYER_TYPES.items():
                if cls.category == category:
                    action = sub.addAction(type_name)
                    action.setToolTip(cls.description)
                    action.triggered.connect(partial(self._insert_after_selection, type_name))
        self._build_blocks_menu(insert)
        edit.addSeparator()
        # It finds layer types to add (the palette), not blocks on the canvas: named for what it does.
        self.filter_action = self._action("&Filter Layer Palette…", self._focus_palette, SK.Find,
                                          "Type to filter the palette's layer types by name or description")
        edit.addAction(self.filter_action)

        view = self.menus["View"]
        self.zoom_in_action = self._action("Zoom &In", lambda: self.canvas.zoom(1.15),
                                           [QKeySequence(SK.ZoomIn), QKeySequence("Ctrl+=")])
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.canvas.zoom(1 / 1.15), SK.ZoomOut)
        self.fit_action = self._action("&Fit Network", self.canvas.fit_all, "Ctrl+0",
                                       "Scale the canvas so the whole network is visible")
        self.actual_size_action = self._action("&Actual Size", self.canvas.reset_zoom, "Ctrl+1", "Zoom to 100%")
        self.tidy_action = self._action("&Tidy Layout", self.canvas.tidy, "Ctrl+L",
                                        "Lay the network out again, undoing blocks moved by hand")
        view.addActions([self.zoom_in_action, self.zoom_out_action, self.fit_action, self.actual_size_action,
                         self.tidy_action])
        view.addSeparator()
        self.menus["Panels"] = view.addMenu("&Panels")

        help_menu = self.menus["Help"]
        help_menu.addAction(self._action("&Keyboard Shortcuts", self._show_shortcuts, SK.HelpContents,
                                         "List the keyboard shortcuts"))
        help_menu.addAction(self._action("&About CNN Studio", self._show_about, None, "Version and credits"))

    def _build_blocks_menu(self, insert: QMenu) -> None:
        """Insert Layer > Blocks: the palette's composite blocks, each one undoable edit like a palette drop."""
        insert.addSeparator()
        blocks = insert.addMenu(style.category_icon(BLOCKS_GROUP), BLOCKS_GROUP)
        blocks.setToolTipsVisible(True)
        for key, composite in COMPOSITES.items():
            action = blocks.addAction(style.category_icon(BLOCKS_GROUP), composite.title)
            # The palette's words, less its drag hint (a menu item is chosen, not dragged).
            action.setToolTip(composite_summary(key))
            action.triggered.connect(partial(self._insert_composite_after_selection, key))
        self.blocks_menu = blocks

    def _connect_document(self) -> None:
        doc = self.document
        doc.modified_changed.connect(lambda _m: self._update_title())
        doc.path_changed.connect(lambda _p: self._update_title())
        doc.changed.connect(self._update_problem_count)
        doc.undo_stack.canUndoChanged.connect(lambda _c: self._update_undo_actions())
        doc.undo_stack.canRedoChanged.connect(lambda _c: self._update_undo_actions())
        doc.undo_stack.undoTextChanged.connect(lambda _t: self._update_undo_actions())
        doc.undo_stack.redoTextChanged.connect(lambda _t: self._update_undo_actions())
        doc.lock_changed.connect(self._lock_changed)
        doc.edit_refused.connect(self._edit_refused)
        self.selection.changed.connect(lambda _id: self._update_block_actions())
        self._update_problem_count()
        self._update_block_actions()

    # -- reactions ----------------------------------------------------------------------------------------------------
    def _update_title(self) -> None:
        if not isValid(self) or not isValid(self.document):
            return  # a signal from the document while the window is being torn down
        self.setWindowTitle(f"{APP_TITLE} — {self.document.display_name}[*]")
        self.setWindowModified(self.document.is_modified())

    def _update_undo_actions(self) -> None:
        stack = self.document.undo_stack
        if not (isValid(self) and isValid(stack) and isValid(self.undo_action) and isValid(self.redo_action)):
            return  # the undo stack announces its own destruction at shutdown
        locked = self.document.locked
        self.undo_action.setText(f"&Undo {stack.undoText()}" if stack.undoText() else "&Undo")
        self.redo_action.setText(f"&Redo {stack.redoText()}" if stack.redoText() else "&Redo")
        self.undo_action.setEnabled(stack.canUndo() and not locked)
        self.redo_action.setEnabled(stack.canRedo() and not locked)

    def _update_block_actions(self) -> None:
        editable = not self.document.locked
        has = self.selection.layer_id is not None and editable
        for action in (self.duplicate_action, self.move_up_action, self.move_down_action):
            action.setEnabled(has)
        # With the Input block selected, Delete stays enabled: choosing it says why the Input stays, where a
        # greyed-out item would leave the user guessing.
        self.delete_action.setEnabled(editable and (has or self.selection.input_selected))

    def _update_problem_count(self) -> None:
        analysis = self.document.analysis()
        n, warnings = len(analysis.problems), len(analysis.warnings)
        title = f"Problems ({n})" if n else "Problems"
        if warnings:
            title += f" · {warnings} warning{'s' if warnings != 1 else ''}"
        self.problems_dock.setWindowTitle(title)

    def _lock_changed(self, locked: bool, reason: str) -> None:
        was_locked, self._locked = self._locked, locked
        self.layer_palette.set_editable(not locked)
        self.history.setEnabled(not locked)
        for action in (self.new_action, self.open_action, self.templates_menu.menuAction(),
                       self.recent_menu.menuAction()):
            action.setEnabled(not locked)
        self._update_undo_actions()
        self._update_block_actions()
        if locked == was_locked:
            return  # only the reason changed (e.g. training paused): the banner says it
        if locked:
            self.statusBar().showMessage(f"Architecture locked: {reason}", 6000)
        else:
            self.statusBar().showMessage("Architecture unlocked: edits are possible again.", 4000)

    def _edit_refused(self, reason: str) -> None:
        self.statusBar().showMessage(f"Edit refused — the architecture is locked: {reason}", 6000)

    # -- commands ------------------------------------------------------------------------------------------
    def _undo(self) -> None:
        if self.document.locked:
            self._edit_refused(self.document.lock_reason)
        else:
            self.document.undo_stack.undo()

    def _redo(self) -> None:
        if self.document.locked:
            self._edit_refused(self.document.lock_reason)
        else:
            self.document.undo_stack.redo()

    def _insert_after_selection(self, type_name: str) -> None:
        self.editor.insert_after_selection(type_name)

    def _insert_composite_after_selection(self, key: str, _checked: bool = False) -> None:
        self.editor.insert_composite_after_selection(key)

    def _show_hint(self, text: str) -> None:
        bar = self.statusBar()
        if text:
            self._hint_text = text
            bar.showMessage(text)
        elif bar.currentMessage() == getattr(self, "_hint_text", ""):
            # Only the hint goes when the pointer moves on: a notice (a refused edit, say) keeps its seconds.
            bar.clearMessage()

    def _new_from_template(self, template, _checked: bool = False) -> None:
        before = self.statusBar().currentMessage()
        self.statusBar().clearMessage()
        if self.project.new_project(template):
            # Opening it may have said something already (e.g. its input now follows the dataset): keep that.
            said = self.statusBar().currentMessage()
            extra = f" {said}" if said else ""
            self.statusBar().showMessage(f"New project from template “{template.name}”.{extra}",
                                         10000 if extra else 5000)
        elif before:
            self.statusBar().showMessage(before, 5000)

    def _focus_palette(self) -> None:
        self.palette_dock.show()
        self.palette_dock.raise_()
        self.layer_palette.filter_box.setFocus()
        self.layer_palette.filter_box.selectAll()

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        paths = self.recent.paths()
        for i, path in enumerate(paths, start=1):
            action = menu.addAction(f"&{i} {path}")
            action.triggered.connect(partial(self._open_recent, path))
        if paths:
            menu.addSeparator()
            menu.addAction("Clear List", self.recent.clear)
        else:
            menu.addAction("No recent projects").setEnabled(False)

    def _open_recent(self, path: str, _checked: bool = False) -> None:
        self.project.open_project(path)

    def _show_shortcuts(self) -> None:
        self.dialogs.info("Keyboard shortcuts", SHORTCUTS_HELP)

    def _show_about(self) -> None:
        from cnn_studio import __version__

        self.dialogs.info("About CNN Studio",
                          f"<b>CNN Studio {__version__}</b><br>Design convolutional networks, train them live on a "
                          "from-scratch NumPy engine and look inside them.")

    # -- layout persistence and closing ------------------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._default_layout_pending = state is None or not self.restoreState(state)

    def _apply_default_layout(self) -> None:
        """Dock sizes for a first start; they only take effect once the window has its real size."""
        self.resizeDocks([self.palette_dock, self.inspector_dock], [230, 330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.problems_dock], [100], Qt.Orientation.Vertical)
        right = [d for d in self.findChildren(QDockWidget)
                 if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea and d.isVisible()
                 and d is not self.inspector_dock and not self.tabifiedDockWidgets(d)]
        if right:
            # Workspaces stack their docks under the inspector: keep the layer form readable above them.
            self.resizeDocks([self.inspector_dock, *right], [480] + [300] * len(right), Qt.Orientation.Vertical)

    def tabifyDockWidget(self, first: QDockWidget, second: QDockWidget) -> None:  # noqa: N802 (Qt override)
        """Stack ``second`` on ``first`` as tabs, ``first`` in front. Before the window is first shown this
        waits for the show (and is dropped when a saved layout was restored): Qt 6.11 leaves a stale copy
        of the tab bar behind, drawn where the dock area used to be, when a second group of docks is
        tabified while the window is hidden."""
        if self._shown:
            super().tabifyDockWidget(first, second)
            first.raise_()
        else:
            self._pending_tabs.append((first, second))

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._shown:
            return
        self._shown = True
        pending, self._pending_tabs = self._pending_tabs, []
        if self._default_layout_pending:
            for first, second in pending:
                self.tabifyDockWidget(first, second)
            self._default_layout_pending = False
            self._apply_default_layout()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        # A running training is asked about first: whether to save the project only matters once the
        # user has chosen to stop it.
        if not self.training_panel.confirm_close() or not self.project.confirm_discard():
            event.ignore()
            return
        for guard in list(self.close_guards):
            try:
                allowed = guard()
            except Exception:  # a broken guard must not trap the user: report it and go on closing
                sys.excepthook(*sys.exc_info())
                allowed = True
            if allowed is False:
                event.ignore()
                return
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.autosave.stop()
        event.accept()

    def offer_recovery(self) -> bool:
        """After a crash: offer the unsaved project the studio left in its recovery file; True when restored.

        Declined, the recovery file is deleted; unanswered (no one to ask), it stays for the next launch."""
        found = left_behind()
        if not found:
            return False
        recovery = found[0]
        answer = self.dialogs.ask_restore(recovery.name, recovery.saved_at)
        if answer is None:
            return False
        discard(recovery.file)
        if not answer:
            return False
        data = recovery.data
        self.document.load_project(data.architecture, data.dataset, data.training, recovery.project_path)
        if recovery.runs_folder and recovery.project_path is None and Path(recovery.runs_folder).is_dir():
            self.document.run_store.adopt_temporary(Path(recovery.runs_folder))
            self.runs_workspace.restore()
        self.document.mark_modified()  # restored changes are unsaved changes
        self.statusBar().showMessage(f"Restored the unsaved changes of “{recovery.name}”", 10000)
        return True
