"""Standalone predictor for a network trained in CNN Studio. Needs only NumPy (Pillow, if installed,
adds JPEG, BMP, GIF, TIFF and resizing; without it PNG and PGM/PPM files are read directly).

Usage:
    python predict.py picture.png other.jpg          # classify image files
    python predict.py batch.npy                      # a (N, H, W, C) array of raw pixels (0..255)
    python predict.py --weights my.npz batch.npy --json
    python predict.py batch.npy --save probabilities.npy
    python predict.py normalized.npy --normalized    # values already normalized for the network

An input that cannot be read is reported on one line and skipped; the others are classified (the exit
status is then 1).

The weights (default: the file named below, beside this script) are an engine ``.npz`` weight file:
its ``__architecture__`` record says which layers to run, its ``__preprocessing__`` record how raw
pixels become network inputs, and its arrays hold the tensors ("<layer>.<param>"). Inference below
repeats the engine's own arithmetic in float32, so the probabilities equal the engine's (to float32
rounding) and the predicted classes are the same.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

try:
    from PIL import Image, ImageOps
except ImportError:  # NumPy alone reads PNG and PGM/PPM files
    Image = ImageOps = None

# --- generated: begin
WEIGHTS_FILE = "weights.npz"
INPUT_SHAPE = (28, 28, 1)
CLASS_NAMES: list[str] = []
# --- generated: end

WEIGHTS_FORMAT = "cnn-studio.weights/1"
BATCH_SIZE = 256  # the engine predicts in batches of 256; same blocks, same float32 sums


class PredictError(Exception):
    """A problem with the user's files, reported as one line."""


# -- the weight file ---------------------------------------------------------------------------------
def load_weight_file(path: str | Path) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(architecture, preprocessing, tensors) from an engine .npz weight file."""
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise PredictError(f"{path}: no such weight file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise PredictError(f"{path}: not a weight file ({exc})") from None
    if str(contents.pop("__format__", "")) != WEIGHTS_FORMAT:
        raise PredictError(f"{path}: not a CNN Studio weight file")
    architecture = json.loads(str(contents.pop("__architecture__")))
    preprocessing = json.loads(str(contents.pop("__preprocessing__", "null"))) or {}
    return architecture, preprocessing, contents


def layer_names(architecture: dict) -> list[str]:
    """The engine's layer names: the layer's "name", else its snake_case type and a running count,
    skipping numbers whose name another layer was given."""
    taken = {spec.get("name") for spec in architecture["layers"] if spec.get("name")}
    counts: dict[str, int] = {}
    names = []
    for spec in architecture["layers"]:
        kind = spec["type"]
        counts[kind] = counts.get(kind, 0) + 1
        snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", kind).lower().replace("re_lu", "relu")
        name = spec.get("name") or f"{snake}_{counts[kind]}"
        while not spec.get("name") and name in taken:
            counts[kind] += 1
            name = f"{snake}_{counts[kind]}"
        names.append(name)
    return names


# -- the engine's kernels, in NumPy ------------------------------------------------------------------
def resolve_padding(padding, kernel: int, stride: int, size: int) -> tuple[int, int]:
    """(before, after) padding on one axis; 'same' puts the odd pixel after."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2
    return int(padding), int(padding)


def window_pads(x: np.ndarray, kernel: int, stride: int, padding) -> tuple[int, int, int, int]:
    top, bottom = resolve_padding(padding, kernel, stride, x.shape[1])
    left, right = resolve_padding(padding, kernel, stride, x.shape[2])
    return top, bottom, left, right


def pad_images(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    top, bottom, left, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def windows(xp: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, Ho, Wo, k, k, C) view of every window of a padded (N, H, W, C) batch."""
    n, h, w, c = xp.shape
    ho, wo = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    sn, sh, sw, sc = xp.strides
    return as_strided(xp, (n, ho, wo, kernel, kernel, c), (sn, sh * stride, sw * stride, sh, sw, sc),
                      writeable=False)


def conv2d(x: np.ndarray, t: dict, cfg: dict) -> np.ndarray:
    kernel = t["kernel"]
    kh, kw, c, f = kernel.shape
    stride = cfg.get("stride", 1)
    view = windows(pad_images(x, window_pads(x, kh, stride, cfg.get("padding", "valid"))), kh, stride)
    n, ho, wo = view.shape[:3]
    out = view.reshape(n * ho * wo, kh * kw * c) @ kernel.reshape(kh * kw * c, f)
    if "bias" in t:
        out += t["bias"]
    return out.reshape(n, ho, wo, f)


def pool2d(x: np.ndarray, cfg: dict, mode: str) -> np.ndarray:
    size = cfg.get("pool_size", 2)
    size = size[0] if isinstance(size, list) else size
    stride = cfg.get("stride") or size
    n, h, w, c = x.shape
    pads = window_pads(x, size, stride, cfg.get("padding", "valid"))
    if stride == size and not any(pads):
        ho, wo = h // size, w // size
        xr = x[:, : ho * size, : wo * size, :].reshape(n, ho, size, wo, size, c)
        return xr.mean(axis=(2, 4), dtype=x.dtype) if mode == "avg" else xr.max(axis=(2, 4))
    # Max pooling pads with -inf so padding never wins; average pooling counts padded zeros
    # unless count_include_pad is off (then each window is divided by the pixels it covers).
    view = windows(pad_images(x, pads, -np.inf if mode == "max" else 0.0), size, stride)
    if mode == "max":
        return view.reshape(*view.shape[:3], size * size, c).max(axis=3)
    if cfg.get("count_include_pad", True):
        return view.mean(axis=(3, 4), dtype=x.dtype)
    ones = windows(pad_images(np.ones((1, h, w, 1), x.dtype), pads), size, stride)
    return (view.sum(axis=(3, 4), dtype=x.dtype) / ones.sum(axis=(3, 4), dtype=x.dtype)).astype(x.dtype)


def dense(x: np.ndarray, t: dict) -> np.ndarray:
    out = x @ t["kernel"]
    if "bias" in t:
        out += t["bias"]
    return out


def batch_norm(x: np.ndarray, t: dict, cfg: dict) -> np.ndarray:
    scale = t["gamma"] / np.sqrt(t["moving_variance"] + cfg.get("epsilon", 1e-5))
    return (x * scale + (t["beta"] - t["moving_mean"] * scale)).astype(x.dtype, copy=False)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def activate(x: np.ndarray, kind: str | None, alpha: float | None = None) -> np.ndarray:
    if kind is None:
        return x
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, x * x.dtype.type(0.01 if alpha is None else alpha))
    if kind == "elu":
        a = x.dtype.type(1.0 if alpha is None else alpha)
        return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))
    if kind == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * x))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "softmax":
        return softmax(x)
    raise PredictError(f"unknown activation {kind!r}")


ACTIVATION_TYPES = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "Sigmoid": "sigmoid",
                    "Tanh": "tanh", "Softmax": "softmax"}


# -- the layers: one function per layer type, (inputs, settings, tensors) -> output -------------------
# --- generated layers: begin
LAYERS: dict = {}
# --- generated layers: end


def layer_ids(architecture: dict, names: list[str]) -> list[str]:
    """Each layer's id: its own "id", else its name (made unique), as the engine makes them up."""
    given = [spec.get("id") if isinstance(spec.get("id"), str) and spec.get("id") else None
             for spec in architecture["layers"]]
    taken = {i for i in given if i} | {"input"}
    ids = []
    for own, name in zip(given, names):
        if own is None:
            own, n = name, 2
            while own in taken:
                own, n = f"{name}_{n}", n + 1
            taken.add(own)
        ids.append(own)
    return ids


class Network:
    """The layers of a weight file's architecture, run in inference mode on (N, H, W, C) float32.

    A layer takes the layers its "inputs" name ("input": the network's input), or the layer before
    it; the last layer is the output. Each output is dropped once the last layer reading it has run.
    """

    def __init__(self, architecture: dict, tensors: dict[str, np.ndarray]) -> None:
        self.input_shape = tuple(architecture["input"]["shape"])
        names = layer_names(architecture)
        self.layers = []
        previous = "input"
        for name, layer_id, spec in zip(names, layer_ids(architecture, names), architecture["layers"]):
            if spec["type"] not in LAYERS:
                raise PredictError(f"unknown layer type {spec['type']!r}")
            prefix = name + "."
            own = {key[len(prefix):]: value.astype(np.float32, copy=False) for key, value in tensors.items()
                   if key.startswith(prefix) and "." not in key[len(prefix):]}
            self.layers.append((layer_id, LAYERS[spec["type"]], list(spec.get("inputs") or [previous]), spec, own))
            previous = layer_id
        self.last_reader = {source: i for i, (_, _, inputs, _, _) in enumerate(self.layers) for source in inputs}

    def forward(self, x: np.ndarray) -> np.ndarray:
        values = {"input": x}
        for i, (layer_id, run, inputs, cfg, t) in enumerate(self.layers):
            values[layer_id] = run([values[source] for source in inputs], cfg, t)
            for source in inputs:
                if self.last_reader[source] == i:
                    values.pop(source, None)
        return values[self.layers[-1][0]]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Normalized (N, H, W, C) inputs -> outputs (N, K), in the engine's batches."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise PredictError(f"inputs have shape {tuple(x.shape[1:])}, the network expects {self.input_shape}")
        x = x.astype(np.float32, copy=False)
        parts = [self.forward(x[i : i + BATCH_SIZE]) for i in range(0, len(x), BATCH_SIZE)]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def preprocess(raw: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Raw pixels (N, H, W, C) -> network inputs: (pixel * scale - mean) / std per channel, float32."""
    out = np.array(raw, dtype=np.float32, order="C", copy=True)
    scale = float(preprocessing.get("scale", 1 / 255))
    if scale != 1.0:
        out *= np.float32(scale)
    if preprocessing.get("mean") is not None:
        out -= np.asarray(preprocessing["mean"], dtype=np.float32)
        out /= np.asarray(preprocessing["std"], dtype=np.float32)
    return out


# -- image files -------------------------------------------------------------------------------------
def read_image(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file as (H, W, C) uint8 in the network's colour mode (C = 1 gray, 3 RGB)."""
    h, w, c = shape
    if c not in (1, 3):
        raise PredictError(f"{path}: the network takes {c}-channel inputs; give an .npy batch instead of images")
    if Image is None:
        pixels = _read_without_pillow(path)
        pixels = _to_channels(pixels, c, path)
        if pixels.shape[:2] != (h, w):
            raise PredictError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]} (width x height) but the "
                               f"network needs {w}x{h}; resize it, or install Pillow to resize automatically")
        return pixels
    try:
        with Image.open(path) as im:
            return picture_pixels(im, (h, w, c))
    except (OSError, ValueError, SyntaxError) as exc:  # what Pillow raises for damaged or odd files
        raise PredictError(f"{path}: cannot read the image ({exc})") from None


# The picture rule of CNN Studio (its engine/pictures.py, copied): the studio and the engine's image
# folders turn a picture into the same pixels, so a picture gets the same prediction here and there.
# --- generated pictures: begin
from engine.pictures import deep_to_uint8, picture_pixels  # noqa: E402 (predict.py holds their source)

# --- generated pictures: end


def _to_channels(pixels: np.ndarray, c: int, path: Path) -> np.ndarray:
    """(H, W, 1|2|3|4) uint8 -> (H, W, c) without Pillow, as ``picture_pixels`` does with it: transparent
    parts black (alpha composited onto black, Pillow's rounding), gray by Pillow's integer luma formula."""
    if pixels.shape[2] in (2, 4):
        alpha = pixels[:, :, -1:].astype(np.uint32)
        pixels = ((pixels[:, :, :-1].astype(np.uint32) * alpha + 127) // 255).astype(np.uint8)
    if pixels.shape[2] == c:
        return pixels
    if c == 3:
        return np.repeat(pixels, 3, axis=2)
    rgb = pixels.astype(np.uint32)
    gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return gray.astype(np.uint8)[..., None]


def _read_without_pillow(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PredictError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _decode_png(data, path)
    if data[:2] in (b"P2", b"P3", b"P5", b"P6"):
        return _decode_pnm(data, path)
    raise PredictError(f"{path}: only PNG and PGM/PPM images can be read without Pillow (pip install pillow)")


def _decode_png(data: bytes, path: Path) -> np.ndarray:
    """A non-interlaced PNG (any colour type, 1 to 16 bits) -> (H, W, C) uint8."""
    pos, idat, palette, header = 8, [], None, None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise PredictError(f"{path}: damaged PNG (no header)")
    width, height, depth, color, _, _, interlace = header
    if interlace:
        raise PredictError(f"{path}: interlaced PNGs need Pillow (pip install pillow)")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bits = depth * channels
    stride, bpp = (width * bits + 7) // 8, max(1, bits // 8)
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise PredictError(f"{path}: damaged PNG ({exc})") from None
    rows = raw[: height * (stride + 1)].reshape(height, stride + 1)
    image = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.int32)
    for y in range(height):
        line = rows[y, 1:].astype(np.int32)
        kind = rows[y, 0]
        if kind == 2:
            line = (line + previous) & 255
        elif kind in (1, 3, 4):
            line = _unfilter_sequential(line, previous, bpp, kind)
        image[y] = line
        previous = line.astype(np.int32)
    if depth == 16:
        wide = image.reshape(height, width, channels * 2).astype(np.uint16)
        values = (wide[:, :, 0::2] << 8) | wide[:, :, 1::2]
        pixels = (values >> 8).astype(np.uint8)
        if color in (0, 4):  # 16-bit gray is rescaled, as Pillow-based loading in the engine does
            pixels[..., 0] = deep_to_uint8(values[..., 0].astype(np.float32), "I;16")
    elif depth == 8:
        pixels = image.reshape(height, width, channels)
    else:  # 1, 2 or 4 bits per sample: unpack, then scale gray levels to 0..255
        samples = np.unpackbits(image, axis=1).reshape(height, stride * 8 // depth, depth)
        values = (samples * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(axis=2)[:, :width]
        pixels = values.astype(np.uint8)[..., None]
        if color == 0:
            pixels = (pixels.astype(np.uint32) * 255 // ((1 << depth) - 1)).astype(np.uint8)
    if color == 3:
        if palette is None:
            raise PredictError(f"{path}: damaged PNG (palette missing)")
        pixels = palette[pixels[..., 0]]
    return np.ascontiguousarray(pixels)


def _unfilter_sequential(line: np.ndarray, previous: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    out = line.copy()
    if kind == 1:  # Sub: a running sum per byte lane, modulo 256
        for lane in range(bpp):
            out[lane::bpp] = np.cumsum(line[lane::bpp]) & 255
        return out
    for i in range(len(line)):
        left = int(out[i - bpp]) if i >= bpp else 0
        up = int(previous[i])
        if kind == 3:  # Average
            out[i] = (line[i] + (left + up) // 2) & 255
        else:  # Paeth
            corner = int(previous[i - bpp]) if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
            out[i] = (line[i] + pred) & 255
    return out


def _decode_pnm(data: bytes, path: Path) -> np.ndarray:
    """PGM/PPM, binary (P5/P6) or text (P2/P3) -> (H, W, C) uint8."""
    magic = data[:2]
    tokens, pos = [], 2
    while len(tokens) < 3:
        match = re.compile(rb"\s*(#[^\n]*\n\s*)*(\d+)").match(data, pos)
        if match is None:
            raise PredictError(f"{path}: damaged PGM/PPM header")
        tokens.append(int(match.group(2)))
        pos = match.end()
    width, height, maxval = tokens
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    if magic in (b"P5", b"P6"):
        dtype = np.dtype(">u2") if maxval > 255 else np.uint8
        values = np.frombuffer(data, dtype, count, offset=pos + 1)
    else:
        values = np.array(data[pos:].split()[:count], dtype=np.int64)
    if values.size != count:
        raise PredictError(f"{path}: the image data is shorter than its header says")
    scaled = np.rint(values.astype(np.float64) * (255.0 / maxval)) if maxval != 255 else values
    return scaled.astype(np.uint8).reshape(height, width, channels)


# -- command line ------------------------------------------------------------------------------------
def read_input(path: Path, shape: tuple[int, int, int], normalized: bool,
               preprocessing: dict) -> tuple[np.ndarray, list[str]]:
    """One input file as a normalized (N, H, W, C) batch and a label per sample; PredictError if unusable."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PredictError(f"{path}: cannot read the array ({exc})") from None
        if tuple(array.shape) == tuple(shape):
            array = array[None]  # one image
        elif array.ndim == 3 and shape[2] == 1 and tuple(array.shape[1:]) == tuple(shape[:2]):
            array = array[..., None]  # a grayscale batch without its channel axis
        if array.ndim != 4 or tuple(array.shape[1:]) != tuple(shape):
            raise PredictError(f"{path}: array has shape {array.shape}, expected (N, {', '.join(map(str, shape))})")
        batch = array.astype(np.float32) if normalized else preprocess(array, preprocessing)
        return batch, [f"{path.name}[{i}]" for i in range(len(array))]
    return preprocess(read_image(path, shape)[None], preprocessing), [path.name]


def gather_inputs(paths: list[str], shape: tuple[int, int, int], normalized: bool,
                  preprocessing: dict) -> tuple[np.ndarray, list[str], list[str]]:
    """Stack every usable input into one normalized (N, H, W, C) batch: returns it, a label per sample and
    one message per input that could not be used (the others are classified all the same)."""
    batches, sources, problems = [], [], []
    for name in paths:
        try:
            batch, labels = read_input(Path(name), shape, normalized, preprocessing)
        except PredictError as exc:
            problems.append(str(exc))
            continue
        batches.append(batch)
        sources += labels
    batch = np.concatenate(batches) if batches else np.zeros((0, *shape), np.float32)
    return batch, sources, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify images with a network trained in CNN Studio.")
    parser.add_argument("inputs", nargs="+", help="image files or .npy arrays of raw pixels (N, H, W, C)")
    parser.add_argument("--weights", help=f"engine .npz weight file (default: {WEIGHTS_FILE} beside this script)")
    parser.add_argument("--normalized", action="store_true", help=".npy inputs are already normalized")
    parser.add_argument("--top", type=int, default=3, help="classes to list per input (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--save", help="write the probabilities (N, K) to this .npy file")
    args = parser.parse_args(argv)
    inputs = list(args.inputs)
    weights = args.weights
    if weights is None and inputs[0].lower().endswith(".npz"):
        weights = inputs.pop(0)
    weights = weights or str(Path(__file__).resolve().with_name(WEIGHTS_FILE))
    try:
        if not inputs:
            raise PredictError("no inputs given: name image files or .npy arrays")
        architecture, preprocessing, tensors = load_weight_file(weights)
        network = Network(architecture, tensors)
        batch, sources, problems = gather_inputs(inputs, network.input_shape, args.normalized, preprocessing)
        for problem in problems:  # one line each; the other inputs are classified all the same
            print(f"error: {problem}", file=sys.stderr)
        if not sources:
            return 2
        outputs = network.predict(batch)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.save:
        np.save(args.save, outputs)
    flat = outputs.reshape(len(outputs), -1)
    names = CLASS_NAMES if len(CLASS_NAMES) == flat.shape[1] else [str(i) for i in range(flat.shape[1])]
    results = []
    for source, row in zip(sources, flat):
        best = int(np.argmax(row))
        top = [(names[i], float(row[i])) for i in np.argsort(-row, kind="stable")[: max(args.top, 1)]]
        results.append({"input": source, "label": best, "class": names[best], "score": float(row[best]),
                        "top": top, "outputs": [float(v) for v in row]})
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(f"{r['input']}: {r['class']}  (" + ", ".join(f"{n} {p:.3f}" for n, p in r["top"]) + ")")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
