"""Reading JSON that a user may have edited or damaged: every failure is one documented error.

Python's json module accepts NaN and Infinity (no JSON number), turns 1e999 into infinity, raises
RecursionError on deep nesting and ValueError on integers of more than 4300 digits. None of that
belongs in a CNN Studio file, so ``parse_json`` refuses it all with one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.json_errors import describe_json_error

# Deeper than any document the app writes (an architecture is about 5 levels deep); generous for
# hand-written extras, and far below where walking the document could exhaust Python's stack.
MAX_DEPTH = 64


class _Refused(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:20]} is too large")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists and objects (a scalar is 0), counted without recursion; stops past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def parse_json(text: str | bytes, source: object, error: type[EngineError] = EngineError,
               broken: str = "not valid JSON:") -> Any:
    """Decode JSON text; raise ``error("<source>: <what is wrong>")`` for anything CNN Studio cannot hold.

    ``broken`` opens the sentence about a syntax error ("<source>: <broken> line 3, column 7: ...")."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise error(f"{source}: not a text file (byte {exc.start} is not UTF-8)") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: {broken} {describe_json_error(exc)}.") from None
    except _Refused as exc:
        raise error(f"{source}: not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{source}: the JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise error(f"{source}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if nesting_depth(value) > MAX_DEPTH:
        raise error(f"{source}: the JSON is nested more than {MAX_DEPTH} levels deep")
    return value


def read_json(path: str | os.PathLike, error: type[EngineError] = EngineError, what: str = "file",
              broken: str = "not valid JSON:") -> Any:
    """Read and decode a JSON file; every failure (missing, a folder, unreadable, broken) is ``error``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:  # a path holding a NUL character
        raise error(f"{path}: cannot read it ({exc})") from None
    return parse_json(data, path, error, broken)
