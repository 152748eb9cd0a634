"""Train this CNN Studio network with PyTorch: on one process, or on many with torchrun (DDP).

    python train.py --data DATA                                     # one process (CPU, or a GPU if any)
    torchrun --nproc_per_node=4 train.py --data DATA                # 4 processes on this machine
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 train.py --data DATA   # 2 machines (rank 1 too)

It trains the network of ``model.py`` with the settings CNN Studio used (``SETTINGS`` below: optimizer,
learning-rate schedule, batch size, epochs, augmentation, label smoothing, validation split, seed,
frozen layers) and writes the weights in the engine's layout and names, as ``.safetensors`` (or
``.npz``), ready for CNN Studio's File > Import Weights. It needs only PyTorch and NumPy (Pillow
only for a folder of image files).

DATA is any dataset CNN Studio reads: an ``.npz`` file (``x``, ``y``, optional ``x_test``, ``y_test``,
``class_names``), a folder of IDX files (MNIST and friends), a CIFAR-10 python folder, or a folder of
class folders of images. ``--epochs``, ``--batch-size``, ``--lr`` and ``--seed`` override SETTINGS;
``--out`` names the result; ``--from-scratch`` starts from ``initial.npz`` (the engine's own
initialisation with the seed) instead of ``weights.npz``. Under torchrun the batch size stays the
whole step's: each of the N processes takes every N-th image of it (gloo on CPU, nccl on GPUs, where
batch norm is synchronised across processes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import pickle
import re
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # one line saying what is missing, not a traceback
    raise SystemExit("train.py needs PyTorch: pip install torch (https://pytorch.org lists the builds)") from None

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import ARCHITECTURE, INPUT_SHAPE, PREPROCESSING, TENSORS, Net, load_tensors  # noqa: E402

WEIGHTS_FORMAT = "cnn-studio.weights/1"
# DDP notices that a one-channel kernel's gradient has other (equivalent) strides than its bucket; harmless.
warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")

# --- generated settings: begin
SETTINGS: dict = {"epochs": 5, "batch_size": 64, "optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9,
                  "nesterov": False, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0.0,
                  "step_epochs": 2, "step_gamma": 0.5, "validation_split": 0.1, "label_smoothing": 0.0, "seed": 0,
                  "augment_shift": 0, "augment_hflip": False, "augment_rotation": 0.0, "standardize": False}
# Engine tensors of the layers frozen in CNN Studio ("trainable": false): they are not updated.
FROZEN: list[str] = []
# --- generated settings: end


# -- datasets: the formats CNN Studio reads, into (N, H, W, C) arrays -----------------------------------
class Data:
    def __init__(self, x_train, y_train, x_test, y_test, scale, class_names):
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.scale, self.class_names = scale, class_names


def _as_images(x: np.ndarray, where: str):
    """(images as uint8 or float32 (N, H, W, C), the scale that maps them to [0, 1]), as the engine does."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise SystemExit(f"{where}: images must be (N, H, W) or (N, H, W, C), not {x.shape}")
    if x.dtype == np.uint8 or x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        return x.astype(np.uint8), 1 / 255
    x = x.astype(np.float32)
    return x, (1 / 255 if 1.5 < float(x.max(initial=0)) <= 255 else 1.0)


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)  # one-hot
    return y.reshape(-1).astype(np.int64)


def _stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator):
    """(kept, held out) sorted row indices, held out ~ ``fraction`` of each class (the engine's split)."""
    n = len(y)
    n_out = round(fraction * n)
    if n_out == 0:
        return np.arange(n), np.empty(0, np.int64)
    perm = rng.permutation(n)
    order = perm[np.argsort(y[perm], kind="stable")]
    _, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    ideal = counts * (min(n_out, n) / counts.sum())
    take = np.minimum(np.floor(ideal).astype(np.int64), counts)
    left = min(n_out, n) - int(take.sum())
    for k in np.argsort(-(ideal - take), kind="stable"):
        if left == 0:
            break
        if take[k] < counts[k]:
            take[k] += 1
            left -= 1
    rank = np.arange(n) - np.repeat(starts, counts)
    mask = np.zeros(n, bool)
    mask[order[rank < np.repeat(take, counts)]] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _with_test_part(x, y, x_test, y_test, scale, names):
    if x_test is None:
        keep, held = _stratified_split(y, 0.2, np.random.default_rng(0))
        x, y, x_test, y_test = x[keep], y[keep], x[held], y[held]
    names = names or [str(i) for i in range(int(max(y.max(initial=0), y_test.max(initial=0))) + 1)]
    return Data(x, y, x_test, y_test, scale, names)


def read_npz(path: Path) -> Data:
    with np.load(path, allow_pickle=False) as z:
        x, scale = _as_images(z["x"], str(path))
        y = _labels(z["y"])
        x_test = _as_images(z["x_test"], str(path))[0].astype(x.dtype) if "x_test" in z.files else None
        y_test = _labels(z["y_test"]) if "y_test" in z.files else None
        names = [str(n) for n in z["class_names"].tolist()] if "class_names" in z.files else None
    return _with_test_part(x, y, x_test, y_test, scale, names)


_IDX = re.compile(r"^(?P<prefix>.*?)(?P<part>train|t10k|test)[-_.](?P<kind>images|labels)[-_.]idx[13][-_.]ubyte")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_idx(folder: Path) -> Data:
    files: dict[tuple[str, str], Path] = {}
    for p in sorted(folder.iterdir()):
        m = _IDX.match(p.name)
        if m and p.is_file():
            key = ("train" if m["part"] == "train" else "test", m["kind"])
            if key not in files or files[key].suffix == ".gz":
                files[key] = p
    if ("train", "images") not in files or ("train", "labels") not in files:
        raise SystemExit(f"{folder}: no train-images / train-labels IDX files")
    x = _read_idx(files["train", "images"])[..., None]
    y = _read_idx(files["train", "labels"]).astype(np.int64)
    has_test = ("test", "images") in files and ("test", "labels") in files
    x_test = _read_idx(files["test", "images"])[..., None] if has_test else None
    y_test = _read_idx(files["test", "labels"]).astype(np.int64) if has_test else None
    return _with_test_part(x, y, x_test, y_test, 1 / 255, None)


class _CifarUnpickler(pickle.Unpickler):
    """Builds only plain containers and NumPy arrays: a hostile file cannot run code."""

    allowed = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _plain(value, path: Path):
    """value, unless it is an array whose dtype a pickle altered (its flags then claim object references)."""
    altered = isinstance(value, np.ndarray) and (value.dtype.hasobject
                                                 or value.dtype.flags != np.dtype(value.dtype.str).flags)
    if altered:
        raise ValueError(f"{path}: an array of an unexpected kind ({value.dtype.str})")
    return value


def _cifar_batch(path: Path):
    with open(path, "rb") as f:
        batch = _CifarUnpickler(f, encoding="bytes").load()
    data = np.asarray(_plain(batch[b"data"], path), np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(data), np.asarray(_plain(batch[b"labels"], path), np.int64)


def read_cifar(folder: Path) -> Data:
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    parts = sorted(folder.glob("data_batch_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    train = [_cifar_batch(p) for p in parts]
    x, y = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    x_test, y_test = _cifar_batch(folder / "test_batch") if (folder / "test_batch").is_file() else (None, None)
    names = None
    if (folder / "batches.meta").is_file():
        with open(folder / "batches.meta", "rb") as f:
            meta = _CifarUnpickler(f, encoding="bytes").load()
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])] or None
    return _with_test_part(x, y, x_test, y_test, 1 / 255, names)


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _class_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: _natural(p.name))


def _read_images(folders: list[Path], labels: dict[str, int]):
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise SystemExit("reading a folder of images needs Pillow (pip install pillow); "
                         "or save the dataset as an .npz file") from None
    h, w, c = INPUT_SHAPE
    images, targets = [], []
    for folder in folders:
        for path in sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: _natural(str(p))):
            try:
                with Image.open(path) as im:
                    im = ImageOps.exif_transpose(im).convert("L" if c == 1 else "RGB")
                    if im.size != (w, h):
                        im = im.resize((w, h), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, np.uint8).reshape(h, w, c))
                    targets.append(labels[folder.name])
            except OSError:
                continue  # not an image
    return np.stack(images), np.asarray(targets, np.int64)


def read_image_folder(root: Path) -> Data:
    subs = {p.name.lower(): p for p in _class_folders(root)}
    train_root = next((subs[n] for n in ("train", "training") if n in subs and _class_folders(subs[n])), None)
    test_root = next((subs[n] for n in ("test", "testing", "val", "validation") if n in subs), None) if train_root \
        else None
    train_root = train_root or root
    classes = _class_folders(train_root)
    labels = {p.name: i for i, p in enumerate(classes)}
    x, y = _read_images(classes, labels)
    x_test = y_test = None
    if test_root is not None:
        x_test, y_test = _read_images([p for p in _class_folders(test_root) if p.name in labels], labels)
    return _with_test_part(x, y, x_test, y_test, 1 / 255, list(labels))


def read_dataset(path: str) -> Data:
    p = Path(path)
    if not p.exists():
        # CNN Studio's dataset names (fashion-mnist-mini) mean nothing here: the data is wherever it was copied.
        named = "; CNN Studio's dataset names are not known here" if len(p.parts) == 1 and not p.suffix else ""
        raise SystemExit(f"{p}: no such file or folder (give an .npz file, an IDX, CIFAR-10 or image folder{named})")
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return read_npz(p)
        if _IDX.match(p.name):
            return read_idx(p.parent)
        raise SystemExit(f"{p}: not a dataset file (.npz, or an IDX file)")
    names = [q.name for q in p.iterdir()]
    if any(_IDX.match(n) for n in names):
        return read_idx(p)
    if "batches.meta" in names or "data_batch_1" in names or "cifar-10-batches-py" in names:
        return read_cifar(p)
    return read_image_folder(p)


# -- augmentation: the engine's random shifts, flips and rotations (zero fill) ------------------------
def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shift, hflip, rotation = SETTINGS["augment_shift"], SETTINGS["augment_hflip"], SETTINGS["augment_rotation"]
    b, h, w, _ = x.shape
    if not (shift or hflip or rotation) or b == 0:
        return x
    ii = np.arange(h, dtype=np.float64)[None, :, None]
    jj = np.arange(w, dtype=np.float64)[None, None, :]
    dy = rng.integers(-shift, shift + 1, size=b)[:, None, None] if shift else 0
    dx = rng.integers(-shift, shift + 1, size=b)[:, None, None] if shift else 0
    flip = (rng.random(b) < 0.5)[:, None, None] if hflip else None
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    bb = np.arange(b)[:, None, None]
    if rotation:
        theta = np.deg2rad(rng.uniform(-rotation, rotation, size=b))[:, None, None]
        ci, cj = (h - 1) / 2, (w - 1) / 2
        yi, xj = ii - ci - dy, jj - cj - dx
        si = np.cos(theta) * yi + np.sin(theta) * xj + ci
        sj = -np.sin(theta) * yi + np.cos(theta) * xj + cj
        if flip is not None:
            sj = np.where(flip, (w - 1) - sj, sj)
        si, sj = np.clip(si + 1, 0, h + 1), np.clip(sj + 1, 0, w + 1)
        i0, j0 = np.floor(si).astype(np.int64), np.floor(sj).astype(np.int64)
        i1, j1 = np.minimum(i0 + 1, h + 1), np.minimum(j0 + 1, w + 1)
        wi, wj = (si - i0).astype(np.float32)[..., None], (sj - j0).astype(np.float32)[..., None]
        top = padded[bb, i0, j0] * (1 - wj) + padded[bb, i0, j1] * wj
        bottom = padded[bb, i1, j0] * (1 - wj) + padded[bb, i1, j1] * wj
        return np.ascontiguousarray(top * (1 - wi) + bottom * wi, dtype=np.float32)
    si = np.broadcast_to(ii - dy, (b, h, w))
    sj = np.broadcast_to(jj - dx, (b, h, w))
    if flip is not None:
        sj = np.where(flip, (w - 1) - sj, sj)
    i = np.clip(si.astype(np.int64) + 1, 0, h + 1)
    j = np.clip(sj.astype(np.int64) + 1, 0, w + 1)
    return np.ascontiguousarray(padded[bb, i, j])


# -- weights: the engine's files, read and written without extra packages ---------------------------------
def read_engine_weights(path: Path) -> dict[str, np.ndarray]:
    if path.suffix.lower() == ".safetensors":
        data = path.read_bytes()
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        body = data[8 + length :]
        kinds = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
        return {name: np.frombuffer(body[a:b], kinds[info["dtype"]]).reshape(info["shape"]).astype(np.float32)
                for name, info in header.items() if name != "__metadata__"
                for a, b in [info["data_offsets"]]}
    with np.load(path, allow_pickle=False) as z:
        if "__format__" not in z.files or str(z["__format__"]) != WEIGHTS_FORMAT:
            raise SystemExit(f"{path}: not a CNN Studio weight file")
        return {k: z[k] for k in z.files if not k.startswith("__")}


def engine_tensors(net: nn.Module) -> dict[str, np.ndarray]:
    """Every tensor in the engine's layout: conv kernels (kh, kw, in, out), dense kernels (in, out)."""
    out = {}
    for name, (module, attribute, layout) in TENSORS.items():
        value = getattr(net.get_submodule(module), attribute).detach().cpu().numpy().astype(np.float32)
        if layout == "conv":
            value = value.transpose(2, 3, 1, 0)
        elif layout == "dense":
            value = value.T
        out[name] = np.ascontiguousarray(value)
    return out


def _atomic_write(path: Path, chunks) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        mask = os.umask(0)  # read the umask (only by setting it) ...
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # ... so the file gets a new file's usual permissions, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], preprocessing: dict) -> None:
    """The safetensors format by hand (8-byte header length, JSON header, raw little-endian data)."""
    header: dict = {"__metadata__": {"format": WEIGHTS_FORMAT, "architecture": json.dumps(ARCHITECTURE),
                                     "order": json.dumps(list(tensors)), "preprocessing": json.dumps(preprocessing)}}
    offset, blobs = 0, []
    for name in sorted(tensors):
        blob = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    _atomic_write(path, [struct.pack("<Q", len(text)), text, *blobs])


def write_npz(path: Path, tensors: dict[str, np.ndarray], preprocessing: dict) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, __format__=np.array(WEIGHTS_FORMAT), __architecture__=np.array(json.dumps(ARCHITECTURE)),
             __preprocessing__=np.array(json.dumps(preprocessing)), **tensors)
    _atomic_write(path, [buffer.getvalue()])


# -- training ------------------------------------------------------------------------------------------------
def learning_rate_factor(step: int, steps_per_epoch: int, epochs: int) -> float:
    """The engine's schedule: optional linear warm-up, then constant, step decay or cosine to 0 ("plateau"
    stays constant here; EpochWatch lowers it)."""
    warmup = int(SETTINGS["warmup_epochs"] * steps_per_epoch)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if SETTINGS["schedule"] == "step":
        return SETTINGS["step_gamma"] ** ((step - warmup) // max(SETTINGS["step_epochs"] * steps_per_epoch, 1))
    if SETTINGS["schedule"] == "cosine":
        t = min(max(step - warmup, 0) / max(epochs * steps_per_epoch - warmup, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def improved(value: float, best: float | None) -> bool:
    """Whether the monitored metric beats its best by more than min_delta (lower loss, higher accuracy)."""
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    delta = SETTINGS.get("min_delta", 0.0)
    return value > best + delta if SETTINGS.get("monitor", "val_loss").endswith("accuracy") else value < best - delta


class EpochWatch:
    """The engine's reduce-on-plateau (schedule "plateau") and early stopping, fed one value per epoch."""

    def __init__(self) -> None:
        self.scale = 1.0  # the plateau's learning-rate factor so far
        self.plateau_best: float | None = None
        self.plateau_wait = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_tensors: dict | None = None

    def update(self, value: float, epoch: int, net: nn.Module) -> str:
        """Record an epoch's monitored value; returns a note when the rate was lowered."""
        note = ""
        if SETTINGS["schedule"] == "plateau":
            if improved(value, self.plateau_best):
                self.plateau_best, self.plateau_wait = value, 0
            else:
                self.plateau_wait += 1
                if self.plateau_wait >= SETTINGS.get("plateau_patience", 2):
                    self.plateau_wait = 0
                    lr = SETTINGS["learning_rate"]
                    floor = SETTINGS.get("plateau_min_lr", 0.0) / lr if lr > 0 else 0.0
                    lowered = max(self.scale * SETTINGS.get("plateau_factor", 0.5), floor)
                    if lowered < self.scale:
                        self.scale = lowered
                        note = f"  learning rate lowered to {lr * lowered:.4g}"
        if SETTINGS.get("early_stopping", 0):
            if improved(value, self.best):
                self.best, self.best_epoch, self.wait = value, epoch, 0
                if SETTINGS.get("restore_best", True):
                    self.best_tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                self.wait += 1
        return note

    @property
    def stop(self) -> bool:
        patience = SETTINGS.get("early_stopping", 0)
        return bool(patience) and self.wait >= patience


def make_optimizer(net: nn.Module) -> torch.optim.Optimizer:
    """The engine's optimizers; weight decay applies to kernels only, frozen tensors are left out."""
    decayed = {id(getattr(net.get_submodule(m), a)) for n, (m, a, _) in TENSORS.items() if n.endswith(".kernel")}
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in decayed], "weight_decay": SETTINGS["weight_decay"]},
              {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0}]
    lr = SETTINGS["learning_rate"]
    if SETTINGS["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=SETTINGS["momentum"], nesterov=SETTINGS["nesterov"])
    cls = torch.optim.AdamW if SETTINGS["optimizer"] == "adamw" else torch.optim.Adam
    return cls(groups, lr=lr, betas=(SETTINGS["momentum"], 0.999), eps=1e-7)


def freeze(net: nn.Module) -> list[nn.Module]:
    """Stop updates of the frozen tensors; returns the frozen batch norms (kept on running statistics)."""
    frozen_norms = []
    for name in FROZEN:
        module, attribute, _ = TENSORS[name]
        target = getattr(net.get_submodule(module), attribute)
        if isinstance(target, nn.Parameter):
            target.requires_grad_(False)
        norm = net.get_submodule(module)
        if isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm not in frozen_norms:
            frozen_norms.append(norm)
    return frozen_norms


def evaluate(net: nn.Module, x: np.ndarray, y: np.ndarray, normalize, device, batch: int = 256):
    """(loss, accuracy) of ``net`` on raw images x and labels y."""
    net.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = net(normalize(x[i : i + batch]).to(device), logits=True)
            target = torch.from_numpy(y[i : i + batch]).to(device)
            total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    return total_loss / max(len(x), 1), correct / max(len(x), 1)


def _at_least_one(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"a positive number, not {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=".npz file, IDX folder, CIFAR-10 folder or folder of class folders")
    p.add_argument("--epochs", type=_at_least_one, help=f"epochs to train (default {SETTINGS['epochs']})")
    p.add_argument("--batch-size", type=_at_least_one, help=f"images per step, all processes together "
                                                            f"(default {SETTINGS['batch_size']})")
    p.add_argument("--lr", type=_positive, help=f"learning rate (default {SETTINGS['learning_rate']})")
    p.add_argument("--seed", type=int, help=f"random seed (default {SETTINGS['seed']})")
    p.add_argument("--out", default="trained.safetensors", help="weights to write (.safetensors or .npz)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-scratch", action="store_true", help="start from initial.npz, not weights.npz")
    start.add_argument("--weights", help="start from this engine weight file (.npz or .safetensors)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    args = p.parse_args(argv)
    # Said before any data is read: a misspelt folder must not cost the run at its very end.
    out = Path(args.out)
    if out.suffix.lower() not in (".safetensors", ".npz"):
        p.error(f"--out {out}: the weights are written as .safetensors or .npz; end the name in one of them")
    if out.is_dir() or not out.parent.is_dir():
        p.error(f"--out {out}: " + ("is a folder; name the file to write" if out.is_dir()
                                    else f"the folder {out.parent} does not exist"))
    if args.weights and not Path(args.weights).is_file():
        p.error(f"--weights {args.weights}: no such file")
    return args


def start_tensors(path: Path) -> dict[str, np.ndarray]:
    """The weights training starts from, read and checked against the network; one line if they do not fit."""
    try:
        return read_engine_weights(path)
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, KeyError, struct.error):  # numpy's and json's reasons speak of pickles and offsets
        raise SystemExit(f"{path}: not a CNN Studio weight file (.npz, or .safetensors as train.py writes "
                         "them)") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size), ("learning_rate", args.lr),
                       ("seed", args.seed)):
        if value is not None:
            SETTINGS[key] = value
    cuda = torch.cuda.is_available() and args.device != "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if distributed else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    lead = rank == 0

    def say(text: str) -> None:
        if lead:
            print(text, flush=True)

    seed = SETTINGS["seed"]
    torch.manual_seed(seed)
    data = read_dataset(args.data)
    if data.x_train.shape[1:] != tuple(INPUT_SHAPE):
        raise SystemExit(f"{args.data}: images are {data.x_train.shape[1:]}, the network takes {tuple(INPUT_SHAPE)}")
    net = Net()
    start = HERE / "initial.npz" if args.from_scratch else Path(args.weights) if args.weights else HERE / "weights.npz"
    try:
        load_tensors(net, start_tensors(start), str(start))
    except ValueError as exc:  # weights of another network
        raise SystemExit(str(exc)) from None
    with torch.no_grad():
        outputs = net.eval()(torch.zeros(1, INPUT_SHAPE[2], INPUT_SHAPE[0], INPUT_SHAPE[1]), logits=True).shape[-1]
    if max(data.y_train.max(initial=0), data.y_test.max(initial=0)) >= outputs:
        raise SystemExit(f"{args.data}: labels go up to {int(data.y_train.max())}, the network has {outputs} outputs "
                         "(CNN Studio's Replace head makes the last layer fit)")

    # Normalisation: the data's scale to [0, 1]; the weights' per-channel mean and std, or (standardize
    # from scratch) the training images' own.
    mean, std = PREPROCESSING.get("mean"), PREPROCESSING.get("std")
    train_idx, val_idx = _stratified_split(data.y_train, SETTINGS["validation_split"], np.random.default_rng(seed))
    if SETTINGS["standardize"] and (args.from_scratch or mean is None):
        scaled = data.x_train[train_idx].astype(np.float64) * data.scale
        mean = scaled.mean(axis=(0, 1, 2)).tolist()
        std = np.maximum(scaled.std(axis=(0, 1, 2)), 1e-6).tolist()
    preprocessing = {"scale": data.scale, "mean": mean, "std": std}

    def scaled(raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, np.float32) * np.float32(data.scale)

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        if mean is not None:
            x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))

    def normalize(raw: np.ndarray) -> torch.Tensor:
        return to_tensor(scaled(raw))

    if distributed and cuda:
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # batch statistics over the whole step
    frozen_norms = freeze(net)
    net.to(device)
    model: nn.Module = net
    if distributed:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[local_rank] if cuda else None)
    optimizer = make_optimizer(net)
    batch_size, epochs = SETTINGS["batch_size"], SETTINGS["epochs"]
    steps_per_epoch = -(-len(train_idx) // batch_size)
    watch = EpochWatch()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, steps_per_epoch, epochs) * watch.scale)
    order_rng = np.random.default_rng(seed)  # the same on every process: they agree on each step's images
    augment_rng = np.random.default_rng([seed, rank])
    say(f"training on {len(train_idx)} images, validating on {len(val_idx)}; {steps_per_epoch} steps per epoch; "
        f"{world} process{'es' if world > 1 else ''} on {device.type}")
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for norm in frozen_norms:
            norm.eval()  # a frozen batch norm normalises with its running statistics
        order = train_idx[order_rng.permutation(len(train_idx))]
        seen, loss_sum, correct = 0, 0.0, 0
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            if len(rows) < world:
                continue  # every process needs at least one image
            share = rows[rank::world]
            x = to_tensor(augment(scaled(data.x_train[share]), augment_rng)).to(device)
            y = torch.from_numpy(data.y_train[share]).to(device)
            logits = model(x, logits=True)
            loss = F.cross_entropy(logits, y, label_smoothing=SETTINGS["label_smoothing"])
            # DDP averages the processes' gradients; weighting each by its share makes that the whole
            # step's mean even when the shares differ by one image.
            (loss * (len(share) * world / len(rows))).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            seen += len(share)
            loss_sum += float(loss.detach()) * len(share)
            correct += int((logits.argmax(dim=1) == y).sum())
        train_loss, train_acc = loss_sum / max(seen, 1), correct / max(seen, 1)
        line = f"epoch {epoch}/{epochs}  loss {train_loss:.4f}  acc {train_acc:.2%}"
        # The first process decides on the learning rate and stopping; the others follow its word.
        decision = [1.0, False]
        if lead:
            metrics = {"val_loss": train_loss, "val_accuracy": train_acc}  # without validation: training's
            if len(val_idx):
                val_loss, val_acc = evaluate(net, data.x_train[val_idx], data.y_train[val_idx], normalize, device)
                metrics = {"val_loss": val_loss, "val_accuracy": val_acc}
                line += f"  val_loss {val_loss:.4f}  val_acc {val_acc:.2%}"
            line += watch.update(metrics[SETTINGS.get("monitor", "val_loss")], epoch, net)
            decision = [watch.scale, watch.stop]
            say(f"{line}  {time.perf_counter() - started:.0f} s")
        if distributed:
            dist.broadcast_object_list(decision, src=0)
        watch.scale = float(decision[0])
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):  # a new factor acts from the next step
            group["lr"] = base * learning_rate_factor(scheduler.last_epoch, steps_per_epoch, epochs) * watch.scale
        if decision[1]:
            say(f"stopped early after epoch {epoch}: {SETTINGS.get('monitor', 'val_loss')} did not improve for "
                f"{SETTINGS['early_stopping']} epochs (best at epoch {watch.best_epoch})")
            break
    if lead and watch.best_tensors is not None and watch.best_epoch not in (0, epoch):
        net.load_state_dict(watch.best_tensors)
        say(f"the weights of epoch {watch.best_epoch}, the best by {SETTINGS.get('monitor', 'val_loss')}, "
            "were restored")
    if lead:
        if len(data.x_test):
            _, test_acc = evaluate(net, data.x_test, data.y_test, normalize, device)
            say(f"test accuracy {test_acc:.2%} ({len(data.x_test)} images)")
        out = Path(args.out)
        tensors = engine_tensors(net)
        (write_npz if out.suffix.lower() == ".npz" else write_safetensors)(out, tensors, preprocessing)
        say(f"weights saved to {out} (CNN Studio: File > Import Weights)")
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
