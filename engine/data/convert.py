"""Colour-mode and size conversion, for image files (Pillow) and for already-loaded arrays."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.data.arrays import fail
from engine.errors import DataError

GRAYSCALE = "grayscale"
RGB = "rgb"
_COLOR_ALIASES = {
    "grayscale": GRAYSCALE, "greyscale": GRAYSCALE, "gray": GRAYSCALE, "grey": GRAYSCALE, "l": GRAYSCALE,
    "rgb": RGB, "color": RGB, "colour": RGB,
}
# ITU-R 601-2 luma, the weights Pillow uses for convert("L"), so arrays and files agree.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK_ROWS = 8192


def parse_color_mode(value: str | None) -> str | None:
    """``"grayscale"``, ``"rgb"`` or None (keep / decide from the data); accepts a few spellings."""
    if value is None or (isinstance(value, str) and value.lower() in ("", "auto")):
        return None
    mode = _COLOR_ALIASES.get(str(value).lower())
    if mode is None:
        raise DataError(f"color mode must be 'grayscale' or 'rgb', got {value!r}")
    return mode


def parse_image_size(value: object) -> tuple[int, int] | None:
    """(height, width) in pixels, both >= 1; a single int means a square; None means keep."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value  # type: ignore[misc]
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"image size must be (height, width) in whole pixels >= 1, got {value!r}")
    return int(h), int(w)


def convert_images(x: np.ndarray, image_size: tuple[int, int] | None, color_mode: str | None,
                   where: object) -> np.ndarray:
    """(N, H, W, C) -> (N, H', W', C') with the requested colour mode and size; unchanged when already so.

    Colour conversion is vectorised (luma weights / channel repeat); resizing is bilinear, per image.
    """
    c = x.shape[3]
    if color_mode == GRAYSCALE and c != 1:
        if c != 3:
            raise fail(where, f"cannot convert {c}-channel images to grayscale (need 1 or 3 channels)")
        out = np.empty((*x.shape[:3], 1), dtype=x.dtype)
        for s in range(0, len(x), _CHUNK_ROWS):
            g = x[s:s + _CHUNK_ROWS].astype(np.float32) @ _LUMA
            out[s:s + _CHUNK_ROWS, ..., 0] = np.rint(g) if x.dtype == np.uint8 else g
        x = out
    elif color_mode == RGB and c != 3:
        if c != 1:
            raise fail(where, f"cannot convert {c}-channel images to RGB (need 1 or 3 channels)")
        x = np.repeat(x, 3, axis=3)
    if image_size is None or tuple(x.shape[1:3]) == image_size:
        return x
    h, w = image_size
    if x.dtype == np.uint8 and x.shape[3] not in (1, 3):
        raise fail(where, f"cannot resize {x.shape[3]}-channel uint8 images (need 1 or 3 channels)")
    out = np.empty((len(x), h, w, x.shape[3]), dtype=x.dtype)
    for i in range(len(x)):
        if x.dtype == np.uint8:  # 2-D uint8 -> Pillow "L", (H, W, 3) -> "RGB"
            img = np.ascontiguousarray(x[i, ..., 0] if x.shape[3] == 1 else x[i])
            r = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
            out[i] = r.reshape(h, w, -1)
        else:  # float32 becomes Pillow "F", which is single-channel, so resize each channel
            for ch in range(x.shape[3]):
                plane = Image.fromarray(np.ascontiguousarray(x[i, ..., ch]))
                out[i, ..., ch] = np.asarray(plane.resize((w, h), Image.Resampling.BILINEAR))
    return out
