"""What the training doctor records: per layer and per epoch, and what it concludes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerEpoch:
    """One layer over one epoch.

    ``gradient_norm``: median over the sampled steps of the L2 norm of the layer's parameter gradients
    (None for layers without parameters); ``gradient_rms`` the same divided by sqrt(parameter count),
    comparable between layers of different sizes; ``update_ratio``: median of |weight change of one
    step| / |weights| (None for frozen layers and those without parameters); ``dead_fraction``: share
    of the units (channels or features) of a ReLU output that are zero for every probe image;
    ``saturated_fraction``: share of a sigmoid or tanh output's values within 2% of its limits.
    """

    name: str
    type: str
    gradient_norm: float | None = None
    gradient_rms: float | None = None
    update_ratio: float | None = None
    dead_fraction: float | None = None
    dead_units: int = 0
    units: int = 0
    saturated_fraction: float | None = None
    activation: str = ""


@dataclass(frozen=True)
class EpochRecord:
    """Everything recorded for one finished epoch; ``predicted``/``labels``: per class, how many probe
    images were predicted as it / belong to it."""

    epoch: int
    train_loss: float
    val_loss: float
    train_accuracy: float
    val_accuracy: float
    learning_rate: float
    layers: tuple[LayerEpoch, ...]
    predicted: tuple[int, ...]
    labels: tuple[int, ...]
    probe_size: int
    first_losses: float = math.nan  # mean loss of the epoch's first tenth of batches
    last_losses: float = math.nan  # ... and of its last tenth
    spikes: int = 0  # batches whose loss jumped far above the recent median
    peak_loss: float = math.nan  # the epoch's largest batch loss
    probe_loss: float = math.nan  # the loss on the fixed probe images after the epoch
    start_loss: float = math.nan  # the loss of its first batch (measured before that batch's step)
    batches: int = 0
    confusions: tuple[tuple[int, ...], ...] = ()  # per true class: probe predictions per class
    complete: bool = True  # False: an epoch cut short by a diverging loss (gradients and updates only)

    def layer(self, name: str) -> LayerEpoch | None:
        return next((entry for entry in self.layers if entry.name == name), None)


@dataclass(frozen=True)
class Fix:
    """A one-click remedy. ``kind`` is one of FIX_KINDS; ``data`` says what exactly:

    set_learning_rate {"learning_rate"}; insert_batch_norm {"layer"} (after that layer's linear part);
    set_activation {"layers", "activation"} (activation layers become that layer type);
    add_dropout {"before", "rate"} (before that layer);
    set_augmentation {"augment_shift"}; set_early_stopping {"early_stopping"} (patience in epochs).
    """

    kind: str
    label: str
    data: dict[str, Any] = field(default_factory=dict)
    command_line: str = ""  # how to do it with ``cnn-engine train`` ("" when that is an edit of the file)


FIX_KINDS = ("set_learning_rate", "insert_batch_norm", "set_activation", "add_dropout", "set_augmentation",
             "set_early_stopping")


@dataclass(frozen=True)
class Diagnosis:
    """One problem found, in plain words. ``kind``: one of DIAGNOSES; ``evidence`` the numbers behind
    it; ``layer`` the layer it is about (""), ``epoch`` when it was seen."""

    kind: str
    title: str
    evidence: str
    advice: str
    epoch: int
    layer: str = ""
    fixes: tuple[Fix, ...] = ()
    severity: str = "warning"  # "warning" or "error" (training cannot succeed like this)

    @property
    def key(self) -> tuple[str, str]:
        """What makes two diagnoses the same problem (seen again at a later epoch)."""
        return self.kind, self.layer

    def line(self) -> str:
        """One line for a terminal: title, evidence, advice and the command-line remedy where there is one."""
        remedies = [f.command_line for f in self.fixes if f.command_line]
        tail = f" (try {' '.join(remedies)})" if remedies else ""
        return f"{self.title}: {self.evidence} {self.advice}{tail}"


DIAGNOSES = ("learning_rate_too_high", "learning_rate_too_low", "vanishing_gradients", "exploding_gradients",
             "dead_relu", "saturated_activations", "overfitting", "class_never_predicted")
