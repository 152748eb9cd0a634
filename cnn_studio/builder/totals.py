"""The totals bar under the canvas: parameters, multiply-adds and activation memory per image."""

from __future__ import annotations

from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from cnn_studio.builder import describe, style
from cnn_studio.document import ProjectDocument


class TotalsBar(QFrame):
    def __init__(self, document: ProjectDocument, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.setObjectName("totalsBar")
        self.setStyleSheet("#totalsBar { background: #f4f6f8; border-top: 1px solid #d5dae1; }"
                           f"QLabel {{ color: {style.TEXT}; }}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        layout.setSpacing(16)
        self.params = QLabel(self)
        self.macs = QLabel(self)
        self.macs.setToolTip("Multiply-adds of one forward pass for one image: a measure of compute")
        self.memory = QLabel(self)
        self.status = QLabel(self)
        for label in (self.params, self.macs, self.memory):
            label.setMinimumWidth(40)  # a narrow window clips the bar instead of growing to fit it
            layout.addWidget(label)
        layout.addStretch(1)
        layout.addWidget(self.status)
        document.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        a = self.document.analysis()
        total = a.trainable_params + a.non_trainable_params
        partial = "" if a.ok else " (so far)"
        self.params.setText(f"Parameters <b>{total:,}</b>{partial} ({a.trainable_params:,} trainable, "
                            f"{a.non_trainable_params:,} not)")
        self.params.setToolTip(f"{a.trainable_params:,} trainable parameters (learned) and "
                               f"{a.non_trainable_params:,} non-trainable ones (running statistics, e.g. "
                               "batch-norm means and variances)")
        self.macs.setText(f"Multiply-adds <b>{describe.format_compact(a.macs)}</b> / image")
        self.macs.setToolTip(f"{a.macs:,} multiply-adds for one forward pass of one image")
        self.memory.setText(f"Activations <b>{describe.format_bytes(a.activation_bytes)}</b> / image")
        self.memory.setToolTip(f"{a.activation_bytes:,} bytes: float32 input and every layer's output for one "
                               "image, forward pass")
        if a.ok:
            self.status.setText("<span style='color:#2e7d32'>✔ Ready to train</span>")
        else:
            n = len(a.problems)
            self.status.setText(f"<span style='color:{style.ERROR_ACCENT}'>✖ {n} problem{'s' if n != 1 else ''}"
                                "</span>")

    def text(self) -> str:
        """Plain text of the bar (for tests and the clipboard)."""
        parts = (self.params, self.macs, self.memory, self.status)
        return " | ".join(QTextDocumentFragment.fromHtml(p.text()).toPlainText() for p in parts)
