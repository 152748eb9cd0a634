"""Entry point: ``cnn-studio [project.cnnproj]`` (also ``python -m cnn_studio``)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from types import TracebackType

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QStyleFactory, QWidget

from cnn_studio import __version__

APP_NAME = "CNN Studio"
ORGANIZATION = "CNN Studio"


def light_palette() -> QPalette:
    """A light theme applied everywhere, so the canvas colours read the same on every desktop."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#f3f4f6", QPalette.ColorRole.WindowText: "#1f2933",
        QPalette.ColorRole.Base: "#ffffff", QPalette.ColorRole.AlternateBase: "#f6f8fa",
        QPalette.ColorRole.Text: "#1f2933", QPalette.ColorRole.Button: "#f3f4f6",
        QPalette.ColorRole.ButtonText: "#1f2933", QPalette.ColorRole.Highlight: "#1a73e8",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#fffef5",
        QPalette.ColorRole.ToolTipText: "#1f2933", QPalette.ColorRole.PlaceholderText: "#8a96a3",
        QPalette.ColorRole.Link: "#1a5fb4",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#9aa5b1"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#9aa5b1"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#9aa5b1"))
    return palette


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication with the studio's name (QSettings keys), style and light palette."""
    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationVersion(__version__)
    if "Fusion" in QStyleFactory.keys():
        app.setStyle("Fusion")
    app.setPalette(light_palette())
    return app


class ExceptionReporter:
    """sys.excepthook replacement: an unexpected error is shown in a dialog and the app keeps running."""

    def __init__(self, parent_getter: Callable[[], QWidget | None] = lambda: None) -> None:
        self.parent_getter = parent_getter
        self.reported: list[str] = []
        self._showing = False

    def __call__(self, kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        details = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(details)
        self.reported.append(details)
        if kind is KeyboardInterrupt:
            QApplication.quit()
            return
        if self._showing or QApplication.instance() is None:
            return  # an error while showing the last one: stderr has it
        self._showing = True
        try:
            parent: QWidget | None = self.parent_getter()
            box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                              f"Something went wrong: {kind.__name__}: {value}\n\n"
                              "CNN Studio keeps running; save your work to be safe. The details below help "
                              "whoever looks into it.", QMessageBox.StandardButton.Ok, parent)
            box.setDetailedText(details)
            box.finished.connect(box.deleteLater)
            box.open()
        finally:
            self._showing = False


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnn-studio", description="Design, train and look inside CNNs.")
    parser.add_argument("project", nargs="?", help="a .cnnproj project (or architecture .json) to open")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = create_application(sys.argv[:1])
    from cnn_studio.main_window import MainWindow

    window = MainWindow()
    sys.excepthook = ExceptionReporter(lambda: window)
    window.show()
    # After a crash, the unsaved project comes first; otherwise the project asked for.
    if not window.offer_recovery() and args.project:  # after show(): messages sit over the window
        window.project.open_project(args.project)
    # The project's images, in the background: its input shape and class count are known before Start.
    window.training_panel.load_dataset()
    return app.exec()
