"""Which run is being trained right now: a lock file held by the training process.

The operating system releases the lock however the process ends (SIGKILL, power loss), so a run
whose record still says "running" but whose lock can be taken was interrupted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class RunLock:
    """An exclusive, non-blocking lock on ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self, note_pid: bool = True) -> bool:
        """Take the lock; False when another process (or another RunLock here) holds it.
        ``note_pid`` writes this process's id into the file (for people looking)."""
        if self._handle is not None:
            return True
        handle = open(self.path, "a+b")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            handle.close()
            return False
        if note_pid:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()).encode())
            handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        handle.close()


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock on ``path`` now."""
    if not Path(path).exists():
        return False
    probe = RunLock(path)
    try:
        if probe.acquire(note_pid=False):
            return False
        return True
    except OSError:
        return False
    finally:
        probe.release()
