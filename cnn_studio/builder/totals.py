"""The totals bar under the canvas: parameters, multiply-adds and activation memory per image."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QResizeEvent, QTextDocumentFragment
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from cnn_studio.builder import describe, style
from cnn_studio.builder.memory_fit import batch_size, training_estimate
from cnn_studio.document import ProjectDocument
from engine.architecture import Analysis
from engine.memory import available_memory, fit, format_bytes


class TotalsBar(QFrame):
    """One line of totals. Each figure has a long, a shorter and a shortest wording: the bar shows the
    longest that fits its width, so a narrow window shortens the words instead of clipping them (the
    tooltips keep every detail)."""

    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setObjectName("totalsBar")
        self.setStyleSheet("#totalsBar { background: #f4f6f8; border-top: 1px solid #d5dae1; }"
                           f"QLabel {{ color: {style.TEXT}; }}")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(12, 6, 12, 6)
        self._layout.setSpacing(12)
        self.params = QLabel(self)
        self.macs = QLabel(self)
        self.macs.setToolTip("Multiply-adds of one forward pass for one image: a measure of compute")
        self.memory = QLabel(self)
        self.training_memory = QLabel(self)
        self.status = QLabel(self)
        for label in (self.params, self.macs, self.memory, self.training_memory, self.status):
            label.setMinimumWidth(1)  # the wording shortens to fit; the bar never widens the window
        for label in (self.params, self.macs, self.memory, self.training_memory):
            self._layout.addWidget(label)
        self._layout.addStretch(1)
        self._layout.addWidget(self.status)
        self._wordings: dict[QLabel, tuple[str, ...]] = {}
        self.level = 0  # 0: the longest wording
        document.changed.connect(self.refresh)
        document.settings_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        a = self.document.analysis()
        total = a.trainable_params + a.non_trainable_params
        # Counts are partial while a layer has no shapes (a problem that stops shape inference).
        partial = "" if all(info.output_shape is not None for info in a.layers) else " (so far)"
        compact = describe.format_compact
        frozen = a.frozen_params
        # Frozen parameters are among the non-trainable ones; the rest are running statistics.
        split = (f"{a.trainable_params:,} trainable, {frozen:,} frozen, {a.non_trainable_params - frozen:,} other"
                 if frozen else f"{a.trainable_params:,} trainable, {a.non_trainable_params:,} not")
        self._wordings = {
            self.params: (f"Parameters <b>{total:,}</b>{partial} ({split})",
                          f"Parameters <b>{total:,}</b>{partial}" + (f" ({frozen:,} frozen)" if frozen else ""),
                          f"Params <b>{compact(total)}</b>{'?' if partial else ''}"
                          + (f" ({compact(frozen)} frozen)" if frozen else "")),
            self.macs: (f"Multiply-adds <b>{compact(a.macs)}</b> / image",
                        f"Multiply-adds <b>{compact(a.macs)}</b>",
                        f"MACs <b>{compact(a.macs)}</b>"),
            self.memory: (f"Activations <b>{describe.format_bytes(a.activation_bytes)}</b> / image",
                          f"Activations <b>{describe.format_bytes(a.activation_bytes)}</b>",
                          f"Act. <b>{describe.format_bytes(a.activation_bytes)}</b>"),
        }
        self.params.setToolTip(f"{total:,} parameters{partial}: {a.trainable_params:,} trainable ones (learned) "
                               f"and {a.non_trainable_params:,} non-trainable ones (running statistics, e.g. "
                               "batch-norm means and variances"
                               + (f", and {frozen:,} in frozen layers, which training leaves as they are)"
                                  if frozen else ")"))
        self.macs.setToolTip(f"{a.macs:,} multiply-adds for one forward pass of one image")
        self.memory.setToolTip(f"{a.activation_bytes:,} bytes: float32 input and every layer's output for one "
                               "image, forward pass")
        self._training_memory(a)
        if a.ok:
            status = ("<span style='color:#2e7d32'>✔ Ready to train</span>",
                      "<span style='color:#2e7d32'>✔ Ready to train</span>",
                      "<span style='color:#2e7d32'>✔ Ready</span>")
        else:
            n = len(a.problems)
            text = f"✖ {n} problem{'s' if n != 1 else ''}"
            status = (f"<span style='color:{style.ERROR_ACCENT}'>{text}</span>",) * 2 + (
                f"<span style='color:{style.ERROR_ACCENT}'>✖ {n}</span>",)
        self._wordings[self.status] = status
        self.status.setToolTip("" if a.ok else "The Problems list says what to fix.")
        self._fit()

    def _training_memory(self, a: Analysis) -> None:
        """The memory training takes at the project's batch size, against what this computer has free."""
        if not a.layers or any(info.output_shape is None for info in a.layers):  # no shapes, no estimate
            self._wordings[self.training_memory] = ("", "", "")
            self.training_memory.setToolTip("")
            return
        estimate = training_estimate(a, self.document.training)
        available = available_memory()
        verdict = fit(estimate, available)
        size = format_bytes(estimate.total)
        colour = {"too large": style.ERROR_ACCENT, "tight": "#b26a00"}.get(verdict)
        shown = f"<b>{size}</b>" if colour is None else f"<b style='color:{colour}'>{size}</b>"
        batch = batch_size(self.document.training)
        self._wordings[self.training_memory] = (f"Training {shown} (batch {batch})", f"Training {shown}",
                                                f"Train {shown}")
        free = "" if available is None else f" of the {format_bytes(available)} free"
        verdict_text = {"too large": "It will not fit: the Problems list says what to change.",
                        "tight": "That is more than half of the memory free: the computer may slow down.",
                        }.get(verdict, "")
        self.training_memory.setToolTip(
            f"About {size}{free} to train at batch size {batch}: {estimate.breakdown()}. {verdict_text}".strip())

    def _needed_width(self, level: int) -> int:
        margins = self._layout.contentsMargins()
        labels = list(self._wordings)
        width = margins.left() + margins.right() + self._layout.spacing() * len(labels)
        for label, wordings in self._wordings.items():
            # Measured as the label itself lays it out (fonts, fallback glyphs such as the tick).
            label.setText(wordings[level])
            width += label.sizeHint().width()
        return width

    def _fit(self) -> None:
        available = self.width()
        levels = len(next(iter(self._wordings.values())))
        self.level = next((lv for lv in range(levels) if self._needed_width(lv) <= available), levels - 1)
        self._show_level()

    def _show_level(self) -> None:
        for label, wordings in self._wordings.items():
            label.setText(wordings[self.level])

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._fit()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        width = self._needed_width(0)
        self._show_level()
        return QSize(width, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(0, super().minimumSizeHint().height())

    def text(self) -> str:
        """Plain text of the bar as shown (for tests and the clipboard)."""
        parts = (self.params, self.macs, self.memory, self.training_memory, self.status)
        return " | ".join(QTextDocumentFragment.fromHtml(p.text()).toPlainText() for p in parts)

    def full_text(self) -> str:
        """Plain text of the longest wording, whatever the width."""
        return " | ".join(QTextDocumentFragment.fromHtml(w[0]).toPlainText() for w in self._wordings.values())
