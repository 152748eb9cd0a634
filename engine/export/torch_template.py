"""PyTorch version of a network designed and trained in CNN Studio, with loaders for its weights.

    from model import load_npz, preprocess
    net = load_npz("weights.npz")             # or load_safetensors("weights.safetensors")
    probabilities = net(preprocess(raw))      # raw pixels (N, H, W, C) -> class probabilities (N, K)
    logits = net(x, logits=True)              # raw scores for nn.CrossEntropyLoss when training on
    save_npz(net, "retrained.npz")            # back to an engine weight file that CNN Studio opens

``Net`` takes (N, C, H, W) float32 tensors, normalized as ``PREPROCESSING`` says (``preprocess`` does
it). Layer for layer it computes what the engine computes: 'same' padding puts the odd pixel after
(explicit ``F.pad``), Flatten unrolls in the engine's (H, W, C) order so Dense weights line up, batch
norm uses the engine's epsilon. The loaders convert the engine's layouts: conv kernels
(kh, kw, in, out) -> (out, in, kh, kw), dense kernels (in, out) -> (out, in). Note for further
training: BatchNorm's ``momentum`` below is PyTorch's (the weight of the new batch statistics).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as F  # noqa: F401 (the generated network uses it)
    from torch import nn
except ImportError:  # one line saying what is missing, not a traceback
    raise SystemExit("model.py needs PyTorch: pip install torch (https://pytorch.org lists the builds)") from None

# --- generated constants: begin
ARCHITECTURE: dict = {}
PREPROCESSING: dict = {"scale": 1 / 255, "mean": None, "std": None}
CLASS_NAMES: list[str] = []
INPUT_SHAPE = (28, 28, 1)  # (H, W, C), the engine's order
WEIGHTS_FILE = "weights.npz"
# engine tensor name -> (module name in Net, its parameter or buffer, layout in the engine's file)
TENSORS: dict[str, tuple[str, str, str]] = {}
# --- generated constants: end

WEIGHTS_FORMAT = "cnn-studio.weights/1"


# --- generated network: begin
class Net(nn.Module):
    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        return x
# --- generated network: end


def _to_torch_layout(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "conv":
        return value.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    if layout == "dense":
        return value.T  # (in, out) -> (out, in)
    return value


def _to_engine_layout(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "conv":
        return value.transpose(2, 3, 1, 0)
    if layout == "dense":
        return value.T
    return value


def _target(net: nn.Module, module: str, attribute: str) -> torch.Tensor:
    return getattr(net.get_submodule(module), attribute)


def load_tensors(net: nn.Module, tensors: dict[str, np.ndarray], source: str = "") -> nn.Module:
    """Copy engine tensors ("<layer>.<param>", engine layouts) into ``net``; refuses any mismatch."""
    prefix = f"{source}: " if source else ""
    for name, (module, attribute, layout) in TENSORS.items():
        if name not in tensors:
            raise ValueError(f"{prefix}tensor {name!r} is missing: the file holds a different network")
        value = _to_torch_layout(np.asarray(tensors[name], dtype=np.float32), layout)
        target = _target(net, module, attribute)
        if tuple(target.shape) != value.shape:
            raise ValueError(f"{prefix}tensor {name!r} has shape {np.shape(tensors[name])}, which does not fit "
                             f"{module}.{attribute} {tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    extra = [name for name in tensors if name not in TENSORS]
    if extra:
        raise ValueError(f"{prefix}tensor {extra[0]!r} does not belong to this network")
    return net


def load_npz(path: str | os.PathLike = "") -> Net:
    """A Net (in eval mode) holding an engine ``.npz`` weight file's tensors."""
    path = Path(path or Path(__file__).resolve().with_name(WEIGHTS_FILE))
    with np.load(path, allow_pickle=False) as data:
        if "__format__" not in data.files or str(data["__format__"]) != WEIGHTS_FORMAT:
            raise ValueError(f"{path}: not a CNN Studio weight file")
        tensors = {key: data[key] for key in data.files if not key.startswith("__")}
    return load_tensors(Net(), tensors, str(path)).eval()


def load_safetensors(path: str | os.PathLike) -> Net:
    """A Net (in eval mode) holding a CNN Studio ``.safetensors`` file's tensors (needs safetensors)."""
    from safetensors.numpy import load_file

    return load_tensors(Net(), load_file(str(path)), str(path)).eval()


def save_npz(net: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``net``'s tensors as an engine weight file (atomically), ready to open in CNN Studio."""
    path = Path(path)
    arrays = {
        "__format__": np.array(WEIGHTS_FORMAT),
        "__architecture__": np.array(json.dumps(ARCHITECTURE)),
        "__preprocessing__": np.array(json.dumps(PREPROCESSING)),
    }
    for name, (module, attribute, layout) in TENSORS.items():
        value = _target(net, module, attribute).detach().cpu().numpy().astype(np.float32)
        arrays[name] = np.ascontiguousarray(_to_engine_layout(value, layout))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        mask = os.umask(0)  # read the umask (only by setting it) ...
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # ... so the file gets a new file's usual permissions, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def preprocess(raw: np.ndarray) -> torch.Tensor:
    """Raw pixels (N, H, W, C) (e.g. uint8 0..255) -> normalized float32 tensor (N, C, H, W)."""
    x = np.asarray(raw, dtype=np.float32) * np.float32(PREPROCESSING.get("scale", 1 / 255))
    if PREPROCESSING.get("mean") is not None:
        x = (x - np.asarray(PREPROCESSING["mean"], np.float32)) / np.asarray(PREPROCESSING["std"], np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def predict(net: nn.Module, raw: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K) for raw pixels (N, H, W, C)."""
    net.eval()
    with torch.no_grad():
        return net(preprocess(raw)).numpy()


if __name__ == "__main__":
    # python model.py [weights.npz|weights.safetensors] [raw_pixels.npy]
    weights = sys.argv[1] if len(sys.argv) > 1 else ""
    model = load_safetensors(weights) if weights.endswith(".safetensors") else load_npz(weights)
    print(model)
    if len(sys.argv) > 2:
        outputs = predict(model, np.load(sys.argv[2], allow_pickle=False))
        for i, row in enumerate(outputs.reshape(len(outputs), -1)):
            best = int(row.argmax())
            label = CLASS_NAMES[best] if best < len(CLASS_NAMES) else str(best)
            print(f"{i}: {label} ({row[best]:.3f})")
