"""Colours and icons of the builder: one hue per layer category, readable on a light theme."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QColor, QIcon

from engine.layers import LAYER_TYPES
from engine.resources import asset_path

# (accent for stripes and icons, pale fill for block bodies)
CATEGORY_COLORS: dict[str, tuple[str, str]] = {
    "Convolution": ("#2f6fc9", "#eef4fd"),
    "Pooling": ("#1f8a7d", "#ebf7f5"),
    "Normalization": ("#7a55b8", "#f3eefb"),
    "Activation": ("#d0760e", "#fdf4e9"),
    "Regularization": ("#5d6b7a", "#f1f3f5"),
    "Core": ("#b3245a", "#fcedf2"),
    "Merge": ("#8e3fb8", "#f6eefb"),
    "Blocks": ("#3d5a99", "#eef1f8"),
}
NEUTRAL = ("#4a5868", "#f4f6f8")
ERROR_ACCENT = "#c62828"
ERROR_FILL = "#fdecea"
WARNING_ACCENT = "#b26a00"  # works, but probably a mistake (a branch nothing uses)
WARNING_FILL = "#fff4e0"
SELECTION = "#1a73e8"
TEXT = "#1f2933"
MUTED_TEXT = "#5f6b7a"


def category_of(type_name: str) -> str:
    cls = LAYER_TYPES.get(type_name)
    return cls.category if cls else ""


def accent(category: str) -> QColor:
    return QColor(CATEGORY_COLORS.get(category, NEUTRAL)[0])


def fill(category: str) -> QColor:
    return QColor(CATEGORY_COLORS.get(category, NEUTRAL)[1])


@cache
def icon(name: str) -> QIcon:
    """An icon from assets/icons/<name>.svg (category names are lower-cased); empty if missing."""
    path = asset_path("icons", f"{name.lower()}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()


def category_icon(category: str) -> QIcon:
    return icon(category)


def layer_icon(type_name: str) -> QIcon:
    return icon(category_of(type_name) or "core")
