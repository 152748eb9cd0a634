"""Architecture documents: shape inference, parameter counts, and each documented error message."""

from __future__ import annotations

import json

import pytest

from engine.architecture import FORMAT, analyze, check_classifier, load_architecture_file, summary, validate
from engine.errors import ArchitectureError
from engine.resources import asset_path


def doc(*layers, shape=(28, 28, 1)):
    return {"format": FORMAT, "input": {"shape": list(shape)}, "layers": list(layers)}


def test_seed_sample_shapes_and_parameter_counts():
    analysis = validate(asset_path("architectures", "seed_sample.json"))
    assert [info.output_shape for info in analysis.layers] == [
        (26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (1600,), (128,), (10,)]
    assert [info.params for info in analysis.layers] == [320, 0, 18496, 0, 0, 204928, 1290]
    assert analysis.trainable_params == 225034
    assert analysis.macs == 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 1600 * 128 + 128 * 10
    assert [info.name for info in analysis.layers][:3] == ["conv2d_1", "max_pool2d_1", "conv2d_2"]


def test_summary_table_lists_layers_and_totals():
    text = summary(asset_path("architectures", "seed_sample.json"))
    assert "conv2d_2 (Conv2D)" in text and "(None, 11, 11, 64)" in text and "18,496" in text
    assert "Total params: 225,034" in text and "Non-trainable params: 0" in text


def test_batch_norm_counts_non_trainable_state():
    analysis = validate(doc({"type": "Conv2D", "filters": 8, "kernel_size": 3}, {"type": "BatchNorm"},
                            {"type": "Flatten"}, {"type": "Dense", "units": 3}))
    bn = analysis.layers[1]
    assert (bn.trainable_params, bn.non_trainable_params) == (16, 16)


@pytest.mark.parametrize(
    "layers,shape,message",
    [
        ([{"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "MaxPool2D"},
          {"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "Conv2D", "filters": 4, "kernel_size": 5}],
         (12, 12, 1), "layer 4 (Conv2D): kernel_size 5 is larger than its 3x3 input"),
        ([{"type": "Conv2D", "filters": 4, "kernel_size": 3}, {"type": "Dense", "units": 10}],
         (8, 8, 1), "layer 2 (Dense): expects a flat vector but receives a 6x6x4 feature map"),
        ([{"type": "Flatten"}, {"type": "Conv2D", "filters": 4, "kernel_size": 3}],
         (8, 8, 1), "layer 2 (Conv2D): expects an image-shaped input"),
        ([{"type": "Conv2d", "filters": 4}], (8, 8, 1),
         "layer 1 (Conv2d): unknown type 'Conv2d' (did you mean Conv2D?)"),
        ([{"type": 10 ** 5000}], (8, 8, 1),  # a fuzz finding: no text for a number this long
         "layer 1 (a number of thousands of digits): unknown type a number of thousands of digits;"),
        ([{"type": "Conv2D", "filters": 0, "kernel_size": 3}], (8, 8, 1),
         "layer 1 (Conv2D): filters 0 must be at least 1"),
        ([{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "full"}], (8, 8, 1),
         "layer 1 (Conv2D): padding 'full' must be 'valid', 'same' or a whole number >= 0"),
        ([{"type": "Conv2D", "filters": 4.5, "kernel_size": 3}], (8, 8, 1),
         "layer 1 (Conv2D): filters 4.5 must be a whole number"),
        ([{"type": "Dense", "unit": 4}], (8,) * 3, "layer 1 (Dense): unknown setting 'unit'"),
        ([{"type": "Dense", "units": 4, "activation": "swish"}], (8, 8, 1),
         "layer 1 (Dense): activation 'swish' is not one of"),
        ([{"type": "MaxPool2D", "pool_size": 4}], (3, 3, 2),
         "layer 1 (MaxPool2D): pool_size 4 is larger than its 3x3 input"),
        ([{"type": "Dropout", "rate": 1.5}], (8, 8, 1), "layer 1 (Dropout): rate 1.5 must be at most 0.95"),
        ([{"type": "Flatten", "name": "x"}, {"type": "Dense", "units": 2, "name": "x"}], (4, 4, 1),
         "layer 2 (Dense): name 'x' is used twice"),
        ([], (8, 8, 1), "the network has no layers"),
    ],
)
def test_errors_name_layer_field_and_value(layers, shape, message):
    with pytest.raises(ArchitectureError) as info:
        validate(doc(*layers, shape=shape))
    assert str(info.value).startswith(message), str(info.value)


def test_kernel_too_large_explains_the_formula_and_offers_a_fix():
    analysis = analyze(doc({"type": "Conv2D", "filters": 4, "kernel_size": 5}, shape=(3, 3, 1)))
    (problem,) = analysis.problems
    assert problem.layer_index == 1 and problem.field == "kernel_size" and problem.value == 5
    assert problem.hint.startswith("output height (3 + 2*0 - 5) / 1 + 1 = -1; the kernel is larger than its 3x3 input.")
    assert "padding 'same'" in problem.hint and problem.fix == "padding_same"


def test_dense_after_conv_offers_flatten_and_analysis_continues():
    analysis = analyze(doc({"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "Dense", "units": 10},
                           {"type": "Dense", "units": 0}, shape=(6, 6, 1)))
    assert [p.layer_index for p in analysis.problems] == [2, 3]
    assert analysis.problems[0].fix == "insert_flatten_before"
    assert "vector of 32 values" in analysis.problems[0].hint
    assert analysis.layers[2].output_shape is None and not analysis.ok


@pytest.mark.parametrize(
    "document,message",
    [
        ([1, 2], "an architecture must be a JSON object"),
        ({"input": {"shape": [1, 1, 1]}, "layers": []}, 'missing "format"'),
        ({"format": "keras", "input": {"shape": [1, 1, 1]}, "layers": []}, "format 'keras' is not a CNN Studio"),
        ({"format": "cnn-studio.architecture/9", "input": {"shape": [1, 1, 1]}, "layers": []}, "is newer"),
        ({"format": FORMAT, "input": {"shape": [28, 28]}, "layers": []}, "input shape [28, 28] must be"),
        ({"format": FORMAT, "input": {"shape": [28, 28, 1]}, "layers": {}}, '"layers" must be a list'),
    ],
)
def test_document_level_errors(document, message):
    with pytest.raises(ArchitectureError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(document)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": ')
    cut_short = r"line 1, column 12: a value is missing there \(the file seems cut short\)\.$"
    with pytest.raises(ArchitectureError, match=r"bad\.json: not valid JSON: " + cut_short):
        load_architecture_file(bad)
    with pytest.raises(ArchitectureError, match="missing.json: no such file"):
        load_architecture_file(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc({"type": "Flatten"}, {"type": "Dense", "units": 3})))
    assert validate(good).output_shape == (3,)


def test_check_classifier_matches_dataset_classes():
    analysis = validate(doc({"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}))
    check_classifier(analysis, 10)
    with pytest.raises(ArchitectureError, match="has 10 outputs but the dataset has 3 classes"):
        check_classifier(analysis, 3)
    with pytest.raises(ArchitectureError, match="ends in a 26x26x2 feature map"):
        check_classifier(validate(doc({"type": "Conv2D", "filters": 2, "kernel_size": 3})), 10)


def test_same_padding_keeps_size_over_stride():
    analysis = validate(doc({"type": "Conv2D", "filters": 2, "kernel_size": 3, "stride": 2, "padding": "same"},
                            {"type": "MaxPool2D", "pool_size": 2, "padding": "same"}, shape=(15, 13, 3)))
    assert analysis.layers[0].output_shape == (8, 7, 2)
    assert analysis.layers[1].output_shape == (4, 4, 2)


@pytest.mark.parametrize("given, expected", [
    # no names given: the running count, as every saved weight file expects
    ([None, None, None], ["conv2d_1", "conv2d_2", "conv2d_3"]),
    # an automatic name another layer was given takes the next free number
    ([None, "conv2d_1", None], ["conv2d_2", "conv2d_1", "conv2d_4"]),
    ([None, None, "conv2d_2"], ["conv2d_1", "conv2d_3", "conv2d_2"]),
    (["conv2d_2", None, "conv2d_3"], ["conv2d_2", "conv2d_4", "conv2d_3"]),
])
def test_automatic_names_never_clash_with_given_ones(given, expected):
    from engine.architecture import layer_names
    from engine.export.predictor_template import layer_names as predictor_layer_names

    layers = [{"type": "Conv2D", "filters": 2, "kernel_size": 1, **({"name": name} if name else {})}
              for name in given] + [{"type": "Flatten"}, {"type": "Dense", "units": 2, "activation": "softmax"}]
    doc = {"format": FORMAT, "input": {"shape": [4, 4, 1]}, "layers": layers}
    assert layer_names(doc)[:3] == expected
    assert predictor_layer_names(doc) == layer_names(doc)  # the standalone predictor names weights alike
    assert not analyze(doc).problems
