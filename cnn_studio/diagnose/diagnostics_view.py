"""The Diagnostics tab: what the training doctor found, with the evidence and one-click fixes, and its
records plotted per layer and epoch (gradient size, update-to-weight ratio, dead and saturated units)."""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.flow_layout import FlowLayout
from cnn_studio.training.plots import make_plot
from cnn_studio.training.run_colors import RUN_COLORS
from cnn_studio.turning_splitter import TurningSplitter, vertically_scrolling
from engine.doctor import Diagnosis, DoctorReport, EpochRecord, Fix

WAITING = ("<b>The training doctor</b> watches every run. After each epoch it checks for the usual reasons "
           "training goes wrong: a learning rate too high or too low, vanishing or exploding gradients, dead "
           "ReLU units, saturated sigmoid or tanh layers, overfitting and classes the network never predicts. "
           "What it finds appears here, with the numbers behind it and a fix where one is obvious.")
HEALTHY_RATIO = 1e-3
# Each plot's y-axis title, longest first. A plot squeezed by a dock below the window (the Layer profile)
# has less than 100 px of axis: it shows the longest title that fits whole, and its tooltip the first.
GRADIENT_TITLES = ("RMS of d(loss)/d(weights)", "RMS gradient", "gradient")
RATIO_TITLES = ("update / weight", "update")
UNITS_TITLES = ("share (%)", "%")
AXIS_TITLE_COLOUR = "#333333"
SEVERITY_COLOURS = {"error": "#c0392b", "warning": "#d68910"}
# Stacked (a narrow tab), the advice pane is as tall as its cards need, between these heights; the plots
# below get PLOTS_HEIGHT and the tab scrolls. Taller than ADVICE_MOST, the cards scroll in their own pane.
ADVICE_LEAST, ADVICE_MOST, PLOTS_HEIGHT = 120, 640, 3 * 240


def fix_key(fix: Fix) -> tuple[str, str]:
    """What identifies a fix from one report to the next (fixes hold dicts: they are not hashable)."""
    return fix.kind, fix.label


def fit_axis_title(plot: pg.PlotWidget, titles: tuple[str, ...]) -> None:
    """Keep the left axis's title to the longest of ``titles`` its height shows whole (else the last):
    pyqtgraph centres a longer one on the axis and cuts both ends ("MS of d(loss)/d(weights)")."""
    item = plot.getPlotItem()
    axis, box = item.getAxis("left"), item.getViewBox()

    def refit() -> None:
        room = box.height()  # the axis spans the data's row, as high as the view box
        metrics = QFontMetricsF(axis.label.font())
        title = next((t for t in titles if metrics.horizontalAdvance(t) + 6 <= room), titles[-1])
        if axis.labelText != title:
            item.setLabel("left", title, color=AXIS_TITLE_COLOUR)

    box.sigResized.connect(refit)
    refit()


# After the palette's seven hues, layers take them again with another line pattern.
LINE_PATTERNS = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


def layer_pens(names: list[str]) -> dict[str, tuple[str, Qt.PenStyle]]:
    """Each layer's (colour, line pattern): the colour-blind safe hues of the Train tab's runs, the
    pattern telling apart layers whose hue comes round again."""
    count = len(RUN_COLORS)
    return {name: (RUN_COLORS[i % count], LINE_PATTERNS[(i // count) % len(LINE_PATTERNS)])
            for i, name in enumerate(names)}


class DiagnosisCard(QFrame):
    """One diagnosis: a coloured edge for its severity, title, evidence, advice and a button per fix."""

    fix_requested = Signal(object)  # Fix
    layer_requested = Signal(str)  # the layer's name: show it in the design

    def __init__(self, diagnosis: Diagnosis, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.diagnosis = diagnosis
        colour = SEVERITY_COLOURS.get(diagnosis.severity, "#d68910")
        self.setObjectName("diagnosisCard")
        self.setStyleSheet(f"#diagnosisCard {{ background: #ffffff; border: 1px solid #d9dde3; "
                           f"border-left: 5px solid {colour}; border-radius: 4px; }}")
        self.title = QLabel(f"<b style='color:{colour}'>{diagnosis.title}</b> <span style='color:#777'>"
                            f"(epoch {diagnosis.epoch})</span>")
        self.evidence = QLabel(_sentence(diagnosis.evidence))
        self.advice = QLabel(f"<span style='color:#444'>{diagnosis.advice}</span>")
        for label in (self.title, self.evidence, self.advice):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.evidence)
        layout.addWidget(self.advice)
        self.buttons: dict[tuple[str, str], QPushButton] = {}
        self.fixes: dict[tuple[str, str], Fix] = {}
        # The buttons wrap onto further rows: side by side they are wider than the advice pane, and the
        # card (in a scroll area that does not scroll sideways) would be cut off on the right.
        row = FlowLayout()
        for fix in diagnosis.fixes:
            button = QPushButton(fix.label)
            button.setToolTip(f"{fix.label}: one undoable edit of the project (Ctrl+Z undoes it); the next run "
                              "trains with it")
            button.clicked.connect(lambda _checked=False, f=fix: self.fix_requested.emit(f))
            row.addWidget(button)
            self.buttons[fix_key(fix)] = button
            self.fixes[fix_key(fix)] = fix
        if diagnosis.layer:
            show = QPushButton(f"Show {diagnosis.layer}")
            show.setFlat(True)
            show.setToolTip("Select this layer in the Design tab")
            show.clicked.connect(lambda _checked=False: self.layer_requested.emit(diagnosis.layer))
            row.addWidget(show)
            self.show_button = show
        if diagnosis.fixes or diagnosis.layer:
            layout.addLayout(row)
        self._applied: set[tuple[str, str]] = set()
        self._enabled, self._reason = True, ""

    def set_fixes_enabled(self, enabled: bool, reason: str = "") -> None:
        self._enabled, self._reason = enabled, reason
        self._refresh()

    def mark_applied(self, fix: Fix, applied: bool) -> None:
        key = fix_key(fix)
        if key in self.buttons:
            (self._applied.add if applied else self._applied.discard)(key)
            self._refresh()

    def button(self, kind: str) -> QPushButton | None:
        """The button of this card's fix of ``kind`` (tests, scripts)."""
        return next((b for (k, _), b in self.buttons.items() if k == kind), None)

    def _refresh(self) -> None:
        for key, button in self.buttons.items():
            fix = self.fixes[key]
            applied = key in self._applied
            button.setText(f"✓ {fix.label}" if applied else fix.label)
            button.setEnabled(self._enabled and not applied)
            if applied:
                button.setToolTip("Applied: Ctrl+Z (Edit > Undo) takes it back")
            elif not self._enabled:
                button.setToolTip(self._reason)
            else:
                button.setToolTip(f"{fix.label}: one undoable edit of the project (Ctrl+Z undoes it); the next run "
                                  "trains with it")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


class DiagnosticsView(QWidget):
    """``set_report(DoctorReport)`` shows the diagnoses as cards and the records as plots.

    Signals: ``fix_requested(Fix)``, ``layer_requested(str)`` (a layer name).
    """

    fix_requested = Signal(object)
    layer_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: DoctorReport | None = None
        self.cards: list[DiagnosisCard] = []
        self._fixes_enabled, self._reason = True, ""
        self._applied: dict[tuple[str, str], Fix] = {}

        self.summary = QLabel(WAITING)
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.card_box = QWidget()
        self.card_layout = QVBoxLayout(self.card_box)
        self.card_layout.setContentsMargins(0, 0, 0, 0)
        self.card_layout.setSpacing(8)
        self.card_layout.addStretch(1)
        scroll = self.cards_scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.card_box)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 6, 6)
        left_layout.addWidget(self.summary)
        left_layout.addWidget(scroll, 1)
        left.setMinimumWidth(340)

        self.gradient_plot = make_plot("Gradient size per layer (RMS)", "epoch", GRADIENT_TITLES[0],
                                       legend_above=True, log_y=True)
        self.ratio_plot = make_plot("Weight change per step ÷ weight size", "epoch", RATIO_TITLES[0],
                                    legend_above=True, log_y=True)
        self.units_plot = make_plot("Dead ReLU units and saturated sigmoid/tanh outputs", "epoch", UNITS_TITLES[0],
                                    legend_above=True)
        for plot, titles in ((self.gradient_plot, GRADIENT_TITLES), (self.ratio_plot, RATIO_TITLES),
                             (self.units_plot, UNITS_TITLES)):
            fit_axis_title(plot, titles)
        self.units_plot.getPlotItem().setYRange(0, 100)
        self.healthy_line = pg.InfiniteLine(pos=math.log10(HEALTHY_RATIO), angle=0,
                                            pen=pg.mkPen("#7f7f7f", width=1, style=Qt.PenStyle.DashLine),
                                            label="healthy ≈ 1e-3", labelOpts={"color": "#555555",
                                                                                 "position": 0.1})
        self.ratio_plot.addItem(self.healthy_line)
        plots = QSplitter(Qt.Orientation.Vertical)
        for plot in (self.gradient_plot, self.ratio_plot, self.units_plot):
            plot.setToolTip(self._plot_tip(plot))
            plots.addWidget(plot)
        # Advice beside the plots in a wide tab; in a narrow one the plots go below at full width and the
        # tab scrolls (plots a third of the width would cut their titles and hide their curves).
        splitter = TurningSplitter(side_by_side_from=800, shares=(2, 3), stacked_heights=(ADVICE_LEAST, PLOTS_HEIGHT))
        splitter.addWidget(left)
        splitter.addWidget(plots)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        self.splitter = splitter
        self.advice = left
        left.installEventFilter(self)  # a new width wraps the cards anew: their height changes
        self.card_box.installEventFilter(self)  # new cards are laid out (shown) after set_report returns
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.timeout.connect(self._fit_advice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(vertically_scrolling(splitter))
        self.curves: dict[str, dict[str, pg.PlotDataItem]] = {"gradient": {}, "ratio": {}, "units": {}}

    def _plot_tip(self, plot: pg.PlotWidget) -> str:
        # Each tip starts with the axis's whole title: a short plot shows a shorter one (fit_axis_title).
        if plot is self.gradient_plot:
            return (f"{GRADIENT_TITLES[0]}: the median over each epoch of the size (root mean square) of each "
                    "layer's gradient. Falling by orders of magnitude towards the input: vanishing gradients; "
                    "growing: exploding ones.")
        if plot is self.ratio_plot:
            return (f"{RATIO_TITLES[0]}: how much one step changes a layer's weights, relative to their size. "
                    "Around 1e-3 is healthy; far below, the learning rate is too low; far above, too high.")
        return (f"{UNITS_TITLES[0]}: the share of a ReLU layer's units that output zero for every probe image "
                "(dead), and of a sigmoid or tanh layer's outputs stuck near its limits (saturated).")

    # -- content -------------------------------------------------------------------------------------------------
    def clear(self, text: str = WAITING) -> None:
        self.report = None
        self._applied.clear()
        self._set_cards([])
        self.summary.setText(text)
        for plot in (self.gradient_plot, self.ratio_plot, self.units_plot):
            for item in list(plot.getPlotItem().listDataItems()):
                plot.removeItem(item)
        for kind in self.curves:
            self.curves[kind] = {}
        self._fit_timer.start(0)

    def set_report(self, report: DoctorReport) -> None:
        same = self.report is not None and [d for d in self.report.diagnoses] == list(report.diagnoses)
        self.report = report
        if not same:
            self._set_cards(list(report.diagnoses))
        self._update_summary()
        self._plot(list(report.records))
        self._fit_timer.start(0)

    @property
    def diagnoses(self) -> tuple[Diagnosis, ...]:
        return self.report.diagnoses if self.report is not None else ()

    def set_fixes_enabled(self, enabled: bool, reason: str = "") -> None:
        self._fixes_enabled, self._reason = enabled, reason
        for card in self.cards:
            card.set_fixes_enabled(enabled, reason)

    def mark_applied(self, fix: Fix, applied: bool) -> None:
        if applied:
            self._applied[fix_key(fix)] = fix
        else:
            self._applied.pop(fix_key(fix), None)
        for card in self.cards:
            card.mark_applied(fix, applied)

    def card(self, kind: str) -> DiagnosisCard | None:
        return next((c for c in self.cards if c.diagnosis.kind == kind), None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self.advice and event.type() == QEvent.Type.Resize and \
                event.size().width() != event.oldSize().width():
            self._fit_timer.start(0)  # after the resize: the splitter is being laid out now
        elif watched is self.card_box and event.type() == QEvent.Type.LayoutRequest:
            self._fit_timer.start(0)
        return super().eventFilter(watched, event)

    def advice_height(self) -> int:
        """The height the advice pane needs to show the summary and every card whole at its present width."""
        layout = self.advice.layout()
        margins = layout.contentsMargins()
        width = self.advice.width() - margins.left() - margins.right()
        cards = self.card_layout.heightForWidth(self.cards_scroll.viewport().width()) if self.cards else 0
        return (margins.top() + margins.bottom() + self.summary.heightForWidth(width) + layout.spacing()
                + max(cards, 0) + 2 * self.cards_scroll.frameWidth())

    def _fit_advice(self) -> None:
        """Stacked above the plots, the advice pane had a fixed 120 px: one card's first lines in a scroll area
        of its own, its fix buttons out of sight. It gets the height its cards need (the tab scrolls)."""
        splitter = self.splitter
        height = max(ADVICE_LEAST, min(self.advice_height(), ADVICE_MOST))
        if splitter.stacked_heights[0] == height:
            return
        splitter.stacked_heights = (height, *splitter.stacked_heights[1:])
        if splitter.orientation() == Qt.Orientation.Vertical:
            splitter.setSizes([height, max(splitter.sizes()[1], PLOTS_HEIGHT)])
        splitter.updateGeometry()

    def _set_cards(self, diagnoses: list[Diagnosis]) -> None:
        for card in self.cards:
            self.card_layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        for diagnosis in diagnoses:
            card = DiagnosisCard(diagnosis)
            # Not capped at its size hint: a card's height depends on its width (wrapped text and buttons), and
            # the column's layout gives it that height only if it may be taller than the hint. The stretch
            # below the cards keeps them packed at the top.
            card.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
            card.fix_requested.connect(self.fix_requested)
            card.layer_requested.connect(self.layer_requested)
            card.set_fixes_enabled(self._fixes_enabled, self._reason)
            for fix in self._applied.values():
                card.mark_applied(fix, True)
            self.card_layout.insertWidget(self.card_layout.count() - 1, card)
            self.cards.append(card)

    def _update_summary(self) -> None:
        report = self.report
        if report is None:
            return
        epochs = len(report.records)
        last = report.records[-1].epoch if report.records else 0
        if report.diagnoses:
            n = len(report.diagnoses)
            self.summary.setText(f"<b>The training doctor found {n} problem{'s' if n != 1 else ''}</b> "
                                 f"(checked after epoch {last}). Each says what it saw and what to do; a button "
                                 "applies the fix to the project as one undoable edit.")
        elif epochs and report.notes:
            # A short run is no clean bill of health: say what is still to watch.
            notes = "".join(f"<br>{html.escape(note)}" for note in report.notes)
            self.summary.setText(f"<b style='color:#1e8449'>No problems found</b> after epoch {last}.{notes}")
        elif epochs:
            self.summary.setText(f"<b style='color:#1e8449'>No problems found</b> after epoch {last}: the loss, "
                                 "the gradients, the weight updates and the units all look healthy.")
        else:
            self.summary.setText(WAITING)

    # -- plots ----------------------------------------------------------------------------------------------------
    def _plot(self, records: list[EpochRecord]) -> None:
        if not records:
            return
        epochs = np.array([r.epoch for r in records], dtype=np.float64)
        names = [entry.name for entry in records[-1].layers]
        # Hues go to the layers some plot shows (pooling and flattening have nothing to plot), in order.
        plotted = [name for name in names if any(
            (entry := record.layer(name)) is not None and any(
                getattr(entry, field) is not None
                for field in ("gradient_rms", "update_ratio", "dead_fraction", "saturated_fraction"))
            for record in records)]
        pens = layer_pens(plotted)

        def series(get) -> dict[str, np.ndarray]:
            out = {}
            for name in names:
                values = []
                for record in records:
                    entry = record.layer(name)
                    value = get(entry) if entry is not None else None
                    values.append(np.nan if value is None else float(value))
                if not np.all(np.isnan(values)):
                    out[name] = np.array(values)
            return out

        positive = lambda a: np.where(a > 0, a, np.nan)  # noqa: E731 (log axes show nothing for zero)
        self._curves("gradient", self.gradient_plot, epochs,
                     {k: positive(v) for k, v in series(lambda e: e.gradient_rms).items()}, pens)
        self._curves("ratio", self.ratio_plot, epochs,
                     {k: positive(v) for k, v in series(lambda e: e.update_ratio).items()}, pens)
        dead = {f"{k} dead": 100 * v for k, v in series(lambda e: e.dead_fraction).items()}
        saturated = {f"{k} saturated": 100 * v for k, v in series(lambda e: e.saturated_fraction).items()}
        unit_pens = {f"{k} {what}": pen for k, pen in pens.items() for what in ("dead", "saturated")}
        # A layer's dead and saturated units share its hue: round points for dead, triangles for saturated.
        symbols = {f"{k} saturated": "t" for k in pens}
        self._curves("units", self.units_plot, epochs, {**dead, **saturated}, unit_pens, symbols)
        step = max(1, math.ceil(epochs[-1] / 10))  # whole epochs only, at most about ten labels
        for plot in (self.gradient_plot, self.ratio_plot, self.units_plot):
            plot.getPlotItem().setXRange(0.5, max(epochs[-1], 1) + 0.5, padding=0)
            plot.getPlotItem().getAxis("bottom").setTickSpacing(major=step, minor=step)
        self.units_plot.getPlotItem().setYRange(0, 100)

    def _curves(self, kind: str, plot: pg.PlotWidget, x: np.ndarray, data: dict[str, np.ndarray],
                pens: dict[str, tuple[str, Qt.PenStyle]], symbols: dict[str, str] | None = None) -> None:
        curves = self.curves[kind]
        for name in [n for n in curves if n not in data]:
            plot.removeItem(curves.pop(name))
        for name, y in data.items():
            if name not in curves:
                colour, style = pens.get(name, ("#555555", Qt.PenStyle.SolidLine))
                curves[name] = plot.plot([], [], name=name, pen=pg.mkPen(colour, width=2, style=style),
                                         symbol=(symbols or {}).get(name, "o"), symbolSize=6, symbolBrush=colour,
                                         symbolPen=None, connect="finite")
            curves[name].setData(x, y, connect="finite")
