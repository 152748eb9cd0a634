"""The training doctor's rules: from the records of the epochs so far to diagnoses in plain words.

Each rule looks at the evidence a practitioner would (loss curves, update sizes, gradient norms
across layers, dead or saturated units, validation loss, the classes predicted) and, where one is
obvious, proposes a fix the studio can apply with one click and the command line can print.
Thresholds are deliberately conservative: a healthy run must not be diagnosed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.doctor.records import Diagnosis, EpochRecord, Fix

HEALTHY_UPDATE_RATIO = 1e-3  # weights changing by about a thousandth of their size per step
TARGET_UPDATE_RATIO = 3e-3  # what a suggested learning rate aims at: brisk, well short of unstable
TOO_LOW_UPDATE_RATIO = 1e-5
TOO_HIGH_UPDATE_RATIO = 1e-2
FLAT_LOSS = 0.03  # a relative loss decrease below this over the run counts as flat
GRADIENT_SPAN = 100.0  # gradient RMS differing this much between the first and last layers
EXPLODING_RMS = 1.0  # a layer's gradient RMS this large (healthy networks: around 1e-3 to 1e-1)
DEAD_SHARE = 0.5
SATURATED_SHARE = 0.5
OVERFITTING_EPOCHS = 3
NEVER_PREDICTED_EPOCHS = 3
MIN_CLASS_IMAGES = 5
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001}  # where weights that never move start
LEARNING_RATE_LIMITS = {"sgd": (1e-4, 0.1), "adam": (1e-5, 0.01), "adamw": (1e-5, 0.01)}


@dataclass(frozen=True)
class LayerInfo:
    name: str
    id: str
    type: str
    activation: str
    has_params: bool
    trainable: bool
    spatial: bool  # its output is a feature map


@dataclass(frozen=True)
class RunContext:
    """What the rules need to know about the network and the settings (see TrainingDoctor)."""

    optimizer: str
    learning_rate: float
    momentum: float
    early_stopping: int
    augment_shift: int
    validation: bool
    class_names: tuple[str, ...]
    layers: tuple[LayerInfo, ...]
    num_classes: int = 0
    dropout_before_output: bool = False
    input_shape: tuple[int, ...] = ()
    initial_probe_loss: float = math.nan
    divergence: dict = field(default_factory=dict)  # {"loss", "epoch", "learning_rate"} once the loss blew up

    def info(self, name: str) -> LayerInfo | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class {index}"


def nice_number(value: float) -> float:
    """``value`` rounded to the nearest (on a log scale) of 1, 2 or 5 times a power of ten (0.037 -> 0.05)."""
    if value <= 0 or not math.isfinite(value):
        return value
    power = 10 ** math.floor(math.log10(value))
    candidates = [step * power for step in (1, 2, 5, 10)]
    best = min(candidates, key=lambda c: abs(math.log(value / c)))
    return float(f"{best:.3g}")


def _lr_fix(context: RunContext, value: float) -> Fix:
    low, high = LEARNING_RATE_LIMITS.get(context.optimizer, (1e-5, 0.1))
    value = nice_number(min(max(value, low), high))
    return Fix("set_learning_rate", f"Set the learning rate to {value:g}", {"learning_rate": value},
               f"--lr {value:g}")


def _g(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 or value >= 1000 else f"{value:.3g}"


def _ratios(record: EpochRecord, context: RunContext) -> list[float]:
    """The update-to-weight ratios of the trainable layers, smallest first."""
    return sorted(entry.update_ratio for entry in record.layers
                  if entry.update_ratio is not None and context.info(entry.name) is not None
                  and context.info(entry.name).trainable)


def _median_ratio(record: EpochRecord, context: RunContext) -> float | None:
    ratios = _ratios(record, context)
    return ratios[len(ratios) // 2] if ratios else None


# -- the rules ---------------------------------------------------------------------------------------------------
def learning_rate_too_high(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    lr = context.learning_rate
    if context.divergence:
        d = context.divergence
        return [Diagnosis(
            "learning_rate_too_high", "Learning rate too high",
            f"the loss became {d['loss']} in epoch {d['epoch']} with learning rate {d['learning_rate']:g}: the "
            "steps were so large that the weights overflowed.",
            "Lower the learning rate about tenfold.", int(d["epoch"]),
            fixes=(_lr_fix(context, d["learning_rate"] / 10),), severity="error")]
    if not records:
        return []
    last = records[-1]
    chance = math.log(context.num_classes) if context.num_classes > 1 else math.nan
    ratio = _median_ratio(last, context)
    reasons = []
    start = records[0].start_loss
    peak = max(records, key=lambda r: r.peak_loss if math.isfinite(r.peak_loss) else -math.inf)
    if math.isfinite(start) and math.isfinite(peak.peak_loss) and peak.peak_loss > max(3 * start, start + 1.0):
        reasons.append(f"the loss shot up to {peak.peak_loss:.3g} in epoch {peak.epoch} (it started at {start:.3f})")
    if last.batches and last.spikes >= max(3, 0.05 * last.batches):
        reasons.append(f"the loss spiked in {last.spikes} of {last.batches} batches of epoch {last.epoch}")
    if len(records) >= 2 and last.train_loss > 1.5 * min(r.train_loss for r in records[:-1]) \
            and last.train_loss > 0.5:
        best = min(records[:-1], key=lambda r: r.train_loss)
        reasons.append(f"the training loss rose from {best.train_loss:.3f} (epoch {best.epoch}) to "
                       f"{last.train_loss:.3f} (epoch {last.epoch})")
    stuck = math.isfinite(chance) and last.train_loss > 0.95 * chance and last.last_losses >= 0.97 * last.first_losses
    if ratio is not None and ratio > TOO_HIGH_UPDATE_RATIO and (stuck or reasons):
        reasons.append(f"each step changes the weights by {_g(ratio)} of their size (healthy: about "
                       f"{HEALTHY_UPDATE_RATIO:g})")
    elif stuck and reasons:
        reasons.append(f"the loss is stuck at {last.train_loss:.3f}, no better than guessing ({chance:.3f})")
    if not reasons or (len(reasons) == 1 and ratio is not None and ratio < HEALTHY_UPDATE_RATIO):
        return []
    return [Diagnosis("learning_rate_too_high", "Learning rate too high",
                      f"with learning rate {lr:g}, " + "; ".join(reasons) + ".",
                      "Lower the learning rate about tenfold.", last.epoch,
                      fixes=(_lr_fix(context, lr / 10),))]


def learning_rate_too_low(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    if not records or context.divergence:
        return []
    last = records[-1]
    # Even the layer whose weights move most barely moves (vanishing gradients leave the last layers moving).
    ratios = _ratios(last, context)
    ratio = ratios[-1] if ratios else None
    # The loss on the same probe images before training and now: batch-to-batch noise does not enter.
    first, now = context.initial_probe_loss, last.probe_loss
    if ratio is None or not (math.isfinite(first) and math.isfinite(now)) or first <= 0:
        return []
    change = abs(first - now) / first
    # A tenfold smaller ratio is enough evidence alone.
    if ratio >= TOO_LOW_UPDATE_RATIO or (change >= FLAT_LOSS and ratio >= TOO_LOW_UPDATE_RATIO / 10):
        return []
    lr = context.learning_rate
    epochs = f"{len(records)} epoch{'s' if len(records) != 1 else ''}"
    return [Diagnosis(
        "learning_rate_too_low", "Learning rate too low",
        f"with learning rate {lr:g} each step changes the weights by at most {_g(ratio)} of their size (healthy: "
        f"about {HEALTHY_UPDATE_RATIO:g}) and the loss on the probe images went from {first:.4f} to {now:.4f} in "
        f"{epochs}.",
        "Raise the learning rate: the network is barely learning.", last.epoch,
        fixes=(_lr_fix(context, lr * TARGET_UPDATE_RATIO / ratio if ratio > 0 and lr > 0 else
                       DEFAULT_LEARNING_RATES.get(context.optimizer, 0.01)),))]


def _gradient_profile(record: EpochRecord, context: RunContext) -> list[tuple[str, float]]:
    return [(entry.name, entry.gradient_rms) for entry in record.layers
            if entry.gradient_rms is not None and context.info(entry.name) is not None
            and context.info(entry.name).trainable and context.info(entry.name).type in ("Conv2D", "Dense")]


def _activation_fix(context: RunContext, names: list[str], activation: str, label: str) -> Fix:
    what = f"in {names[0]}" if len(names) == 1 else f"in {len(names)} layers"
    return Fix("set_activation", f"Use {label} {what}", {"layers": list(names), "activation": activation})


def _flow_fixes(context: RunContext, saturating: list[str], first: str) -> tuple[Fix, ...]:
    if saturating:
        return (_activation_fix(context, saturating, "relu", "ReLU instead of sigmoid/tanh"),)
    info = context.info(first)
    if info is not None and info.type in ("Conv2D", "Dense"):
        return (Fix("insert_batch_norm", f"Insert BatchNorm after {first}", {"layer": first}),)
    return ()


def gradient_flow(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    if not records:
        return []
    last = records[-1]
    profile = _gradient_profile(last, context)
    if not profile:
        return []
    listing = ", ".join(f"{name} {_g(value)}" for name, value in profile)
    (first_name, first), (last_name, final) = profile[0], profile[-1]
    largest_name, largest = max(profile, key=lambda item: item[1])
    if largest > EXPLODING_RMS or (len(profile) >= 3 and first > 0 and (final == 0 or first / final > GRADIENT_SPAN)):
        if largest > EXPLODING_RMS:
            what = (f"in epoch {last.epoch} the gradients of {largest_name} reach an RMS of {_g(largest)} (healthy "
                    f"networks: about 0.001 to 0.1)")
        else:
            what = (f"in epoch {last.epoch} the gradients reaching {first_name} are {_g(first / max(final, 1e-30))} "
                    f"times larger than those of {last_name}")
        culprit = largest_name if largest > EXPLODING_RMS else first_name
        return [Diagnosis(
            "exploding_gradients", "Exploding gradients", f"{what} (RMS per layer: {listing}).",
            "Steps this large throw the weights far off; smaller initial weights, batch normalisation or a lower "
            "learning rate tame them.", last.epoch, layer=culprit,
            fixes=(*_flow_fixes(context, [], culprit), _lr_fix(context, context.learning_rate / 10)))]
    if context.divergence or len(profile) < 3:
        return []
    if final > 0 and first / final < 1 / GRADIENT_SPAN:
        span = final / max(first, 1e-30)
        saturating = [layer.name for layer in context.layers[:-1] if layer.activation in ("sigmoid", "tanh")]
        return [Diagnosis(
            "vanishing_gradients", "Vanishing gradients",
            f"in epoch {last.epoch} the gradients reaching {first_name} are {_g(span)} times smaller than those of "
            f"{last_name} (RMS per layer: {listing}).",
            "The first layers hardly learn. " + ("Sigmoid and tanh squash the gradient at every layer; ReLU or "
                                                 "batch normalisation keep it alive." if saturating else
                                                 "Batch normalisation keeps the gradient's size from layer to layer."),
            last.epoch, layer=first_name, fixes=_flow_fixes(context, saturating, first_name))]
    return []


def dead_relu(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    if not records:
        return []
    last = records[-1]
    found = []
    for entry in last.layers:
        if entry.dead_fraction is None or entry.units < 2 or entry.dead_fraction < DEAD_SHARE:
            continue
        info = context.info(entry.name)
        what = "channels" if info is not None and info.spatial else "units"
        fixes = [_activation_fix(context, [entry.name], "leaky_relu", "LeakyReLU")]
        if last.learning_rate > 0:
            fixes.append(_lr_fix(context, context.learning_rate / 3))
        found.append(Diagnosis(
            "dead_relu", "Dead ReLU units",
            f"{entry.dead_units} of {entry.units} {what} of {entry.name} ({entry.dead_fraction:.0%}) output zero "
            f"for every one of the {last.probe_size} probe images after epoch {last.epoch}: they no longer learn.",
            "A ReLU whose input is always negative gets no gradient. LeakyReLU keeps a small slope there; a lower "
            "learning rate avoids pushing units into that state.", last.epoch, layer=entry.name, fixes=tuple(fixes)))
    return found


def saturated_activations(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    if not records:
        return []
    last = records[-1]
    found = []
    for entry in last.layers:
        if entry.saturated_fraction is None or entry.saturated_fraction < SATURATED_SHARE:
            continue
        found.append(Diagnosis(
            "saturated_activations", f"Saturated {entry.activation}",
            f"{entry.saturated_fraction:.0%} of the outputs of {entry.name} sit at the flat ends of its "
            f"{entry.activation} on the {last.probe_size} probe images (epoch {last.epoch}), where its gradient "
            "is almost zero.",
            "Batch normalisation before the activation keeps its inputs in the sensitive range; ReLU does not "
            "saturate.", last.epoch, layer=entry.name,
            fixes=(Fix("insert_batch_norm", f"Insert BatchNorm in {entry.name} before its {entry.activation}",
                       {"layer": entry.name}),
                   _activation_fix(context, [entry.name], "relu", "ReLU"))))
    return found


def overfitting(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    n = OVERFITTING_EPOCHS
    if not context.validation or len(records) < n + 1:
        return []
    window = records[-(n + 1):]
    val = [r.val_loss for r in window]
    train = [r.train_loss for r in window]
    if not all(math.isfinite(v) for v in val):
        return []
    rising = all(b > a for a, b in zip(val, val[1:]))
    falling = train[-1] < train[0]
    if not (rising and falling):
        return []
    best = min(records, key=lambda r: r.val_loss)
    fixes = []
    if not context.early_stopping:
        fixes.append(Fix("set_early_stopping", "Turn on early stopping (patience 3)", {"early_stopping": 3},
                         "--early-stopping 3"))
    output = context.layers[-1].name if context.layers else ""
    if not context.dropout_before_output and output:
        fixes.append(Fix("add_dropout", f"Add Dropout (0.5) before {output}", {"before": output, "rate": 0.5}))
    if not context.augment_shift and len(context.input_shape) == 3 and min(context.input_shape[:2]) > 4:
        fixes.append(Fix("set_augmentation", "Augment the images (random shifts of 2 pixels)",
                         {"augment_shift": 2}, "--augment-shift 2"))
    return [Diagnosis(
        "overfitting", "Overfitting",
        f"the validation loss rose for {n} epochs in a row ({' → '.join(f'{v:.3f}' for v in val)}, epochs "
        f"{window[0].epoch}–{window[-1].epoch}) while the training loss fell ({train[0]:.3f} → {train[-1]:.3f}); "
        f"the best validation loss was {best.val_loss:.3f} at epoch {best.epoch}.",
        "The network is memorising the training images instead of learning what generalises.",
        window[-1].epoch, fixes=tuple(fixes))]


def class_never_predicted(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    n = NEVER_PREDICTED_EPOCHS
    if len(records) < n:
        return []
    last = records[-1]
    missing = [c for c, count in enumerate(last.labels)
               if count >= MIN_CLASS_IMAGES and not any(r.predicted[c] if c < len(r.predicted) else 1
                                                         for r in records[-n:])]
    if not missing:
        return []
    parts = []
    for c in missing:
        taken = ""
        if c < len(last.confusions):
            top = sorted(((v, j) for j, v in enumerate(last.confusions[c]) if v and j != c), reverse=True)[:3]
            taken = " (taken for " + ", ".join(f"{context.class_name(j)} {v}" for v, j in top) + ")"
        parts.append(f"{context.class_name(c)}: {last.labels[c]} images{taken}")
    names = ", ".join(context.class_name(c) for c in missing)
    title = f"Class never predicted: {names}" if len(missing) == 1 else f"{len(missing)} classes never predicted"
    return [Diagnosis(
        "class_never_predicted", title,
        f"in the last {n} epochs the network predicted {names} for none of the {last.probe_size} probe images, "
        f"although they include {'; '.join(parts)}.",
        "A class may be rare in the training set or look like another one; more (or more varied) examples of it, "
        "a longer training or a larger network can help.", last.epoch)]


def _rising_tail(values: list[float]) -> int:
    """How many of the last values each rose above the one before."""
    count = 0
    for before, after in zip(reversed(values[:-1]), reversed(values[1:])):
        if not (math.isfinite(before) and math.isfinite(after) and after > before):
            break
        count += 1
    return count


def early_signs(records: list[EpochRecord], context: RunContext) -> list[str]:
    """What the epochs so far hint at below the rules' thresholds, and which checks need more
    epochs: so that a short run is not read as a clean bill of health."""
    notes = []
    if context.validation and len(records) >= 2:
        val, train = [r.val_loss for r in records], [r.train_loss for r in records]
        rises = _rising_tail(val)
        if 0 < rises < OVERFITTING_EPOCHS and train[-1] < train[-1 - rises]:
            shown = " → ".join(f"{v:.3f}" for v in val[-1 - rises:])
            span = "the last epoch" if rises == 1 else f"the last {rises} epochs"
            notes.append(f"The validation loss rose in {span} ({shown}) "
                         f"while the training loss fell: worth watching, as the doctor names it overfitting after "
                         f"{OVERFITTING_EPOCHS} rising epochs in a row.")
    later = []
    if context.validation and len(records) < OVERFITTING_EPOCHS + 1:
        later.append(f"overfitting from epoch {OVERFITTING_EPOCHS + 1}")
    if len(records) < NEVER_PREDICTED_EPOCHS:
        later.append(f"classes never predicted from epoch {NEVER_PREDICTED_EPOCHS}")
    if records and later:
        notes.append(f"Some checks need more epochs: {' and '.join(later)}.")
    return notes


RULES = (learning_rate_too_high, learning_rate_too_low, gradient_flow, dead_relu, saturated_activations, overfitting,
         class_never_predicted)


def diagnose(records: list[EpochRecord], context: RunContext) -> list[Diagnosis]:
    """Every diagnosis the records support, most severe first.

    Symptoms of a problem already named are left out: gradients vanish behind dead ReLU units, and a
    network that learns nothing (its learning rate is off, its loss no better than guessing) predicts
    few classes.
    """
    found = [d for rule in RULES for d in rule(records, context)]
    kinds = {d.kind for d in found}
    if "dead_relu" in kinds:
        found = [d for d in found if d.kind != "vanishing_gradients"]
    chance = math.log(context.num_classes) if context.num_classes > 1 else math.inf
    if kinds & {"learning_rate_too_high", "learning_rate_too_low"} or (records and
                                                                       records[-1].train_loss > 0.9 * chance):
        found = [d for d in found if d.kind != "class_never_predicted"]
    return sorted(found, key=lambda d: d.severity != "error")
