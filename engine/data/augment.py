"""Random shifts, horizontal flips and small rotations, applied to a whole batch at once.

Each image gets its own random transform, but all of them are done by one gather: for every output
pixel we compute (with broadcasting) where it comes from in the source image, then read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import DataError


@dataclass(frozen=True)
class Augmentation:
    """Per-image random transforms with zero fill outside the source image.

    ``shift``: max shift in pixels along each axis (uniform integer in [-shift, shift]);
    ``hflip``: mirror left-right with probability 1/2; ``rotation``: max degrees (uniform in
    [-rotation, rotation]), sampled bilinearly.
    """

    shift: int = 0
    hflip: bool = False
    rotation: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, (int, np.integer)) or self.shift < 0:
            raise DataError(f"augmentation: shift must be a whole number of pixels >= 0, got {self.shift!r}")
        try:
            rotation = float(self.rotation)
        except (TypeError, ValueError):
            raise DataError(f"augmentation: rotation must be in degrees, got {self.rotation!r}") from None
        if not (math.isfinite(rotation) and 0.0 <= rotation <= 180.0):
            raise DataError(f"augmentation: rotation must be 0..180 degrees, got {self.rotation!r}")
        object.__setattr__(self, "shift", int(self.shift))
        object.__setattr__(self, "hflip", bool(self.hflip))
        object.__setattr__(self, "rotation", rotation)

    @property
    def active(self) -> bool:
        """True when calling it can change an image."""
        return self.shift > 0 or self.hflip or self.rotation > 0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(B, H, W, C) float32 -> new (B, H, W, C) float32 array, each image transformed at random."""
        if x.ndim != 4:
            raise DataError(f"augmentation: expected a (B, H, W, C) batch, got shape {x.shape}")
        x = np.asarray(x, dtype=np.float32)
        b, h, w, _ = x.shape
        if not self.active or b == 0:
            return np.array(x, order="C", copy=True)

        # Output pixel grid, (1, H, 1) and (1, 1, W); broadcasting against per-image (B, 1, 1) parameters.
        ii = np.arange(h, dtype=np.float64)[None, :, None]
        jj = np.arange(w, dtype=np.float64)[None, None, :]
        dy = rng.integers(-self.shift, self.shift + 1, size=b)[:, None, None] if self.shift else 0
        dx = rng.integers(-self.shift, self.shift + 1, size=b)[:, None, None] if self.shift else 0
        flip = (rng.random(b) < 0.5)[:, None, None] if self.hflip else None

        if self.rotation > 0:
            # Inverse mapping: rotate the output coordinates back about the image centre.
            theta = np.deg2rad(rng.uniform(-self.rotation, self.rotation, size=b))[:, None, None]
            cos, sin = np.cos(theta), np.sin(theta)
            ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
            yi, xj = ii - ci - dy, jj - cj - dx
            src_i = cos * yi + sin * xj + ci
            src_j = -sin * yi + cos * xj + cj
            if flip is not None:
                src_j = np.where(flip, (w - 1) - src_j, src_j)
            return _bilinear(x, src_i, src_j)

        # Shifts and flips only: whole-pixel moves, so one exact gather is enough.
        src_i = np.broadcast_to(ii - dy, (b, h, w))
        src_j = np.broadcast_to(jj - dx, (b, h, w))
        if flip is not None:
            src_j = np.where(flip, (w - 1) - src_j, src_j)
        return _nearest(x, src_i.astype(np.int64), src_j.astype(np.int64))


def _padded(x: np.ndarray) -> np.ndarray:
    # A one-pixel zero border: clipping any out-of-range coordinate onto it reads zero, so no masks.
    return np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _nearest(x: np.ndarray, src_i: np.ndarray, src_j: np.ndarray) -> np.ndarray:
    b, h, w, _ = x.shape
    xp = _padded(x)
    i = np.clip(src_i + 1, 0, h + 1)
    j = np.clip(src_j + 1, 0, w + 1)
    return np.ascontiguousarray(xp[np.arange(b)[:, None, None], i, j])


def _bilinear(x: np.ndarray, src_i: np.ndarray, src_j: np.ndarray) -> np.ndarray:
    b, h, w, _ = x.shape
    xp = _padded(x)
    si = np.clip(src_i + 1, 0, h + 1)
    sj = np.clip(src_j + 1, 0, w + 1)
    i0 = np.floor(si).astype(np.int64)
    j0 = np.floor(sj).astype(np.int64)
    i1 = np.minimum(i0 + 1, h + 1)
    j1 = np.minimum(j0 + 1, w + 1)
    wi = (si - i0).astype(np.float32)[..., None]
    wj = (sj - j0).astype(np.float32)[..., None]
    bb = np.arange(b)[:, None, None]
    top = xp[bb, i0, j0] * (1 - wj) + xp[bb, i0, j1] * wj
    bottom = xp[bb, i1, j0] * (1 - wj) + xp[bb, i1, j1] * wj
    out = top * (1 - wi) + bottom * wi
    return np.ascontiguousarray(out, dtype=np.float32)
