"""load_dataset by name and by path, known_datasets, and the bundled Fashion-MNIST subset."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data import FASHION_MNIST_CLASSES, DataError, DatasetInfo, known_datasets, load_dataset
from engine.data.registry import DEBIAN_FASHION_MNIST, mini_dataset_dir
from engine.resources import asset_path
from tests.helpers.data_factories import images, labels, make_idx_folder
from tests.helpers.extras import require_full_fashion_mnist

REPO = Path(__file__).resolve().parents[2]
FULL_PRESENT = all((DEBIAN_FASHION_MNIST / f).is_file() for f in (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
needs_full = pytest.mark.usefixtures("full_fashion_mnist")


@pytest.fixture
def full_fashion_mnist() -> None:
    require_full_fashion_mnist(FULL_PRESENT)


# ------------------------------------------------------------------------------------- bundled subset
def test_mini_is_balanced_shaped_and_named() -> None:
    ds = load_dataset("fashion-mnist-mini")  # how fast: benchmarks/dataset_load.py (a wall clock is no test)
    assert ds.name == "fashion-mnist-mini" and ds.class_names == FASHION_MNIST_CLASSES
    assert ds.x_train.shape == (12000, 28, 28, 1) and ds.x_test.shape == (2000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train, minlength=10).tolist() == [1200] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [200] * 10
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9
    # Stored sorted by class, loaded shuffled: the first rows already mix the classes.
    assert len(np.unique(ds.y_train[:100])) == 10 and len(np.unique(ds.y_test[:50])) == 10
    assert 0.25 < ds.x_train.mean() / 255 < 0.32  # Fashion-MNIST's mean pixel is about 0.286
    assert np.array_equal(ds.y_train, load_dataset("Fashion-MNIST-mini").y_train)


def test_mini_files_size_and_licence() -> None:
    folder = mini_dataset_dir()
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total < 6_000_000
    licence = asset_path("datasets", "LICENSE-fashion-mnist.txt").read_text()
    assert "MIT" in licence and "Zalando SE" in licence
    assert (folder / "class_names.txt").read_text().splitlines() == FASHION_MNIST_CLASSES


@needs_full
def test_mini_images_come_from_the_official_files() -> None:
    mini = load_dataset("fashion-mnist-mini")
    full = load_dataset("fashion-mnist")
    for mx, my, fx, fy in ((mini.x_train, mini.y_train, full.x_train, full.y_train),
                           (mini.x_test, mini.y_test, full.x_test, full.y_test)):
        lookup = dict(zip(map(bytes, fx), fy.tolist(), strict=True))
        rows = np.random.default_rng(0).choice(len(mx), 200, replace=False)
        assert all(lookup.get(mx[i].tobytes()) == int(my[i]) for i in rows)


def test_build_script_is_balanced_and_deterministic(tmp_path: Path) -> None:
    # A small fake source stands in for the official files, so this runs everywhere.
    source = make_idx_folder(tmp_path / "official", n_train=300, n_test=100, h=28, w=28)
    script_path = REPO / "scripts" / "build_mini_dataset.py"
    spec = importlib.util.spec_from_file_location("build_mini_dataset", script_path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run / "fashion-mnist-mini"
        assert script.main(["--source", str(source), "--out", str(out), "--train-per-class", "20",
                            "--test-per-class", "5"]) == 0
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]
    ds = load_dataset(tmp_path / "a" / "fashion-mnist-mini")
    assert np.bincount(ds.y_train).tolist() == [20] * 10 and np.bincount(ds.y_test).tolist() == [5] * 10
    assert ds.class_names == FASHION_MNIST_CLASSES


# ------------------------------------------------------------------------------------- full Fashion-MNIST
def test_known_datasets() -> None:
    infos = {i.name: i for i in known_datasets()}
    assert set(infos) == {"fashion-mnist-mini", "fashion-mnist"}
    assert all(isinstance(i, DatasetInfo) for i in infos.values())
    assert infos["fashion-mnist-mini"].available
    assert infos["fashion-mnist"].available == FULL_PRESENT
    assert infos["fashion-mnist"].location == str(DEBIAN_FASHION_MNIST)


@needs_full
def test_full_fashion_mnist_by_name_within_memory_budget() -> None:
    # A fresh interpreter, so the peak resident size (VmHWM) measures this load alone.
    code = (
        "import numpy, engine.data as d\n"
        "def hwm():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "before = hwm(); ds = d.load_dataset('fashion-mnist'); after = hwm()\n"
        "print((after - before) // 1024, ds.x_train.shape, ds.x_test.shape, ds.x_train.dtype,\n"
        "      ds.class_names[0])\n"
    )
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=REPO).stdout.split(maxsplit=1)
    grown_mb = int(out[0])
    assert grown_mb < 400, f"loading Fashion-MNIST grew the process by {grown_mb} MB"
    assert out[1].strip() == "(60000, 28, 28, 1) (10000, 28, 28, 1) uint8 T-shirt/top"


def test_fashion_mnist_missing_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import engine.data.registry as registry

    monkeypatch.setattr(registry, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DataError, match="install the Debian package dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    assert not {i.name: i for i in registry.known_datasets()}["fashion-mnist"].available


def test_fashion_mnist_from_a_user_folder(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "Fashion-MNIST")
    ds = load_dataset(folder)
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.name == "Fashion-MNIST"


# ------------------------------------------------------------------------------------- paths and options
def test_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing-folder: no such file or folder"):
        load_dataset(tmp_path / "missing-folder")
    with pytest.raises(DataError, match="known dataset names: fashion-mnist-mini"):
        load_dataset("mnist")


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1,2,3")
    with pytest.raises(DataError, match=r"data\.csv: unknown dataset file; expected IDX files"):
        load_dataset(path)


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": (0, 5)}, "image size"), ({"image_size": (2.5, 5)}, "image size"),
    ({"color_mode": "sepia"}, "color mode"), ({"test_fraction": 1.0}, "test fraction"),
    ({"test_fraction": "half"}, "test fraction"),
])
def test_bad_options(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset(make_idx_folder(tmp_path / "d"), **kwargs)


def test_size_and_colour_conversion_for_array_formats(tmp_path: Path) -> None:
    folder = make_idx_folder(tmp_path / "d", h=8, w=8)
    ds = load_dataset(folder, image_size=(12, 10), color_mode="rgb")
    assert ds.input_shape == (12, 10, 3) and ds.x_test.shape == (10, 12, 10, 3)
    assert np.array_equal(ds.x_train[..., 0], ds.x_train[..., 2])
    path = tmp_path / "rgb.npz"
    x = images(4, 6, 6, 3)
    np.savez(path, x=x, y=labels(4, 2))
    gray = load_dataset(path, color_mode="grayscale", test_fraction=0)
    expected = np.rint(x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    assert gray.input_shape == (6, 6, 1)
    assert np.abs(gray.x_train[..., 0].astype(int) - expected.astype(int)).max() <= 1
    same = load_dataset(folder, image_size=(8, 8), color_mode="grayscale")
    assert same.input_shape == (8, 8, 1)
