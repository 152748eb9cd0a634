"""A table's column header that shows every class name whole: level where each name fits its column, turned
upright (read bottom to top) where one would not, so "Pullover" or "Ankle boot" is never cut to "Pull" or
"Ankl" in a narrow confusion matrix. Each header keeps its tooltip (the model's ToolTipRole)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QHeaderView, QStyle, QStyleOptionHeader, QWidget

TURNED_MARGIN = 6  # pixels at each end of an upright name


class ClassNameHeader(QHeaderView):
    """A horizontal QHeaderView; ``turned`` says whether the names stand upright now."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self._turned = False
        self._deciding = False
        self.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTextElideMode(Qt.TextElideMode.ElideNone)
        # Column widths come from the table's width; the names decide only the header's height.
        self.sectionResized.connect(lambda *_args: self._decide())
        self.sectionCountChanged.connect(lambda *_args: self._decide())

    def setModel(self, model) -> None:  # noqa: N802 (Qt's name)
        super().setModel(model)
        if model is not None:  # new names (another dataset) may fit level where the old ones did not, or not
            model.headerDataChanged.connect(lambda *_args: self._decide())

    @property
    def turned(self) -> bool:
        return self._turned

    def names(self) -> list[str]:
        model = self.model()
        if model is None:
            return []
        return [str(model.headerData(i, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole) or "")
                for i in range(self.count())]

    def level_fits(self) -> bool:
        """Whether every name fits its column lying level."""
        return all(self.sectionSizeFromContents(i).width() <= self.sectionSize(i) for i in range(self.count()))

    def _longest(self) -> int:
        metrics = self.fontMetrics()
        return max((metrics.horizontalAdvance(name) for name in self.names()), default=0)

    def _decide(self) -> None:
        if self._deciding:
            return
        self._deciding = True
        try:
            turned = self.count() > 0 and not self.level_fits()
            if turned != self._turned:
                self._turned = turned
                self.updateGeometry()
                self.geometriesChanged.emit()  # the table gives the header its new height
                self.viewport().update()
        finally:
            self._deciding = False

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        hint = super().sizeHint()
        if self._turned:
            hint.setHeight(max(hint.height(), self._longest() + 2 * TURNED_MARGIN))
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._decide()

    def paintSection(self, painter: QPainter, rect: QRect, index: int) -> None:  # noqa: N802 (Qt's name)
        if not self._turned:
            super().paintSection(painter, rect, index)
            return
        # The section's frame as the style draws it, without its text; then the name upright.
        option = QStyleOptionHeader()
        self.initStyleOption(option)
        self.initStyleOptionForIndex(option, index)
        name, option.text = option.text, ""
        option.rect = rect
        painter.save()
        self.style().drawControl(QStyle.ControlElement.CE_Header, option, painter, self)
        painter.restore()
        painter.save()
        painter.setFont(self.font())
        painter.setPen(self.palette().color(QPalette.ColorRole.ButtonText))
        painter.translate(rect.left(), rect.bottom() + 1)
        painter.rotate(-90)
        upright = QRect(TURNED_MARGIN, 0, rect.height() - 2 * TURNED_MARGIN, rect.width())
        painter.drawText(upright, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        painter.restore()
