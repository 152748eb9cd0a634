"""Project files under fuzzing: damaged bytes and hostile JSON at every field.

Reading may only succeed or raise ProjectFileError with one line naming the file; what it accepts must
load into the document and the training form without any other error.
"""

from __future__ import annotations

import json

from tests.helpers.extras import require

require("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnn_studio.document import ProjectDocument  # noqa: E402
from cnn_studio.project_file import PROJECT_FORMAT, ProjectFileError, read_project  # noqa: E402
from cnn_studio.training.settings_form import TrainingSettingsForm  # noqa: E402
from tests.helpers.engine_factories import EVERY_LAYER, SMALL_CNN  # noqa: E402
from tests.helpers.fuzz import check_reader, fuzz, fuzz_settings, json_text, mutated_bytes, mutated_json  # noqa: E402

pytestmark = fuzz

PROJECTS = [
    {"format": PROJECT_FORMAT, "architecture": doc, "dataset": "fashion-mnist-mini",
     "training": {"epochs": 3, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.002, "momentum": 0.9,
                  "seed": 7, "validation_split": 0.1, "augment_hflip": True, "processes": "auto"}}
    for doc in (SMALL_CNN, EVERY_LAYER)
]


def open_like_the_studio(path, form: TrainingSettingsForm) -> None:
    """Read the file, then hand what was read to the document and the training form."""
    def read() -> None:
        data = read_project(path)
        document = ProjectDocument()
        document.load_project(data.architecture, data.dataset, data.training, path)
        document.analysis()
        form.set_config(TrainingSettingsForm.config_from_settings(data.training))
        form.config()
        document.deleteLater()

    check_reader(read, path, (ProjectFileError,))


@fuzz_settings(0.5)
@given(data=st.data())
def test_hostile_json_in_a_project(qtbot, tmp_path_factory, data):
    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    doc = data.draw(mutated_json(data.draw(st.sampled_from(PROJECTS))))
    path = tmp_path_factory.mktemp("project") / "design.cnnproj"
    path.write_text(json_text(doc), encoding="utf-8")
    open_like_the_studio(path, form)


@fuzz_settings(0.25)
@given(data=st.data())
def test_damaged_project_files(qtbot, tmp_path_factory, data):
    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    raw = json.dumps(data.draw(st.sampled_from(PROJECTS)), indent=2).encode()
    path = tmp_path_factory.mktemp("project") / "design.cnnproj"
    path.write_bytes(data.draw(mutated_bytes(raw)))
    open_like_the_studio(path, form)
