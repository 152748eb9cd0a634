"""One editor widget per parameter kind of the engine's layer schema (``engine.layers.Field``).

Every editor has ``value()``, ``set_value(v)`` (silent) and a ``value_changed(object)`` signal, so
the inspector can generate a form for any layer type without knowing it.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QSpinBox, QWidget

from engine.layers import Field

INT_CEILING = 1_000_000


class FieldEditor(QWidget):
    value_changed = Signal(object)

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setToolTip(field.help)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def _emit(self, *_args: Any) -> None:
        self.value_changed.emit(self.value())


class IntEditor(FieldEditor):
    """Whole numbers in the field's range; an optional field gets a 'default' value below the minimum."""

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.spin = QSpinBox(self)
        low = int(field.minimum) if field.minimum is not None else 0
        high = int(field.maximum) if field.maximum is not None else INT_CEILING
        self._none_value = low - 1 if field.optional else None
        self.spin.setRange(low - 1 if field.optional else low, high)
        if field.optional:
            self.spin.setSpecialValueText("default" if field.name != "stride" else "= pool size")
        if field.kind == "size":
            self.spin.setSuffix(" px")
            self.setToolTip(f"{field.help} Square windows: 3 means 3x3.")
        self.spin.setAccelerated(True)
        self.spin.setToolTip(self.toolTip())
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(self._emit)

    def value(self) -> int | None:
        v = self.spin.value()
        return None if v == self._none_value else v

    def set_value(self, value: Any) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(self._none_value if value is None and self._none_value is not None else int(value or 0))
        self.spin.blockSignals(False)


class FloatEditor(FieldEditor):
    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.spin = QDoubleSpinBox(self)
        default = abs(float(field.default or 0))
        # Enough decimals to show the default with two more digits of room (1e-5 -> 7 decimals).
        decimals = max(2, -math.floor(math.log10(default)) + 2) if default else 3
        self.spin.setDecimals(decimals)
        self.spin.setSingleStep(10 ** -(decimals - 1))
        self.spin.setRange(field.minimum if field.minimum is not None else -1e6,
                           field.maximum if field.maximum is not None else 1e6)
        self.spin.setToolTip(field.help)
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(self._emit)

    def value(self) -> float:
        return float(self.spin.value())

    def set_value(self, value: Any) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(float(value))
        self.spin.blockSignals(False)


class BoolEditor(FieldEditor):
    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.box = QCheckBox(self)
        self.box.setToolTip(field.help)
        self._layout.addWidget(self.box)
        self.box.toggled.connect(self._emit)

    def value(self) -> bool:
        return self.box.isChecked()

    def set_value(self, value: Any) -> None:
        self.box.blockSignals(True)
        self.box.setChecked(bool(value))
        self.box.blockSignals(False)


class ChoiceEditor(FieldEditor):
    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.combo = QComboBox(self)
        for choice in field.choices:
            self.combo.addItem("none" if choice is None else str(choice), choice)
        self.combo.setToolTip(field.help)
        self._layout.addWidget(self.combo)
        self.combo.currentIndexChanged.connect(self._emit)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        self.combo.blockSignals(True)
        index = self.combo.findData(value)
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)


class PaddingEditor(FieldEditor):
    """'valid', 'same', or a number of pixels per side (the spin box is live only for pixels)."""

    MODES = ("valid", "same", "pixels")

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.combo = QComboBox(self)
        self.combo.addItems(self.MODES)
        self.combo.setItemData(0, "No padding: the output shrinks by kernel - 1.", 3)
        self.combo.setItemData(1, "Zero-pad so the output size is input / stride (rounded up).", 3)
        self.combo.setItemData(2, "Pad every side with the given number of zero pixels.", 3)
        self.combo.setToolTip(field.help)
        self.pixels = QSpinBox(self)
        self.pixels.setRange(0, 64)
        self.pixels.setSuffix(" px")
        self.pixels.setToolTip("Zero pixels added on each side")
        self._layout.addWidget(self.combo, 2)
        self._layout.addWidget(self.pixels, 1)
        self.combo.currentIndexChanged.connect(self._mode_changed)
        self.pixels.valueChanged.connect(self._emit)
        self._mode_changed(silent=True)

    def _mode_changed(self, *_args: Any, silent: bool = False) -> None:
        self.pixels.setEnabled(self.combo.currentText() == "pixels")
        if not silent:
            self._emit()

    def value(self) -> str | int:
        mode = self.combo.currentText()
        return self.pixels.value() if mode == "pixels" else mode

    def set_value(self, value: Any) -> None:
        self.combo.blockSignals(True)
        self.pixels.blockSignals(True)
        if isinstance(value, int) and not isinstance(value, bool):
            self.combo.setCurrentIndex(2)
            self.pixels.setValue(value)
        else:
            self.combo.setCurrentIndex(max(self.MODES.index(value) if value in self.MODES else 0, 0))
        self.pixels.setEnabled(self.combo.currentText() == "pixels")
        self.combo.blockSignals(False)
        self.pixels.blockSignals(False)


EDITORS: dict[str, type[FieldEditor]] = {
    "int": IntEditor, "size": IntEditor, "float": FloatEditor, "bool": BoolEditor,
    "choice": ChoiceEditor, "padding": PaddingEditor,
}


def editor_for(field: Field, parent: QWidget | None = None) -> FieldEditor:
    return EDITORS[field.kind](field, parent)
