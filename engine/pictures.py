"""The one rule that turns a picture into the pixels a network takes.

The studio's "open a picture" and drawing pad, folders of images (the command line's and the studio's
datasets) and the exported ``predict.py`` all read pictures through ``picture_pixels``, so one file
gives one array everywhere (and so the same prediction). The functions use only NumPy and Pillow:
``predict.py`` carries a copy of their source.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def picture_pixels(im: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    """An opened Pillow picture -> (H, W, C) uint8 for a network input of ``shape`` (H, W, C).

    In this order: the EXIF orientation is applied; 16-bit and float pictures are rescaled to 0..255
    (not clipped); transparent parts become black (datasets like MNIST draw light strokes on black);
    the picture becomes luminance (C = 1) or RGB (C = 3); it is resized to W x H with Pillow's
    bilinear filter (which averages over the covered area when shrinking, so thin strokes stay).
    A picture holding NaN or infinite values raises ValueError.
    """
    h, w, c = (int(v) for v in shape)
    if c not in (1, 3):
        raise ValueError(f"pictures can feed inputs with 1 or 3 channels, not {c}")
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        im = Image.fromarray(deep_to_uint8(np.asarray(im, dtype=np.float32), im.mode))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    im = im.convert("L" if c == 1 else "RGB")
    if im.size != (w, h):
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(h, w, c)


def deep_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """16-bit or float pixel values -> uint8, rescaled rather than clipped (float pictures in [0, 1] x 255)."""
    if not np.isfinite(a).all():
        raise ValueError("the picture holds NaN or infinite pixel values")
    top = float(a.max()) if a.size else 0.0
    if top > 255:
        a = a * (255.0 / (65535.0 if top <= 65535 else top))
    elif mode == "F" and top <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)
