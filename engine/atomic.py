"""Atomic file writes: a reader (or a crash) never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_TEMP_ATTEMPTS = 100


def _create_temporary(path: Path) -> tuple[int, str]:
    """Create a new, empty file beside ``path``.

    Unlike ``tempfile.mkstemp`` (always 0600), it is created with mode 0666 so the umask decides, as
    for any file a program creates: the finished file gets the permissions the user expects.
    """
    folder = path.parent or Path(".")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_ATTEMPTS):
        tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: cannot create a temporary file beside {path.name}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Write to a temporary file beside ``path``, then rename it over ``path``.

    A new file gets the usual permissions (0666 less the umask); a file written over keeps its own.
    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            _keep_mode_of(path, handle.fileno())
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _keep_mode_of(path: Path, fd: int) -> None:
    """Give the temporary file the permissions of the file it replaces, if there is one."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if os.chmod in os.supports_fd:
        with contextlib.suppress(OSError):
            os.chmod(fd, mode)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
