"""What a file that is not the expected kind looks like, for messages such as "it is a JSON text file"."""

from __future__ import annotations

import json
import os
from pathlib import Path

_MAGIC = (
    (b"PK\x03\x04", "a zip archive"),
    (b"\x93NUMPY", "a single NumPy array (.npy)"),
    (b"\x89PNG", "a PNG picture"),
    (b"\xff\xd8\xff", "a JPEG picture"),
    (b"\x08\x01\x12", "an ONNX model"),
)


def describe_file(path: str | os.PathLike, limit: int = 1 << 20) -> str:
    """A few words on what ``path`` holds: 'a JSON text file (an architecture or project file?)', ..."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(limit)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    for magic, words in _MAGIC:
        if head.startswith(magic):
            return words
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of another kind"
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return "a text file that looks like JSON"
        if isinstance(doc, dict) and str(doc.get("format", "")).startswith("cnn-studio.project/"):
            return "a CNN Studio project file (JSON)"
        if isinstance(doc, dict) and str(doc.get("format", "")).startswith("cnn-studio.architecture/"):
            return "an architecture file (JSON)"
        return "a JSON text file"
    return "a text file"
