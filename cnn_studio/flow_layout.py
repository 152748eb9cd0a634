"""A layout that puts its widgets side by side and wraps them onto further rows when the width runs out.

Toolbars of a pane use it: in a wide window they form one row, in a narrow one they take two or three
rows instead of forcing the whole window wider or cutting their labels.
"""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLabel, QLayout, QLayoutItem, QWidget


class FlowLayout(QLayout):
    """Items left to right, wrapped at the layout's width. A label added with ``add_labelled`` stays on
    the row of the widget it names. Items that expand horizontally (sliders, progress bars) share the
    room a row leaves over, up to their maximum widths."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6, row_spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._glued: list[bool] = []  # item i stays on the row of item i + 1
        self._spacing = spacing
        self._row_spacing = row_spacing
        self.setContentsMargins(0, 0, 0, 0)

    # -- building ----------------------------------------------------------------------------------------------
    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 (Qt override)
        self._items.append(item)
        self._glued.append(False)

    def add_labelled(self, label: QWidget | str, widget: QWidget) -> QWidget:
        """Add ``label`` and ``widget`` so that they always share a row; returns the label."""
        if isinstance(label, str):
            label = QLabel(label)
        if isinstance(label, QLabel) and label.buddy() is None:
            label.setBuddy(widget)
        self.addWidget(label)
        self._glued[-1] = True
        self.addWidget(widget)
        return label

    def glue_last(self) -> None:
        """Keep the last item added on the row of the next one."""
        if self._glued:
            self._glued[-1] = True

    # -- QLayout's item access ---------------------------------------------------------------------------------
    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 (Qt override)
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 (Qt override)
        if not 0 <= index < len(self._items):
            return None
        self._glued.pop(index)
        return self._items.pop(index)

    # -- sizes -----------------------------------------------------------------------------------------------------
    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802 (Qt override)
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt override)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt override)
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Everything on one row."""
        shown = [item for item in self._items if not item.isEmpty()]
        width = sum(item.sizeHint().width() for item in shown) + self._spacing * max(len(shown) - 1, 0)
        height = max((item.sizeHint().height() for item in shown), default=0)
        return self._with_margins(QSize(width, height))

    def minimumSize(self) -> QSize:  # noqa: N802 (Qt override)
        """As narrow as the widest group of items that must share a row."""
        width = 0
        height = 0
        for group in self._groups():
            width = max(width, sum(item.minimumSize().width() for item in group)
                        + self._spacing * (len(group) - 1))
            height = max([height] + [item.minimumSize().height() for item in group])
        return self._with_margins(QSize(width, height))

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802 (Qt override)
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    # -- arranging -------------------------------------------------------------------------------------------
    def _with_margins(self, size: QSize) -> QSize:
        m: QMargins = self.contentsMargins()
        return QSize(size.width() + m.left() + m.right(), size.height() + m.top() + m.bottom())

    def _groups(self) -> list[list[QLayoutItem]]:
        """The shown items, in runs that must stay on one row (a label and its widget)."""
        groups: list[list[QLayoutItem]] = []
        current: list[QLayoutItem] = []
        for item, glued in zip(self._items, self._glued, strict=True):
            if item.isEmpty():
                continue
            current.append(item)
            if not glued:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        return groups

    def _group_width(self, group: list[QLayoutItem], available: int) -> int:
        preferred = sum(item.sizeHint().width() for item in group) + self._spacing * (len(group) - 1)
        minimum = sum(item.minimumSize().width() for item in group) + self._spacing * (len(group) - 1)
        return max(minimum, min(preferred, available))

    def _rows(self, width: int) -> list[list[list[QLayoutItem]]]:
        rows: list[list[list[QLayoutItem]]] = []
        used = 0
        for group in self._groups():
            needed = self._group_width(group, width)
            if rows and used + self._spacing + needed <= width:
                rows[-1].append(group)
                used += self._spacing + needed
            else:
                rows.append([group])
                used = needed
        return rows

    def _arrange(self, rect: QRect, apply: bool) -> int:
        """Place the items in ``rect`` (only measure unless ``apply``); returns the height they take."""
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        width = max(area.width(), 1)
        y = area.y()
        for index, row in enumerate(self._rows(width)):
            items = [item for group in row for item in group]
            widths = self._row_widths(row, width)
            height = max(item.sizeHint().height() for item in items)
            if index:
                y += self._row_spacing
            if apply:
                x = area.x()
                for item, item_width in zip(items, widths, strict=True):
                    item_height = min(height, item.maximumSize().height())
                    if not item.expandingDirections() & Qt.Orientation.Vertical:
                        item_height = min(item_height, max(item.sizeHint().height(), item.minimumSize().height()))
                    top = y + (height - item_height) // 2
                    item.setGeometry(QRect(QPoint(x, top), QSize(item_width, item_height)))
                    x += item_width + self._spacing
            y += height
        return y - area.y() + m.top() + m.bottom()

    def _row_widths(self, row: list[list[QLayoutItem]], width: int) -> list[int]:
        """Each item's width in a row: its preferred width (less, down to its minimum, when a single group
        is wider than the row), then what is left shared among the items that expand."""
        items = [item for group in row for item in group]
        widths = [item.sizeHint().width() for item in items]
        gaps = self._spacing * (len(items) - 1)
        excess = sum(widths) + gaps - width
        if excess > 0:  # only a lone group can be too wide: shrink its items towards their minimums
            for i, item in enumerate(items):
                give = min(excess, widths[i] - item.minimumSize().width())
                if give > 0:
                    widths[i] -= give
                    excess -= give
            return widths
        left = -excess
        growing = [i for i, item in enumerate(items) if item.expandingDirections() & Qt.Orientation.Horizontal]
        while left > 0 and growing:
            share = max(left // len(growing), 1)
            still = []
            for i in growing:
                room = items[i].maximumSize().width() - widths[i]
                step = min(share, room, left)
                widths[i] += step
                left -= step
                if room > step:
                    still.append(i)
            growing = still
        return widths
