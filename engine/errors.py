"""Error types users can cause. Each message names the culprit so it can be shown as one line."""

from __future__ import annotations

import reprlib

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def shown(value: object) -> str:
    """``repr(value)`` cut to a readable length, for messages that quote what a file held."""
    try:
        return _SHORT.repr(value)
    except ValueError:  # an integer of more digits than Python converts to text
        return "a number of thousands of digits"


def brief(exc: BaseException, limit: int = 200) -> str:
    """A library exception's message as one short line (some span lines, some quote whole files)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EngineError(Exception):
    """Base class for every error the engine raises on purpose."""


class ArchitectureError(EngineError):
    """An architecture document that cannot be built.

    ``layer_index`` is 1-based (as shown to users) or ``None`` for document-level problems.
    ``hint`` is a longer, teaching explanation (formula with the user's numbers and what to do);
    ``fix`` names an automatic fix the studio can offer, e.g. ``"insert_flatten_before"``, and
    ``fix_data`` holds what the fix needs beyond the culprit (e.g. which input gets a projection,
    with how many filters and which stride).

    In a branching network ``layer_id`` is the culprit layer's id; a problem with a connection
    (a wire) also names its ``source_id`` (the input's id, "input" for the network's input) and
    ``target_id`` (the layer receiving it). ``severity`` is "error", or "warning" for something
    that works but is probably a mistake (a branch whose output nothing uses).
    """

    def __init__(
        self,
        message: str,
        *,
        layer_index: int | None = None,
        layer_type: str | None = None,
        field: str | None = None,
        value: object = None,
        hint: str = "",
        fix: str | None = None,
        fix_data: dict[str, object] | None = None,
        layer_id: str | None = None,
        source_id: str | None = None,
        target_id: str | None = None,
        severity: str = "error",
    ) -> None:
        if layer_index is not None:
            message = f"layer {layer_index} ({shown(layer_type)[1:-1]}): {message}"
        super().__init__(message)
        self.message = message
        self.layer_index = layer_index
        self.layer_type = layer_type
        self.field = field
        self.value = value
        self.hint = hint
        self.fix = fix
        self.fix_data: dict[str, object] = dict(fix_data or {})
        self.layer_id = layer_id
        self.source_id = source_id
        self.target_id = target_id
        self.severity = severity

    @property
    def is_warning(self) -> bool:
        return self.severity == "warning"


class ClassifierHeadError(ArchitectureError):
    """The network does not end in a vector of class scores (``output_shape``: what it ends in)."""

    def __init__(self, output_shape: tuple[int, ...], num_classes: int | None, *, layer_index: int,
                 layer_type: str) -> None:
        shape = "x".join(map(str, output_shape))
        units = f"{num_classes} units" if num_classes else "one unit per class"
        super().__init__(
            f"the network ends in a {shape} feature map, not a vector of class scores",
            layer_index=layer_index, layer_type=layer_type,
            hint=f"The network ends in a {shape} feature map, but a classifier must end in one score per class. "
            f"Add Flatten and a Dense layer with {units} at the end.",
            fix="append_classifier",
        )
        self.output_shape = tuple(output_shape)
        self.num_classes = num_classes


class ClassCountError(ArchitectureError):
    """The network's output count (``outputs``) differs from the dataset's class count (``classes``)."""

    def __init__(self, outputs: int, classes: int, *, layer_index: int, layer_type: str) -> None:
        super().__init__(
            f"has {outputs} outputs but the dataset has {classes} classes",
            layer_index=layer_index, layer_type=layer_type, field="units", value=outputs,
            hint=f"Set the last layer's units to {classes}.", fix="set_output_units",
        )
        self.outputs = outputs
        self.classes = classes


class WeightsError(EngineError):
    """A weight file that is unreadable or does not fit the architecture."""


class TrainingError(EngineError):
    """Training cannot start or go on (e.g. the loss diverged).

    ``fix`` names an automatic fix a caller can offer, as for ArchitectureError.
    """

    fix: str | None = None


class SettingError(TrainingError):
    """A training setting out of range: ``field`` names the TrainConfig field, ``value`` what it held,
    ``requirement`` what it must be ("must be at least 1")."""

    def __init__(self, field: str, value: object, requirement: str) -> None:
        super().__init__(f"{field} {requirement}, not {value!r}")
        self.field = field
        self.value = value
        self.requirement = requirement


class InputShapeError(TrainingError):
    """The network's input shape differs from the dataset's images; adapting the input fixes it."""

    fix = "adapt_input"

    def __init__(self, network_shape: tuple[int, ...], dataset_shape: tuple[int, ...], dataset_name: str) -> None:
        super().__init__(f"the network's input is {'x'.join(map(str, network_shape))} but the dataset "
                         f"{dataset_name!r} has {'x'.join(map(str, dataset_shape))} images")
        self.network_shape = tuple(network_shape)
        self.dataset_shape = tuple(dataset_shape)
        self.dataset_name = dataset_name


class SoftmaxHeadError(TrainingError):
    """The network does not end in a softmax, which training as a classifier needs."""

    fix = "softmax_output"

    def __init__(self, layer_index: int, layer_type: str) -> None:
        super().__init__("the network must end in a softmax (Dense with activation 'softmax', or a Softmax layer) "
                         "to be trained as a classifier")
        self.layer_index = layer_index
        self.layer_type = layer_type


class NoTrainingImagesError(TrainingError):
    """The validation split leaves no training images (``train_size`` images, ``validation_split`` held out)."""

    def __init__(self, dataset_name: str, train_size: int, validation_split: float) -> None:
        super().__init__(f"the dataset {dataset_name!r} leaves no training images after the validation split "
                         f"({validation_split:g} of {train_size})")
        self.dataset_name = dataset_name
        self.train_size = train_size
        self.validation_split = validation_split


class DataError(EngineError):
    """A dataset that cannot be loaded; the message names the file and what is wrong."""


class RunError(EngineError):
    """A run folder that cannot be created, read, resumed or written as asked."""


class ResourceError(EngineError):
    """A network, training run or dataset that would not fit in this computer's memory."""


class LoadCancelled(EngineError):
    """Loading was cancelled on request (a Cancel button): nothing was kept, nothing is wrong."""
