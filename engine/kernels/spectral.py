"""Stride-1 convolution through the discrete Fourier transform, for kernels of 4x4 and larger.

A correlation of an image with a kh x kw kernel is, in the frequency domain, one complex product
per frequency: Y(u, v) = X(u, v) * conj(K(u, v)). Over a batch that is, for each frequency, an
(images x C) @ (C x F) matrix product, kh*kw times fewer multiply-adds than the direct
convolution's (the transforms cost extra, but for a 5x5 kernel and 32 or more channels far less
than they save). Backward is the same three-step pattern: the input gradient is the output
gradient's spectrum times K (a full convolution), the kernel gradient X's spectrum times the
output gradient's, conjugated, summed over the images.

The transforms are matrix products with precomputed DFT matrices (one per image axis, the
padding folded in as a phase offset, only the rows and columns wanted computed), not numpy's FFT:
for planes of 8 to 40 pixels the products run in BLAS at a fraction of the cost of per-plane FFT
calls, and no padded copy of the input is ever made. Along the width only the v = 0..Q/2 half of
the spectrum is kept (the signals are real); the inverse weighs each kept frequency by how many
it stands for.

Sizes: the transform size P x Q is the padded input's, so circular correlation equals the
linear one on every output pixel (and every input pixel for the gradient: nothing wraps around).

Shapes stay the engine's: x (N, H, W, C), kernel (kh, kw, C, F), output (N, Ho, Wo, F); the
spectra are (N, P*V, C) complex arrays, one (P*V, C) plane per image.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from engine.kernels.activation import finish_block
from engine.kernels.blocks import Workspace, summed_parts
from engine.kernels.im2col import conv_pads
from engine.parallel import parallel_for

# Switched off by tests (and measurements) to compare with the direct convolution.
enabled = True

# The spectral path is taken where its estimated multiply-adds (complex ones counted as four)
# are this many times fewer than the direct convolution's, by what a step computes (see
# transform_paths.passes_for). Measured on one core (benchmarks/README.md): in training,
# estimates of 1.1 to 3 ran 1.26x to 2.3x faster; a forward alone gains less (the direct forward needs no col2im or
# second im2col), 1.13 ran 0.94x, 1.26 ran 1.09x.
MIN_SAVING = {"forward": 1.25, "kernel": 1.1, "input": 1.1}
# Smaller kernels (3x3) never gained, whatever the channels.
MIN_KERNEL_AREA = 16
# Images per transform chunk: enough rows for the per-frequency products, bounded memory.
CHUNK_IMAGES = 32
# The batch the choice of path assumes, whatever the real one (see worthwhile).
DECISION_IMAGES = 32


def _phases(rows: np.ndarray, size: int, columns: np.ndarray, sign: int) -> np.ndarray:
    """e^(sign * 2 pi i * row * column / size) for every (row, column) pair."""
    return np.exp(sign * 2j * np.pi * np.outer(rows, columns) / size)


def _half_spectrum_weights(q: int) -> np.ndarray:
    """How many frequencies each kept v = 0..q/2 stands for in a real signal's inverse transform."""
    weights = np.full(q // 2 + 1, 2.0)
    weights[0] = 1.0
    if q % 2 == 0:
        weights[-1] = 1.0
    return weights


def worthwhile(input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], stride: int,
               padding: str | int, passes: str) -> bool:
    """Whether the spectral path should be faster than the direct one for this convolution.

    ``input_shape`` (N, H, W, C); ``passes`` as transform_paths.passes_for gives it. A rough
    multiply-add count of each path (transforms as the products they are, complex multiply-adds
    as four real ones), compared with MIN_SAVING[passes]. The answer does not depend on N: the two processes of a
    split step, whose halves of an odd batch differ by an image, must take the same path (their
    batch-norm layers swap sums that the fused and unfused steps take differently)."""
    if not enabled or stride != 1:
        return False
    _, h, w, c = input_shape
    kh, kw, _, f = kernel_shape
    if kh * kw < MIN_KERNEL_AREA:
        return False
    n = DECISION_IMAGES
    top, bottom, left, right = conv_pads(h, w, kh, kw, 1, padding)
    p, q = h + top + bottom, w + left + right
    ho, wo, v = p - kh + 1, q - kw + 1, q // 2 + 1
    if ho < 1 or wo < 1:
        return False
    products = {"forward": 1, "kernel": 2, "input": 3}[passes]
    direct = products * ho * wo * kh * kw * c * f

    def into_spectrum(rows: int, columns: int, channels: int) -> int:
        return 4 * (rows * columns * v + p * rows * v) * channels

    def out_of_spectrum(rows: int, columns: int, channels: int) -> int:
        return 4 * (rows * p * v + rows * columns * v) * channels

    per_image = into_spectrum(h, w, c) + out_of_spectrum(ho, wo, f) + products * 4 * p * v * c * f
    if passes != "forward":
        per_image += into_spectrum(ho, wo, f)
    if passes == "input":
        per_image += out_of_spectrum(h, w, c)
    per_batch = (1 if passes == "forward" else 2) * 4 * p * v * kh * kw * c * f
    return direct * n >= MIN_SAVING[passes] * (per_image * n + per_batch)


def memory_bytes(input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], padding: str | int,
                 threads: int, itemsize: int = 4) -> int:
    """About what the spectral path holds during a training step of an (N, H, W, C) batch: the
    input's spectrum kept for backward and, per thread, a chunk's spectra and transform scratch."""
    n, h, w, c = input_shape
    kh, kw, _, f = kernel_shape
    top, bottom, left, right = conv_pads(h, w, kh, kw, 1, padding)
    p, v = h + top + bottom, (w + left + right) // 2 + 1
    complex_bytes = 2 * itemsize
    k = p * v
    chunk = min(CHUNK_IMAGES, n)
    kept = (n * k * c + k * c * f) * complex_bytes  # the input's spectrum and conj(K)
    # Per thread: the spectra of the output, of its gradient and of the input gradient, the
    # transforms' intermediate planes (about two spectra's worth for each), the kernel gradient's.
    per_thread = (chunk * k * (6 * f + 5 * c) + k * c * f) * complex_bytes
    return kept + threads * per_thread


class SpectralConvolution:
    """The transform matrices for one convolution's sizes and dtype (cached: see ``plan``)."""

    def __init__(self, image_shape: tuple[int, int, int], kernel_shape: tuple[int, int, int, int],
                 padding: str | int, dtype: Any) -> None:
        self.h, self.w, self.c = image_shape
        self.kh, self.kw, _, self.f = kernel_shape
        top, bottom, left, right = conv_pads(self.h, self.w, self.kh, self.kw, 1, padding)
        self.p, self.q = self.h + top + bottom, self.w + left + right
        self.v = self.q // 2 + 1
        self.ho, self.wo = self.p - self.kh + 1, self.q - self.kw + 1
        self.real = np.dtype(dtype)
        self.complex = np.result_type(self.real, np.complex64)
        u, v = np.arange(self.p), np.arange(self.v)
        rows, cols = np.arange(self.h) + top, np.arange(self.w) + left  # input pixels in the padded plane
        out_rows, out_cols = np.arange(self.ho), np.arange(self.wo)
        scale = _half_spectrum_weights(self.q) / (self.p * self.q)

        def ready(matrix: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(matrix, self.complex)

        def real_in(matrix: np.ndarray) -> np.ndarray:
            """A (V, S) transform of real planes as one real (2V, S) matrix: real parts, then imaginary."""
            return np.ascontiguousarray(np.concatenate([matrix.real, matrix.imag]), self.real)

        def real_out(matrix: np.ndarray) -> np.ndarray:
            """A (cols, V) transform whose result's real part is all that is kept, as a real (cols, 2V)
            matrix for the spectrum's real parts stacked over its imaginary parts."""
            return np.ascontiguousarray(np.concatenate([matrix.real, -matrix.imag], axis=1), self.real)

        # Forward transforms: X from x, conj(G) from an output gradient (the conjugate is what
        # both the kernel gradient and, conjugated back, the input gradient need).
        self.x_cols, self.x_rows = real_in(_phases(v, self.q, cols, -1)), ready(_phases(u, self.p, rows, -1))
        self.g_cols = real_in(_phases(v, self.q, out_cols, 1))
        self.g_rows = ready(_phases(u, self.p, out_rows, 1))
        # Inverse transforms, real part kept: the output from Y, the input gradient from conj(D).
        self.y_rows = ready(_phases(out_rows, self.p, u, 1))
        self.y_cols = real_out(_phases(out_cols, self.q, v, 1) * scale)
        self.dx_rows, self.dx_cols = ready(_phases(rows, self.p, u, -1)), real_out(_phases(cols, self.q, v, -1) * scale)
        # The kernel's taps are few: its spectrum and its gradient's inverse are single products.
        taps = (_phases(u, self.p, np.arange(self.kh), 1)[:, None, :, None]
                * _phases(v, self.q, np.arange(self.kw), 1)[None, :, None, :]).reshape(self.p * self.v, -1)
        self.kernel_spectrum_matrix = ready(taps)  # conj(K) = this @ kernel
        self.kernel_gradient_matrix = ready(taps.T * np.tile(scale, self.p))

    @property
    def frequencies(self) -> int:
        return self.p * self.v

    def kernel_spectrum(self, kernel: np.ndarray) -> np.ndarray:
        """conj(K) per frequency: (P*V, C, F) complex."""
        taps = kernel.reshape(self.kh * self.kw, self.c * self.f).astype(self.complex)
        return (self.kernel_spectrum_matrix @ taps).reshape(self.frequencies, self.c, self.f)

    def spectrum(self, z: np.ndarray, cols: np.ndarray, rows: np.ndarray, out: np.ndarray,
                 scratch: Scratch) -> np.ndarray:
        """Real planes z (n, R, S, C) through the column, then the row transform, into out (n, P*V, C)."""
        n, r, s, c = z.shape
        # The real input makes the column transform two real products (one matrix): real parts, then
        # imaginary parts, which are then interleaved as complex numbers.
        parts = scratch("real parts in", n, (r, 2 * self.v, c), self.real).reshape(n * r, 2 * self.v, c)
        np.matmul(cols, z.reshape(n * r, s, c), out=parts)
        along_cols = scratch("along columns", n, (r, self.v, c), self.complex).reshape(n * r, self.v, c)
        along_cols.real = parts[:, : self.v]
        along_cols.imag = parts[:, self.v :]
        np.matmul(rows, along_cols.reshape(n, r, self.v * c), out=out.reshape(n, self.p, self.v * c))
        return out

    def plane(self, spectrum: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray,
              scratch: Scratch) -> np.ndarray:
        """The real planes out (n, rows, cols, channels) of a spectrum (n, P*V, channels), complex."""
        n, _, channels = spectrum.shape
        along_rows = scratch("along rows", n, (len(rows), self.v * channels), self.complex)
        np.matmul(rows, spectrum.reshape(n, self.p, self.v * channels), out=along_rows)
        along_rows = along_rows.reshape(-1, self.v, channels)
        # Only the real part is wanted: one real product with the real and imaginary parts stacked.
        parts = scratch("real parts out", n, (len(rows), 2, self.v, channels), self.real).reshape(
            len(along_rows), 2, self.v, channels)
        parts[:, 0] = along_rows.real
        parts[:, 1] = along_rows.imag
        np.matmul(cols, parts.reshape(len(along_rows), 2 * self.v, channels),
                  out=out.reshape(len(along_rows), len(cols), channels))
        return out

    def products(self, spectra: np.ndarray, per_frequency: np.ndarray, out: np.ndarray) -> np.ndarray:
        """spectra (n, P*V, K) times per_frequency (P*V, K, columns) into out (n, P*V, columns)."""
        np.matmul(spectra.transpose(1, 0, 2), per_frequency, out=out.transpose(1, 0, 2))
        return out


class Scratch:
    """One thread's scratch arrays in a layer's workspace."""

    def __init__(self, workspace: Workspace, part: int) -> None:
        self.workspace, self.part = workspace, part

    def __call__(self, role: str, n: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """n images' worth, (n, *shape), of the scratch array for ``role``."""
        return self.workspace.rows(f"spectral {role} {self.part} {shape}", n, shape, dtype)

    def single(self, role: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The scratch array of this exact shape for ``role``."""
        return self.workspace.array(f"spectral {role} {self.part} {shape}", shape, dtype)


@functools.lru_cache(maxsize=64)
def _cached_plan(image_shape: tuple[int, int, int], kernel_shape: tuple[int, int, int, int],
                 padding: str | int, dtype: str) -> SpectralConvolution:
    return SpectralConvolution(image_shape, kernel_shape, padding, dtype)


def plan(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], padding: str | int,
         dtype: Any) -> SpectralConvolution:
    """The (shared, cached) transform matrices for x (N, H, W, C) and a (kh, kw, C, F) kernel."""
    return _cached_plan(tuple(x_shape[1:]), tuple(kernel_shape), padding, np.dtype(dtype).str)


def _chunks(start: int, stop: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK_IMAGES, stop)) for a in range(start, stop, CHUNK_IMAGES)]


class SpectralCache:
    """What a training forward keeps for backward: the input's spectrum (N, P*V, C) and conj(K)."""

    def __init__(self, x_spectrum: np.ndarray, conj_kernel: np.ndarray) -> None:
        self.x_spectrum, self.conj_kernel = x_spectrum, conj_kernel


def spectral_conv2d_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding: str | int, keep: bool,
    relu: bool = False, relu_mask: np.ndarray | None = None, workspace: Workspace | None = None,
) -> tuple[np.ndarray, SpectralCache | None]:
    """(N, H, W, C) * (kh, kw, C, F) [+ bias] [then ReLU] -> (N, Ho, Wo, F), stride 1.

    Returns the output and, with ``keep``, what spectral_conv2d_backward can reuse.
    ``relu_mask`` (bool, like the output) receives output > 0. Intermediate arrays live in
    ``workspace`` (the layer's), reused from step to step."""
    conv = plan(x.shape, kernel.shape, padding, x.dtype)
    workspace = workspace if workspace is not None else Workspace()
    conj_kernel = conv.kernel_spectrum(kernel)
    n, k = len(x), conv.frequencies
    out = np.empty((n, conv.ho, conv.wo, conv.f), x.dtype)
    # Kept for backward in the layer's workspace, reused from step to step (as in winograd.py).
    kept = Scratch(workspace, -1)("kept", n, (k, conv.c), conv.complex) if keep else None

    def work(part: int, start: int, stop: int) -> None:
        scratch = Scratch(workspace, part)
        for a, b in _chunks(start, stop):
            spectra = kept[a:b] if kept is not None else scratch("x spectrum", b - a, (k, conv.c), conv.complex)
            conv.spectrum(x[a:b], conv.x_cols, conv.x_rows, spectra, scratch)
            products = conv.products(spectra, conj_kernel, scratch("y spectrum", b - a, (k, conv.f), conv.complex))
            conv.plane(products, conv.y_rows, conv.y_cols, out[a:b], scratch)
            finish_block(out[a:b], bias, relu, None if relu_mask is None else relu_mask[a:b])

    parallel_for(n, work)
    return out, None if kept is None else SpectralCache(kept, conj_kernel)


def spectral_conv2d_backward(
    grad: np.ndarray, x: np.ndarray, cache: SpectralCache | None, kernel: np.ndarray, with_bias: bool,
    padding: str | int, need_input_grad: bool = True, relu_mask: np.ndarray | None = None,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients (d_input or None, d_kernel, d_bias or None) of spectral_conv2d_forward.

    ``cache``: what the forward kept (None: x is transformed again). With ``relu_mask`` grad is
    first zeroed where the mask is false."""
    conv = plan(x.shape, kernel.shape, padding, grad.dtype)
    workspace = workspace if workspace is not None else Workspace()
    k = conv.frequencies
    x_spectrum = None if cache is None else cache.x_spectrum
    conj_kernel = None
    if need_input_grad:
        conj_kernel = conv.kernel_spectrum(kernel) if cache is None else cache.conj_kernel
    d_x = np.empty(x.shape, grad.dtype) if need_input_grad else None

    def work(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        scratch = Scratch(workspace, part)
        kernel_spectrum_grad = scratch.single("kernel gradient", (k, conv.c, conv.f), conv.complex)
        d_bias = np.zeros(conv.f, grad.dtype) if with_bias else None
        for a, b in _chunks(start, stop):
            g = grad[a:b]
            if relu_mask is not None:
                g = np.multiply(g, relu_mask[a:b], out=scratch("masked", b - a, grad.shape[1:], grad.dtype))
            if d_bias is not None:
                d_bias += g.reshape(-1, conv.f).sum(axis=0)
            conj_g = conv.spectrum(g, conv.g_cols, conv.g_rows,
                                   scratch("g spectrum", b - a, (k, conv.f), conv.complex), scratch)
            spectra = x_spectrum[a:b] if x_spectrum is not None else conv.spectrum(
                x[a:b], conv.x_cols, conv.x_rows, scratch("x spectrum", b - a, (k, conv.c), conv.complex), scratch)
            # Per frequency, summed over the chunk's images: X^T @ conj(G).
            products = (spectra.transpose(1, 2, 0), conj_g.transpose(1, 0, 2))
            if a == start:
                np.matmul(*products, out=kernel_spectrum_grad)
            else:
                kernel_spectrum_grad += np.matmul(*products)
            if d_x is not None:
                # conj(D) = conj(G) @ conj(K)^T, D = G K being the full convolution's spectrum.
                conj_d = conv.products(conj_g, conj_kernel.transpose(0, 2, 1),
                                       scratch("d spectrum", b - a, (k, conv.c), conv.complex))
                conv.plane(conj_d, conv.dx_rows, conv.dx_cols, d_x[a:b], scratch)
        return kernel_spectrum_grad, d_bias

    summed, d_bias = summed_parts(parallel_for(len(x), work))
    taps = conv.kernel_gradient_matrix @ summed.reshape(k, conv.c * conv.f)
    d_kernel = np.ascontiguousarray(taps.real.reshape(conv.kh, conv.kw, conv.c, conv.f), grad.dtype)
    return d_x, d_kernel, d_bias
