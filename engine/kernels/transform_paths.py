"""The convolutions that run through a transform instead of im2col, and which one a layer takes.

Each path is a module with the same five functions: ``worthwhile`` (whether it should beat the
direct convolution for a shape; the paths' conditions never overlap), the forward and backward
kernels, and ``memory_bytes`` (what a training step holds). Conv2D, the fused steps and the
memory estimate ask ``choose``; nothing else needs to know which paths exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.kernels import spectral, winograd


@dataclass(frozen=True)
class TransformPath:
    name: str
    worthwhile: Callable[..., bool]
    forward: Callable[..., tuple]
    backward: Callable[..., tuple]
    memory_bytes: Callable[..., int]


SPECTRAL = TransformPath("spectral", spectral.worthwhile, spectral.spectral_conv2d_forward,
                         spectral.spectral_conv2d_backward, spectral.memory_bytes)
WINOGRAD = TransformPath("winograd", winograd.worthwhile, winograd.winograd_conv2d_forward,
                         winograd.winograd_conv2d_backward, winograd.memory_bytes)
PATHS = (SPECTRAL, WINOGRAD)


def passes_for(training: bool, needs_input_grad: bool) -> str:
    """What a step computes: 'forward' (inference), 'kernel' (and the kernel gradient), 'input'."""
    if not training:
        return "forward"
    return "input" if needs_input_grad else "kernel"


def choose(input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], stride: int, padding: str | int,
           passes: str) -> TransformPath | None:
    """The transform path a convolution of an (N, H, W, C) batch should take, or None (im2col)."""
    for path in PATHS:
        if path.worthwhile(input_shape, kernel_shape, stride, padding, passes):
            return path
    return None
