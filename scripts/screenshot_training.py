"""Screenshots of the Train workspace: one mid-training, one after the run (the README's training.png).

Runs the real window (use a virtual screen where there is no display):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_training.py

A first short Adam run, then an SGD run on the seed network whose learning rate is lowered while it
trains; the first run is overlaid. The picture after the run goes to assets/screenshots/training.png
(``--out`` to change); ``--live PATH`` also saves one taken mid-training.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402

from cnn_studio.app import create_application  # noqa: E402
from engine.architecture import load_architecture_file  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.resources import asset_path  # noqa: E402
from engine.training import TrainConfig  # noqa: E402


def wait_until(app, condition, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for training")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def settle(app, ms: int = 400) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshots" / "training.png")
    parser.add_argument("--live", type=Path, help="also save a picture taken mid-training here")
    parser.add_argument("--train", type=int, default=6000, help="training images from the bundled set")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    app = create_application()
    from cnn_studio.main_window import MainWindow

    settings_dir = tempfile.TemporaryDirectory()
    window = MainWindow(settings=QSettings(str(Path(settings_dir.name) / "shots.ini"), QSettings.Format.IniFormat))
    window.resize(1600, 1000)
    window.show()
    panel = window.training_panel
    window.document.replace_architecture(load_architecture_file(asset_path("architectures", "seed_sample.json")))
    dataset = load_dataset("fashion-mnist-mini").subset(args.train, 2000, seed=0)
    panel.use_dataset(dataset, "fashion-mnist-mini")
    window.tabs.setCurrentWidget(panel.tab)

    panel.form.set_config(TrainConfig(epochs=2, batch_size=64, optimizer="adam", learning_rate=0.001))
    panel.start()
    wait_until(app, lambda: panel.history.current is not None and panel.history.current.outcome != "running"
               and not panel.session.runner.running)

    panel.form.set_config(TrainConfig(epochs=5, batch_size=64, optimizer="sgd", learning_rate=0.05, momentum=0.9))
    panel.start()
    run = panel.history.current
    panel.history_list.item(1).setCheckState(Qt.CheckState.Checked)  # overlay the Adam run
    wait_until(app, lambda: len(run.epochs) >= 2)
    panel.form.learning_rate.setValue(0.01)  # as a user would, while it trains
    wait_until(app, lambda: len(run.epochs) >= 3 and len(run.batch_loss) % 94 > 40)
    settle(app)
    if args.live:
        window.grab().save(str(args.live))
    wait_until(app, lambda: not panel.session.runner.running and panel.results.evaluation is not None)
    panel.plots.batch_readout.show_at(300, 2.2)  # what hovering the loss curve shows
    settle(app)
    window.grab().save(str(args.out))
    print(f"saved {args.out}: {panel.results.headline.text()}")

    window.document.mark_saved()
    window.close()
    settings_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
