"""Drag-and-drop payloads between the palette, the canvas and other apps.

A palette entry carries ``{"type": "Conv2D"}`` (a composite block ``{"composite": "residual"}``) as
JSON under ``LAYER_MIME``; a block being moved carries its layer id (UTF-8) under ``BLOCK_MIME``.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

LAYER_MIME = "application/x-cnn-studio-layer"
BLOCK_MIME = "application/x-cnn-studio-block"


def layer_mime(type_name: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(LAYER_MIME, json.dumps({"type": type_name}).encode("utf-8"))
    mime.setText(type_name)
    return mime


def composite_mime(key: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(LAYER_MIME, json.dumps({"composite": key}).encode("utf-8"))
    mime.setText(key)
    return mime


def block_mime(layer_id: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(BLOCK_MIME, layer_id.encode("utf-8"))
    return mime


def _palette_payload(mime: QMimeData, key: str) -> str | None:
    if not mime.hasFormat(LAYER_MIME):
        return None
    try:
        payload = json.loads(bytes(mime.data(LAYER_MIME).data()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    value = payload.get(key) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def layer_type_from(mime: QMimeData) -> str | None:
    """The layer type a palette drag carries, or None when the payload is not one."""
    return _palette_payload(mime, "type")


def composite_from(mime: QMimeData) -> str | None:
    """The composite block (e.g. "residual") a palette drag carries, or None."""
    return _palette_payload(mime, "composite")


def block_id_from(mime: QMimeData) -> str | None:
    """The layer id a block drag carries, or None."""
    if not mime.hasFormat(BLOCK_MIME):
        return None
    try:
        text = bytes(mime.data(BLOCK_MIME).data()).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text or None
