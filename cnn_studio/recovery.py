"""Recovery files: the open project as it was a few seconds ago, kept while the studio runs.

Each running studio writes its own file (``recovery-<process>.json``) in the recovery folder:
``$CNN_STUDIO_RECOVERY_DIR`` if set, else the user's data folder (``$XDG_DATA_HOME`` or
``~/.local/share`` on Linux, ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%`` on
Windows) under ``cnn-studio/recovery/``. A clean exit, or saving the project, removes it; a file
whose studio is no longer running is what a crash left behind, and the next launch offers it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_studio.project_file import ProjectData, ProjectFileError, parse_project, project_dict
from engine.atomic import write_text_atomic

RECOVERY_ENV = "CNN_STUDIO_RECOVERY_DIR"
RECOVERY_FORMAT = "cnn-studio.recovery/1"


def recovery_dir() -> Path:
    configured = os.environ.get(RECOVERY_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "cnn-studio" / "recovery"


def _started(pid: int) -> float | None:
    """When process ``pid`` started (None when there is no such process): a pid alone may be reused."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except ImportError:  # without psutil the pid alone decides
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:
            pass
        return 0.0
    except Exception:  # psutil.NoSuchProcess, AccessDenied, ...
        return None


def this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "started": _started(pid) or 0.0}


def _running(owner: Any) -> bool:
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    started = _started(owner["pid"])
    if started is None:
        return False
    recorded = owner.get("started")
    return not started or not isinstance(recorded, (int, float)) or abs(started - recorded) < 2.0


@dataclass(frozen=True)
class Recovery:
    """What a studio that is no longer running left in its recovery file."""

    file: Path
    saved_at: float
    project_path: str | None  # the file the project was saved in, None while untitled
    runs_folder: str | None  # an untitled project's temporary runs folder
    data: ProjectData

    @property
    def name(self) -> str:
        return Path(self.project_path).stem if self.project_path else "Untitled"


def recovery_file() -> Path:
    owner = this_process()
    return recovery_dir() / f"recovery-{owner['pid']}-{int(owner['started'] * 1000)}.json"


def write_recovery(file: Path, data: ProjectData, project_path: str | os.PathLike | None,
                   runs_folder: str | os.PathLike | None) -> None:
    """Write (atomically) the project as it is now; raises OSError when the folder cannot be written."""
    record = {
        "format": RECOVERY_FORMAT, "owner": this_process(), "saved_at": time.time(),
        "project_path": str(project_path) if project_path else None,
        "runs_folder": str(runs_folder) if runs_folder else None,
        "project": project_dict(data),
    }
    file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(file, json.dumps(record, allow_nan=False))


def left_behind() -> list[Recovery]:
    """Recovery files of studios that are no longer running, newest first (damaged ones are skipped)."""
    found = []
    folder = recovery_dir()
    if not folder.is_dir():
        return []
    for file in folder.glob("recovery-*.json"):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
            if record.get("format") != RECOVERY_FORMAT or _running(record.get("owner")):
                continue
            data = parse_project(record["project"], str(file))
            found.append(Recovery(file, float(record.get("saved_at", 0.0)), record.get("project_path") or None,
                                  record.get("runs_folder") or None, data))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ProjectFileError):
            continue
    return sorted(found, key=lambda r: r.saved_at, reverse=True)


def discard(file: Path) -> None:
    with contextlib.suppress(OSError):
        file.unlink()
