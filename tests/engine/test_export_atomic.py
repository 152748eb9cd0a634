"""Failed exports leave no partial file and the previous file intact; missing packages say what to install;
``cnn-engine export`` reports problems in one line."""

from __future__ import annotations

import errno
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from engine import atomic as atomic_module
from engine.cli import main
from engine.export import FORMATS, ExportError, MissingDependency, export_model, load_weight_file
from engine.export import formats as formats_module
from engine.weights import save_weights
from tests.engine.test_export_cases import randomized_model
from tests.helpers.extras import require

require("onnx")
require("safetensors")

SINGLE_FILE = {"npz": "w.npz", "safetensors": "w.safetensors", "onnx": "w.onnx"}


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_write_failing_at_the_end_leaves_the_old_files_untouched(tmp_path, monkeypatch, fmt) -> None:
    model = randomized_model("dense_no_softmax")
    target = tmp_path / SINGLE_FILE.get(fmt, "bundle")
    export_model(randomized_model("dense_no_softmax", seed=7), target, format=fmt)  # the "old" export
    before = _snapshot(tmp_path)
    # The data is written, then the disk fills up while flushing it to storage.
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(ExportError) as caught:
        export_model(model, target, format=fmt)
    assert str(target) in str(caught.value) and "No space left on device" in str(caught.value)
    assert _snapshot(tmp_path) == before, "a failed export changed or left files"


def test_a_write_failing_halfway_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    model = randomized_model("gray_odd_every_kind")
    target = tmp_path / "w.npz"

    def half_then_fail(handle, **_arrays):
        handle.write(b"PK\x03\x04 half of a zip file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(ExportError, match="w.npz"):
        export_model(model, target)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_folder_export_removes_the_folder_it_created(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(ExportError):
        export_model(randomized_model("dense_no_softmax"), tmp_path / "new" / "bundle", format="pytorch")
    assert not (tmp_path / "new" / "bundle").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_is_reported(tmp_path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="locked"):
            export_model(randomized_model("dense_no_softmax"), folder / "w.onnx")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize("fmt,name", [("onnx", "w.onnx"), ("safetensors", "w.safetensors"), ("pytorch", "bundle")])
def test_no_permission_names_the_target_not_a_temporary_file(tmp_path, monkeypatch, fmt, name) -> None:
    import tempfile

    def refuse(*_args, prefix: str = "", dir=None, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(str(dir), f"{prefix}x1y2.tmp"))

    def refuse_temporary(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path.parent / f".{path.name}.x1y2.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(atomic_module, "_create_temporary", refuse_temporary)
    with pytest.raises(ExportError) as caught:
        export_model(randomized_model("dense_no_softmax"), tmp_path / name, format=fmt)
    assert str(caught.value) == f"{tmp_path / name}: cannot write it (Permission denied)"
    assert list(tmp_path.iterdir()) == []


def test_exported_files_get_ordinary_permissions(tmp_path) -> None:
    umask = os.umask(0o022)
    try:
        written = export_model(randomized_model("dense_no_softmax"), tmp_path / "p", format="predictor")
    finally:
        os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in written)


def test_a_missing_optional_package_says_what_to_install(tmp_path, monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(formats_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnx" else real_find_spec(name, *a))
    assert FORMATS["onnx"].missing_packages() == ["onnx"]
    with pytest.raises(MissingDependency) as caught:
        export_model(randomized_model("dense_no_softmax"), tmp_path / "w.onnx")
    assert "pip install onnx onnxruntime" in str(caught.value) and caught.value.package == "onnx"
    assert not (tmp_path / "w.onnx").exists()


def test_reading_safetensors_without_the_package_says_what_to_install(tmp_path, monkeypatch) -> None:
    path = export_model(randomized_model("dense_no_softmax"), tmp_path / "w.safetensors")[0]
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(MissingDependency, match="pip install safetensors"):
        load_weight_file(path)


def test_format_must_be_known_or_implied(tmp_path) -> None:
    model = randomized_model("dense_no_softmax")
    with pytest.raises(ExportError, match="cannot tell the export format"):
        export_model(model, tmp_path / "w.bin")
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(model, tmp_path / "w.bin", format="tflite")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_model(model, tmp_path / "afile", format="predictor")


# -- cnn-engine export ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,out", [("onnx", "m.onnx"), ("safetensors", "m.safetensors"), ("npz", "copy.npz"),
                                     ("predictor", "predictor"), ("pytorch", "torch")])
def test_cli_export_writes_every_format(tmp_path, capsys, fmt, out) -> None:
    model = randomized_model("rgb_global_pool")
    save_weights(model, tmp_path / "w.npz")
    assert main(["export", str(tmp_path / "w.npz"), "--format", fmt, "--out", str(tmp_path / out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / out}" in printed
    if fmt in ("safetensors", "npz"):
        back = load_weight_file(tmp_path / out)
        assert all(np.array_equal(back.tensors()[k], v) for k, v in model.tensors().items())


def test_cli_export_takes_the_format_from_the_suffix_and_reads_safetensors(tmp_path, capsys) -> None:
    export_model(randomized_model("dense_no_softmax"), tmp_path / "w.safetensors")
    assert main(["export", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "w.onnx"),
                 "--class-names", "a,b,c"]) == 0
    assert (tmp_path / "w.onnx").exists()


def test_cli_export_errors_are_one_line(tmp_path) -> None:
    save_weights(randomized_model("dense_no_softmax"), tmp_path / "w.npz")
    cases = [
        ["export", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.onnx")],
        ["export", str(tmp_path / "w.npz"), "--out", str(tmp_path / "x.weird")],
        ["export", str(tmp_path / "w.npz"), "--out", str(tmp_path / "no" / "such" / "dir" / "x.onnx")],
    ]
    for args in cases:
        result = subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnn-engine: error:") and "Traceback" not in result.stderr
