"""The chosen sample's class probabilities as horizontal bars: top-1 highlighted, true class marked."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_studio.plot_axes import plain_numbers

TOP_BRUSH = (230, 120, 20)
OTHER_BRUSH = (120, 140, 180)
TRUE_PEN = (20, 150, 60)


class PredictionView(QWidget):
    """``set_prediction(probabilities (K,), class_names, true_label | None)``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.headline = QLabel("No prediction yet")
        self.headline.setWordWrap(True)
        self.headline.setStyleSheet("font-size: 13px")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        plain_numbers(self.plot)
        self.plot.invertY(True)
        self.plot.setXRange(0, 1.2, padding=0)
        self.plot.getPlotItem().setLabel("bottom", "probability")
        self.plot.setMinimumHeight(180)
        # Its preferred height must not count as needed: next to the word-wrapped headline it would make the
        # whole view claim ~500 px and squeeze the drawing pad above it under its own buttons.
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.7)
        self.plot.addItem(self.bars)
        self._labels: list[pg.TextItem] = []
        self._names: list[str] = []  # the classes the axis names (kept while the view is empty)
        self._name_classes()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.plot, 1)
        self.probabilities: np.ndarray | None = None
        self.top_class: int | None = None
        self.true_label: int | None = None

    def clear(self, text: str = "No prediction yet") -> None:
        self.bars.setOpts(x0=[], y=[], width=[])
        for label in self._labels:
            label.setVisible(False)
        self.headline.setText(text)
        self.probabilities, self.top_class, self.true_label = None, None, None
        # The classes stay named, but the true-class mark belonged to the sample that is gone.
        self._name_classes()

    def _name_classes(self, true_label: int | None = None) -> None:
        """The class axis: each class's name, the true one marked; no numbers before any class is known."""
        ticks = [(i, f"\u2713 {n}" if i == true_label else n) for i, n in enumerate(self._names)]
        self.plot.getPlotItem().getAxis("left").setTicks([ticks])

    def set_prediction(self, probabilities: np.ndarray, class_names: list[str], true_label: int | None) -> None:
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        k = len(probs)
        names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
        top = int(np.argmax(probs))
        brushes = [pg.mkBrush(TOP_BRUSH if i == top else OTHER_BRUSH) for i in range(k)]
        pens = [pg.mkPen(TRUE_PEN, width=3) if i == true_label else pg.mkPen(None) for i in range(k)]
        self.bars.setOpts(x0=np.zeros(k), y=np.arange(k), width=probs, height=0.7, brushes=brushes, pens=pens)
        while len(self._labels) < k:
            label = pg.TextItem(color=(40, 40, 40), anchor=(0, 0.5))
            self.plot.addItem(label)
            self._labels.append(label)
        for i, label in enumerate(self._labels):
            label.setVisible(i < k)
            if i < k:
                label.setText(f"{100 * probs[i]:.1f}%")
                # Long bars carry their number inside, so it never runs off the plot's right edge.
                inside = probs[i] > 0.75
                label.setAnchor((1, 0.5) if inside else (0, 0.5))
                label.setColor((255, 255, 255) if inside else (40, 40, 40))
                label.setPos(probs[i] - 0.01 if inside else probs[i] + 0.01, i)
        self._names = names
        self._name_classes(true_label)
        self.plot.setYRange(-0.6, k - 0.4, padding=0)
        self.plot.setXRange(0, 1.2, padding=0)
        verdict = ""
        if true_label is not None and 0 <= true_label < k:
            right = top == true_label
            colour = "#148c3c" if right else "#c0392b"
            verdict = (f" &nbsp; true: <b>{names[true_label]}</b> "
                       f"<span style='color:{colour}'>{'right' if right else 'wrong'}</span>")
        self.headline.setText(f"Predicted <b>{names[top]}</b> ({100 * probs[top]:.1f}%){verdict}")
        self.probabilities, self.top_class, self.true_label = probs, top, true_label
