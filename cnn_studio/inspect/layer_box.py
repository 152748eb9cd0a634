"""The layer chooser of the Inside tab's views (Attribution, Filters, Filter atlas, Embedding)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox


def layer_box(tip: str) -> QComboBox:
    """A combo box of layer names, always as wide as its longest name.

    Qt's default sizes a combo box once, for the names it holds when first shown: after a network with
    longer names (ResNet-8's "global_avg_pool2d_1" after the seed network's "dense_1") the name was cut.
    """
    box = QComboBox()
    box.setToolTip(tip)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
    return box
