"""Augmentation: exact geometry with forced random draws, and batch-level behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import Augmentation, DataError


class FixedDraws:
    """Stands in for np.random.Generator, returning chosen values per image."""

    def __init__(self, shifts: list[int] | None = None, flips: list[bool] | None = None,
                 angles: list[float] | None = None) -> None:
        self.shifts = list(shifts or [])
        self.flips = flips
        self.angles = angles

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        return np.array(self.shifts.pop(0))

    def random(self, size: int) -> np.ndarray:
        return np.where(np.array(self.flips), 0.0, 1.0)  # < 0.5 means flip

    def uniform(self, low: float, high: float, size: int) -> np.ndarray:
        return np.array(self.angles, dtype=np.float64)


def ramp(b: int = 2, h: int = 5, w: int = 5, c: int = 1) -> np.ndarray:
    return (np.arange(b * h * w * c, dtype=np.float32).reshape(b, h, w, c) + 1) / 100


def test_inactive_is_identity_copy() -> None:
    x = ramp()
    aug = Augmentation()
    assert not aug.active
    out = aug(x, np.random.default_rng(0))
    assert np.array_equal(out, x) and not np.shares_memory(out, x)


def test_shift_moves_each_image_by_its_own_amount_with_zero_fill() -> None:
    x = ramp()
    # dy then dx, one value per image: image 0 moves down 1, image 1 moves left 2.
    out = Augmentation(shift=2)(x, FixedDraws(shifts=[[1, 0], [0, -2]]))  # type: ignore[arg-type]
    assert np.array_equal(out[0, 1:], x[0, :-1]) and (out[0, 0] == 0).all()
    assert np.array_equal(out[1, :, :-2], x[1, :, 2:]) and (out[1, :, -2:] == 0).all()


def test_hflip_flips_only_chosen_images() -> None:
    x = ramp(c=3)
    out = Augmentation(hflip=True)(x, FixedDraws(flips=[True, False]))  # type: ignore[arg-type]
    assert np.array_equal(out[0], x[0, :, ::-1]) and np.array_equal(out[1], x[1])


def test_rotation_by_90_degrees_is_exact_and_zero_is_identity() -> None:
    x = ramp()
    out = Augmentation(rotation=90)(x, FixedDraws(angles=[90.0, 0.0]))  # type: ignore[arg-type]
    assert np.allclose(out[1], x[1], atol=1e-6)
    rotated = [np.rot90(x[0, ..., 0], k) for k in (1, -1)]
    assert any(np.allclose(out[0, ..., 0], r, atol=1e-5) for r in rotated)


def test_small_rotation_keeps_mass_roughly_and_fills_zero() -> None:
    x = np.zeros((1, 21, 21, 1), np.float32)
    x[0, 5:16, 5:16] = 1.0  # a square well inside the frame
    out = Augmentation(rotation=15)(x, FixedDraws(angles=[15.0]))  # type: ignore[arg-type]
    assert abs(out.sum() - x.sum()) / x.sum() < 0.05
    assert out[0, 0].max() == 0 and out.min() >= 0 and out.max() <= 1.0 + 1e-6


def test_random_batch_is_vectorised_seeded_and_varied() -> None:
    x = np.repeat(ramp(b=1, h=8, w=8, c=3), 16, axis=0)
    aug = Augmentation(shift=2, hflip=True, rotation=10)
    a = aug(x, np.random.default_rng(5))
    b = aug(x, np.random.default_rng(5))
    assert a.shape == x.shape and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.array_equal(a, b)
    assert len({img.tobytes() for img in a}) > 8  # every image draws its own transform


@pytest.mark.parametrize("kwargs", [{"shift": -1}, {"shift": 1.5}, {"rotation": -5}, {"rotation": 400},
                                    {"rotation": "a lot"}])
def test_bad_settings_are_data_errors(kwargs: dict) -> None:
    with pytest.raises(DataError, match="augmentation"):
        Augmentation(**kwargs)


def test_wrong_rank_is_a_data_error() -> None:
    with pytest.raises(DataError, match="batch"):
        Augmentation(shift=1)(np.zeros((4, 4, 1), np.float32), np.random.default_rng(0))
