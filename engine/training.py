"""The training loop: epochs of shuffled mini-batches, reported as small immutable events.

``prepare(architecture, dataset, config)`` checks everything once (engine.preflight) and builds
the model and its trainer. A ``Trainer`` can be driven as a generator (``for event in
trainer.run(): ...``) or with a callback (``trainer.fit(callback)``). ``pause``, ``resume``,
``stop`` and the hyper-parameter setters are safe to call from another thread; they take effect
between batches.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np

from engine import memory, training_state
from engine.architecture import analyze, load_architecture_file
from engine.data import Augmentation, Dataset
from engine.early_stopping import EarlyStopping
from engine.errors import TrainingError
from engine.layers import Dropout
from engine.losses import softmax_cross_entropy
from engine.metrics import Evaluation, evaluate
from engine.model import Model
from engine.optimizers import Optimizer, make_optimizer
from engine.preflight import check_training
from engine.schedules import ReduceOnPlateau, Schedule
from engine.training_state import TrainerState, TrainingLog

# How many processes a training step runs on: 1; 2 (the second one a replica of the model,
# engine.replica) whenever the step can be split; "auto": 2 when the step is large enough to gain.
Processes = Literal[1, 2, "auto"]


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting; JSON-safe via to_dict / from_dict (project files keep it)."""

    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    step_epochs: int = 2
    step_gamma: float = 0.5
    validation_split: float = 0.1
    label_smoothing: float = 0.0
    seed: int = 0
    augment_shift: int = 0
    augment_hflip: bool = False
    augment_rotation: float = 0.0
    standardize: bool = False
    # One process unless the caller asks for more: a library user gets no helper process unasked.
    processes: Processes = 1
    # What early stopping, the plateau schedule and "best epoch" follow: "val_loss" or
    # "val_accuracy" (the training metric stands in when there is no validation split).
    monitor: str = "val_loss"
    min_delta: float = 0.0  # smaller changes of the monitored metric do not count as improvements
    early_stopping: int = 0  # patience in epochs; 0 turns early stopping off
    restore_best: bool = True  # an early-stopped run ends with its best epoch's weights
    plateau_patience: int = 2  # schedule "plateau": epochs without improvement before the rate drops
    plateau_factor: float = 0.5
    plateau_min_lr: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def make_optimizer(self) -> Optimizer:
        if self.optimizer == "sgd":
            return make_optimizer("sgd", lr=self.learning_rate, momentum=self.momentum,
                                  nesterov=self.nesterov, weight_decay=self.weight_decay)
        return make_optimizer(self.optimizer, lr=self.learning_rate, beta1=self.momentum,
                              weight_decay=self.weight_decay)

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(shift=self.augment_shift, hflip=self.augment_hflip, rotation=self.augment_rotation)


@dataclass(frozen=True)
class TrainingStarted:
    epochs: int
    batches_per_epoch: int
    train_size: int
    validation_size: int


@dataclass(frozen=True)
class BatchEnd:
    epoch: int  # 1-based
    batch: int  # 1-based within the epoch
    batches: int
    step: int  # batches done since the trainer was made
    loss: float
    accuracy: float
    learning_rate: float
    images_per_second: float
    elapsed: float
    eta: float  # seconds left in this run


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float  # NaN without a validation split
    val_accuracy: float
    learning_rate: float
    elapsed: float
    note: str = ""  # e.g. the plateau schedule lowered the learning rate after this epoch


@dataclass(frozen=True)
class TrainingFinished:
    reason: str  # "completed" | "stopped" | "diverged"
    epochs_completed: int
    message: str = ""
    stopped_early: bool = False  # completed before the planned epochs by early stopping
    best_epoch: int = 0  # the epoch whose weights the model holds after early stopping (0: the last)


Event = TrainingStarted | BatchEnd | EpochEnd | TrainingFinished


@dataclass
class History:
    batches: list[BatchEnd] = field(default_factory=list)
    epochs: list[EpochEnd] = field(default_factory=list)
    finished: TrainingFinished | None = None


def prepare(architecture: dict[str, Any] | str | os.PathLike, dataset: Dataset, config: TrainConfig | None = None,
            *, weights: dict[str, np.ndarray] | None = None,
            preprocessing: dict[str, Any] | None = None) -> tuple[Model, Trainer]:
    """Check that ``architecture`` (a document or its file) can train on ``dataset`` with ``config``,
    then build the model (seeded with ``config.seed``; starting from ``weights`` when given) and
    its trainer. ``preprocessing``: the starting weights' record of their inputs (see Trainer).

    Raises the first problem found (see engine.preflight.training_problems) before any weight is
    allocated: a SettingError, an ArchitectureError (ClassifierHeadError, ClassCountError, ...),
    InputShapeError, SoftmaxHeadError or NoTrainingImagesError.
    """
    config = config or TrainConfig()
    doc = load_architecture_file(architecture) if isinstance(architecture, (str, os.PathLike)) else architecture
    analysis = analyze(doc)
    check_training(analysis, dataset, config)
    # Refused before any weight is allocated: the model, its optimizer state and a batch's activations
    # must fit in the memory left beside the dataset.
    memory.check_training(analysis, config.batch_size, config.optimizer, config.momentum)
    model = Model(doc, seed=config.seed)
    if weights is not None:
        model.set_weights(weights)
    return model, Trainer(model, dataset, config, preprocessing=preprocessing, _checked=True)


def train_step(model: Model, optimizer: Optimizer, x: np.ndarray, y: np.ndarray,
               label_smoothing: float = 0.0, processes: Processes = 1) -> tuple[float, float]:
    """One optimisation step of ``model`` on the batch x (N, H, W, C), y (N,) integer labels, on
    ``processes`` processes (see TrainConfig.processes); returns (loss, accuracy) on the batch."""
    # Overflow on the way to a NaN loss is reported once, as divergence, not as NumPy warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        result = None
        if processes != 1:
            from engine import replica  # only a split step needs the inter-process machinery

            result = replica.train_gradients(model, x, y, label_smoothing, always=processes == 2)
        if result is None:
            logits = model.forward_logits(x, training=True)
            loss, grad, probs = softmax_cross_entropy(logits, y, label_smoothing)
            model.backward(grad)
            result = loss, float((probs.argmax(axis=1) == y).mean())
        # Frozen layers ("trainable": false) are left out: they get no updates, no weight decay.
        optimizer.step(model.trainable_parameters(), model.trainable_gradients())
    return result


class Trainer:
    """Trains ``model`` on ``dataset``'s training part, holding out a seeded validation split."""

    def __init__(self, model: Model, dataset: Dataset, config: TrainConfig | None = None, *,
                 preprocessing: dict[str, Any] | None = None, _checked: bool = False) -> None:
        """``preprocessing``: for a model holding trained weights (fine-tuning), the record of the
        inputs they were trained on (Model.preprocessing); their mean and std then normalise the
        dataset, so that the weights see inputs like those they learnt from."""
        self.config = config or TrainConfig()
        if not _checked:  # prepare() has checked already
            check_training(model.analysis, dataset, self.config)
            # The model and the dataset exist already: refused here is what training would add to them.
            memory.check_training(model.analysis, self.config.batch_size, self.config.optimizer,
                                  self.config.momentum, built=True)
        self.model = model
        self.dataset = dataset.standardized() if self.config.standardize else dataset
        self._normalize_as(preprocessing)
        self.train_idx, self.val_idx = self.dataset.split(self.config.validation_split, self.config.seed)
        self.optimizer = self.config.make_optimizer()
        self.rng = np.random.default_rng(self.config.seed)
        self.batches_per_epoch = -(-len(self.train_idx) // self.config.batch_size)
        c = self.config
        self.schedule = Schedule(
            c.learning_rate, c.schedule, warmup_steps=int(c.warmup_epochs * self.batches_per_epoch),
            step_size=c.step_epochs * self.batches_per_epoch, gamma=c.step_gamma,
            total_steps=c.epochs * self.batches_per_epoch,
        )
        self.plateau = (ReduceOnPlateau(c.monitor, c.plateau_factor, c.plateau_patience, c.min_delta,
                                        c.plateau_min_lr) if c.schedule == "plateau" else None)
        self.early_stopping = (EarlyStopping(c.monitor, c.early_stopping, c.min_delta, c.restore_best)
                               if c.early_stopping else None)
        self.epoch = 0  # epochs completed
        self.step = 0
        self.log = TrainingLog()  # every epoch's metrics and every batch's loss so far
        # Called with each EpochEnd once the epoch's state is final (state_dict() may be taken),
        # before the event is yielded: e.g. a run folder writing its checkpoint.
        self.epoch_hooks: list[Callable[[EpochEnd], None]] = []
        # Told about every optimisation step: ``before_step(trainer)`` once the batch is drawn,
        # ``after_step(trainer, loss)`` once the optimizer has updated the weights (the gradients of
        # the step are still in the model then). E.g. the training doctor sampling gradient norms.
        self.step_observers: list[Any] = []
        # Called on the training thread just before a pause takes hold (e.g. to hand on what the
        # consumer still holds back), so nothing produced before the pause waits out the pause.
        self.pause_hooks: list[Callable[[], None]] = []
        self._in_epoch = False
        self._ended_early = False
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._stop = False
        self._pending: dict[str, float] = {}
        self._good_weights = model.get_weights()

    # -- control from any thread --------------------------------------------------------------------
    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop = True
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def set_learning_rate(self, lr: float) -> None:
        """Takes effect at the next batch (scales the schedule's base rate)."""
        with self._lock:
            self._pending["lr"] = float(lr)

    def set_momentum(self, momentum: float) -> None:
        with self._lock:
            self._pending["momentum"] = float(momentum)

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if "lr" in pending:
            self.schedule.base_lr = pending["lr"]
        if "momentum" in pending:
            self.optimizer.momentum = pending["momentum"]

    # -- the loop ---------------------------------------------------------------------------------------
    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """One optimisation step; returns (loss, accuracy) on the batch."""
        observers = self.step_observers
        for observer in observers:
            observer.before_step(self)
        loss, accuracy = train_step(self.model, self.optimizer, x, y, self.config.label_smoothing,
                                    self.config.processes)
        for observer in observers:
            observer.after_step(self, loss)
        return loss, accuracy

    def run(self, epochs: int | None = None) -> Iterator[Event]:
        """Train for ``epochs`` more epochs (the configured number by default), yielding events.

        Can be called again after it finishes (e.g. "+1 epoch"): weights and optimizer state carry on.
        """
        epochs = self.config.epochs if epochs is None else epochs
        self._stop = False
        if self._ended_early and self.early_stopping is not None:
            # Asked for more epochs after stopping early: give them their own patience.
            self.early_stopping.wait = 0
        self._ended_early = False
        target = self.epoch + epochs
        c = self.config
        yield TrainingStarted(epochs, self.batches_per_epoch, len(self.train_idx), len(self.val_idx))
        start = time.perf_counter()
        images = 0
        total_batches = epochs * self.batches_per_epoch
        done_batches = 0
        augmentation = c.augmentation if c.augmentation.active else None
        while self.epoch < target:
            if self.early_stopping is not None and self.early_stopping.triggered:
                # (a state restored after the stopping epoch's checkpoint: stop as the run did)
                yield self._stop_early()
                return
            epoch = self.epoch + 1
            losses, accs, sizes = [], [], []
            batches = self.dataset.batches(self.train_idx, c.batch_size, rng=self.rng, augmentation=augmentation)
            self._in_epoch = True
            for b, (x, y) in enumerate(batches, start=1):
                if not self._running.is_set():
                    paused_at = time.perf_counter()
                    for hook in self.pause_hooks:
                        hook()
                    self._running.wait()
                    start += time.perf_counter() - paused_at  # paused time counts in no rate, elapsed or ETA
                if self._stop:
                    yield TrainingFinished("stopped", self.epoch, f"stopped during epoch {epoch}")
                    return
                self._apply_pending()
                lr = self.schedule.lr(self.step) * (self.plateau.scale if self.plateau else 1.0)
                self.optimizer.lr = lr
                loss, acc = self.train_batch(x, y)
                if not np.isfinite(loss):
                    self.model.set_weights(self._good_weights)
                    kept = f"the end of epoch {self.epoch}" if self.epoch else "their initial values"
                    yield TrainingFinished(
                        "diverged", self.epoch,
                        f"the loss became {loss} at epoch {epoch}, batch {b} (learning rate {lr:g}); the "
                        f"weights were restored to {kept}. Try a lower learning rate, e.g. {lr / 10:g}.",
                    )
                    return
                self.step += 1
                self.log.batch_loss.append(float(loss))
                self.log.batch_accuracy.append(float(acc))
                self.log.batch_lr.append(float(lr))
                done_batches += 1
                images += len(y)
                losses.append(loss)
                accs.append(acc)
                sizes.append(len(y))
                elapsed = time.perf_counter() - start
                rate = images / elapsed if elapsed > 0 else 0.0
                eta = elapsed / done_batches * (total_batches - done_batches)
                yield BatchEnd(epoch, b, self.batches_per_epoch, self.step, loss, acc, lr, rate, elapsed, eta)
            val = self.validate()
            self.epoch = epoch
            self._good_weights = self.model.get_weights()
            w = np.asarray(sizes, np.float64)
            event = EpochEnd(epoch, target, float(np.dot(losses, w) / w.sum()), float(np.dot(accs, w) / w.sum()),
                             val.loss if val else float("nan"), val.accuracy if val else float("nan"),
                             self.optimizer.lr, time.perf_counter() - start)
            event = self._end_epoch(event)
            yield event
            if self.early_stopping is not None and self.early_stopping.triggered:
                yield self._stop_early()
                return
        yield self._complete()

    # -- epoch ends: monitored metric, plateau, early stopping, hooks --------------------------------
    def monitored_value(self, event: EpochEnd) -> float:
        """The epoch's value of ``config.monitor`` (its training counterpart without validation)."""
        value = getattr(event, self.config.monitor)
        if math.isnan(value):
            value = getattr(event, self.config.monitor.replace("val_", "train_"))
        return float(value)

    def _end_epoch(self, event: EpochEnd) -> EpochEnd:
        value = self.monitored_value(event)
        note = ""
        if self.plateau is not None and self.plateau.update(value, self.schedule.base_lr):
            lowered = self.schedule.lr(self.step) * self.plateau.scale
            note = (f"learning rate lowered to {lowered:.4g}: {self.config.monitor} did not improve for "
                    f"{self.plateau.patience} epoch{'s' if self.plateau.patience != 1 else ''}")
            event = EpochEnd(**{**asdict(event), "note": note})
        if self.early_stopping is not None:
            self.early_stopping.update(value, event.epoch, self._good_weights)
        self._in_epoch = False
        # The log keeps what the training computed; times and the span of this run() call vary.
        self.log.epochs.append({k: v for k, v in asdict(event).items() if k not in ("elapsed", "epochs")})
        for hook in list(self.epoch_hooks):
            hook(event)
        return event

    def _complete(self) -> TrainingFinished:
        stopper = self.early_stopping
        if (stopper is None or not stopper.restore_best or stopper.best_weights is None
                or stopper.best_epoch in (0, self.epoch)):
            return TrainingFinished("completed", self.epoch)
        # With early stopping on, a run ends on its best epoch even when patience never ran out.
        self.model.set_weights(stopper.best_weights)
        self._good_weights = self.model.get_weights()
        return TrainingFinished("completed", self.epoch, f"the weights of epoch {stopper.best_epoch}, the best by "
                                f"{stopper.monitor}, were restored", best_epoch=stopper.best_epoch)

    def _stop_early(self) -> TrainingFinished:
        stopper = self.early_stopping
        assert stopper is not None
        message = stopper.reason(self.epoch)
        best = 0
        if stopper.restore_best and stopper.best_weights is not None:
            self.model.set_weights(stopper.best_weights)
            self._good_weights = self.model.get_weights()
            best = stopper.best_epoch
        self._ended_early = True
        return TrainingFinished("completed", self.epoch, message, stopped_early=True, best_epoch=best)

    # -- complete state between epochs (checkpoints, resume) ------------------------------------------
    def state_dict(self) -> TrainerState:
        """Everything the next epochs depend on, as copies (see engine.training_state).

        Only between epochs: before the first, after any, or in an epoch hook.
        """
        if self._in_epoch:
            raise TrainingError("a trainer's state can only be taken between epochs")
        settings, slots = self.optimizer.state_dict()
        stopper = self.early_stopping
        best = None
        if stopper is not None and stopper.best_weights is not None and stopper.best_epoch != self.epoch:
            best = {k: v.copy() for k, v in stopper.best_weights.items()}
        return TrainerState(
            epoch=self.epoch, step=self.step, architecture=dict(self.model.architecture),
            preprocessing=dict(self.model.preprocessing), config=self.config.to_dict(),
            weights=self.model.get_weights(), optimizer=settings, optimizer_slots=slots,
            rngs=self._generator_states(), schedule={
                "base_lr": self.schedule.base_lr, "plateau": self.plateau.state_dict() if self.plateau else None},
            early_stopping=stopper.state_dict() if stopper is not None else None, best_weights=best,
            log=self.log.copy(),
        )

    def _normalize_as(self, preprocessing: dict[str, Any] | None) -> None:
        """Normalise the data with the mean and std of ``preprocessing`` where it has them (see
        __init__), and record what the model is trained on."""
        self.dataset = self.dataset.centered_as(preprocessing)
        self.model.preprocessing = self.dataset.normalization.to_dict()

    def load_weights(self, weights: dict[str, np.ndarray], preprocessing: dict[str, Any] | None) -> None:
        """Start from ``weights`` (a run resumed before its first checkpoint), normalising as they
        were trained (see __init__)."""
        self.model.set_weights(weights)
        self._normalize_as(preprocessing)

    def load_state_dict(self, state: TrainerState) -> None:
        """Continue from ``state``: the next epoch is state.epoch + 1, bit-identical to the run
        that saved it. Raises TrainingError for a state of another network or other settings."""
        from engine.architecture_diff import diff_architectures, same_network

        if not same_network(state.architecture, self.model.architecture):
            difference = diff_architectures(state.architecture, self.model.architecture).describe()
            raise TrainingError(f"the saved training state belongs to another network ({difference})")
        training_state.check_binding_settings(state.config, self.config.to_dict())
        self.model.set_weights(state.weights)
        self._normalize_as(state.preprocessing)
        self.optimizer.load_state_dict(state.optimizer, state.optimizer_slots)
        self._set_generator_states(state.rngs)
        self.schedule.base_lr = float(state.schedule["base_lr"])
        if self.plateau is not None and state.schedule.get("plateau"):
            self.plateau.load_state_dict(state.schedule["plateau"])
        if self.early_stopping is not None and state.early_stopping:
            best = state.best_weights
            if best is None and int(state.early_stopping["best_epoch"]) == state.epoch:
                best = {k: v.copy() for k, v in state.weights.items()}
            self.early_stopping.load_state_dict(state.early_stopping, best if self.config.restore_best else None)
        self.epoch, self.step = state.epoch, state.step
        self.log = state.log.copy()
        self._good_weights = self.model.get_weights()
        self._ended_early = False

    def _generator_states(self) -> dict[str, Any]:
        dropout = {name: training_state.generator_state(layer.rng)
                   for name, layer in zip(self.model.names, self.model.layers) if isinstance(layer, Dropout)}
        states = {"trainer": training_state.generator_state(self.rng), "dropout": dropout}
        if self.config.processes != 1:
            from engine import replica  # the replica's dropout generators live there

            states["replica"] = replica.generator_states(self.model)
        return states

    def _set_generator_states(self, states: dict[str, Any]) -> None:
        training_state.set_generator_state(self.rng, states["trainer"])
        for name, layer in zip(self.model.names, self.model.layers):
            if isinstance(layer, Dropout):
                training_state.set_generator_state(layer.rng, states["dropout"][name])
        if states.get("replica"):
            from engine import replica

            replica.set_generator_states(self.model, states["replica"])

    def fit(self, callback: Callable[[Event], None] | None = None, epochs: int | None = None) -> History:
        history = History()
        for event in self.run(epochs):
            if isinstance(event, BatchEnd):
                history.batches.append(event)
            elif isinstance(event, EpochEnd):
                history.epochs.append(event)
            elif isinstance(event, TrainingFinished):
                history.finished = event
            if callback is not None:
                callback(event)
        return history

    def validate(self) -> Evaluation | None:
        if len(self.val_idx) == 0:
            return None
        return evaluate(self.model, self.dataset.normalized("train", self.val_idx), self.dataset.y_train[self.val_idx])

    def evaluate(self, part: str = "test") -> Evaluation:
        """Accuracy, per-class accuracy and confusion matrix on the test part (or "validation")."""
        if part == "validation":
            return evaluate(self.model, self.dataset.normalized("train", self.val_idx),
                            self.dataset.y_train[self.val_idx])
        return evaluate(self.model, self.dataset.normalized("test"), self.dataset.y_test)
