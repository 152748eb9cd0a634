"""Reading ``.npz`` archives that may be damaged or hostile: weight files and datasets alike.

Every member's header is read first: pickled Python objects are refused before a byte of them is
read (no file can run code), as are record and object dtypes, headers that promise more data than
the member holds (a flipped byte in a shape would otherwise allocate gigabytes) and archives whose
arrays together would not fit in memory. Then the arrays are read with ``allow_pickle=False``.
Every failure is one error of the caller's type naming the file and the member.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from engine.errors import EngineError, brief, shown
from engine.memory import MemoryEstimate, check, format_bytes

# Array dtypes a CNN Studio file can hold: booleans, integers, floats, complex (refused later with a
# clearer message) and text (the architecture record).
_KINDS = set("biufcUS")
_HEADER_BYTES = 10_000  # numpy's own limit for a header it parses without trusting the file


def _member_key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data promised) of one member, read from its header alone."""
    fmt = np.lib.format
    with archive.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f, max_header_size=_HEADER_BYTES)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f, max_header_size=_HEADER_BYTES)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        header_end = f.tell()
    return shape, dtype, math.prod(shape) * dtype.itemsize + header_end


def read_npz(path: str | os.PathLike, error: type[EngineError] = EngineError,
             what: str = "a readable .npz archive") -> dict[str, np.ndarray]:
    """Every array of the archive at ``path`` by name, in archive order; raises ``error`` naming the file.

    ``what`` completes "<path>: not ..." when the file is no zip archive at all."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not an .npz file") from None
    except Exception as exc:  # BadZipFile, NotImplementedError (odd zip versions), OSError, ValueError, ...
        raise error(f"{path}: not {what} ({_reason(exc)})") from None
    with archive:
        members = [info for info in archive.infolist() if not info.filename.endswith("/")]  # (is_dir fails on "")
        promised = 0
        for info in members:
            key = shown(_member_key(info.filename))
            if not info.filename.endswith(".npy"):
                raise error(f"{path}: member {key} is not a NumPy array (.npy)")
            try:
                shape, dtype, size = _header(archive, info)
            except Exception as exc:  # zipfile, zlib and numpy's header parser raise many kinds
                raise error(f"{path}: array {key} is damaged ({_reason(exc)})") from None
            if dtype.hasobject:
                raise error(f"{path}: array {key} holds Python objects (pickled data), which CNN Studio never "
                            "loads because they could run code")
            if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
                raise error(f"{path}: array {key} has unsupported dtype {shown(str(dtype))}")
            if size > info.file_size:
                raise error(f"{path}: array {key} is damaged (its header promises {shape} {dtype} values, "
                            f"{size:,} bytes, but it holds {info.file_size:,})")
            promised += size
        check(MemoryEstimate((("arrays", promised),), f"its arrays hold {format_bytes(promised)}"),
              "read this file", path)
        arrays: dict[str, np.ndarray] = {}
        for info in members:
            key = _member_key(info.filename)
            try:
                with archive.open(info) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
            except Exception as exc:  # a damaged member: bad CRC, truncated data, corrupt deflate stream
                raise error(f"{path}: array {shown(key)} is damaged ({_reason(exc)})") from None
    return arrays


def _reason(exc: BaseException) -> str:
    return "corrupt compressed data" if isinstance(exc, zlib.error) else brief(exc, 160)
