"""The inspector: the selected layer's settings as a form generated from its parameter schema.

Every change applies at once (as a mergeable undo command); the form follows the document, so
undo, redo and fixes show up here immediately. With nothing selected it describes the input.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.builder import describe, style
from cnn_studio.builder.document_view import DocumentScrollView
from cnn_studio.builder.editor import ArchitectureEditor
from cnn_studio.builder.field_editors import FieldEditor, editor_for, field_label
from cnn_studio.builder.fixes import Fix
from cnn_studio.document import ProjectDocument
from engine.architecture import LayerInfo
from engine.errors import ArchitectureError
from engine.layers import LAYER_TYPES, Layer


def has_parameters(type_name: str | None) -> bool:
    """Whether layers of this type learn parameters (only those can be frozen)."""
    cls = LAYER_TYPES.get(type_name or "")
    return cls is not None and cls.param_shapes is not Layer.param_shapes


class LayerInspector(DocumentScrollView):
    def __init__(self, document: ProjectDocument, editor: ArchitectureEditor, parent: QWidget | None = None) -> None:
        super().__init__(document, editor, parent)
        self.setMinimumWidth(280)
        body = self.body
        outer = QVBoxLayout(body)
        outer.setContentsMargins(10, 8, 10, 8)

        header = QHBoxLayout()
        self.icon = QLabel(body)
        self.icon.setFixedSize(28, 28)
        # The block shows the layer's name, so the title does too; its type and position go below it.
        self.title = QLabel(body)
        self.title.setStyleSheet("font-size: 13pt; font-weight: 600;")
        # A long name is cut (its tooltip has it whole) rather than widening the dock.
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.kind = QLabel(body)
        self.kind.setStyleSheet(f"color: {style.MUTED_TEXT};")
        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(self.title)
        titles.addWidget(self.kind)
        header.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        header.addLayout(titles, 1)
        outer.addLayout(header)

        self.description = QLabel(body)
        self.description.setWordWrap(True)
        self.description.setStyleSheet(f"color: {style.MUTED_TEXT};")
        outer.addWidget(self.description)

        self.problem = QLabel(body)
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setStyleSheet(
            f"color: {style.ERROR_ACCENT}; background: {style.ERROR_FILL}; border: 1px solid {style.ERROR_ACCENT};"
            "border-radius: 4px; padding: 6px;"
        )
        outer.addWidget(self.problem)
        # One button per fix on offer (e.g. padding 'same' or the largest kernel that fits).
        self.fix_buttons: list[QPushButton] = []
        self._fix_layout = QVBoxLayout()
        self._fix_layout.setSpacing(4)
        outer.addLayout(self._fix_layout)
        self._fixes: list[Fix] = []

        self.form_host = QWidget(body)
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 6, 0, 6)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        outer.addWidget(self.form_host)

        self.facts = QLabel(body)
        self.facts.setWordWrap(True)
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        outer.addWidget(self.facts)
        outer.addStretch(1)

        self.name_edit: QLineEdit | None = None
        self.trainable_box: QCheckBox | None = None
        self.editors: dict[str, FieldEditor] = {}
        self._form_for: tuple[str | None, str | None] = (None, None)  # (layer id, type) the form was built for
        self._fix_problem: ArchitectureError | None = None
        self._add_fix_button()
        document.changed.connect(self.refresh)
        document.settings_changed.connect(self.refresh)
        document.lock_changed.connect(self._lock_changed)
        editor.selection.changed.connect(lambda _id: self.refresh())
        self._lock_changed(document.locked, document.lock_reason)
        self.refresh()

    def _lock_changed(self, locked: bool, _reason: str) -> None:
        self.form_host.setEnabled(not locked)
        for button in self.fix_buttons:
            button.setEnabled(not locked)

    @property
    def fix_button(self) -> QPushButton:
        """The first fix's button (the problem's own fix)."""
        return self.fix_buttons[0]

    def _add_fix_button(self) -> QPushButton:
        button = QPushButton(self.body)
        button.setToolTip("Apply this fix (undoable with Ctrl+Z)")
        position = len(self.fix_buttons)
        button.clicked.connect(lambda _checked=False: self._apply_fix(position))
        button.setEnabled(not self.document.locked)
        button.setVisible(False)
        self._fix_layout.addWidget(button, 0, Qt.AlignmentFlag.AlignLeft)
        self.fix_buttons.append(button)
        return button

    # -- state ------------------------------------------------------------------------------------------
    @property
    def layer_id(self) -> str | None:
        """The layer the form edits: the one it was built for, even while the selection is moving on."""
        return self._form_for[0]

    def refresh(self) -> None:
        index = self.editor.selection.index()
        if index is None:
            self._show_network()
            return
        spec = self.document.layer(index)
        info = self.document.analysis().layers[index]
        key = (spec["id"], spec.get("type"))
        if key != self._form_for:
            self._build_form(spec)
            self._form_for = key
        self._fill(spec, info)

    def _clear_form(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors = {}
        self.name_edit = None
        self.trainable_box = None

    def _build_form(self, spec: dict[str, Any]) -> None:
        self._clear_form()
        cls = LAYER_TYPES.get(spec.get("type"))
        self.name_edit = QLineEdit(self.form_host)
        self.name_edit.setToolTip("Name used for this layer's weights; leave empty for the automatic name")
        self.name_edit.editingFinished.connect(self._commit_name)
        self.form.addRow("Name", self.name_edit)
        if has_parameters(spec.get("type")):
            self.trainable_box = QCheckBox("learns in training", self.form_host)
            self.trainable_box.setToolTip(
                "Untick to freeze this layer: training leaves its weights as they are (a frozen batch norm "
                "keeps using its running statistics). Freeze a trained network's early layers to fine-tune "
                "only the last ones on your data.")
            self.trainable_box.toggled.connect(self._commit_trainable)
            label = QLabel("Trainable", self.form_host)
            label.setToolTip(self.trainable_box.toolTip())
            self.form.addRow(label, self.trainable_box)
        for field in cls.fields if cls else ():
            widget = editor_for(field, self.form_host)
            widget.value_changed.connect(lambda value, name=field.name: self._commit(name, value))
            label = QLabel(field_label(field.name), self.form_host)
            label.setToolTip(field.help)
            self.form.addRow(label, widget)
            self.editors[field.name] = widget
        self.form_host.setEnabled(not self.document.locked)

    def _fill(self, spec: dict[str, Any], info: LayerInfo) -> None:
        cls = LAYER_TYPES.get(spec.get("type"))
        self.icon.setPixmap(style.layer_icon(info.type).pixmap(28, 28))
        self.title.setText(info.name)
        self.title.setToolTip(info.name)
        self.kind.setText(f"{info.type} · layer {info.index} of {len(self.document.layers())}")
        self.description.setText(cls.description if cls else "Unknown layer type.")
        if self.name_edit is not None:
            self.name_edit.setPlaceholderText(info.name)
            if not self.name_edit.hasFocus():
                self.name_edit.setText(spec.get("name", ""))
        if self.trainable_box is not None:
            self.trainable_box.blockSignals(True)
            self.trainable_box.setChecked(spec.get("trainable", True) is not False)
            self.trainable_box.blockSignals(False)
        for name, widget in self.editors.items():
            field = widget.field
            widget.set_value(spec.get(name, field.default))
        self._show_problem(info.error)
        if info.output_shape is not None:
            self.facts.setText(
                f"<table cellspacing=3>"
                f"<tr><td>Input</td><td><b>{describe.format_shape(info.input_shape)}</b></td></tr>"
                f"<tr><td>Output</td><td><b>{describe.format_shape(info.output_shape)}</b></td></tr>"
                f"<tr><td>Parameters</td><td><b>{info.trainable_params:,}</b> trainable, "
                f"{info.non_trainable_params:,} not{' (frozen)' if info.frozen_params else ''}</td></tr>"
                f"<tr><td>Multiply-adds</td><td><b>{describe.format_compact(info.macs)}</b> per image</td></tr>"
                f"</table>")
        else:
            self.facts.setText(f"Input: <b>{describe.format_shape(info.input_shape)}</b><br>"
                               "Output shape and parameters appear once the problem is fixed.")

    def _show_problem(self, problem: ArchitectureError | None) -> None:
        self._fix_problem = problem
        self._fixes = self.editor.fixes(problem) if problem is not None else []
        self.problem.setVisible(problem is not None)
        if problem is not None:
            self.problem.setText(describe.problem_text(problem, describe.problem_layer_name(
                problem, self.document.analysis())))
        while len(self.fix_buttons) < len(self._fixes):
            self._add_fix_button()
        for position, button in enumerate(self.fix_buttons):
            button.setVisible(position < len(self._fixes))
            if position < len(self._fixes):
                button.setText(f"Fix: {self._fixes[position].label}")

    def _show_network(self) -> None:
        self._clear_form()
        self._form_for = (None, None)
        self.icon.setPixmap(style.icon("input").pixmap(28, 28))
        self._show_network_heading()
        self._show_problem(None)
        analysis = self.document.analysis()
        self.facts.setText(
            f"<table cellspacing=3>"
            f"<tr><td>Input</td><td><b>{describe.format_shape(self.document.input_shape)}</b> "
            f"({self.document.dataset_ref})</td></tr>"
            f"<tr><td>Layers</td><td><b>{len(analysis.layers)}</b></td></tr>"
            f"<tr><td>Output</td><td><b>{describe.format_shape(analysis.output_shape)}</b></td></tr>"
            f"</table><p style='color:{style.MUTED_TEXT}'>The input shape follows the dataset chosen for "
            "training.</p>")

    def _show_network_heading(self) -> None:
        if self.editor.selection.input_selected:
            # The Input block has no settings of its own: say what it is, rather than "select a block".
            self.title.setText("Input")
            self.kind.setText("Where every network starts")
            self.description.setText("The images the network is given. It has no settings here and can't be "
                                     "deleted.")
        else:
            self.title.setText("Network")
            self.kind.setText("")
            self.description.setText("Select a block on the canvas to edit its settings. Drag layers from the "
                                     "palette to add them.")

    # -- edits --------------------------------------------------------------------------------------------------
    def _commit(self, field: str, value: Any) -> None:
        if self.layer_id is not None:
            self.editor.set_field(self.layer_id, field, value)

    def _commit_trainable(self, trainable: bool) -> None:
        if self.layer_id is not None:
            self.editor.set_trainable(self.layer_id, trainable)

    def _commit_name(self) -> None:
        if self.layer_id is not None and self.name_edit is not None:
            self.editor.set_name(self.layer_id, self.name_edit.text())

    def _apply_fix(self, position: int) -> None:
        if self._fix_problem is not None and position < len(self._fixes):
            self.editor.apply_fix(self._fix_problem, fix=self._fixes[position])
