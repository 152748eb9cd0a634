"""Running a kernel as usual and again split everywhere: across three threads, in one-image blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest

from engine import parallel
from engine.kernels import batch_norm as batch_norm_kernels
from engine.kernels import blocks
from engine.kernels.conv import conv2d_backward
from engine.layers import core

Result = TypeVar("Result")


def split_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lower the thresholds so that every kernel splits its batch across the threads and into
    blocks of a single image (normally only jobs of megabytes are split)."""
    monkeypatch.setattr(blocks, "MIN_SHARE", 1)
    monkeypatch.setattr(blocks, "MIN_MACS", 1)
    monkeypatch.setattr(core, "MIN_MACS", 1)
    for module in (blocks, batch_norm_kernels):
        monkeypatch.setattr(module, "BLOCK_BYTES", 64)
    monkeypatch.setattr(blocks, "SERIAL_BLOCK_BYTES", 64)


def alone_and_split(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Result],
                    patch: Callable[[pytest.MonkeyPatch], None] | None = None) -> tuple[Result, Result]:
    """(run() on one thread with the usual thresholds, run() on three threads with everything split);
    ``patch`` adds patches of its own for the split run."""
    before = parallel.get_num_threads()
    try:
        parallel.set_num_threads(1)
        alone = run()
        with monkeypatch.context() as patched:
            split_everything(patched)
            if patch is not None:
                patch(patched)
            parallel.set_num_threads(3)
            split = run()
    finally:
        parallel.set_num_threads(before)
    return alone, split


def assert_conv_backward_splits_alike(monkeypatch: pytest.MonkeyPatch, seed: int, x_shape: tuple[int, ...],
                                      kernel_shape: tuple[int, ...], stride: int, atol: float) -> None:
    """A 'same' convolution's backward with a ReLU mask gives the same gradients alone and split everywhere."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    kernel = rng.standard_normal(kernel_shape)
    n, h, w, _ = x_shape
    grad = rng.standard_normal((n, -(-h // stride), -(-w // stride), kernel_shape[-1]))
    mask = grad > -0.5

    def backward():
        return conv2d_backward(grad, x, kernel, True, stride, "same", relu_mask=mask)

    alone, split = alone_and_split(monkeypatch, backward)
    for a, b in zip(alone, split):
        np.testing.assert_allclose(a, b, atol=atol)
