"""Screenshot of the main window with the seed network: assets/screenshots/builder.png.

Run under a virtual screen:
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_builder.py [out.png] [--problem]
--problem shrinks the input so one block turns red and the problems list explains why.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer

# Run from a checkout: import the packages beside this script, whatever the install looks like.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnn_studio.app import create_application  # noqa: E402
from engine.resources import asset_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default=str(asset_path("screenshots", "builder.png")))
    parser.add_argument("--problem", action="store_true", help="show a shape problem and its fix")
    args = parser.parse_args()
    app = create_application(sys.argv[:1])
    from cnn_studio.main_window import MainWindow

    settings = QSettings(str(Path(tempfile.mkdtemp()) / "screenshot.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)  # fresh settings: the default layout, no recent files
    window.resize(1400, 900)
    window.show()
    doc = window.document
    if args.problem:
        second_conv = doc.layers()[2]["id"]
        window.editor.set_field(second_conv, "kernel_size", 15)
    window.selection.select(doc.layers()[2 if args.problem else 0]["id"])
    window.layer_palette.tree.setCurrentItem(window.layer_palette.item_for("Conv2D"))

    def shoot() -> None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(args.out)
        print(f"saved {args.out}")
        window.document.mark_saved()
        app.quit()

    QTimer.singleShot(800, shoot)
    app.exec()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
