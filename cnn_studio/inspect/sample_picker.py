"""Choose the sample to look at: a test image (arrows, class filter), a picture from disk, or a drawing.

Whatever the source, ``current_input()`` is the (H, W, C) float32 the network receives, normalized
like the model's dataset, and ``current_pixels()`` the (H, W, C) uint8 picture of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnn_studio.inspect.drawing_pad import DrawingPad
from cnn_studio.inspect.images import to_pixmap
from cnn_studio.messages import show_message
from engine.errors import EngineError
from engine.inspection import as_normalization, image_to_input, image_to_pixels, raw_to_uint8

SOURCE_TEST, SOURCE_FILE, SOURCE_DRAW = "test", "file", "draw"
ALL_CLASSES = "All classes"
PREVIEW_SIZE = 112
PICTURE_FILTER = "Pictures (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"


class SourceSwitcher(QWidget):
    """Buttons choosing one of several pages; only the chosen page is shown and takes room
    (a tab widget would stay as tall as the drawing pad on every page)."""

    currentChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._buttons: list[QToolButton] = []
        self._pages: list[QWidget] = []
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self._group.idClicked.connect(self.setCurrentIndex)
        self._bar = QHBoxLayout()
        self._bar.setSpacing(2)
        self._stack = QVBoxLayout()
        self._stack.setContentsMargins(0, 4, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._bar)
        layout.addLayout(self._stack)
        self._current = -1

    def addTab(self, page: QWidget, title: str) -> int:
        # Tool buttons: a push button's style minimum (80 px) would make three of them too wide for the pane.
        button = QToolButton()
        button.setText(title)
        button.setCheckable(True)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        index = len(self._pages)
        self._group.addButton(button, index)
        self._bar.addWidget(button)
        self._buttons.append(button)
        self._pages.append(page)
        self._stack.addWidget(page)
        page.setVisible(False)
        if self._current < 0:
            self.setCurrentIndex(0)
        return index

    def count(self) -> int:
        return len(self._pages)

    def widget(self, index: int) -> QWidget:
        return self._pages[index]

    def currentIndex(self) -> int:
        return self._current

    def setCurrentIndex(self, index: int) -> None:
        if not 0 <= index < len(self._pages) or index == self._current:
            return
        self._current = index
        for i, page in enumerate(self._pages):
            page.setVisible(i == index)
            self._buttons[i].setChecked(i == index)
        self.currentChanged.emit(index)

    def setTabEnabled(self, index: int, enabled: bool) -> None:
        self._buttons[index].setEnabled(enabled)

    def isTabEnabled(self, index: int) -> bool:
        return self._buttons[index].isEnabled()

    def setTabToolTip(self, index: int, text: str) -> None:
        self._buttons[index].setToolTip(text)


class SamplePicker(QWidget):
    """Emits ``sample_changed`` whenever the sample (or its normalization) changes."""

    sample_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._dataset: Any = None
        self._part = "test"
        self._normalization: Any = None
        self._input_shape: tuple[int, int, int] = (28, 28, 1)
        self._class_names: list[str] = []
        self._filtered = np.zeros(0, np.int64)  # indices of the images the class filter keeps
        self._position = 0
        self._file_path: Path | None = None
        self._file_pixels: np.ndarray | None = None
        self.last_error: str = ""

        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #202020; border: 1px solid #888")
        self.preview.setToolTip("What the network receives, at its input resolution")
        self.caption = QLabel("No sample")
        self.caption.setWordWrap(True)

        self._drawing_for_want_of_images = False  # the Draw page shows because no test images were there
        self.sources = SourceSwitcher()
        self.sources.addTab(self._build_test_page(), "Test set")
        self.sources.addTab(self._build_file_page(), "Picture")
        self.pad = DrawingPad()
        self.pad.drawing_changed.connect(self._on_source_edited)
        self.sources.addTab(self.pad, "Draw")
        self.sources.currentChanged.connect(lambda _i: self._on_page_chosen())
        # Click the picture (or any part of the picker that does not use the arrow keys itself),
        # then Left / Right browse the test images, Home / End jump to the first / last.
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

        top = QHBoxLayout()
        top.addWidget(self.preview)
        top.addWidget(self.caption, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.sources)
        layout.addStretch(1)

    def _build_test_page(self) -> QWidget:
        page = QWidget()
        self.class_filter = QComboBox()
        self.class_filter.setToolTip("Only step through images of this class")
        self.class_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.previous_button = QToolButton()
        self.previous_button.setArrowType(Qt.ArrowType.LeftArrow)
        self.previous_button.setToolTip("Previous image (Left arrow key after clicking the picture)")
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button = QToolButton()
        self.next_button.setArrowType(Qt.ArrowType.RightArrow)
        self.next_button.setToolTip("Next image (Right arrow key after clicking the picture)")
        self.next_button.clicked.connect(lambda: self.step(1))
        self.index_box = QSpinBox()
        self.index_box.setToolTip("Position in the (filtered) list")
        self.index_box.setKeyboardTracking(False)
        self.index_box.valueChanged.connect(lambda v: self._go(v - 1))
        self.count_label = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.previous_button)
        row.addWidget(self.index_box)
        row.addWidget(self.count_label)
        row.addWidget(self.next_button)
        row.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addWidget(self.class_filter)
        layout.addLayout(row)
        return page

    def _build_file_page(self) -> QWidget:
        page = QWidget()
        self.open_button = QPushButton("Open picture\u2026")
        self.open_button.clicked.connect(self._choose_file)
        self.file_label = QLabel("No picture chosen")
        self.file_label.setWordWrap(True)
        self.invert_box = QCheckBox("Invert colours")
        self.invert_box.setToolTip("For a dark drawing on light paper: datasets like MNIST show light objects on "
                                   "black, so invert photos of dark ink.")
        self.invert_box.toggled.connect(lambda _on: self._reconvert_file())
        layout = QVBoxLayout(page)
        layout.addWidget(self.open_button)
        layout.addWidget(self.file_label)
        layout.addWidget(self.invert_box)
        return page

    # -- configuration ---------------------------------------------------------------------------------
    def set_source(self, dataset: Any, input_shape: tuple[int, int, int], normalization: Any,
                   class_names: list[str] | None = None) -> None:
        """Dataset (or None), the network's input (H, W, C) and the normalization its inputs get.

        The test part is browsed (the training part when a dataset has no test images); a dataset
        whose images do not fit ``input_shape`` leaves only pictures and drawings.
        """
        self._input_shape = tuple(int(v) for v in input_shape)
        self._normalization = normalization
        fits = dataset is not None and tuple(dataset.input_shape) == self._input_shape
        self._dataset = dataset if fits else None
        self._part = "test" if fits and len(dataset.x_test) else "train"
        names = list(class_names or (dataset.class_names if dataset is not None else []))
        if names != self._class_names:
            self._class_names = names
            self.class_filter.blockSignals(True)
            self.class_filter.clear()
            self.class_filter.addItem(ALL_CLASSES)
            self.class_filter.addItems(names)
            self.class_filter.blockSignals(False)
        self.sources.setTabEnabled(0, self._dataset is not None)
        if dataset is not None and not fits:
            self.sources.setTabToolTip(0, f"The dataset's {_shape(dataset.input_shape)} images do not fit the "
                                          f"network's {_shape(self._input_shape)} input")
        else:
            self.sources.setTabToolTip(0, "")
        if self._dataset is None and self.source == SOURCE_TEST:
            self.sources.setCurrentIndex(2)
            self._drawing_for_want_of_images = True
        elif self._dataset is not None and self._drawing_for_want_of_images and self.source == SOURCE_DRAW:
            # Drawing only because no test images had loaded yet (e.g. a project just opened): they are here.
            self.sources.setCurrentIndex(0)
        self.pad.set_input_shape(self._input_shape)
        self._file_pixels = None
        self._reconvert_file(notify=False)
        self._refilter(keep_index=self.current_index)
        self._on_source_edited()

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    # -- the current sample ----------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return (SOURCE_TEST, SOURCE_FILE, SOURCE_DRAW)[max(0, self.sources.currentIndex())]

    @property
    def current_index(self) -> int | None:
        """Index of the shown image in the browsed part (test set), or None for other sources."""
        if self._dataset is None or not len(self._filtered):
            return None
        return int(self._filtered[min(self._position, len(self._filtered) - 1)])

    def _raw_part(self) -> tuple[np.ndarray, np.ndarray]:
        if self._part == "test":
            return self._dataset.x_test, self._dataset.y_test
        return self._dataset.x_train, self._dataset.y_train

    def current_pixels(self) -> np.ndarray | None:
        """(H, W, C) uint8 picture of the sample, or None when there is none."""
        if self.source == SOURCE_TEST:
            index = self.current_index
            if index is None:
                return None
            return raw_to_uint8(self._raw_part()[0][index], self._scale())
        if self.source == SOURCE_FILE:
            return self._file_pixels
        return self.pad.pixels()

    def current_input(self) -> np.ndarray | None:
        """(H, W, C) float32: the sample normalized exactly as the network's inputs are."""
        if self.source == SOURCE_TEST:
            index = self.current_index
            if index is None:
                return None
            raw = self._raw_part()[0][index : index + 1]
            return as_normalization(self._normalization).apply(raw)[0]
        pixels = self.current_pixels()
        if pixels is None:
            return None
        return image_to_input(pixels, self._input_shape, self._normalization)

    def current_label(self) -> int | None:
        """True class of a test image; None for pictures and drawings."""
        index = self.current_index if self.source == SOURCE_TEST else None
        return None if index is None else int(self._raw_part()[1][index])

    def description(self) -> str:
        if self.source == SOURCE_TEST:
            index = self.current_index
            if index is None:
                return "No test image"
            label = self.current_label()
            name = self._class_names[label] if label is not None and label < len(self._class_names) else label
            part = "Test" if self._part == "test" else "Training"
            # Images are numbered from 1 wherever the studio shows them, as in the index box.
            return f"{part} image #{index + 1}\nclass: {name}"
        if self.source == SOURCE_FILE:
            return f"Picture {self._file_path.name}" if self._file_path else "No picture chosen"
        return "Your drawing"

    # -- test set navigation ---------------------------------------------------------------------------
    def show_test_index(self, index: int) -> None:
        """Switch to the test set and show image ``index`` (clearing a class filter that excludes it)."""
        if self._dataset is None:
            return
        index = int(index)
        if index not in set(self._filtered.tolist()):
            self.class_filter.blockSignals(True)
            self.class_filter.setCurrentIndex(0)
            self.class_filter.blockSignals(False)
            self._refilter(keep_index=index)
        else:
            self._position = int(np.flatnonzero(self._filtered == index)[0])
        self.sources.blockSignals(True)
        self.sources.setCurrentIndex(0)
        self.sources.blockSignals(False)
        self._sync_navigation()
        self._on_source_edited()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Reaches the picker when it has the focus (a click on the picture gives it), or when a
        # child leaves the key unused; the index box keeps its arrows for its cursor.
        moves = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}
        key = Qt.Key(event.key())
        if self.source == SOURCE_TEST and len(self._filtered) and key in (*moves, Qt.Key.Key_Home, Qt.Key.Key_End):
            if key in moves:
                self.step(moves[key])
            else:
                self._go(0 if key == Qt.Key.Key_Home else len(self._filtered) - 1)
            event.accept()
            return
        super().keyPressEvent(event)

    def step(self, delta: int) -> None:
        if len(self._filtered):
            self._go((self._position + delta) % len(self._filtered))

    def _go(self, position: int) -> None:
        if not len(self._filtered):
            return
        position = int(np.clip(position, 0, len(self._filtered) - 1))
        if position != self._position or self.source != SOURCE_TEST:
            self._position = position
            self._sync_navigation()
            self._on_source_edited()

    def _on_filter_changed(self, _row: int) -> None:
        self._refilter(keep_index=self.current_index)
        self._on_source_edited()

    def _refilter(self, keep_index: int | None) -> None:
        if self._dataset is None:
            self._filtered = np.zeros(0, np.int64)
        else:
            labels = self._raw_part()[1]
            row = self.class_filter.currentIndex()
            self._filtered = np.arange(len(labels)) if row <= 0 else np.flatnonzero(labels == row - 1)
        hits = np.flatnonzero(self._filtered == keep_index) if keep_index is not None else []
        self._position = int(hits[0]) if len(hits) else 0
        self._sync_navigation()

    def _sync_navigation(self) -> None:
        n = len(self._filtered)
        self.index_box.blockSignals(True)
        self.index_box.setRange(1 if n else 0, max(n, 0))
        self.index_box.setValue(self._position + 1 if n else 0)
        self.index_box.blockSignals(False)
        self.count_label.setText(f"of {n}")
        for widget in (self.previous_button, self.next_button, self.index_box):
            widget.setEnabled(n > 1)

    # -- pictures ----------------------------------------------------------------------------------------
    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a picture", "", PICTURE_FILTER)
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> bool:
        """Read a picture from disk as the sample; on failure show a message naming the file."""
        try:
            pixels = image_to_pixels(path, self._input_shape, invert=self.invert_box.isChecked())
        except (EngineError, OSError, ValueError) as exc:
            self.last_error = str(exc)
            show_message(self, "warning", "Cannot use this picture", f"{exc}")
            return False
        self._file_path = Path(path)
        self._file_pixels = pixels
        self.file_label.setText(str(self._file_path.name))
        self.file_label.setToolTip(str(self._file_path))
        self.sources.blockSignals(True)
        self.sources.setCurrentIndex(1)
        self.sources.blockSignals(False)
        self._on_source_edited()
        return True

    def _reconvert_file(self, notify: bool = True) -> None:
        if self._file_path is None:
            return
        try:
            self._file_pixels = image_to_pixels(self._file_path, self._input_shape,
                                                invert=self.invert_box.isChecked())
        except (EngineError, OSError, ValueError) as exc:
            self._file_pixels = None
            self.last_error = str(exc)
        if notify and self.source == SOURCE_FILE:
            self._on_source_edited()

    # -- internals ---------------------------------------------------------------------------------------
    def _scale(self) -> float:
        if isinstance(self._normalization, dict):
            return float(self._normalization.get("scale", 1 / 255))
        return float(getattr(self._normalization, "scale", 1 / 255))

    def _on_page_chosen(self) -> None:
        self._drawing_for_want_of_images = False  # a page chosen (by the user or for them) stays chosen
        self._on_source_edited()

    def _on_source_edited(self) -> None:
        pixels = self.current_pixels()
        if pixels is None:
            self.preview.clear()
        else:
            self.preview.setPixmap(to_pixmap(pixels, PREVIEW_SIZE - 4))
        self.caption.setText(self.description())
        self.sample_changed.emit()


def _shape(shape: tuple[int, ...]) -> str:
    return "\u00d7".join(map(str, shape))
