"""Mutation strategies and checks shared by the fuzz tests (tests/engine/fuzz, tests/studio).

A fuzz test starts from a valid file, mutates it (bytes: truncation, flips, insertions; JSON: hostile
values at any field, missing and extra fields, deep nesting, huge numbers) and asserts that the reader
either accepts it or raises one of the project's documented errors with a one-line message naming
the file. Import this module only after ``tests.helpers.extras.require("hypothesis")``.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.errors import EngineError

fuzz = pytest.mark.fuzz


def fuzz_settings(share: float = 1.0, **overrides: Any) -> settings:
    """Settings for one fuzz test: ``share`` of the active profile's examples (at least 10).

    The profile is chosen on the command line (``--hypothesis-profile=long``); a slow reader takes a
    smaller share so that the normal suite stays quick.
    """
    examples = max(10, int(settings.default.max_examples * share))
    return settings(max_examples=examples, suppress_health_check=list(HealthCheck), deadline=None, **overrides)


# ------------------------------------------------------------------------------------- JSON values
# Placeholders replaced in the JSON text (json.dumps could not write these values itself).
DEEP_NESTING = "@@deep-nesting@@"
HUGE_DIGITS = "@@huge-digits@@"
BARE_NAN = "@@bare-nan@@"

_SCALARS = [
    None, True, False, 0, 1, -1, 3, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30),
    0.5, -1.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf"),
    "", "3", "1e3", "relu", "same", "valid", "softmax", "Conv2D", "x" * 5000, "Ωé☃\u202e\u0301",
    "\x00", "../../../etc/passwd", "file:///etc/passwd", "$(touch pwned)",
]
_CONTAINERS = [[], [1], [3, 3], [0, 0, 0], [[]], [None], {}, {"a": None}, {"type": "Conv2D"}, {"shape": [1]}]


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def hostile_values(placeholders: bool = True) -> st.SearchStrategy[Any]:
    """Values a hand-edited or damaged JSON file may hold where a field expected something else."""
    fixed = [*_SCALARS, *_CONTAINERS]
    if placeholders:
        fixed += [DEEP_NESTING, HUGE_DIGITS, BARE_NAN]
    return st.one_of(
        st.sampled_from(fixed).map(copy.deepcopy),  # a copy: a later mutation must not edit the constant
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.integers(1, 200).map(_nested),
        st.lists(st.integers(-5, 70000), max_size=4),
    )


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, max_mutations: int = 3, placeholders: bool = True) -> Any:
    """``doc`` with 1..max_mutations edits: a hostile value at any field (or as the whole document),
    a field deleted, an extra field added, a list item duplicated or dropped."""
    doc = copy.deepcopy(doc)
    values = hostile_values(placeholders)
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(list(_paths(doc))))
        action = draw(st.sampled_from(("replace", "replace", "replace", "delete", "extra", "duplicate")))
        if not path:
            if action == "replace":
                doc = draw(values)
            elif action == "extra" and isinstance(doc, dict):
                doc[draw(st.sampled_from(("extra", "layers_", "__proto__", "x" * 300)))] = draw(values)
            continue
        parent, key = _parent(doc, path), path[-1]
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "extra" and isinstance(parent[key], dict):
            parent[key][draw(st.text(min_size=1, max_size=8) | st.sampled_from(("name", "id", "type")))] = (
                draw(values))
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return doc


def json_text(doc: Any) -> str:
    """The document as JSON text, NaN and Infinity written as Python writes them, placeholders filled in."""
    text = json.dumps(doc, ensure_ascii=False)
    return (text.replace(json.dumps(DEEP_NESTING), "[" * 5000 + "]" * 5000)
            .replace(json.dumps(HUGE_DIGITS), "9" * 5000)
            .replace(json.dumps(BARE_NAN), "NaN"))


def strip_placeholders(doc: Any) -> Any:
    """A document with the text placeholders turned into values a dict can hold (for in-memory readers)."""
    if isinstance(doc, dict):
        return {k: strip_placeholders(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strip_placeholders(v) for v in doc]
    return {DEEP_NESTING: _nested(300), HUGE_DIGITS: 10**5000, BARE_NAN: math.nan}.get(doc, doc) \
        if isinstance(doc, str) else doc


# ------------------------------------------------------------------------------------- bytes
@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, max_flips: int = 4) -> bytes:
    """``data`` truncated at any byte, with bytes flipped, overwritten, inserted or a block removed."""
    out = bytearray(data)
    action = draw(st.sampled_from(("truncate", "flip", "flip", "overwrite", "insert", "cut", "mixed")))
    if action in ("truncate", "mixed"):
        del out[draw(st.integers(0, max(len(out) - 1, 0))):]
    if action in ("flip", "mixed") and out:
        for _ in range(draw(st.integers(1, max_flips))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
    if action == "overwrite" and out:
        i = draw(st.integers(0, len(out) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
            (b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00")))
        out[i:i + len(chunk)] = chunk
    if action == "insert":
        i = draw(st.integers(0, len(out)))
        out[i:i] = draw(st.binary(min_size=1, max_size=64))
    if action == "cut" and len(out) > 1:
        i = draw(st.integers(0, len(out) - 1))
        del out[i:i + draw(st.integers(1, 64))]
    return bytes(out)


# ------------------------------------------------------------------------------------- checks
def check_reader(read: Callable[[], Any], name: str | os.PathLike | None,
                 errors: tuple[type[BaseException], ...] = (EngineError,)) -> BaseException | None:
    """Run ``read``: it may succeed (returns None) or raise one of ``errors`` whose message is one line
    and names ``name`` (a file's path or name; None when the reader has no file). Anything else fails."""
    try:
        read()
    except errors as exc:
        assert_one_line(exc, name)
        return exc
    return None


def assert_one_line(exc: BaseException, name: str | os.PathLike | None) -> None:
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} with an empty message"
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    assert len(message) < 2000, f"message is {len(message)} characters long: {message[:200]!r}..."
    if name is not None:
        shown = [os.fspath(name), Path(name).name]
        assert any(s in message for s in shown), f"message does not name {Path(name).name!r}: {message!r}"


def files_in(folder: Path) -> set[str]:
    """Names of every file under ``folder`` (to check that a failed write left nothing behind)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
