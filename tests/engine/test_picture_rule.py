"""One picture, one array: the studio's "open a picture" (engine.inspection), folders of images (the
command line's datasets) and the exported predict.py turn a file into the same pixels, and so into the
same prediction. predict.py skips an unreadable picture with one line; model.py without PyTorch says so
in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.data import load_dataset
from engine.export import export_model
from engine.inspection import image_to_input, image_to_pixels
from engine.model import Model
from tests.engine.test_export_cases import SEED_SAMPLE

# Runs code with some modules made unimportable (the engine always: predict.py must not need it).
_BLOCKED = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
"""


def photo(size=(100, 100), seed=0, mode="RGB") -> Image.Image:
    """A smooth picture with detail at several scales (resizing rules differ on such pictures)."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 90 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    rgb = np.stack([base, base[::-1], base[:, ::-1]], axis=2) + rng.normal(0, 25, (h, w, 3))
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    if mode == "RGBA":
        alpha = np.clip(xx * 255 / w, 0, 255).astype(np.uint8)  # transparent on the left, opaque on the right
        picture = Image.fromarray(np.dstack([np.asarray(picture), alpha]), "RGBA")
    return picture


def predictor_pixels(folder, files, shape, block: str = "engine") -> np.ndarray:
    """The pixels the generated predict.py reads from ``files``, computed in a fresh interpreter."""
    code = _BLOCKED + (
        "import numpy as np\nfrom pathlib import Path\n"
        f"ns = runpy.run_path({str(folder / 'predict.py')!r}, run_name='predict')\n"
        f"arrays = [ns['read_image'](Path(f), {tuple(shape)!r}) for f in {[str(f) for f in files]!r}]\n"
        f"np.save({str(folder / 'pixels.npy')!r}, np.stack(arrays))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, block], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return np.load(folder / "pixels.npy")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predictor")
    model = Model.from_architecture(SEED_SAMPLE, seed=3)
    export_model(model, folder / "out", format="predictor", class_names=[f"c{i}" for i in range(10)])
    return model, folder / "out"


def test_a_photo_gives_the_same_pixels_and_prediction_in_the_studio_and_in_predict_py(exported, tmp_path):
    model, out = exported
    files = []
    for i, (size, mode, suffix) in enumerate([((100, 100), "RGB", "png"), ((64, 48), "RGBA", "png"),
                                              ((120, 90), "RGB", "jpg"), ((20, 20), "RGB", "png")]):
        path = tmp_path / f"picture{i}.{suffix}"
        photo(size, seed=i, mode=mode).save(path)
        files.append(path)
    studio = np.stack([image_to_pixels(path, model.input_shape) for path in files])
    assert np.array_equal(predictor_pixels(out, files, model.input_shape), studio)

    result = subprocess.run([sys.executable, "-c", _BLOCKED + "sys.argv = sys.argv[2:]\n"
                             "runpy.run_path(sys.argv[0], run_name='__main__')", "engine",
                             str(out / "predict.py"), *map(str, files), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    scores = np.array([r["outputs"] for r in json.loads(result.stdout)], np.float32)
    expected = model.predict(np.stack([image_to_input(path, model.input_shape, model.preprocessing)
                                       for path in files]))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_a_transparent_png_reads_the_same_without_pillow(exported, tmp_path):
    model, out = exported
    path = tmp_path / "stroke.png"
    photo((28, 28), seed=5, mode="RGBA").save(path)
    studio = image_to_pixels(path, model.input_shape)[None]
    assert np.array_equal(predictor_pixels(out, [path], model.input_shape, block="engine,PIL"), studio)
    # Transparent parts are black, as in the datasets (light strokes on black).
    assert studio[0, :, 0].max() < 20


def test_a_folder_of_pictures_loads_them_as_the_studio_reads_them(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(3):
            photo((100, 100) if i else (60, 80), seed=i + (10 if name == "b" else 0),
                  mode="RGBA" if i == 2 else "RGB").save(tmp_path / "pics" / name / f"{i}.png")
    data = load_dataset(tmp_path / "pics", image_size=(28, 28), color_mode="grayscale")
    everything = np.concatenate([data.x_train, data.x_test]) if len(data.x_test) else data.x_train
    files = sorted((tmp_path / "pics").rglob("*.png"))
    studio = [image_to_pixels(f, (28, 28, 1)) for f in files]
    for pixels in studio:
        assert any(np.array_equal(pixels, loaded) for loaded in everything), "a picture loaded differently"


def test_predict_py_reports_an_unreadable_picture_in_one_line_and_classifies_the_others(exported, tmp_path):
    _model, out = exported
    good = [tmp_path / "one.png", tmp_path / "two.png"]
    for i, path in enumerate(good):
        photo((28, 28), seed=i).save(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = subprocess.run([sys.executable, str(out / "predict.py"), str(good[0]), str(broken), str(good[1])],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {broken}: cannot read the image")
    assert [row.split(":")[0] for row in result.stdout.splitlines()] == ["one.png", "two.png"]
    result = subprocess.run([sys.executable, str(out / "predict.py"), str(broken)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_model_py_without_pytorch_says_so_in_one_line(tmp_path):
    script = "model.py"
    model = Model.from_architecture(SEED_SAMPLE, seed=0)
    export_model(model, tmp_path / "out", format="pytorch")
    result = subprocess.run([sys.executable, "-c", _BLOCKED + "sys.argv = sys.argv[2:]\n"
                             "runpy.run_path(sys.argv[0], run_name='__main__')", "torch",
                             str(tmp_path / "out" / script)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.strip() == f"{script} needs PyTorch: pip install torch (https://pytorch.org lists the builds)"
