"""What a file that is not the expected kind looks like, for messages such as "it is a JSON text file"."""

from __future__ import annotations

import json
import os
import struct
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
    if _safetensors_head(head, Path(path)):
        return "a safetensors file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of another kind"
    stripped = text.lstrip()
    if stripped[:1] in "{[":
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):  # broken, an integer of thousands of digits, nested too deeply
            return "a text file that looks like JSON"
        if isinstance(doc, dict) and str(doc.get("format", "")).startswith("cnn-studio.project/"):
            return "a CNN Studio project file (JSON)"
        if isinstance(doc, dict) and str(doc.get("format", "")).startswith("cnn-studio.architecture/"):
            return "an architecture file (JSON)"
        return "a JSON text file"
    return "a text file"


def looks_like_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts as a safetensors file does: the header's length (8 bytes, little-endian),
    no longer than the file, then the header's JSON object. safetensors has no magic number; this is
    what tells it from the other files a weight file could be mistaken for."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return _safetensors_head(head, Path(path))


def _safetensors_head(head: bytes, path: Path) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    try:
        return 2 <= length <= path.stat().st_size - 8
    except OSError:
        return False
