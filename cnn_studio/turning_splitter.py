"""A splitter that puts its panes side by side in a wide window and one above the other in a narrow one.

A workspace tab with two large panes (curves and results, advice and plots) uses it inside a vertical
scroll area: at 1600 px both panes sit side by side with nothing to scroll; at 1100 px, beside the docks,
each pane gets the full width and the tab scrolls instead of squeezing plots into slivers.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QWidget


class TurningSplitter(QSplitter):
    """Side by side from ``side_by_side_from`` pixels of width on (and only when every pane gets at least
    its minimum width); stacked below that. ``shares`` divide the length between the panes each time the
    splitter turns; in between, the user's handle position is kept. ``stacked_heights``: the least height
    each pane gets when stacked (the scroll area around it scrolls), so that plots keep a readable size."""

    def __init__(self, side_by_side_from: int, shares: tuple[int, ...] = (1, 1),
                 stacked_heights: tuple[int, ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.side_by_side_from = side_by_side_from
        self.shares = shares
        self.stacked_heights = stacked_heights
        self.setChildrenCollapsible(False)
        self._turned_once = False

    def _pane_minimums(self, stacked: bool = False) -> list[QSize]:
        minimums = []
        for i in range(self.count()):
            pane = self.widget(i)
            if pane.isHidden():
                continue
            size = pane.minimumSizeHint().expandedTo(pane.minimumSize())
            if stacked and i < len(self.stacked_heights):
                size.setHeight(max(size.height(), self.stacked_heights[i]))
            minimums.append(size)
        return minimums

    def fits_side_by_side(self, width: int) -> bool:
        minimums = self._pane_minimums()
        needed = sum(m.width() for m in minimums) + self.handleWidth() * max(len(minimums) - 1, 0)
        return width >= max(self.side_by_side_from, needed)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """As narrow as the widest pane (it stacks when narrower than both side by side); as tall as the
        panes need in the present arrangement."""
        minimums = self._pane_minimums()
        width = max((m.width() for m in minimums), default=0)
        if self.orientation() == Qt.Orientation.Horizontal:
            height = max((m.height() for m in minimums), default=0)
        else:
            stacked = self._pane_minimums(stacked=True)
            height = sum(m.height() for m in stacked) + self.handleWidth() * max(len(stacked) - 1, 0)
        return QSize(width, height)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        side_by_side = self.fits_side_by_side(event.size().width())
        orientation = Qt.Orientation.Horizontal if side_by_side else Qt.Orientation.Vertical
        if orientation != self.orientation() or not self._turned_once:
            self._turned_once = True
            self.setOrientation(orientation)
            length = event.size().width() if side_by_side else max(event.size().height(),
                                                                    self.minimumSizeHint().height())
            shares = self.shares[:self.count()]
            if side_by_side or not self.stacked_heights:
                total = sum(shares) or 1
                self.setSizes([length * share // total for share in shares])
            else:
                self.setSizes([m.height() for m in self._pane_minimums(stacked=True)])
            self.updateGeometry()  # the stacked panes are taller: the scroll area around must know
        super().resizeEvent(event)


class _VerticalScroll(QScrollArea):
    """Never narrower than its content's minimum: only the height scrolls, nothing is cut at the side."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        needed = content.minimumSizeHint().expandedTo(content.minimumSize()).width()
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(max(hint.width(), needed + bar), hint.height())


def vertically_scrolling(content: QWidget) -> QScrollArea:
    """``content`` in a frameless scroll area that follows the width and scrolls only vertically."""
    scroll = _VerticalScroll()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    return scroll
