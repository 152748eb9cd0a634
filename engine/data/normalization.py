"""How raw stored pixels become network inputs; small and JSON-safe so weight files can carry it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import DataError, shown


@dataclass
class Normalization:
    """``(x * scale - mean) / std`` per channel, computed in float32.

    ``scale`` maps stored values to [0, 1] (1/255 for uint8, 1.0 for float sources already in [0, 1]);
    ``mean`` and ``std`` are per channel, measured after scaling; ``None`` means no centering.
    """

    scale: float = 1 / 255
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        try:
            self.scale = float(self.scale)
            if self.mean is not None:
                self.mean = tuple(float(v) for v in self.mean)
            if self.std is not None:
                self.std = tuple(float(v) for v in self.std)
        except (TypeError, ValueError) as exc:
            raise DataError(f"normalization: values must be numbers ({exc})") from None
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise DataError(f"normalization: scale must be a positive number, got {self.scale}")
        if (self.mean is None) != (self.std is None):
            raise DataError("normalization: mean and std must be given together")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std) or not self.mean:
                raise DataError(f"normalization: {len(self.mean)} means but {len(self.std)} stds")
            if not all(math.isfinite(v) for v in self.mean):
                raise DataError("normalization: mean contains NaN or infinity")
            if not all(math.isfinite(v) and v > 0 for v in self.std):
                raise DataError(f"normalization: every std must be positive, got {list(self.std)}")

    @property
    def centered(self) -> bool:
        return self.mean is not None

    def scaled(self, x: np.ndarray) -> np.ndarray:
        """Raw (..., C) values times ``scale``, as a new float32 C-contiguous array (no centering)."""
        out = np.array(x, dtype=np.float32, order="C", copy=True)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def center_inplace(self, x: np.ndarray) -> np.ndarray:
        """Subtract mean and divide by std per channel, in place on a float32 (..., C) array; returns it.

        Split from :meth:`scaled` so augmentation can run in between: its zero fill then means black.
        """
        if self.mean is None or self.std is None:
            return x
        if x.shape[-1] != len(self.mean):
            raise DataError(f"normalization: made for {len(self.mean)} channel(s), "
                            f"but the images have {x.shape[-1]}")
        x -= np.asarray(self.mean, dtype=np.float32)
        x /= np.asarray(self.std, dtype=np.float32)
        return x

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw (..., C) batch -> new normalized float32 C-contiguous array of the same shape."""
        return self.center_inplace(self.scaled(x))

    def to_dict(self) -> dict:
        """JSON-safe form: ``{"scale": float, "mean": [..] | None, "std": [..] | None}``."""
        return {
            "scale": self.scale,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        if not isinstance(d, dict):
            raise DataError(f"normalization: expected a mapping, got {type(d).__name__}")
        unknown = set(d) - {"scale", "mean", "std"}
        if unknown:
            raise DataError(f"normalization: unknown keys {shown(sorted(unknown))}")
        scale = d.get("scale", 1 / 255)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise DataError(f"normalization: scale must be a number, got {shown(scale)}")
        for key in ("mean", "std"):
            value = d.get(key)
            if value is not None and (not isinstance(value, (list, tuple))
                                      or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
                raise DataError(f"normalization: {key} must be a list of numbers, got {shown(value)}")
        return cls(
            scale=scale,
            mean=tuple(d["mean"]) if d.get("mean") is not None else None,
            std=tuple(d["std"]) if d.get("std") is not None else None,
        )
