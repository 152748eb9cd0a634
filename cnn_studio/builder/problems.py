"""The problems list: every reason the design cannot run, in plain words, with a fix where one is obvious,
then the warnings (what runs but is probably a mistake, such as a branch nothing uses).

Rows read "<Type> <index>: <hint or message>"; clicking a row selects the culprit: the connection when
the problem names one (a merge whose inputs do not match), else the block. The row's buttons apply a
fix (there may be more than one way) as one undoable step.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnn_studio.builder import describe, style
from cnn_studio.builder.document_view import DocumentScrollView
from cnn_studio.builder.editor import ArchitectureEditor
from cnn_studio.builder.fixes import Fix
from cnn_studio.builder.scene_content import problem_wire, severity
from cnn_studio.document import ProjectDocument
from engine.errors import ArchitectureError

ALL_CLEAR = "✔  No problems: the network is ready to train."
ALL_CLEAR_BUT_WARNINGS = "✔  The network can train, but look at the warnings below: they are probably mistakes."


class ProblemRow(QFrame):
    clicked = Signal()

    def __init__(self, problem: ArchitectureError, fixes: list[Fix], parent: QWidget | None = None,
                 name: str = "") -> None:
        super().__init__(parent)
        self.problem = problem
        self.fixes = fixes
        self.setObjectName("problemRow")
        warning = severity(problem) == "warning"
        fill, accent = (style.WARNING_FILL, style.WARNING_ACCENT) if warning else (style.ERROR_FILL, style.ERROR_ACCENT)
        self.setStyleSheet(f"#problemRow {{ background: {fill}; border-left: 4px solid {accent}; "
                           "border-radius: 3px; }")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        culprit = "connection" if problem_wire(problem) is not None else "layer"
        self.setToolTip(f"Click to select the {culprit}; the message shows the formula with your numbers.")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 6, 4)
        self.label = QLabel(("Warning · " if warning else "") + describe.problem_text(problem, name), self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The selectable text takes the mouse press itself: a click on it must select the culprit too.
        self.label.installEventFilter(self)
        self.label.setStyleSheet(f"color: {style.TEXT};")
        layout.addWidget(self.label, 1)
        buttons = QVBoxLayout()
        buttons.setSpacing(2)
        self.fix_buttons: list[QPushButton] = []
        for fix in fixes:
            button = QPushButton(fix.label, self)
            button.setToolTip("Apply this fix (undo with Ctrl+Z)")
            buttons.addWidget(button)
            self.fix_buttons.append(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    @property
    def fix_button(self) -> QPushButton | None:
        """The first fix's button (the problem's own fix), or None without a fix."""
        return self.fix_buttons[0] if self.fix_buttons else None

    def text(self) -> str:
        return self.label.text()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self.clicked.emit()
        super().mousePressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self.label and event.type() == QEvent.Type.MouseButtonPress:
            self.clicked.emit()
        return False


class ProblemsPanel(DocumentScrollView):
    """Signal ``connection_chosen(source id, target id)``: a row about a wire was clicked; the window shows
    that wire (the panel knows the document, not the canvas)."""

    connection_chosen = Signal(str, str)

    def __init__(self, document: ProjectDocument, editor: ArchitectureEditor, parent: QWidget | None = None) -> None:
        super().__init__(document, editor, parent)
        body = self.body
        self._layout = QVBoxLayout(body)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.setSpacing(4)
        self.all_clear = QLabel(ALL_CLEAR, body)
        self.all_clear.setStyleSheet("color: #2e7d32; font-weight: 600;")
        self._layout.addWidget(self.all_clear)
        self._layout.addStretch(1)
        self.rows: list[ProblemRow] = []
        document.changed.connect(self.refresh)
        document.lock_changed.connect(lambda _locked, _reason: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        for row in self.rows:
            self._layout.removeWidget(row)
            row.deleteLater()
        self.rows = []
        analysis = self.document.analysis()
        problems = analysis.problems
        self.all_clear.setVisible(not problems)
        self.all_clear.setText(ALL_CLEAR_BUT_WARNINGS if analysis.warnings else ALL_CLEAR)
        for position, problem in enumerate((*problems, *analysis.warnings)):
            row = ProblemRow(problem, self.editor.fixes(problem), self.widget(),
                             describe.problem_layer_name(problem, analysis))
            row.clicked.connect(lambda p=problem: self._select(p))
            for button, fix in zip(row.fix_buttons, row.fixes):
                button.setEnabled(not self.document.locked)
                button.clicked.connect(lambda _checked=False, p=problem, f=fix: self.editor.apply_fix(p, fix=f))
            self._layout.insertWidget(1 + position, row)
            self.rows.append(row)

    def texts(self) -> list[str]:
        return [row.text() for row in self.rows]

    def count(self) -> int:
        return len(self.rows)

    def _select(self, problem: ArchitectureError) -> None:
        connection = problem_wire(problem)
        if connection is not None:
            self.connection_chosen.emit(*connection)
            return
        if problem.layer_index is None:
            return
        layers = self.document.layers()
        if 0 < problem.layer_index <= len(layers):
            self.editor.selection.select(layers[problem.layer_index - 1]["id"])
