"""The generated predict.py: run in a fresh interpreter without the engine, its outputs equal the engine's
(to float32 rounding)."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.export import export_model
from engine.export import predictor_template as template
from engine.model import Model
from tests.engine.test_export_cases import ARCHITECTURES, SEED_SAMPLE, normalized, randomized_model, raw_batch

# Runs a script with some modules made unimportable: "engine" always, "PIL" when asked.
_BOOTSTRAP = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
script = sys.argv[2]
sys.argv = [script] + sys.argv[3:]
runpy.run_path(script, run_name="__main__")
"""


def assert_same_outputs(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding, with the same predicted classes: the predictor repeats the engine's
    float32 arithmetic, though the engine may group its sums differently (e.g. the bias folded into the
    matrix product of an optimised kernel)."""
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got.reshape(len(got), -1).argmax(1), expected.reshape(len(expected), -1).argmax(1))


def run_predictor(folder, *args, block: str = "engine") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BOOTSTRAP, block, str(folder / "predict.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=folder, timeout=60)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_predictions_on_an_npy_batch_equal_the_engines(tmp_path, name) -> None:
    model = randomized_model(name)
    model.preprocessing = {"scale": 1 / 255, "mean": [0.4] * model.input_shape[2], "std": [0.3] * model.input_shape[2]}
    export_model(model, tmp_path / "out", format="predictor", class_names=["a", "b", "c", "d", "e"])
    raw = raw_batch(model, 9)
    np.save(tmp_path / "batch.npy", raw)
    result = run_predictor(tmp_path / "out", tmp_path / "batch.npy", "--save", tmp_path / "p.npy", "--json")
    assert result.returncode == 0, result.stderr
    expected = model.predict(normalized(model, raw))
    got = np.load(tmp_path / "p.npy")
    assert_same_outputs(got, expected)
    records = json.loads(result.stdout)
    flat = expected.reshape(len(expected), -1)
    assert [r["label"] for r in records] == flat.argmax(1).tolist()
    assert [r["input"] for r in records] == [f"batch.npy[{i}]" for i in range(9)]


def test_normalized_batches_and_weights_given_explicitly(tmp_path) -> None:
    model = randomized_model("dense_no_softmax")
    export_model(model, tmp_path / "out", format="predictor")
    x = np.random.default_rng(2).normal(size=(4, *model.input_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "out" / "weights.npz").rename(tmp_path / "elsewhere.npz")
    result = run_predictor(tmp_path / "out", tmp_path / "elsewhere.npz", tmp_path / "x.npy", "--normalized",
                           "--save", tmp_path / "p.npy")
    assert result.returncode == 0, result.stderr
    assert_same_outputs(np.load(tmp_path / "p.npy"), model.predict(x))


def _bundled_images(n: int = 6) -> tuple[np.ndarray, list[str]]:
    from engine.data import load_dataset

    dataset = load_dataset("fashion-mnist-mini")
    return dataset.x_test[:n], dataset.class_names


def _write_pgm(path, gray: np.ndarray) -> None:
    path.write_bytes(b"P5\n# a comment\n%d %d\n255\n" % (gray.shape[1], gray.shape[0]) + gray.tobytes())


@pytest.mark.parametrize("block", ["engine", "engine,PIL"])
def test_bundled_test_images_as_files_with_and_without_pillow(tmp_path, block) -> None:
    images, class_names = _bundled_images()
    model = Model.from_architecture(SEED_SAMPLE, seed=4)
    export_model(model, tmp_path / "out", format="predictor", class_names=class_names)
    files = []
    for i, image in enumerate(images):
        path = tmp_path / (f"img{i}.png" if i % 2 == 0 else f"img{i}.pgm")
        if i % 2 == 0:
            Image.fromarray(image[..., 0]).save(path)
        else:
            _write_pgm(path, image[..., 0])
        files.append(path)
    result = run_predictor(tmp_path / "out", *files, "--save", tmp_path / "p.npy", block=block)
    assert result.returncode == 0, result.stderr
    expected = model.predict(normalized(model, images))
    assert_same_outputs(np.load(tmp_path / "p.npy"), expected)
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    for line, probabilities, path in zip(lines, expected, files):
        assert line.startswith(f"{path.name}: {class_names[int(probabilities.argmax())]}")


def test_rgb_network_reads_rgba_palette_and_gray_pngs_without_pillow(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")
    export_model(model, tmp_path / "out", format="predictor")
    rgb = raw_batch(model, 3, seed=7)
    Image.fromarray(rgb[0]).convert("RGBA").save(tmp_path / "rgba.png")
    palette = Image.fromarray(rgb[1]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "palette.png")
    Image.fromarray(rgb[2, ..., 0]).save(tmp_path / "gray.png")
    expected_raw = np.stack([rgb[0], np.asarray(palette.convert("RGB")), np.repeat(rgb[2, ..., :1], 3, axis=2)])
    files = [tmp_path / "rgba.png", tmp_path / "palette.png", tmp_path / "gray.png"]
    result = run_predictor(tmp_path / "out", *files, "--save", tmp_path / "p.npy", block="engine,PIL")
    assert result.returncode == 0, result.stderr
    assert_same_outputs(np.load(tmp_path / "p.npy"), model.predict(normalized(model, expected_raw)))


def test_user_mistakes_give_one_line_and_a_nonzero_exit(tmp_path) -> None:
    model = randomized_model("gray_odd_every_kind")
    export_model(model, tmp_path / "out", format="predictor")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 8, 8, 1), np.uint8))
    result = run_predictor(tmp_path / "out", tmp_path / "wrong.npy")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "wrong.npy" in result.stderr and "15, 13, 1" in result.stderr
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "big.png")
    result = run_predictor(tmp_path / "out", tmp_path / "big.png", block="engine,PIL")
    assert result.returncode == 2 and "big.png" in result.stderr and "Pillow" in result.stderr
    (tmp_path / "out" / "weights.npz").unlink()
    result = run_predictor(tmp_path / "out", tmp_path / "wrong.npy")
    assert result.returncode == 2 and "weights.npz" in result.stderr and "Traceback" not in result.stderr


def test_generated_file_names_the_network_and_needs_no_engine(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")
    written = export_model(model, tmp_path / "out", format="predictor", class_names=["w", "x", "y", "z"])
    assert [p.name for p in written] == ["predict.py", "README.md", "weights.npz"]
    source = written[0].read_text()
    assert "import engine" not in source and "from engine" not in source
    assert "CLASS_NAMES: list[str] = ['w', 'x', 'y', 'z']" in source
    assert "INPUT_SHAPE = (17, 11, 3)" in source
    assert "stem conv (Conv2D)" in source  # the model summary heads the file


def test_the_readme_says_how_to_run_it_on_this_networks_inputs(tmp_path) -> None:
    model = randomized_model("rgb_global_pool")  # 17 high, 11 wide, RGB; 4 classes
    export_model(model, tmp_path / "out", format="predictor", class_names=["w", "x", "y", "z"])
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "17x11x3" in readme and "resized to 11x17 (width x height)" in readme and "RGB" in readme
    assert "(N, 17, 11, 3)" in readme  # the .npy batch shape
    assert "python predict.py picture.png" in readme and "python predict.py batch.npy" in readme
    assert "| 0 | w |" in readme and "| 3 | z |" in readme and "4 classes, as probabilities" in readme
    for code in ("| 0 |", "| 1 |", "| 2 |"):
        assert code in readme.split("## Exit codes")[1]
    assert "Pillow" in readme and "NumPy" in readme
    # What it says about the exit codes is what predict.py does: 1 when an input is unreadable, 2 for nothing.
    np.save(tmp_path / "batch.npy", raw_batch(model, 2))
    assert run_predictor(tmp_path / "out", tmp_path / "batch.npy").returncode == 0
    assert run_predictor(tmp_path / "out", tmp_path / "batch.npy", tmp_path / "missing.png").returncode == 1
    assert run_predictor(tmp_path / "out", tmp_path / "missing.png").returncode == 2
    # A gray network of another size, without class names: its own size, and the outputs by number.
    gray = randomized_model("gray_odd_every_kind")
    export_model(gray, tmp_path / "gray", format="predictor")
    readme = (tmp_path / "gray" / "README.md").read_text()
    assert "15x13x1" in readme and "grayscale" in readme and "(N, 15, 13)" in readme and "| 4 | 4 |" in readme


def test_the_readme_of_a_network_no_picture_fits_offers_npy_batches_only(tmp_path) -> None:
    model = randomized_model("feature_map_output")  # 2-channel inputs, feature maps out
    export_model(model, tmp_path / "out", format="predictor")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "2-channel inputs, which no picture file holds" in readme and "picture.png" not in readme
    assert "pip install pillow" not in readme and "as scores" in readme and "(N, 5, 5, 3)" in readme


# -- the NumPy-only image readers, against Pillow ------------------------------------------------------
def _png(pixels: np.ndarray, color_type: int, filter_type: int, depth: int = 8) -> bytes:
    """A PNG whose every row uses ``filter_type`` (0-4), to exercise each unfiltering path."""
    h = pixels.shape[0]
    rows = pixels.reshape(h, -1).astype(np.int64)
    bpp = max(1, pixels.shape[2] * depth // 8 if pixels.ndim == 3 else 1)
    out, previous = [], np.zeros(rows.shape[1], np.int64)
    for row in rows:
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
        if filter_type == 0:
            filtered = row
        elif filter_type == 1:
            filtered = row - left
        elif filter_type == 2:
            filtered = row - previous
        elif filter_type == 3:
            filtered = row - (left + previous) // 2
        else:
            p = left + previous - corner
            pa, pb, pc = abs(p - left), abs(p - previous), abs(p - corner)
            filtered = row - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, corner))
        out.append(bytes([filter_type]) + (filtered % 256).astype(np.uint8).tobytes())
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", pixels.shape[1], h, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(out)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("filter_type", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("channels,color_type", [(1, 0), (3, 2), (4, 6), (2, 4)])
def test_png_decoder_undoes_every_filter(tmp_path, filter_type, channels, color_type) -> None:
    pixels = np.random.default_rng(filter_type).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_png(pixels, color_type, filter_type))
    decoded = template._read_without_pillow(path)
    assert np.array_equal(decoded, pixels)
    with Image.open(path) as im:  # the hand-made file is a valid PNG by Pillow's reading too
        assert np.array_equal(np.asarray(im).reshape(pixels.shape), pixels)


def test_png_decoder_handles_low_and_high_bit_depths(tmp_path) -> None:
    bits = np.random.default_rng(0).integers(0, 2, (6, 11), dtype=np.uint8).astype(bool)
    Image.fromarray(bits).save(tmp_path / "one_bit.png")
    assert np.array_equal(template._read_without_pillow(tmp_path / "one_bit.png")[..., 0], bits * np.uint8(255))
    deep = (np.arange(30, dtype=np.uint16).reshape(5, 6) * 2000)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    expected = template.deep_to_uint8(deep.astype(np.float32), "I;16")
    assert np.array_equal(template._read_without_pillow(tmp_path / "deep.png")[..., 0], expected)


def test_gray_conversion_without_pillow_matches_pillows(tmp_path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (9, 8, 3), dtype=np.uint8)
    ours = template._to_channels(rgb, 1, tmp_path)[..., 0]
    assert np.array_equal(ours, np.asarray(Image.fromarray(rgb).convert("L")))


def test_generated_sources_are_clean_under_the_projects_linter(tmp_path) -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    from engine.export.torch_codegen import generate_torch_module

    model = randomized_model("rgb_global_pool")
    export_model(model, tmp_path, format="predictor", class_names=["it's", 'say "hi"', "c", "d"])
    (tmp_path / "model.py").write_text(generate_torch_module(model, ["a", "b", "c", "d"]))
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--line-length", "120",
                             "--select", "E,F,W,I,B,UP", "--ignore", "B905", str(tmp_path / "predict.py"),
                             str(tmp_path / "model.py")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
