"""Nothing lost on a crash: a real studio process with unsaved changes is killed (SIGKILL); the next
launch offers its project back, and restores it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnn_studio import recovery
from cnn_studio.autosave import INTERVAL_ENV
from tests.studio.builder_helpers import layer_types, make_window

WAIT_SECONDS = 90

# A studio as `cnn-studio` starts it, then one edit through the editor and one training setting: unsaved.
STUDIO = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QSettings, QTimer
    from cnn_studio.app import create_application
    from cnn_studio.main_window import MainWindow

    app = create_application(sys.argv[:1])
    window = MainWindow(settings=QSettings(sys.argv[1], QSettings.Format.IniFormat))
    window.show()

    def edit():
        window.editor.insert_layer("BatchNorm", 1)
        window.document.set_training({"epochs": 7, "batch_size": 16})
        print("edited", flush=True)

    QTimer.singleShot(0, edit)
    sys.exit(app.exec())
""")


@pytest.fixture
def recovery_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "recovery"
    monkeypatch.setenv(recovery.RECOVERY_ENV, str(folder))
    return folder


def recovery_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("recovery-*.json")) if folder.is_dir() else []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_studio_is_offered_back_and_restored(qtbot, tmp_path, recovery_dir):
    env = {**os.environ, recovery.RECOVERY_ENV: str(recovery_dir), INTERVAL_ENV: "0.3",
           "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-c", STUDIO, str(tmp_path / "crashed.ini")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        written = None
        while time.monotonic() < deadline and proc.poll() is None:
            files = recovery_files(recovery_dir)
            if files and "BatchNorm" in files[0].read_text():
                written = files[0]
                break
            time.sleep(0.1)
        said = proc.stderr.read() if proc.poll() is not None else ""
        assert written is not None, f"no recovery file appeared; the studio said: {said}"
        record = json.loads(written.read_text())
        assert record["owner"]["pid"] == proc.pid
        # While the studio runs, its recovery file is not offered to another studio.
        assert recovery.left_behind() == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert recovery_files(recovery_dir) == [written]  # the crash left it behind

    window = make_window(qtbot, tmp_path)
    window.dialogs.restore_answer = True
    assert window.offer_recovery()
    assert window.dialogs.restore_questions == ["Untitled"]
    document = window.document
    assert layer_types(document)[:3] == ["Conv2D", "BatchNorm", "MaxPool2D"]
    assert document.training == {"epochs": 7, "batch_size": 16}
    assert document.is_modified() and window.isWindowModified()
    assert written not in recovery_files(recovery_dir)  # offered once; autosave now keeps this studio's own
    assert window.autosave.save_now() and recovery_files(recovery_dir) == [window.autosave.file]


def test_declined_changes_are_discarded_and_unanswered_ones_kept(qtbot, tmp_path, recovery_dir):
    from cnn_studio.project_file import ProjectData
    from tests.helpers.engine_factories import SMALL_CNN

    left = recovery_dir / "recovery-1-0.json"
    recovery.write_recovery(left, ProjectData(SMALL_CNN), None, None)
    record = json.loads(left.read_text())
    record["owner"] = {"pid": 2**22 + 12345, "started": 1.0}  # a process that is not running
    left.write_text(json.dumps(record))
    window = make_window(qtbot, tmp_path)
    window.dialogs.restore_answer = None  # nobody to ask (headless): kept for the next launch
    assert not window.offer_recovery() and left.exists()
    window.dialogs.restore_answer = False
    assert not window.offer_recovery() and not left.exists()
    assert window.dialogs.restore_questions == ["Untitled", "Untitled"]


def test_autosave_follows_unsaved_changes_and_a_clean_exit_leaves_nothing(qtbot, tmp_path, recovery_dir):
    window = make_window(qtbot, tmp_path)
    autosave = window.autosave
    assert autosave.timer.interval() == 30_000 and autosave.timer.isActive()
    assert not autosave.save_now() and not recovery_files(recovery_dir)  # nothing unsaved
    window.editor.insert_layer("Dropout", 2)
    assert autosave.save_now()
    saved = json.loads(autosave.file.read_text())
    assert saved["project"]["architecture"]["layers"][2]["type"] == "Dropout"
    assert not [p for p in recovery_dir.iterdir() if p.name.endswith(".tmp")]  # written atomically
    window.dialogs.save_path = str(tmp_path / "kept.cnnproj")
    window.save_action.trigger()
    assert not autosave.file.exists()  # saved: nothing left to recover
    window.editor.insert_layer("Dropout", 2)
    assert autosave.save_now() and json.loads(autosave.file.read_text())["project_path"].endswith("kept.cnnproj")
    window.close()
    assert not recovery_files(recovery_dir)


def test_an_untitled_projects_runs_folder_comes_back_with_it(qtbot, tmp_path, recovery_dir):
    first = make_window(qtbot, tmp_path)
    runs = first.document.run_store.folder  # an untitled project's runs live in a temporary folder
    runs.mkdir(parents=True, exist_ok=True)
    first.editor.insert_layer("Dropout", 2)
    assert first.autosave.save_now()
    record = json.loads(first.autosave.file.read_text())
    assert record["runs_folder"] == str(runs)
    record["owner"] = {"pid": 2**22 + 54321, "started": 1.0}  # as if that studio had crashed
    left = recovery_dir / "recovery-crashed.json"
    left.write_text(json.dumps(record))
    first.autosave.timer.stop()
    first.autosave.clear()

    (tmp_path / "second").mkdir()
    second = make_window(qtbot, tmp_path / "second")
    second.dialogs.restore_answer = True
    assert second.offer_recovery()
    assert second.document.run_store.folder == runs and runs.is_dir()
    assert layer_types(second.document)[2] == "Dropout"
