"""2-D convolution over (N, H, W, C) batches with (kh, kw, C, F) kernels: im2col + one matmul, or a
transform where that is faster (engine/kernels/transform_paths.py: Fourier for large kernels,
Winograd for wide 3x3 ones)."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.kernels.blocks import Workspace
from engine.kernels.conv import conv2d_backward, conv2d_forward
from engine.kernels.im2col import conv_pads
from engine.kernels.transform_paths import TransformPath, choose, passes_for
from engine.layers.activated import ACTIVATION_FIELD, ActivatedLayer
from engine.layers.base import ConfigError, Field, Shape, require_rank
from engine.layers.initializers import init_kernel
from engine.shapes import output_size


class Conv2D(ActivatedLayer):
    type_name = "Conv2D"
    category = "Convolution"
    description = (
        "Slides learnable filters over the image; each filter takes a dot product with every local "
        "region and produces one feature map that responds to a pattern such as an edge or texture."
    )
    fields = (
        Field("filters", "int", 32, "Number of filters, i.e. output channels.", minimum=1, maximum=4096),
        Field("kernel_size", "size", 3, "Height and width of each filter.", minimum=1, maximum=31),
        Field("stride", "int", 1, "Step between neighbouring windows.", minimum=1, maximum=16),
        Field("padding", "padding", "valid", "'valid' (none), 'same' (keep size / stride) or pixels per side."),
        Field("use_bias", "bool", True, "Add a learnable bias per filter."),
        ACTIVATION_FIELD,
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        # Scratch for the im2col blocks, padded inputs and window gradients, reused from step to step.
        self.workspace = Workspace()

    def output_shape(self, input_shape: Shape) -> Shape:
        require_rank(self, input_shape, 3, "images (height x width x channels)")
        h, w, _ = input_shape
        k, s, p = self.config["kernel_size"], self.config["stride"], self.config["padding"]
        top, bottom, left, right = conv_pads(h, w, k, k, s, p)
        ho = output_size(h, k, s, top, bottom)
        wo = output_size(w, k, s, left, right)
        if ho < 1 or wo < 1:
            axis, size, a, b, out = ("height", h, top, bottom, ho) if ho < 1 else ("width", w, left, right, wo)
            pad_text = f"{a}" if a == b else f"({a}+{b})/2"
            raise ConfigError(
                f"kernel_size {k} is larger than its {h}x{w} input",
                field="kernel_size",
                value=k,
                hint=f"output {axis} ({size} + 2*{pad_text} - {k}) / {s} + 1 = {out}; the kernel is larger "
                f"than its {h}x{w} input. Use padding 'same' or a smaller kernel.",
                fix="padding_same",
            )
        return ho, wo, self.config["filters"]

    def param_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        k, f = self.config["kernel_size"], self.config["filters"]
        shapes = {"kernel": (k, k, input_shape[2], f)}
        if self.config["use_bias"]:
            shapes["bias"] = (f,)
        return shapes

    def macs(self, input_shape: Shape) -> int:
        ho, wo, f = self.output_shape(input_shape)
        k = self.config["kernel_size"]
        return ho * wo * f * k * k * input_shape[2]

    def init_param(self, name: str, shape: Shape, rng: np.random.Generator) -> np.ndarray:
        if name == "bias":
            return np.zeros(shape, np.float32)
        kh, kw, c, f = shape
        return init_kernel(shape, kh * kw * c, kh * kw * f, self.config["activation"], rng)

    def transform_path(self, x_shape: tuple[int, ...], training: bool) -> TransformPath | None:
        """The transform this convolution of an (N, H, W, C) batch runs through instead of im2col, if
        any (engine/kernels/transform_paths.py: Fourier for large kernels, Winograd for wide 3x3)."""
        return choose(x_shape, self.params["kernel"].shape, self.config["stride"], self.config["padding"],
                      passes_for(training, self.needs_input_grad))

    def linear_forward(self, x: np.ndarray, training: bool, relu: bool) -> np.ndarray:
        # Training records the ReLU mask for backward while each block is in cache; after
        # inference, a backward (saliency) derives it from the output.
        mask = np.empty((len(x), *self.output_shape(x.shape[1:])), bool) if relu and training else None
        kernel, bias, padding = self.params["kernel"], self.params.get("bias"), self.config["padding"]
        kept = None
        path = self.transform_path(x.shape, training)
        if path is not None:
            out, kept = path.forward(x, kernel, bias, padding, training, relu, mask, self.workspace)
        else:
            out = conv2d_forward(x, kernel, bias, self.config["stride"], padding, self.workspace, relu=relu,
                                 relu_mask=mask)
        self._cache = (x, out if relu and mask is None else mask, path, kept)
        return out

    def linear_backward(self, grad: np.ndarray, relu: bool) -> np.ndarray:
        x, mask, path, kept = self._cache
        if relu and mask.dtype != bool:
            mask = mask > 0
        kernel, with_bias, padding = self.params["kernel"], "bias" in self.params, self.config["padding"]
        if path is not None:
            d_x, d_kernel, d_bias = path.backward(
                grad, x, kept, kernel, with_bias, padding, self.needs_input_grad, mask if relu else None,
                self.workspace,
            )
        else:
            d_x, d_kernel, d_bias = conv2d_backward(
                grad, x, kernel, with_bias, self.config["stride"], padding, self.needs_input_grad, self.workspace,
                mask if relu else None,
            )
        self.grads["kernel"][...] = d_kernel
        if d_bias is not None:
            self.grads["bias"][...] = d_bias
        return d_x
