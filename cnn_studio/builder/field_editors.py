"""One editor widget per parameter kind of the engine's layer schema (``engine.layers.Field``).

Every editor has ``value()``, ``set_value(v)`` (silent) and a ``value_changed(object)`` signal, so
the inspector can generate a form for any layer type without knowing it.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.layers import Field

INT_CEILING = 1_000_000


class FieldEditor(QWidget):
    value_changed = Signal(object)

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = field
        self.setToolTip(field.help)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        self._layout = QHBoxLayout()
        outer.addLayout(self._layout)
        # Says why a value was not taken as typed (e.g. beyond the field's limit); hidden otherwise.
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a5300;")
        self.note.hide()
        outer.addWidget(self.note)

    def show_note(self, text: str) -> None:
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def _emit(self, *_args: Any) -> None:
        self.value_changed.emit(self.value())


def field_label(name: str) -> str:
    """'kernel_size' -> 'Kernel size', as form labels show a field."""
    return name.replace("_", " ").capitalize()


class LimitedSpinBox(QSpinBox):
    """A spin box that lets a number beyond its range be typed, then brings it to the nearest limit
    and says so (``clamped(typed, limit)``) instead of silently refusing the keystroke; arrows and the
    wheel stopping at a limit say so too (``stopped(limit)``)."""

    clamped = Signal(int, int)
    stopped = Signal(int)

    def _typed_number(self, text: str) -> int | None:
        digits = text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()
        return int(digits) if digits.lstrip("-").isdigit() else None

    def validate(self, text: str, pos: int) -> object:
        result = super().validate(text, pos)
        state = result[0] if isinstance(result, tuple) else result
        if state == QValidator.State.Invalid and self._typed_number(text) is not None:
            return QValidator.State.Intermediate, text, pos
        return result

    def fixup(self, text: str) -> str:
        typed = self._typed_number(text)
        if typed is not None and not self.minimum() <= typed <= self.maximum():
            limit = self.maximum() if typed > self.maximum() else self.minimum()
            self.clamped.emit(typed, limit)
            return str(limit)
        return super().fixup(text)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        # Arrow keys and the wheel stop at the limit; say so rather than do nothing.
        target = self.value() + steps * self.singleStep()
        if not self.minimum() <= target <= self.maximum() and not self.wrapping():
            self.stopped.emit(self.maximum() if target > self.maximum() else self.minimum())
        super().stepBy(steps)


class IntEditor(FieldEditor):
    """Whole numbers in the field's range; an optional field gets a 'default' value below the minimum.

    The range is in the tooltip, and a number beyond it is brought to the limit with a note saying so.
    """

    def __init__(self, field: Field, parent: QWidget | None = None) -> None:
        super().__init__(field, parent)
        self.spin = LimitedSpinBox(self)
        low = int(field.minimum) if field.minimum is not None else 0
        high = int(field.maximum) if field.maximum is not None else INT_CEILING
        self.low, self.high = low, high
        self._none_value = low - 1 if field.optional else None
        self.spin.setRange(low - 1 if field.optional else low, high)
        if field.optional:
            self.spin.setSpecialValueText("default" if field.name != "stride" else "= pool size")
        unit = ""
        tip = field.help
        if field.kind == "size":
            unit = " px"
            self.spin.setSuffix(unit)
            tip = f"{tip} Square windows: 3 means 3x3."
        self.setToolTip(f"{tip} Allowed: {self.limits_text()}.")
        self._unit = unit
        self.spin.setAccelerated(True)
        self.spin.setToolTip(self.toolTip())
        self._layout.addWidget(self.spin)
        self.spin.valueChanged.connect(self._value_changed)
        self.spin.clamped.connect(self._clamped)
        self.spin.stopped.connect(self._stopped)

    def limits_text(self) -> str:
        unit = " px" if self.field.kind == "size" else ""
        if self.high >= INT_CEILING:
            return f"{self.low}{unit} or more"
        return f"{self.low} to {self.high}{unit}"

    def _clamped(self, typed: int, limit: int) -> None:
        if self._none_value is not None and typed == self._none_value:
            return
        name = field_label(self.field.name)
        if typed > self.high:
            self.show_note(f"{name} is at most {self.high}{self._unit}: {typed} was set to {limit}.")
        else:
            self.show_note(f"{name} is at least {self.low}{self._unit}: {typed} was set to {self.low}.")

    def _stopped(self, limit: int) -> None:
        name = field_label(self.field.name)
        if limit >= self.high:
            self.show_note(f"{name} is at most {self.high}{self._unit}.")
        elif self._none_value is None:
            self.show_note(f"{name} is at least {self.low}{self._unit}.")

    def _value_changed(self, _value: int) -> None:
        if not self.note.isHidden() and self.low < self.spin.value() < self.high:
            self.show_note("")
        self._emit()

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
