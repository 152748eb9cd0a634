"""The layer palette: every engine layer type grouped by category, composite blocks (a residual or an
Inception block, several layers at once) last, with a filter box.

Drag an entry onto the canvas to insert it where it is dropped; double-click (or Enter) appends it.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QKeyEvent
from PySide6.QtWidgets import QLabel, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from cnn_studio.builder import style
from cnn_studio.builder.composites import COMPOSITES
from cnn_studio.builder.mime import composite_mime, layer_mime
from engine.layers import CATEGORIES, LAYER_TYPES

TYPE_ROLE = Qt.ItemDataRole.UserRole
COMPOSITE_ROLE = Qt.ItemDataRole.UserRole + 1
BLOCKS_GROUP = "Blocks"
HINT = "Drag a layer onto a wire of the architecture, or double-click it to append it at the end."


def layer_tooltip(type_name: str) -> str:
    cls = LAYER_TYPES[type_name]
    return f"<b>{type_name}</b> <i>({cls.category})</i><br>{cls.description}<br><br><small>{HINT}</small>"


def composite_summary(key: str) -> str:
    """A composite block in rich text: its title, that it is one undo step, and what it holds."""
    composite = COMPOSITES[key]
    return f"<b>{composite.title}</b> <i>(several layers, one undo step)</i><br>{composite.description}"


def composite_tooltip(key: str) -> str:
    return f"{composite_summary(key)}<br><br><small>{HINT}</small>"


class _PaletteTree(QTreeWidget):
    """A tree whose leaves start drags carrying the layer MIME payload."""

    def startDrag(self, supported_actions: Qt.DropAction) -> None:  # noqa: N802 (Qt override)
        item = self.currentItem()
        type_name = item.data(0, TYPE_ROLE) if item else None
        composite = item.data(0, COMPOSITE_ROLE) if item else None
        if not type_name and not composite:
            return
        drag = QDrag(self)
        if type_name:
            drag.setMimeData(layer_mime(type_name))
            drag.setPixmap(style.layer_icon(type_name).pixmap(32, 32))
        else:
            drag.setMimeData(composite_mime(composite))
            drag.setPixmap(style.category_icon(BLOCKS_GROUP).pixmap(32, 32))
        drag.setHotSpot(QPoint(16, 16))
        drag.exec(Qt.DropAction.CopyAction)


class LayerPalette(QWidget):
    """Signals: ``layer_chosen(str)`` when a layer is double-clicked or activated with Enter;
    ``composite_chosen(str)`` the same for a composite block (its key in ``COMPOSITES``)."""

    layer_chosen = Signal(str)
    composite_chosen = Signal(str)

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
        self._composites: dict[str, QTreeWidgetItem] = {}
        self._groups: dict[str, QTreeWidgetItem] = {}
        self._populate()
        self.filter_box.textChanged.connect(self.set_filter)
        self.tree.itemDoubleClicked.connect(self._activated)
        self.tree.currentItemChanged.connect(self._show_description)
        self.tree.installEventFilter(self)

    def _populate(self) -> None:
        for category in CATEGORIES:
            group = self._add_group(category)
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
        group = self._add_group(BLOCKS_GROUP)
        for key, composite in COMPOSITES.items():
            item = QTreeWidgetItem(group, [composite.title])
            item.setData(0, COMPOSITE_ROLE, key)
            item.setIcon(0, style.category_icon(BLOCKS_GROUP))
            item.setToolTip(0, composite_tooltip(key))
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
            self._composites[key] = item
        group.setExpanded(True)

    def _add_group(self, category: str) -> QTreeWidgetItem:
        group = QTreeWidgetItem(self.tree, [category])
        group.setIcon(0, style.category_icon(category))
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        group.setForeground(0, style.accent(category))
        self._groups[category] = group
        return group

    # -- queries used by tests and the window ------------------------------------------------------------
    def item_for(self, type_name: str) -> QTreeWidgetItem:
        return self._items[type_name]

    def composite_item(self, key: str) -> QTreeWidgetItem:
        return self._composites[key]

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
                if item.data(0, TYPE_ROLE):
                    cls = LAYER_TYPES[item.data(0, TYPE_ROLE)]
                    hay = f"{cls.type_name} {category} {cls.description}".lower()
                else:
                    composite = COMPOSITES[item.data(0, COMPOSITE_ROLE)]
                    hay = f"{composite.title} {category} {composite.description}".lower()
                hidden = bool(needle) and needle not in hay
                item.setHidden(hidden)
                shown += not hidden
            group.setHidden(shown == 0)
        if self.filter_box.text() != text:
            self.filter_box.setText(text)

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        type_name = item.data(0, TYPE_ROLE)
        composite = item.data(0, COMPOSITE_ROLE)
        if type_name:
            self.layer_chosen.emit(type_name)
        elif composite:
            self.composite_chosen.emit(composite)

    def _show_description(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None = None) -> None:
        type_name = item.data(0, TYPE_ROLE) if item else None
        composite = item.data(0, COMPOSITE_ROLE) if item else None
        if type_name:
            self.description.setText(layer_tooltip(type_name))
        elif composite:
            self.description.setText(composite_tooltip(composite))
        else:
            self.description.setText(HINT)

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
