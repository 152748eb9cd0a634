"""Screenshots of the Inside tab: the seed network trained briefly on the bundled mini Fashion-MNIST.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_inside.py

Writes assets/screenshots/inside.png (feature maps) and, into --extra-dir, the other views
(mistakes gallery, attribution, filters, filter atlas, layer statistics, embedding, a drawing) for a look.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication

from cnn_studio.inspect.panel import InsidePanel
from engine.data import load_dataset
from engine.metrics import evaluate
from engine.model import Model
from engine.resources import asset_path
from engine.training import TrainConfig, Trainer


def wait_until(app: QApplication, done, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the Inside tab did not finish computing in time")
        app.processEvents()
        time.sleep(0.01)
    for _ in range(5):  # let the views repaint
        app.processEvents()
        time.sleep(0.02)


def settle(app: QApplication, panel: InsidePanel) -> None:
    wait_until(app, lambda: not panel.worker.busy and not panel.slow_worker.busy)


def live_screenshot(app: QApplication, folder: Path) -> int:
    """The main window's Inside tab while the training session trains the seed network."""
    from PySide6.QtCore import QSettings

    from cnn_studio.main_window import MainWindow

    settings = QSettings(str(folder / "studio.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1500, 950)
    window.show()
    panel = window.inside_panel
    window.tabs.setCurrentWidget(panel)
    runner = window.training_session.runner
    dataset = load_dataset("fashion-mnist-mini")
    config = TrainConfig(epochs=3, batch_size=32, learning_rate=0.02, momentum=0.9, validation_split=0.1)
    runner.start(window.document.architecture(), dataset, config)
    wait_until(app, lambda: panel.probes_received >= 12 and runner.last_batch is not None, timeout_s=120)
    panel.feature_maps.select_layer("conv2d_2")
    wait_until(app, lambda: True)
    folder.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(folder / "live.png"))
    batch = runner.last_batch
    print(f"grabbed mid-training: epoch {batch.epoch}, batch {batch.batch}/{batch.batches}, "
          f"{panel.probes_received} probes drawn")
    runner.stop()
    wait_until(app, lambda: not runner.running, timeout_s=120)
    panel.shutdown()
    window.training_session.shutdown(30_000)
    window.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=asset_path("screenshots", "inside.png"))
    parser.add_argument("--extra-dir", type=Path, default=Path("/tmp") / "inside-screens")
    parser.add_argument("--steps", type=int, default=200, help="training steps of 32 images")
    parser.add_argument("--live", action="store_true",
                        help="instead: the whole main window mid-training (into --extra-dir/live.png)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    if args.live:
        return live_screenshot(app, args.extra_dir)

    dataset = load_dataset("fashion-mnist-mini")
    model = Model.from_architecture(asset_path("architectures", "seed_sample.json"), seed=0)
    train_part = dataset.subset(args.steps * 32, 0, seed=0)
    config = TrainConfig(epochs=1, batch_size=32, optimizer="sgd", learning_rate=0.02, momentum=0.9,
                         validation_split=0.0)
    started = time.perf_counter()
    Trainer(model, train_part, config).fit()
    print(f"trained {args.steps} steps in {time.perf_counter() - started:.1f} s")
    evaluation = evaluate(model, dataset.normalized("test"), dataset.y_test)
    print(f"test accuracy {evaluation.accuracy:.3f}, {len(evaluation.mistakes)} mistakes")

    panel = InsidePanel()
    panel.setWindowTitle("CNN Studio \u2014 Inside")
    panel.resize(1480, 860)
    panel.set_model(model, dataset)
    panel.set_evaluation(evaluation)
    panel.show()
    boots = np.flatnonzero(dataset.y_test == dataset.class_names.index("Ankle boot"))
    panel.picker.show_test_index(int(boots[0]))
    settle(app, panel)
    panel.feature_maps.select_layer("conv2d_1")
    panel.feature_maps.select_channel(3)
    settle(app, panel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(args.out))
    print(f"wrote {args.out}")

    extra = args.extra_dir
    extra.mkdir(parents=True, exist_ok=True)
    panel.feature_maps.select_layer("conv2d_2")
    settle(app, panel)
    panel.grab().save(str(extra / "feature_maps_conv2.png"))
    panel.feature_maps.select_layer("dense_1")
    settle(app, panel)
    panel.grab().save(str(extra / "feature_maps_dense.png"))
    for view, name in ((panel.attribution, "attribution"), (panel.filters, "filters"), (panel.atlas, "filter_atlas"),
                       (panel.stats, "layer_stats"), (panel.mistakes, "mistakes"), (panel.embedding, "embedding")):
        panel.views.setCurrentWidget(view)
        settle(app, panel)
        panel.grab().save(str(extra / f"{name}.png"))
    panel.filters.show_layer("conv2d_2")
    panel.views.setCurrentWidget(panel.filters)
    settle(app, panel)
    panel.grab().save(str(extra / "filters_conv2.png"))

    panel.views.setCurrentIndex(0)
    panel.picker.sources.setCurrentIndex(2)
    canvas = panel.picker.pad.canvas
    size = canvas.width()
    for a, b in (((0.3, 0.2), (0.3, 0.8)), ((0.3, 0.8), (0.75, 0.8))):  # an "L"
        canvas.draw_line(QPointF(a[0] * size, a[1] * size), QPointF(b[0] * size, b[1] * size))
    canvas.stroke_changed.emit()
    settle(app, panel)
    panel.grab().save(str(extra / "drawing.png"))
    print(f"wrote the other views into {extra}")
    panel.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
