"""The training doctor: each diagnosis triggered by a run built to show it, none by a healthy run."""

from __future__ import annotations

import numpy as np
import pytest

from engine.architecture import FORMAT
from engine.cli import main
from engine.data import Dataset
from engine.doctor import Diagnosis, TrainingDoctor
from engine.doctor.recorder import count_spikes, probe_indices
from engine.doctor.rules import nice_number
from engine.training import TrainConfig, TrainingFinished, prepare
from tests.helpers.engine_factories import SMALL_CNN, arch, stripes_dataset


def train(doc, data, weights=None, **settings):
    config = TrainConfig(**{"epochs": 3, "batch_size": 32, "validation_split": 0.2, **settings})
    model, trainer = prepare(doc, data, config)
    if weights is not None:
        for name, change in weights.items():
            change(model.parameters()[name])
    doctor = TrainingDoctor(trainer)
    finished = None
    for event in trainer.run():
        doctor.observe(event)
        if isinstance(event, TrainingFinished):
            finished = event
    return doctor, finished


def kinds(doctor: TrainingDoctor) -> set[str]:
    return {d.kind for d in doctor.diagnoses}


def only(doctor: TrainingDoctor, kind: str) -> Diagnosis:
    found = [d for d in doctor.diagnoses if d.kind == kind]
    assert found, f"no {kind} among {[d.line() for d in doctor.diagnoses]}"
    return found[0]


# -- healthy ---------------------------------------------------------------------------------------------------
def test_a_healthy_run_is_not_diagnosed_and_every_layer_is_recorded():
    doctor, finished = train(SMALL_CNN, stripes_dataset(600, 100), epochs=5, learning_rate=0.05)
    assert finished.reason == "completed"
    assert doctor.diagnoses == [], [d.line() for d in doctor.diagnoses]
    assert [r.epoch for r in doctor.records] == [1, 2, 3, 4, 5]
    last = doctor.records[-1]
    assert last.val_accuracy > 0.9
    conv = last.layer("conv2d_1")
    assert conv.gradient_norm > 0 and 1e-5 < conv.update_ratio < 1e-1 and conv.dead_fraction < 0.5
    assert conv.units == 4 and conv.activation == "relu"
    assert last.layer("flatten_1").gradient_norm is None and last.layer("flatten_1").dead_fraction is None
    assert sum(last.labels) == last.probe_size == 120 and sum(last.predicted) == 120


# -- learning rate -------------------------------------------------------------------------------------------------
def test_learning_rate_1e_6_without_momentum_is_too_low():
    doctor, _ = train(SMALL_CNN, stripes_dataset(400, 50), epochs=2, learning_rate=1e-6, momentum=0.0)
    found = only(doctor, "learning_rate_too_low")
    assert "learning rate 1e-06" in found.evidence and found.epoch >= 1
    fix = found.fixes[0]
    assert fix.kind == "set_learning_rate" and 1e-3 <= fix.data["learning_rate"] <= 0.1
    assert fix.command_line == f"--lr {fix.data['learning_rate']:g}"
    assert "learning rate" in found.line().lower()


def test_a_learning_rate_far_too_high_is_diagnosed_and_a_tenth_of_it_suggested():
    doctor, finished = train(SMALL_CNN, stripes_dataset(400, 50), epochs=3, learning_rate=40.0, momentum=0.9)
    found = only(doctor, "learning_rate_too_high")
    assert "learning rate 40" in found.evidence
    assert found.fixes[0].data["learning_rate"] == 4.0 or found.fixes[0].data["learning_rate"] == 0.1
    assert finished.reason in ("diverged", "completed")


def test_a_diverged_run_is_diagnosed_as_a_learning_rate_too_high():
    doctor, finished = train(SMALL_CNN, stripes_dataset(200, 50), epochs=2, learning_rate=1e20, momentum=0.0)
    assert finished.reason == "diverged"
    found = only(doctor, "learning_rate_too_high")
    assert found.severity == "error" and "1e+20" in found.evidence
    assert found.fixes[0].data["learning_rate"] == 0.1  # a tenth, within what SGD is ever given


# -- gradients and activations -------------------------------------------------------------------------------------
def test_a_deep_sigmoid_stack_has_vanishing_gradients():
    layers = [{"type": "Flatten"}] + [{"type": "Dense", "units": 32, "activation": "sigmoid"}] * 8
    doc = arch(*layers, {"type": "Dense", "units": 3, "activation": "softmax"})
    doctor, _ = train(doc, stripes_dataset(400, 50), epochs=2, learning_rate=0.05)
    found = only(doctor, "vanishing_gradients")
    assert found.layer == "dense_1" and "times smaller" in found.evidence
    fix = found.fixes[0]
    assert fix.kind == "set_activation" and fix.data["activation"] == "relu" and len(fix.data["layers"]) == 8
    profile = [doctor.records[-1].layer(f"dense_{i}").gradient_rms for i in range(1, 10)]
    assert profile == sorted(profile)  # smaller and smaller towards the input


def test_weights_far_too_large_make_the_gradients_explode():
    layers = [{"type": "Flatten"}] + [{"type": "Dense", "units": 32, "activation": "relu"}] * 6
    doc = arch(*layers, {"type": "Dense", "units": 3, "activation": "softmax"})

    def tripled(kernel):
        kernel *= 3.0  # each layer triples what passes through it, forward and backward

    doctor, finished = train(doc, stripes_dataset(400, 50), {f"dense_{i}.kernel": tripled for i in range(1, 8)},
                             epochs=2, learning_rate=0.01)
    found = only(doctor, "exploding_gradients")
    assert "RMS of" in found.evidence and found.layer
    assert {f.kind for f in found.fixes} >= {"set_learning_rate"}
    # The epoch the loss blew up in is recorded as far as it went: its gradients, no probe.
    assert finished.reason == "diverged" and not doctor.records[-1].complete
    assert doctor.records[-1].layer("dense_1").gradient_norm is not None


def test_relu_channels_biased_dead_are_diagnosed():
    def dead_bias(bias):
        bias[:3] = -100.0  # three of four channels never see a positive input

    doctor, _ = train(SMALL_CNN, stripes_dataset(400, 50), {"conv2d_1.bias": dead_bias}, epochs=2,
                      learning_rate=0.05)
    found = only(doctor, "dead_relu")
    assert found.layer == "conv2d_1" and "3 of 4 channels" in found.evidence
    assert found.fixes[0].kind == "set_activation" and found.fixes[0].data == {"layers": ["conv2d_1"],
                                                                               "activation": "leaky_relu"}
    assert doctor.records[-1].layer("conv2d_1").dead_fraction == 0.75


def test_a_saturated_sigmoid_layer_is_diagnosed():
    doc = arch({"type": "Flatten"}, {"type": "Dense", "units": 16, "activation": "sigmoid"},
               {"type": "Dense", "units": 3, "activation": "softmax"})

    def huge(kernel):
        kernel *= 200.0

    doctor, _ = train(doc, stripes_dataset(400, 50), {"dense_1.kernel": huge}, epochs=2, learning_rate=0.01)
    found = only(doctor, "saturated_activations")
    assert found.layer == "dense_1" and doctor.records[-1].layer("dense_1").saturated_fraction > 0.5
    assert {f.kind for f in found.fixes} == {"insert_batch_norm", "set_activation"}


# -- generalisation and classes ------------------------------------------------------------------------------------
def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (160, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 4, 160)  # random labels: nothing to learn but the images themselves
    data = Dataset.from_arrays(x, y, x[:20], y[:20], ["a", "b", "c", "d"], name="noise")
    doc = {"format": FORMAT, "input": {"shape": [8, 8, 1]},
           "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 256, "activation": "relu"},
                      {"type": "Dense", "units": 4, "activation": "softmax"}]}
    doctor, _ = train(doc, data, epochs=14, optimizer="adam", learning_rate=3e-3, validation_split=0.4,
                      batch_size=16)
    found = only(doctor, "overfitting")
    assert "rose for 3 epochs in a row" in found.evidence
    fixes = {f.kind: f for f in found.fixes}
    assert fixes["set_early_stopping"].data == {"early_stopping": 3}
    assert fixes["add_dropout"].data == {"before": "dense_2", "rate": 0.5}
    assert fixes["set_augmentation"].data == {"augment_shift": 2}


def test_a_class_the_network_never_predicts_is_named():
    base = stripes_dataset(900, 60, seed=1)
    x, y = base.x_train, base.y_train.copy()
    # Class 3 looks exactly like class 1 (vertical stripes) and is five times rarer: never the better guess.
    vertical = np.flatnonzero(y == 1)
    y[vertical[: len(vertical) // 6]] = 3
    data = Dataset.from_arrays(x, y, base.x_test, base.y_test, ["horizontal", "vertical", "blob", "also vertical"],
                               name="imbalanced")
    doc = arch({"type": "Conv2D", "filters": 4, "kernel_size": 3, "activation": "relu"},
               {"type": "MaxPool2D", "pool_size": 2}, {"type": "Flatten"},
               {"type": "Dense", "units": 4, "activation": "softmax"})
    doctor, _ = train(doc, data, epochs=4, learning_rate=0.05)
    found = only(doctor, "class_never_predicted")
    assert found.title == "Class never predicted: also vertical"
    assert "taken for vertical" in found.evidence
    assert kinds(doctor) == {"class_never_predicted"}


# -- pieces --------------------------------------------------------------------------------------------------------
def test_probe_images_are_balanced_between_classes():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 300)
    chosen = probe_indices(labels, size=30)
    assert np.bincount(labels[chosen]).tolist() == [10, 5, 10]
    assert probe_indices(labels, size=30).tolist() == chosen.tolist()


def test_loss_spikes_and_nice_numbers():
    losses = np.full(40, 1.0)
    losses[30] = 5.0
    losses[35] = 1.3  # more than 0.5 above... no: only 0.3
    assert count_spikes(losses) == 1
    assert [nice_number(v) for v in (0.037, 0.0029, 0.15, 7.0, 1.0)] == [0.05, 0.002, 0.2, 5.0, 1.0]


def test_each_problem_is_handed_out_once():
    doctor, _ = train(SMALL_CNN, stripes_dataset(300, 50), epochs=2, learning_rate=1e-6, momentum=0.0)
    first = doctor.take_new()
    assert [d.kind for d in first] == ["learning_rate_too_low"]
    assert doctor.take_new() == []
    report = doctor.report()
    assert report.diagnoses[0].kind == "learning_rate_too_low" and len(report.records) == 2
    assert report.class_names == ("horizontal", "vertical", "blob")


# -- the command line ----------------------------------------------------------------------------------------------
def test_the_command_line_prints_a_diagnosis_naming_the_learning_rate(capsys):
    code = main(["train", "assets/architectures/seed_sample.json", "--lr", "1e-6", "--momentum", "0",
                 "--epochs", "1", "--limit", "640", "--processes", "1"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("diagnosis:")]
    assert len(lines) == 1, out
    assert "learning rate" in lines[0].lower() and "1e-06" in lines[0] and "--lr" in lines[0]


@pytest.mark.parametrize("extra", [[], ["--run-dir", "RUN"]])
def test_a_healthy_command_line_run_prints_no_diagnosis(tmp_path, capsys, extra):
    data = stripes_dataset(300, 40)
    path = tmp_path / "stripes.npz"
    np.savez(path, x=data.x_train, y=data.y_train, x_test=data.x_test, y_test=data.y_test,
             class_names=np.array(data.class_names))
    doc_path = tmp_path / "net.json"
    import json

    doc_path.write_text(json.dumps(SMALL_CNN))
    extra = [str(tmp_path / "run") if a == "RUN" else a for a in extra]
    assert main(["train", str(doc_path), "--data", str(path), "--epochs", "3", "--lr", "0.05", "--processes", "1",
                 *extra]) == 0
    out = capsys.readouterr().out
    assert "diagnosis:" not in out, out


def test_a_learning_rate_of_zero_is_too_low_and_the_optimizers_usual_rate_suggested():
    doctor, finished = train(SMALL_CNN, stripes_dataset(200, 40), epochs=1, learning_rate=0.0, momentum=0.0)
    assert finished.reason == "completed"
    found = only(doctor, "learning_rate_too_low")
    assert found.fixes[0].data == {"learning_rate": 0.01}


def test_a_failing_doctor_never_stops_training(monkeypatch):
    import engine.doctor.doctor as doctor_module
    import engine.doctor.recorder as recorder_module

    def broken(*_args):
        raise RuntimeError("broken rule")

    real = doctor_module.diagnose
    monkeypatch.setattr(doctor_module, "diagnose", broken)
    with pytest.warns(RuntimeWarning, match="could not diagnose this run"):
        doctor, finished = train(SMALL_CNN, stripes_dataset(200, 40), epochs=2, learning_rate=0.05)
    assert finished.reason == "completed" and doctor.diagnoses == [] and len(doctor.records) == 2
    monkeypatch.setattr(doctor_module, "diagnose", real)
    monkeypatch.setattr(recorder_module, "count_spikes", broken)
    with pytest.warns(RuntimeWarning, match="stopped recording"):
        doctor, finished = train(SMALL_CNN, stripes_dataset(200, 40), epochs=2, learning_rate=0.05)
    assert finished.reason == "completed" and doctor.records == []


# -- early signs: a short run is no clean bill of health ----------------------------------------------------------
def epochs(val_losses, train_losses):
    from engine.doctor.records import EpochRecord

    return [EpochRecord(e, t, v, 0.5, 0.5, 0.01, (), (), (), 64)
            for e, (v, t) in enumerate(zip(val_losses, train_losses), start=1)]


def context(validation=True):
    from engine.doctor.rules import RunContext

    return RunContext("sgd", 0.01, 0.9, 0, 0, validation, ("a", "b"), ())


def test_a_validation_loss_rising_for_two_epochs_is_an_early_sign():
    from engine.doctor.rules import diagnose, early_signs

    records = epochs([0.50, 0.52, 0.55], [0.60, 0.50, 0.40])
    assert diagnose(records, context()) == []
    notes = early_signs(records, context())
    assert notes[0] == ("The validation loss rose in the last 2 epochs (0.500 → 0.520 → 0.550) while the training "
                        "loss fell: worth watching, as the doctor names it overfitting after 3 rising epochs in a row.")
    assert notes[1] == "Some checks need more epochs: overfitting from epoch 4."


def test_early_signs_name_the_checks_still_to_come_and_stop_when_all_have_run():
    from engine.doctor.rules import early_signs

    one = epochs([0.5], [0.6])
    assert early_signs(one, context()) == [
        "Some checks need more epochs: overfitting from epoch 4 and classes never predicted from epoch 3."]
    assert early_signs(one, context(validation=False)) == [
        "Some checks need more epochs: classes never predicted from epoch 3."]
    falling = epochs([0.5, 0.4, 0.35, 0.3], [0.6, 0.5, 0.4, 0.3])
    assert early_signs(falling, context()) == []
    # Both losses rising is no sign of overfitting.
    assert early_signs(epochs([0.5, 0.4, 0.35, 0.3, 0.4], [0.6, 0.5, 0.4, 0.3, 0.35]), context()) == []


def test_the_command_line_says_which_checks_a_short_run_did_not_reach(capsys):
    code = main(["train", "assets/architectures/seed_sample.json", "--epochs", "1", "--limit", "640",
                 "--processes", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "doctor: Some checks need more epochs: overfitting from epoch 4 and classes never predicted from " \
           "epoch 3." in out, out
