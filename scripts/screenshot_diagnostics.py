"""Screenshot of the Diagnostics tab after a badly set-up run (the README's diagnostics.png).

Runs the real window (use a virtual screen where there is no display):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_diagnostics.py

The seed network trains two epochs on part of the bundled set with a learning rate of 1e-6 and no
momentum; the training doctor finds the learning rate far too low. ``--out`` changes where the picture
goes; ``--size`` the window's size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings  # noqa: E402
from screenshot_training import wait_until  # noqa: E402 (beside this script)

from cnn_studio.app import create_application  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.training import TrainConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots" / "diagnostics.png")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"))
    parser.add_argument("--train", type=int, default=3000, help="training images from the bundled set")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    app = create_application()
    from cnn_studio.main_window import MainWindow

    settings_dir = tempfile.TemporaryDirectory()
    window = MainWindow(settings=QSettings(str(Path(settings_dir.name) / "shots.ini"), QSettings.Format.IniFormat))
    window.resize(*args.size)
    window.show()
    data = load_dataset("fashion-mnist-mini").subset(args.train, 500, seed=0)
    window.training_panel.use_dataset(data, "fashion-mnist-mini")
    window.document.set_training(TrainConfig(epochs=2, batch_size=64, learning_rate=1e-6, momentum=0.0,
                                           processes="auto").to_dict())  # the studio's default
    ended: list[str] = []
    window.training_panel.run_ended.connect(ended.append)
    window.training_panel.start()
    wait_until(app, lambda: bool(ended))
    window.diagnostics.show()
    end = time.monotonic() + 0.5  # the tab's plots and cards laid out
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)
    window.grab().save(str(args.out))
    print(f"wrote {args.out}")
    window.document.mark_saved()
    window.close()
    settings_dir.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
