"""The training settings form: dataset, optimizer, schedule, run length, validation, augmentation, seed.

It edits a ``TrainConfig`` (``config()`` / ``set_config()``) and reports user edits with
``config_changed``; while a run is going on only the learning rate and momentum stay editable, and
their changes are reported with ``live_rate_changed`` so they can reach the optimizer at once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import fields
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.data import DatasetInfo
from engine.preflight import setting_problem
from engine.training import TrainConfig

OPEN_FOLDER = "::open-folder"
OPEN_FILE = "::open-file"
DATASET_TITLES = {"fashion-mnist-mini": "Fashion-MNIST mini", "fashion-mnist": "Fashion-MNIST (full)"}
# The studio's own defaults where they differ from the library's: a step large enough to gain from a
# second process is split (the library runs one process unless asked).
STUDIO_DEFAULTS = {"processes": "auto"}
PROCESS_CHOICES = (("Automatic", "auto"), ("1 (this process only)", 1), ("2 (split every step)", 2))
PROCESSES_TIP = ("How many processes each training step runs on. With two, a helper process holding a copy of "
                 "the network computes half of every batch while this one computes the other half; their "
                 "gradients are added, so the step is the same as on one process, only faster when the "
                 "machine has a free core.\n\nAutomatic: split only steps large enough to gain (small "
                 "networks and batches stay in one process). 1: never split. 2: split every step that can "
                 "be split. Can be changed between runs.")


def studio_config(**changes: object) -> TrainConfig:
    """The studio's default settings (see STUDIO_DEFAULTS), with ``changes``."""
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **STUDIO_DEFAULTS, **changes})


def choose_dataset_folder(parent: QWidget) -> str | None:
    """Ask for a dataset folder (IDX files, CIFAR-10 batches, or one sub-folder per class)."""
    path = QFileDialog.getExistingDirectory(parent, "Open dataset folder")
    return path or None


def choose_dataset_file(parent: QWidget) -> str | None:
    """Ask for a dataset file (.npz with arrays x and y, or an IDX file)."""
    path, _ = QFileDialog.getOpenFileName(parent, "Open dataset file", "",
                                          "Datasets (*.npz *-ubyte *-ubyte.gz);;All files (*)")
    return path or None


def dataset_title(ref: str) -> str:
    if ref in DATASET_TITLES:
        return DATASET_TITLES[ref]
    return f"{Path(ref).name or ref} ({Path(ref).parent})" if os.sep in ref else ref


class _WheelOnlyWithFocus:
    """A field that the mouse wheel changes only once it has the keyboard focus: scrolling the panel over
    it scrolls the panel (the wheel event goes on to the scroll area) instead of changing a setting."""

    def init_focus(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a wheel turn alone does not focus it

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class SpinBox(_WheelOnlyWithFocus, QSpinBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.init_focus()


class DoubleSpinBox(_WheelOnlyWithFocus, QDoubleSpinBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.init_focus()


class ComboBox(_WheelOnlyWithFocus, QComboBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.init_focus()


def _double(minimum: float, maximum: float, decimals: int, step: float, tip: str) -> QDoubleSpinBox:
    box = DoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)  # report a value once it is entered, not per keystroke
    box.setToolTip(tip)
    return box


def _int(minimum: int, maximum: int, tip: str) -> QSpinBox:
    box = SpinBox()
    box.setRange(minimum, maximum)
    box.setKeyboardTracking(False)
    box.setToolTip(tip)
    return box


class TrainingSettingsForm(QWidget):
    config_changed = Signal(object)  # TrainConfig, after any user edit
    dataset_chosen = Signal(str)  # a dataset name or path picked by the user
    live_rate_changed = Signal(str, float)  # ("lr" | "momentum", value) edited while a run is going on

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._running = False
        self._updating = False

        # Data ---------------------------------------------------------------------------------------
        self.dataset_combo = ComboBox()
        self.dataset_combo.setToolTip("The images to train on. The network's input shape follows the dataset.")
        self.dataset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.dataset_combo.setMinimumContentsLength(10)
        self.dataset_busy = QProgressBar()
        self.dataset_busy.setRange(0, 0)  # an indeterminate bar: the load runs on a worker thread
        self.dataset_busy.setMaximumWidth(60)
        self.dataset_busy.setTextVisible(False)
        self.dataset_busy.setVisible(False)
        self.dataset_info = QLabel("")
        self.dataset_info.setWordWrap(True)
        self.dataset_info.setStyleSheet("color: #555;")
        self.validation_split = _double(0.0, 0.9, 2, 0.05, "Share of the training images held out to measure "
                                        "validation loss and accuracy after each epoch (0: none).")
        self.standardize = QCheckBox("Standardize inputs")
        self.standardize.setToolTip("Subtract the training set's mean and divide by its standard deviation "
                                    "instead of only scaling pixels to [0, 1].")

        # Optimizer ----------------------------------------------------------------------------------
        self.optimizer = ComboBox()
        for text, key in (("SGD", "sgd"), ("Adam", "adam"), ("AdamW", "adamw")):
            self.optimizer.addItem(text, key)
        self.optimizer.setToolTip("SGD: plain gradient steps with momentum. Adam/AdamW: per-weight adaptive steps.")
        self.learning_rate = _double(1e-6, 10.0, 6, 0.001, "Step size. Can be changed while training runs; it "
                                     "takes effect at the next batch and is marked on the loss plot.")
        self.learning_rate.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.momentum = _double(0.0, 0.999, 3, 0.05, "SGD momentum, or Adam's beta1. Can be changed while "
                                "training runs.")
        for box in (self.learning_rate, self.momentum):
            # Typed values count once Enter is pressed or focus leaves, not at every keystroke:
            # during a run, "0.005" must not pass through 0.0 and 0.00 on its way to the optimizer.
            box.setKeyboardTracking(False)
        self.momentum_label = QLabel("Momentum")
        self.nesterov = QCheckBox("Nesterov momentum")
        self.weight_decay = _double(0.0, 1.0, 6, 0.0001, "L2 penalty on kernels (decoupled for AdamW).")
        self.weight_decay.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

        # Schedule -------------------------------------------------------------------------------------
        self.schedule = ComboBox()
        for text, key in (("Constant", "constant"), ("Step decay", "step"), ("Cosine", "cosine"),
                          ("Reduce on plateau", "plateau")):
            self.schedule.addItem(text, key)
        self.schedule.setToolTip("How the learning rate changes over the run. Reduce on plateau lowers it when "
                                 "the monitored metric (see Early stopping) stops improving.")
        self.warmup_epochs = _double(0.0, 100.0, 1, 0.5, "Ramp the rate up linearly over this many epochs.")
        self.warmup_epochs.setSuffix(" epochs")
        self.step_epochs = _int(1, 1000, "Multiply the rate by the factor every this many epochs.")
        self.step_epochs.setSuffix(" epochs")
        self.step_gamma = _double(0.01, 1.0, 2, 0.05, "Factor applied at each step of the step schedule.")
        self.plateau_patience = _int(1, 100, "Epochs without improvement of the monitored metric before the "
                                     "learning rate is lowered.")
        self.plateau_patience.setSuffix(" epochs")
        self.plateau_factor = _double(0.01, 0.99, 2, 0.05, "Factor applied to the learning rate at each plateau.")

        # Early stopping -----------------------------------------------------------------------------------
        self.early_stopping = QCheckBox("Stop when stuck")
        self.early_stopping.setToolTip("End the run once the monitored metric has not improved for the patience "
                                       "below; the run then ends on its best epoch's weights (if ticked below).")
        self.patience = _int(1, 1000, "Epochs without improvement before training stops.")
        self.patience.setSuffix(" epochs")
        self.monitor = ComboBox()
        for text, key in (("Validation loss", "val_loss"), ("Validation accuracy", "val_accuracy")):
            self.monitor.addItem(text, key)
        self.monitor.setToolTip("What early stopping, the plateau schedule and a run's best epoch follow (the "
                                "training metric stands in without a validation split).")
        self.min_delta = _double(0.0, 100.0, 4, 0.001, "Smaller changes of the monitored metric do not count as "
                                 "improvements.")
        self.restore_best = QCheckBox("End on the best epoch")
        self.restore_best.setToolTip("With early stopping, the run ends with the weights of its best epoch "
                                     "instead of its last.")

        # Checkpoints --------------------------------------------------------------------------------------
        self.keep_checkpoints = ComboBox()
        for text, key in (("Every epoch", "all"), ("Best and last", "best"), ("Last N epochs", "last")):
            self.keep_checkpoints.addItem(text, key)
        self.keep_checkpoints.setToolTip("Which epochs' checkpoints each run keeps in the project's runs folder: "
                                         "resuming and the time machine use them.")
        self.keep_last = _int(1, 1000, "How many of the latest epochs' checkpoints to keep.")

        # Run ----------------------------------------------------------------------------------------------
        self.epochs = _int(1, 1000, "Passes over the training images.")
        self.batch_size = _int(1, 4096, "Images per optimisation step.")
        self.label_smoothing = _double(0.0, 0.5, 2, 0.05, "Soften the one-hot targets (0: off).")
        self.seed = _int(0, 2**31 - 1, "Fixes initial weights, shuffling and augmentation: same seed, same run.")
        self.processes = ComboBox()
        for text, key in PROCESS_CHOICES:
            self.processes.addItem(text, key)
        self.processes.setToolTip(PROCESSES_TIP)

        # Augmentation ---------------------------------------------------------------------------------
        self.augment_shift = _int(0, 8, "Shift each training image by up to this many pixels.")
        self.augment_shift.setSuffix(" px")
        self.augment_hflip = QCheckBox("Random horizontal flip")
        self.augment_rotation = _double(0.0, 45.0, 1, 5.0, "Rotate each training image by up to this many degrees.")
        self.augment_rotation.setSuffix("°")

        data_form = self._form(("Dataset", self._row(self.dataset_combo, self.dataset_busy)), ("", self.dataset_info),
                               ("Validation split", self.validation_split), ("", self.standardize))
        opt_form = self._form(("Optimizer", self.optimizer), ("Learning rate", self.learning_rate),
                              (self.momentum_label, self.momentum), ("", self.nesterov),
                              ("Weight decay", self.weight_decay))
        self.schedule_form = self._form(("Schedule", self.schedule), ("Warm-up", self.warmup_epochs),
                                        ("Step every", self.step_epochs), ("Step factor", self.step_gamma),
                                        ("Plateau patience", self.plateau_patience),
                                        ("Plateau factor", self.plateau_factor))
        self.stopping_form = self._form(("", self.early_stopping), ("Patience", self.patience),
                                        ("Monitor", self.monitor), ("Min. change", self.min_delta),
                                        ("", self.restore_best))
        self.checkpoint_form = self._form(("Keep", self.keep_checkpoints), ("Epochs kept", self.keep_last))
        run_form = self._form(("Epochs", self.epochs), ("Batch size", self.batch_size),
                              ("Label smoothing", self.label_smoothing), ("Seed", self.seed),
                              ("Processes", self.processes))
        aug_form = self._form(("Max shift", self.augment_shift), ("Max rotation", self.augment_rotation),
                              ("", self.augment_hflip))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for title, form in (("Data", data_form), ("Optimizer", opt_form), ("Learning-rate schedule",
                            self.schedule_form), ("Run", run_form), ("Early stopping", self.stopping_form),
                            ("Augmentation", aug_form), ("Checkpoints", self.checkpoint_form)):
            box = QGroupBox(title)
            box.setLayout(form)
            layout.addWidget(box)
        layout.addStretch(1)

        self.set_config(studio_config())
        for box in (self.learning_rate, self.momentum, self.weight_decay, self.warmup_epochs, self.step_gamma,
                    self.validation_split, self.label_smoothing, self.augment_rotation, self.plateau_factor,
                    self.min_delta):
            box.valueChanged.connect(self._edited)
        for box in (self.step_epochs, self.epochs, self.batch_size, self.seed, self.augment_shift,
                    self.plateau_patience, self.patience, self.keep_last):
            box.valueChanged.connect(self._edited)
        for check in (self.nesterov, self.augment_hflip, self.standardize, self.early_stopping, self.restore_best):
            check.toggled.connect(self._edited)
        for combo in (self.optimizer, self.schedule, self.processes, self.monitor, self.keep_checkpoints):
            combo.currentIndexChanged.connect(self._edited)
        self.learning_rate.valueChanged.connect(lambda v: self._live("lr", v))
        self.momentum.valueChanged.connect(lambda v: self._live("momentum", v))
        self.dataset_combo.activated.connect(self._on_dataset_activated)
        self._dataset_ref = ""

    @staticmethod
    def _row(*widgets: QWidget) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            layout.addWidget(w, 1 if isinstance(w, QComboBox) else 0)
        return row

    @staticmethod
    def _form(*rows: tuple[str | QLabel, QWidget]) -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for label, widget in rows:
            form.addRow(label, widget)
        return form

    # -- the config ---------------------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        """The shown settings; settings the form has no field for keep the values last set."""
        return dataclasses.replace(
            self._shown,
            epochs=self.epochs.value(), batch_size=self.batch_size.value(),
            optimizer=self.optimizer.currentData(), learning_rate=self.learning_rate.value(),
            momentum=self.momentum.value(), nesterov=self.nesterov.isChecked(),
            weight_decay=self.weight_decay.value(), schedule=self.schedule.currentData(),
            warmup_epochs=self.warmup_epochs.value(), step_epochs=self.step_epochs.value(),
            step_gamma=self.step_gamma.value(), validation_split=self.validation_split.value(),
            label_smoothing=self.label_smoothing.value(), seed=self.seed.value(),
            augment_shift=self.augment_shift.value(), augment_hflip=self.augment_hflip.isChecked(),
            augment_rotation=self.augment_rotation.value(), standardize=self.standardize.isChecked(),
            processes=self.processes.currentData(),
            monitor=self.monitor.currentData(), min_delta=self.min_delta.value(),
            early_stopping=self.patience.value() if self.early_stopping.isChecked() else 0,
            restore_best=self.restore_best.isChecked(), plateau_patience=self.plateau_patience.value(),
            plateau_factor=self.plateau_factor.value(),
        )

    def checkpoints(self) -> str:
        """Which checkpoints each run keeps: "all", "best" or a number N (the last N)."""
        key = self.keep_checkpoints.currentData()
        return str(self.keep_last.value()) if key == "last" else key

    def set_checkpoints(self, keep: str) -> None:
        """Show a retention ("all", "best", N) without reporting it as an edit."""
        self._updating = True
        try:
            text = str(keep).strip().lower()
            if text.isdigit():
                self.keep_checkpoints.setCurrentIndex(self.keep_checkpoints.findData("last"))
                self.keep_last.setValue(max(1, int(text)))
            else:
                self.keep_checkpoints.setCurrentIndex(max(0, self.keep_checkpoints.findData(text)))
        finally:
            self._updating = False
        self._update_visibility()

    def set_config(self, config: TrainConfig) -> None:
        """Show ``config`` without reporting it as an edit."""
        self._shown = config
        self._updating = True
        try:
            self.epochs.setValue(config.epochs)
            self.batch_size.setValue(config.batch_size)
            self.optimizer.setCurrentIndex(max(0, self.optimizer.findData(config.optimizer)))
            self.learning_rate.setValue(config.learning_rate)
            self.momentum.setValue(config.momentum)
            self.nesterov.setChecked(config.nesterov)
            self.weight_decay.setValue(config.weight_decay)
            self.schedule.setCurrentIndex(max(0, self.schedule.findData(config.schedule)))
            self.warmup_epochs.setValue(config.warmup_epochs)
            self.step_epochs.setValue(config.step_epochs)
            self.step_gamma.setValue(config.step_gamma)
            self.validation_split.setValue(config.validation_split)
            self.label_smoothing.setValue(config.label_smoothing)
            self.seed.setValue(config.seed)
            self.augment_shift.setValue(config.augment_shift)
            self.augment_hflip.setChecked(config.augment_hflip)
            self.augment_rotation.setValue(config.augment_rotation)
            self.standardize.setChecked(config.standardize)
            self.processes.setCurrentIndex(max(0, self.processes.findData(config.processes)))
            self.monitor.setCurrentIndex(max(0, self.monitor.findData(config.monitor)))
            self.min_delta.setValue(config.min_delta)
            self.early_stopping.setChecked(config.early_stopping > 0)
            self.patience.setValue(config.early_stopping or 3)
            self.restore_best.setChecked(config.restore_best)
            self.plateau_patience.setValue(config.plateau_patience)
            self.plateau_factor.setValue(config.plateau_factor)
        finally:
            self._updating = False
        self._update_visibility()

    @staticmethod
    def config_from_settings(settings: dict) -> TrainConfig:
        """A TrainConfig from a project's stored settings; unknown keys and bad values fall back to the
        studio's defaults (the engine's rules say which values are good)."""
        defaults = studio_config()
        clean = {}
        for f in fields(TrainConfig):
            if f.name not in settings:
                continue
            value = settings[f.name]
            if isinstance(getattr(defaults, f.name), float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            same_kind = isinstance(value, type(getattr(defaults, f.name))) or f.name == "processes"
            if same_kind and setting_problem(f.name, value) is None:
                clean[f.name] = value
        return studio_config(**clean)

    def _edited(self, *_args: object) -> None:
        if self._updating:
            return
        self._update_visibility()
        self.config_changed.emit(self.config())

    def _live(self, kind: str, value: float) -> None:
        if self._running and not self._updating:
            self.live_rate_changed.emit(kind, float(value))

    def _update_visibility(self) -> None:
        sgd = self.optimizer.currentData() == "sgd"
        self.momentum_label.setText("Momentum" if sgd else "β1 (momentum)")
        self.nesterov.setEnabled(sgd and not self._running)
        step = self.schedule.currentData() == "step"
        self.schedule_form.setRowVisible(self.step_epochs, step)
        self.schedule_form.setRowVisible(self.step_gamma, step)
        plateau = self.schedule.currentData() == "plateau"
        self.schedule_form.setRowVisible(self.plateau_patience, plateau)
        self.schedule_form.setRowVisible(self.plateau_factor, plateau)
        stopping = self.early_stopping.isChecked()
        for row in (self.patience, self.restore_best):
            self.stopping_form.setRowVisible(row, stopping)
        # The monitored metric matters to early stopping and to the plateau schedule alike.
        for row in (self.monitor, self.min_delta):
            self.stopping_form.setRowVisible(row, stopping or plateau)
        self.checkpoint_form.setRowVisible(self.keep_last, self.keep_checkpoints.currentData() == "last")

    # -- while running --------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        """While training runs only the learning rate and momentum can be edited (they apply live)."""
        self._running = running
        live = (self.learning_rate, self.momentum)
        for w in self.findChildren(QWidget):
            if isinstance(w, (QAbstractSpinBox, QComboBox, QCheckBox)) and w not in live:
                w.setEnabled(not running)
        self._update_visibility()

    # -- datasets --------------------------------------------------------------------------------------------
    def set_datasets(self, infos: list[DatasetInfo]) -> None:
        """The named datasets that can be picked (unavailable ones are listed but disabled)."""
        with QSignalBlocker(self.dataset_combo):
            self.dataset_combo.clear()
            for info in infos:
                title = DATASET_TITLES.get(info.name, info.name)
                if not info.available:
                    title += " — not installed"
                self.dataset_combo.addItem(title, info.name)
                index = self.dataset_combo.count() - 1
                self.dataset_combo.setItemData(index, info.description + ("" if info.available else
                                               f"\nNot found in {info.location}."), 3)  # 3: tooltip role
                if not info.available:
                    self.dataset_combo.model().item(index).setEnabled(False)
            self.dataset_combo.insertSeparator(self.dataset_combo.count())
            self.dataset_combo.addItem("Open dataset folder…", OPEN_FOLDER)
            self.dataset_combo.addItem("Open dataset file (.npz)…", OPEN_FILE)
        if self._dataset_ref:
            self.set_dataset_ref(self._dataset_ref)

    def set_dataset_ref(self, ref: str) -> None:
        """Select ``ref`` (a known name or a path, added to the list when new) without reporting it."""
        self._dataset_ref = ref
        with QSignalBlocker(self.dataset_combo):
            index = self.dataset_combo.findData(ref)
            if index < 0:
                index = 0
                self.dataset_combo.insertItem(0, dataset_title(ref), ref)
                self.dataset_combo.setItemData(0, ref, 3)
            self.dataset_combo.setCurrentIndex(index)

    @property
    def dataset_ref(self) -> str:
        return self._dataset_ref

    def set_dataset_loading(self, loading: bool) -> None:
        self.dataset_busy.setVisible(loading)
        if loading:
            self.dataset_info.setText("Loading…")

    def set_dataset_info(self, text: str, error: bool = False) -> None:
        self.dataset_info.setStyleSheet("color: #b00020;" if error else "color: #555;")
        self.dataset_info.setText(text)

    def _on_dataset_activated(self, index: int) -> None:
        ref = self.dataset_combo.itemData(index)
        if ref in (OPEN_FOLDER, OPEN_FILE):
            chooser = choose_dataset_folder if ref == OPEN_FOLDER else choose_dataset_file
            path = chooser(self)
            if not path:
                self.set_dataset_ref(self._dataset_ref)  # cancelled: show the previous choice again
                return
            ref = path
        if ref != self._dataset_ref:
            self.set_dataset_ref(ref)
            self.dataset_chosen.emit(ref)
