"""Plain words for JSON syntax errors, so a broken file is reported in one whole sentence."""

from __future__ import annotations

import json

# json's messages end mid-sentence ("Unterminated string starting at"): say what is wrong instead.
_EXPLANATIONS = {
    "Unterminated string starting at": "a quoted string starts there and is never closed",
    "Expecting value": "a value is missing there",
    "Expecting property name enclosed in double quotes": "a key in double quotes is expected there",
    "Expecting ',' delimiter": "a comma is missing there",
    "Expecting ':' delimiter": "a colon is missing there",
    "Extra data": "more text follows the end of the document",
    "Invalid control character at": "a string holds a raw control character (such as a line break)",
    "Invalid \\escape": "a backslash escape there is not valid",
}


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """'line 3, column 7: a quoted string starts there and is never closed (the file seems cut short)'."""
    explanation = _EXPLANATIONS.get(exc.msg, exc.msg[:1].lower() + exc.msg[1:])
    text = exc.doc if isinstance(exc.doc, str) else ""
    if exc.msg.startswith("Unterminated") or not text[exc.pos:].strip():
        explanation += " (the file seems cut short)"
    return f"line {exc.lineno}, column {exc.colno}: {explanation}"
