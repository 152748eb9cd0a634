"""The layer palette: every engine layer type grouped by category, with a filter box.

Drag an entry onto the canvas to insert it where it is dropped; double-click (or Enter) appends it.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QKeyEvent
from PySide6.QtWidgets import QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from cnn_studio.builder import style
from cnn_studio.builder.mime import layer_mime
from engine.layers import CATEGORIES, LAYER_TYPES

TYPE_ROLE = Qt.ItemDataRole.UserRole
HINT = "Drag a layer onto the architecture, or double-click it to append it at the end."


def layer_tooltip(type_name: str) -> str:
    cls = LAYER_TYPES[type_name]
    return f"<b>{type_name}</b> <i>({cls.category})</i><br>{cls.description}<br><br><small>{HINT}</small>"


class _PaletteTree(QTreeWidget):
    """A tree whose leaves start drags carrying the layer MIME payload."""

    def startDrag(self, supported_actions: Qt.DropAction) -> None:  # noqa: N802 (Qt override)
        item = self.currentItem()
        type_name = item.data(0, TYPE_ROLE) if item else None
        if not type_name:
            return
        drag = QDrag(self)
        drag.setMimeData(layer_mime(type_name))
        drag.setPixmap(style.layer_icon(type_name).pixmap(32, 32))
        drag.setHotSpot(QPoint(16, 16))
        drag.exec(Qt.DropAction.CopyAction)


class LayerPalette(QWidget):
    """Signals: ``layer_chosen(str)`` when an entry is double-clicked or activated with Enter."""

    layer_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter_box = QLineEdit(self)
        self.filter_box.setPlaceholderText("Filter layers…")
        self.filter_box.setClearButtonEnabled(True)
        self.filter_box.setToolTip("Show only layers whose name, group or description contains this text")
        self.tree = _PaletteTree(self)
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.tree.setIndentation(14)
        self.tree.setIconSize(QSize(20, 20))
        self.tree.setToolTip("")
        self.description = QLabel(HINT, self)
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.RichText)
        self.description.setStyleSheet(f"color: {style.MUTED_TEXT}; padding: 4px;")
        self.description.setMinimumHeight(64)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.setMinimumWidth(210)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_box)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.description)

        self._items: dict[str, QTreeWidgetItem] = {}
        self._groups: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.filter_box.textChanged.connect(self.set_filter)
        self.tree.itemDoubleClicked.connect(self._activated)
        self.tree.currentItemChanged.connect(self._show_description)
        self.tree.installEventFilter(self)

    def _populate(self) -> None:
        for category in CATEGORIES:
            group = QTreeWidgetItem(self.tree, [category])
            group.setIcon(0, style.category_icon(category))
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setForeground(0, style.accent(category))
            self._groups[category] = group
            for type_name, cls in LAYER_TYPES.items():
                if cls.category != category:
                    continue
                item = QTreeWidgetItem(group, [type_name])
                item.setData(0, TYPE_ROLE, type_name)
                item.setIcon(0, style.category_icon(category))
                item.setToolTip(0, layer_tooltip(type_name))
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
                self._items[type_name] = item
            group.setExpanded(True)

    # -- queries used by tests and the window ------------------------------------------------------------
    def item_for(self, type_name: str) -> QTreeWidgetItem:
        return self._items[type_name]

    def visible_types(self) -> list[str]:
        return [t for t, item in self._items.items() if not item.isHidden()]

    def categories(self) -> list[str]:
        return list(self._groups)

    # -- behaviour --------------------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for category, group in self._groups.items():
            shown = 0
            for i in range(group.childCount()):
                item = group.child(i)
                cls = LAYER_TYPES[item.data(0, TYPE_ROLE)]
                hay = f"{cls.type_name} {category} {cls.description}".lower()
                hidden = bool(needle) and needle not in hay
                item.setHidden(hidden)
                shown += not hidden
            group.setHidden(shown == 0)
        if self.filter_box.text() != text:
            self.filter_box.setText(text)

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        type_name = item.data(0, TYPE_ROLE)
        if type_name:
            self.layer_chosen.emit(type_name)

    def _show_description(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None = None) -> None:
        type_name = item.data(0, TYPE_ROLE) if item else None
        self.description.setText(layer_tooltip(type_name) if type_name else HINT)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt override)
        if watched is self.tree and isinstance(event, QKeyEvent) and event.type() == QKeyEvent.Type.KeyPress:
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.tree.currentItem():
                self._activated(self.tree.currentItem())
                return True
        return super().eventFilter(watched, event)

    def set_editable(self, editable: bool) -> None:
        """While the document is locked, drags and double-clicks would only be refused: say so up front."""
        self.tree.setDragEnabled(editable)
        self.setToolTip("" if editable else "The architecture is locked while training runs.")
