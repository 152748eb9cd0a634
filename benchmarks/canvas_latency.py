"""Does the node editor stay responsive on large networks? Time of each kind of edit on the canvas.

A residual network of about 100 layers (``--blocks`` residual blocks, a projection every third one)
is opened in the builder's canvas (offscreen unless a display is set); then, ``--rounds`` times
each: a settings edit (the analysis and the labels), inserting a layer on a wire (a new layout),
undoing it, connecting two blocks, and the mouse moves of dragging a block (its wires follow the
pointer) and of dragging a new wire from a port (the candidate ports light up), sent to the view as
a mouse would. The median of each is printed in milliseconds.

    python benchmarks/canvas_latency.py                # 24 blocks: 107 layers
    python benchmarks/canvas_latency.py --blocks 48

Targets: every edit under 250 ms and every drag frame under 16 ms (one frame at 60 Hz). The exit
status is 0 when they are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cnn_studio.builder.canvas import ArchitectureCanvas  # noqa: E402
from cnn_studio.builder.editor import ArchitectureEditor, DropTarget  # noqa: E402
from cnn_studio.builder.selection import BlockSelection  # noqa: E402
from cnn_studio.document import ProjectDocument  # noqa: E402
from cnn_studio.graph import Wire  # noqa: E402
from engine.architecture import FORMAT  # noqa: E402

EDIT_TARGET_MS = 250.0
FRAME_TARGET_MS = 16.0


def residual_network(blocks: int, width: int = 16) -> dict:
    layers = [{"id": "stem", "type": "Conv2D", "filters": width, "kernel_size": 3, "padding": "same"}]
    previous = "stem"
    for i in range(blocks):
        stride = 2 if i % 3 == 2 and i < 9 else 1
        out = width * 2 if stride == 2 else width
        layers += [{"id": f"c{i}a", "type": "Conv2D", "filters": out, "kernel_size": 3, "stride": stride,
                    "padding": "same", "inputs": [previous]},
                   {"id": f"c{i}b", "type": "Conv2D", "filters": out, "kernel_size": 3, "padding": "same"}]
        shortcut = previous
        if stride == 2:
            layers.append({"id": f"p{i}", "type": "Conv2D", "filters": out, "kernel_size": 1, "stride": 2,
                           "inputs": [previous]})
            shortcut = f"p{i}"
        layers += [{"id": f"add{i}", "type": "Add", "inputs": [f"c{i}b", shortcut]},
                   {"id": f"r{i}", "type": "ReLU"}]
        previous, width = f"r{i}", out
    layers += [{"id": "gap", "type": "GlobalAvgPool2D"}, {"id": "out", "type": "Dense", "units": 10}]
    return {"format": FORMAT, "input": {"shape": [32, 32, 3]}, "layers": layers}


def timed(action) -> float:
    """Milliseconds for ``action`` and the events (painting) it causes; earlier events are handled first."""
    QApplication.processEvents()
    start = time.perf_counter()
    action()
    QApplication.processEvents()
    return (time.perf_counter() - start) * 1000


def drag_frames(canvas: ArchitectureCanvas, start, end, frames: int = 5) -> float:
    """Press at ``start``, move towards ``end`` a few times (the median move is returned), then Escape."""
    viewport = canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewport, start + QPoint(12, 12))  # past the drag distance: the drag has begun
    moves = []
    for i in range(1, frames + 1):
        point = start + (end - start) * (i / frames)
        moves.append(timed(lambda p=point: QTest.mouseMove(viewport, QPoint(round(p.x()), round(p.y())))))
    QTest.keyClick(canvas, Qt.Key.Key_Escape)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    return statistics.median(moves)


def one_round(document: ProjectDocument, editor: ArchitectureEditor, canvas: ArchitectureCanvas,
              index: int) -> dict[str, float]:
    times = {
        "settings edit": timed(lambda: editor.set_field("c5a", "filters", 20 + index)),
        "insert on a wire": timed(lambda: editor.insert_at_target("ReLU", DropTarget("wire", wire=Wire("c7a", "c7b")))),
        "undo": timed(document.undo_stack.undo),
        "connect": timed(lambda: editor.connect("c3a", "add6")),
    }
    document.undo_stack.undo()
    canvas.centerOn(canvas.block("c4a"))
    times["block drag frame"] = drag_frames(canvas, canvas.block_center("c4a"), canvas.block_center("c4a") + QPoint(
        300, 60))
    canvas.tidy()
    canvas.centerOn(canvas.block("c4b"))
    times["wire drag frame"] = drag_frames(canvas, canvas.output_port_pos("c4b"), canvas.input_port_pos("add5"))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    document = ProjectDocument()
    selection = BlockSelection(document)
    editor = ArchitectureEditor(document, selection)
    canvas = ArchitectureCanvas(document, editor)
    canvas.resize(1000, 800)
    canvas.show()
    opened = timed(lambda: document.load_project(residual_network(args.blocks), "fashion-mnist-mini", {}))
    canvas.reset_zoom()
    print(f"{len(document.layers())} layers; opening: {opened:.0f} ms")
    rounds = [one_round(document, editor, canvas, i) for i in range(args.rounds)]
    failed = False
    for name in rounds[0]:
        median = statistics.median(r[name] for r in rounds)
        target = FRAME_TARGET_MS if "frame" in name else EDIT_TARGET_MS
        ok = median < target
        failed |= not ok
        print(f"{name:>18}: {median:7.1f} ms  (target < {target:.0f} ms){'' if ok else '  MISSED'}")
    canvas.close()
    app.processEvents()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
