"""Architecture documents under fuzzing: hostile JSON in a file or handed over as a dict.

Reading, analysing, summarising and building may only succeed or raise ArchitectureError (building
also ResourceError for a network too large for memory), with one line naming the file and the field.
"""

from __future__ import annotations

import json

from tests.helpers.extras import require

require("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.architecture import analyze, load_architecture_file, summary, validate  # noqa: E402
from engine.errors import ArchitectureError, ResourceError  # noqa: E402
from engine.model import Model  # noqa: E402
from tests.helpers.engine_factories import CONCAT, EVERY_LAYER, RESIDUAL, SMALL_CNN  # noqa: E402
from tests.helpers.fuzz import (  # noqa: E402
    assert_one_line,
    check_reader,
    fuzz,
    fuzz_settings,
    json_text,
    mutated_bytes,
    mutated_json,
    strip_placeholders,
)

pytestmark = fuzz
FORMAT_1 = {**SMALL_CNN, "format": "cnn-studio.architecture/1"}
# Both formats: a chain written as format 1, chains and branching graphs (ids, inputs, Add, Concatenate).
SEEDS = (FORMAT_1, SMALL_CNN, EVERY_LAYER, RESIDUAL, CONCAT)
ERRORS = (ArchitectureError, ResourceError)


def build_and_use(doc_or_path) -> None:
    """What the CLI and the studio do with a document: analyse, summarise, build, run one image."""
    analysis = analyze(doc_or_path)
    for problem in analysis.problems:
        assert_one_line(problem, None)
    validate(doc_or_path)
    summary(doc_or_path)
    model = Model.from_architecture(doc_or_path)
    import numpy as np

    model.forward(np.zeros((1, *model.input_shape), np.float32))


@fuzz_settings(1.0)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_documents_in_a_file(tmp_path_factory, seed, data):
    doc = data.draw(mutated_json(seed))
    path = tmp_path_factory.mktemp("arch") / "net.json"
    path.write_text(json_text(doc), encoding="utf-8")
    check_reader(lambda: build_and_use(path), path, ERRORS)


@fuzz_settings(1.0)
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_documents_in_memory(seed, data):
    # The studio hands documents over as dicts: analyze never raises, building raises only documented errors.
    doc = strip_placeholders(data.draw(mutated_json(seed)))
    if isinstance(doc, str):  # a string is a path to these functions, not a document
        doc = [doc]
    analysis = analyze(doc)
    for problem in analysis.problems:
        assert_one_line(problem, None)
    check_reader(lambda: build_and_use(doc), None, ERRORS)


@fuzz_settings(0.5)
@given(data=st.data())
def test_damaged_bytes(tmp_path_factory, data):
    raw = json.dumps(data.draw(st.sampled_from(SEEDS)), indent=1).encode()
    path = tmp_path_factory.mktemp("arch") / "net.json"
    path.write_bytes(data.draw(mutated_bytes(raw)))
    check_reader(lambda: build_and_use(path), path, ERRORS)
    check_reader(lambda: load_architecture_file(path), path, ERRORS)
