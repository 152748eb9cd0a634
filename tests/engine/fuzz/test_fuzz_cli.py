"""Every ``cnn-engine`` command on mutated architectures, weight files, datasets and ONNX files.

A command either succeeds (exit 0) or fails with a non-zero exit and exactly one ``cnn-engine: error:``
line on stderr: no traceback, no "internal error", no hang, and no partial or temporary file where
it was asked to write. Most examples run ``main`` in this process (fast); a few run the real
executable in a subprocess with a time limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.extras import require

require("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.cli import main  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.weights import save_weights  # noqa: E402
from tests.helpers.engine_factories import arch  # noqa: E402
from tests.helpers.fuzz import files_in, fuzz, fuzz_settings, json_text, mutated_bytes, mutated_json  # noqa: E402

pytestmark = fuzz
NET = arch(
    {"type": "Conv2D", "filters": 3, "kernel_size": 3, "activation": "relu"},
    {"type": "MaxPool2D", "pool_size": 2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 3, "activation": "softmax"},
    shape=(8, 8, 1),
)


def _dataset(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (24, 8, 8), dtype=np.uint8), y=np.arange(24) % 3,
             x_test=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8), y_test=np.arange(6) % 3,
             class_names=np.array(["a", "b", "c"]))
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("originals")
    save_weights(Model(NET, seed=3), folder / "w.npz")
    files = {"arch": json.dumps(NET, indent=1).encode(), "weights": (folder / "w.npz").read_bytes(),
             "data": _dataset(folder / "d.npz").read_bytes()}
    try:
        from engine.export.onnx_export import export_onnx

        export_onnx(Model(NET, seed=3), folder / "m.onnx")
        files["onnx"] = (folder / "m.onnx").read_bytes()
    except Exception:  # onnx missing: the import command is then fuzzed on damaged bytes only
        files["onnx"] = b"\x08\x07"
    return files


def _commands(f: dict[str, Path], out: Path) -> dict[str, list[str]]:
    train = ["train", str(f["arch"]), "--data", str(f["data"]), "--epochs", "1", "--batch-size", "8",
             "--processes", "1"]
    return {
        "summary": ["summary", str(f["arch"])],
        "train": [*train, "--out", str(out / "trained.npz")],
        "train-run": [*train, "--run-dir", str(out / "run")],
        "evaluate": ["evaluate", str(f["weights"]), "--data", str(f["data"])],
        "export-onnx": ["export", str(f["weights"]), "--out", str(out / "m.onnx")],
        "export-safetensors": ["export", str(f["weights"]), "--out", str(out / "m.safetensors")],
        "export-predictor": ["export", str(f["weights"]), "--format", "predictor", "--out", str(out / "pred")],
        "import": ["import", str(f["onnx"]), "--out", str(out / "imported.npz")],
        "runs": ["runs", str(out)],
    }


@st.composite
def scenario(draw, originals: dict[str, bytes]) -> tuple[str, str, bytes]:
    """(command, which input is damaged, its damaged bytes)."""
    command = draw(st.sampled_from(["summary", "train", "train-run", "evaluate", "export-onnx",
                                    "export-safetensors", "export-predictor", "import"]))
    used = {"summary": ["arch"], "train": ["arch", "data"], "train-run": ["arch", "data"],
            "evaluate": ["weights", "data"], "import": ["onnx"]}.get(command, ["weights"])
    victim = draw(st.sampled_from(used))
    raw = originals[victim]
    if victim == "arch" and draw(st.booleans()):
        damaged = json_text(draw(mutated_json(NET))).encode()
    else:
        damaged = draw(mutated_bytes(raw, max_flips=8))
    return command, victim, damaged


def _setup(folder: Path, originals: dict[str, bytes], victim: str, damaged: bytes) -> tuple[dict[str, Path], Path]:
    names = {"arch": "net.json", "weights": "w.npz", "data": "d.npz", "onnx": "m.onnx"}
    files = {}
    for key, name in names.items():
        files[key] = folder / name
        files[key].write_bytes(damaged if key == victim else originals[key])
    out = folder / "out"
    out.mkdir()
    return files, out


def check_outcome(code: int, err: str, out_dir: Path, before: set[str]) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    if code == 0:
        return
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("cnn-engine: warning:")]
    assert len(lines) == 1 and lines[0].startswith("cnn-engine: error: "), f"exit {code}, stderr: {err!r}"
    left = files_in(out_dir) - before
    assert not left, f"a failed command left files behind: {sorted(left)} ({lines[0]})"


@fuzz_settings(0.5)
@given(data=st.data())
def test_commands_on_damaged_inputs(tmp_path_factory, originals, monkeypatch, capsys, data):
    monkeypatch.setenv("CNN_ENGINE_MEMORY_LIMIT", "2G")  # what would not fit is refused quickly
    command, victim, damaged = data.draw(scenario(originals))
    folder = tmp_path_factory.mktemp("cli")
    files, out = _setup(folder, originals, victim, damaged)
    argv = _commands(files, out)[command]
    before = files_in(out)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse and the interrupted-run hint exit this way
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    check_outcome(code, err, out, before)


@fuzz_settings(0.05)
@given(data=st.data())
def test_the_executable_on_damaged_inputs(tmp_path_factory, originals, data):
    command, victim, damaged = data.draw(scenario(originals))
    folder = tmp_path_factory.mktemp("cli")
    files, out = _setup(folder, originals, victim, damaged)
    before = files_in(out)
    proc = subprocess.run([sys.executable, "-m", "engine", *_commands(files, out)[command]], capture_output=True,
                          text=True, timeout=120, cwd=folder,
                          env={**__import__("os").environ, "CNN_ENGINE_MEMORY_LIMIT": "2G"})
    check_outcome(proc.returncode, proc.stderr, out, before)
