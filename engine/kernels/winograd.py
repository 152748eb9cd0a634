"""Stride-1 3x3 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2016).

Each 2x2 block of output pixels depends on a 4x4 tile of the (padded) input. After a transform of
the tile (B^T d B) and of the kernel (G g G^T), the block is A^T [(B^T d B) * (G g G^T)] A: 16
element-wise products instead of the direct convolution's 36 multiply-adds. Summed over the input
channels, the element-wise products become, for each of the 16 tile positions, one
(tiles x C) @ (C x F) matrix product: 2.25 times fewer multiply-adds than im2col's product. The
transforms hold only 0, +-1 and +-1/2, so they are additions of shifted views of the image, done
for a whole chunk of images at once.

Backward runs the adjoints of the same linear steps: the output gradient through A (the output
transform's adjoint), the products' gradients (dV = dM @ U^T, dU = V^T @ dM summed over tiles),
then the input transform's adjoint, which adds overlapping tiles back into the image, and the
kernel transform's (G^T dU G). The gradients are those of the convolution itself, not an
approximation: only the rounding differs from the direct path.

Shapes stay the engine's: x (N, H, W, C), kernel (3, 3, C, F), output (N, Ho, Wo, F). The
transformed input is (16, N, tiles, C): one (tiles, C) matrix per tile position and image.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import numpy as np

from engine import parallel
from engine.kernels.activation import finish_block
from engine.kernels.blocks import Workspace, summed_parts
from engine.kernels.im2col import conv_pads
from engine.parallel import parallel_for

# Switched off by tests (and measurements) to compare with the direct convolution.
enabled = True

# The kernel transform G: the 4 tile positions' filter taps from a 3-tap filter, per axis.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# Both axes at once: (16, 9), kernel taps in (row, column) order.
_GG = np.kron(_G, _G)

# Bytes of transformed input (or of products) per chunk: a chunk's transforms and products stay
# in a core's cache between steps, and the numpy calls per chunk (about 40) stay few.
CHUNK_BYTES = 1 << 20
# ... but at least this many tiles per chunk: fewer rows make the 16 matrix products inefficient.
MIN_CHUNK_TILES = 256
# The Winograd path is taken for 3x3 stride-1 convolutions with at least this many channels on
# both sides. Narrower ones lose: the transforms are memory passes over four times the input and
# output, which cost more than the smaller products save, and a Conv2D -> BatchNorm step gives up
# its fused kernel. Where the line lies depends on what a multiply-add costs against a memory pass:
# * On a core with two 512-bit FMA units (Intel Skylake-X; large float32 products at 170-190
#   GFLOP/s), training the layer alone against im2col: 64 -> 64 0.87-0.90x, 64 -> 128 1.09-1.15x,
#   128 -> 128 1.21x, 128 -> 256 1.39x, 256 -> 256 1.55-1.92x; a forward alone: 64 -> 128
#   0.86-1.00x, 128 -> 128 1.11x, 128 -> 256 1.34x. In the wide256 network, with batch norm after
#   each convolution, 64 -> 128 made the step 3-15 % slower, the wider ones 1.12x faster: from 128.
# * On a core whose multiply-adds cost about twice as much (256-bit FMA units: AMD Zen 4, AVX2
#   CPUs; large products at about 100 GFLOP/s), 64 -> 64 at 16x16 trains 1.21x faster, 128 -> 128
#   at 8x8 1.28x, 32 -> 32 at 32x32 0.91x; whole steps 1.07-1.09x faster (VGG, wide256, k1) from
#   64, none slower beyond the machine's noise: from 64 (benchmarks/README.md).
# Which applies is decided by timing one float32 product on this machine (machine_min_channels).
WIDE_FROM = 128
NARROWER_FROM = 64
CHEAP_PRODUCTS_GFLOPS = 140.0  # between the two kinds of core above, far from both
# Fixed thresholds per pass ("forward", "kernel", "input"), or None: by this machine's speed.
MIN_CHANNELS: dict[str, int] | None = None
# The replica process of a split step gets the training process's threshold through this
# variable: both halves of a step must take the same path (see worthwhile).
ENVIRONMENT = "CNN_ENGINE_WINOGRAD_CHANNELS"


def product_gflops(size: int = 384, repeats: int = 5) -> float:
    """This core's speed for a square float32 matrix product of ``size``, on one BLAS thread as the
    engine runs BLAS: the best of ``repeats`` (the least disturbed by other programs)."""
    # Sets BLAS to one thread for good, as the engine's first kernel would (engine.parallel); where
    # it cannot, a multi-threaded figure only errs towards WIDE_FROM.
    parallel.get_num_threads()
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / max(best, 1e-9) / 1e9


_measuring = threading.Lock()  # the studio's threads may ask at once: one measures, all get its answer


@functools.cache
def _machine_min_channels() -> int:
    given = parallel.positive_setting(ENVIRONMENT)
    if given is not None:
        return given
    return WIDE_FROM if product_gflops() >= CHEAP_PRODUCTS_GFLOPS else NARROWER_FROM


def machine_min_channels() -> int:
    """The channels from which the path pays on this machine (see WIDE_FROM, NARROWER_FROM)."""
    with _measuring:
        return _machine_min_channels()


def min_channels(passes: str) -> int:
    """Channels on both sides from which a convolution of ``passes`` takes the path."""
    return machine_min_channels() if MIN_CHANNELS is None else MIN_CHANNELS[passes]


# Odd output sizes compute a tile row or column that is thrown away (a 5x5 output costs 6x6):
# the path is not taken where that wastes more than this factor.
MAX_WASTE = 1.35
# Where it wastes more than this (7x7 outputs cost 8x8, 1.31; 9x9 cost 10x10, 1.23), the saving is
# smaller and the path needs twice the channels. Measured on the Zen 4 machine (one thread, batch
# 32, training, im2col / Winograd): 7x7 at 64 channels 0.92x, at 128 1.03x, at 256 1.27x, where
# 14x14 at 64 channels is 1.21x.
WASTEFUL = 1.2
# Training keeps the transformed input, four times the input, for backward: on large images (56x56
# and up at 128 channels) that would be hundreds of megabytes a batch where im2col keeps nothing,
# so the path is left to images whose transformed input stays within this many bytes.
MAX_KEPT_BYTES_PER_IMAGE = 4 << 20


def worthwhile(input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], stride: int,
               padding: str | int, passes: str) -> bool:
    """Whether this convolution should run through Winograd's transform rather than im2col.

    ``input_shape`` (N, H, W, C); ``passes`` as transform_paths.passes_for gives it. The answer
    does not depend on N: the two processes of a split step must take the same path (see
    engine/kernels/spectral.py)."""
    if not enabled or stride != 1:
        return False
    _, h, w, c = input_shape
    kh, kw, _, f = kernel_shape
    if (kh, kw) != (3, 3):
        return False
    top, bottom, left, right = conv_pads(h, w, kh, kw, 1, padding)
    ho, wo = h + top + bottom - 2, w + left + right - 2
    if ho < 1 or wo < 1:
        return False
    computed = 4 * (-(-ho // 2)) * (-(-wo // 2))
    waste = computed / (ho * wo)
    needed = min_channels(passes) * (2 if waste > WASTEFUL else 1)
    kept = 4 * computed * c * 4  # 16 values per 2x2 tile and channel, float32
    return min(c, f) >= needed and waste <= MAX_WASTE and kept <= MAX_KEPT_BYTES_PER_IMAGE


def memory_bytes(input_shape: tuple[int, ...], kernel_shape: tuple[int, ...], padding: str | int,
                 threads: int, itemsize: int = 4) -> int:
    """About what the Winograd path holds during a training step of an (N, H, W, C) batch: the
    transformed input kept for backward and, per thread, a chunk's scratch (the parity planes and
    their transforms over the extended tiles, the products, their gradients, the output planes)."""
    n, h, w, c = input_shape
    f = kernel_shape[3]
    conv = _plan((h, w, c), f, padding)
    extended = (conv.th + 1) * (conv.tw + 1)
    kept = 16 * (n * conv.tiles + f) * c  # the transformed input and kernel
    per_image = 32 * extended * c + conv.tiles * (32 * f + 16 * c)
    per_thread = min(conv.chunk_images(itemsize), n) * per_image + 2 * 16 * c * f
    return (kept + threads * per_thread) * itemsize


class WinogradConvolution:
    """Sizes of one convolution's tiling: the padded plane and the 2x2 output tiles."""

    def __init__(self, image_shape: tuple[int, int, int], filters: int, padding: str | int) -> None:
        self.h, self.w, self.c = image_shape
        self.f = filters
        self.top, bottom, self.left, right = conv_pads(self.h, self.w, 3, 3, 1, padding)
        self.ho, self.wo = self.h + self.top + bottom - 2, self.w + self.left + right - 2
        self.th, self.tw = -(-self.ho // 2), -(-self.wo // 2)
        self.tiles = self.th * self.tw
        # The tiles cover a (2 th + 2) x (2 tw + 2) padded plane: an odd output size adds a zero row
        # (column) of padding, and its last tile row (column) computes outputs that are dropped.
        self.exact = (self.ho, self.wo) == (2 * self.th, 2 * self.tw)

    def chunk_images(self, itemsize: int) -> int:
        by_bytes = CHUNK_BYTES // (16 * self.tiles * max(self.c, self.f) * itemsize)
        return max(1, by_bytes, -(-MIN_CHUNK_TILES // self.tiles))

    def chunks(self, start: int, stop: int, itemsize: int) -> list[tuple[int, int]]:
        size = self.chunk_images(itemsize)
        return [(a, min(a + size, stop)) for a in range(start, stop, size)]

    # -- the kernel --------------------------------------------------------------------------------
    def kernel_transform(self, kernel: np.ndarray) -> np.ndarray:
        """U = G g G^T per input and output channel: (16, C, F)."""
        return (_GG.astype(kernel.dtype) @ kernel.reshape(9, self.c * self.f)).reshape(16, self.c, self.f)

    def kernel_gradient(self, d_u: np.ndarray) -> np.ndarray:
        """The kernel gradient (3, 3, C, F) from U's (16, C, F): G^T dU G."""
        return (_GG.T.astype(d_u.dtype) @ d_u.reshape(16, self.c * self.f)).reshape(3, 3, self.c, self.f)

    # -- the input -------------------------------------------------------------------------------
    # numpy runs an element-wise step about three times faster on whole contiguous arrays than on
    # strided views, so the input transform never takes strided views. The padded plane is held
    # split by the parity of its rows and columns, (2 column parities, 2 row parities, n, th + 1,
    # tw + 1, C): tile position k along an axis is then parity k % 2 shifted by k // 2, which for
    # the flattened planes is one contiguous slice. A shift runs past the end of a line into the
    # next one, which only ever lands in the extended tiles (tile row th or column tw) that no
    # output uses; they are cut off (and given zero gradients) at the end.
    def _parity(self, pad: int, size: int, parity: int) -> tuple[int, int, int]:
        """Image lines (rows or columns) in the padded plane's lines of this parity: (first image
        line, its index among the parity's lines, how many)."""
        first = (parity - pad) % 2
        return first, (pad + first) // 2, max(0, (size - first + 1) // 2)

    def _parity_parts(self, planes: np.ndarray, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(plane part, image pixels) pairs of the four parity planes (the image part of each)."""
        pairs = []
        for r in range(2):
            first_row, start_row, rows = self._parity(self.top, self.h, r)
            for q in range(2):
                first_col, start_col, cols = self._parity(self.left, self.w, q)
                pairs.append((planes[q, r, :, start_row : start_row + rows, start_col : start_col + cols],
                              image[:, first_row::2, first_col::2]))
        return pairs

    def padded(self, x: np.ndarray, scratch: Scratch) -> np.ndarray:
        """x (n, H, W, C) zero-padded, split by parity: (2, 2, n, th + 1, tw + 1, C)."""
        planes = scratch("padded", (2, 2, len(x), self.th + 1, self.tw + 1, self.c), x.dtype)
        planes[...] = 0
        for part, pixels in self._parity_parts(planes, x):
            part[...] = pixels
        return planes

    def input_transform(self, planes: np.ndarray, out: np.ndarray, scratch: Scratch) -> np.ndarray:
        """V = B^T d B for every tile d of the padded planes, into out (4, 4, n, th, tw, C)."""
        n, c, dtype = planes.shape[2], self.c, planes.dtype
        by_column = planes.reshape(2, -1)
        length = by_column.shape[1]
        columns = scratch("columns", (4, length), dtype)
        _transform_in([by_column[k % 2, (k // 2) * c : length - c + (k // 2) * c] for k in range(4)],
                      columns[:, : length - c])
        columns[:, length - c :] = 0
        by_row = columns.reshape(4, 2, -1)
        per_parity, line = by_row.shape[2], (self.tw + 1) * c
        extended = scratch("extended", (4, 4, per_parity), dtype)
        _transform_in([by_row[:, k % 2, (k // 2) * line : per_parity - line + (k // 2) * line] for k in range(4)],
                      extended[:, :, : per_parity - line])
        extended[:, :, per_parity - line :] = 0
        out[...] = extended.reshape(4, 4, n, self.th + 1, self.tw + 1, c)[:, :, :, : self.th, : self.tw]
        return out

    def input_adjoint(self, d_v: np.ndarray, d_x: np.ndarray, scratch: Scratch) -> None:
        """The input gradient d_x (n, H, W, C) from V's gradient (4, 4, n, th, tw, C)."""
        n, c, dtype = d_v.shape[2], self.c, d_v.dtype
        th, tw = self.th, self.tw
        per_parity, line = n * (th + 1) * (tw + 1) * c, (tw + 1) * c
        extended = scratch("extended", (4, 4, per_parity), dtype)
        tiles = extended.reshape(4, 4, n, th + 1, tw + 1, c)
        tiles[:, :, :, th] = 0
        tiles[:, :, :, :th, tw] = 0
        tiles[:, :, :, :th, :tw] = d_v
        # Along the rows first (the forward transformed them last), then along the columns.
        columns = scratch("columns", (4, 2, per_parity), dtype)
        _adjoint_in(extended[:, :, : per_parity - line], columns[:, 0], columns[:, 1], line,
                    scratch("adjoint", (4, per_parity - line), dtype))
        by_column = columns.reshape(4, -1)
        planes = scratch("padded", (2, 2, n, th + 1, tw + 1, c), dtype)
        flat = planes.reshape(2, -1)
        _adjoint_in(by_column[:, : by_column.shape[1] - c], flat[0], flat[1], c,
                    scratch("adjoint", (by_column.shape[1] - c,), dtype))
        for part, pixels in self._parity_parts(planes, d_x):
            pixels[...] = part

    # -- the output ------------------------------------------------------------------------------
    # Likewise the output's 2x2 blocks are computed as four contiguous (n, th, tw, F) planes, one
    # per position in the block, and interleaved into the image in one copy each.
    def _planes_and_image(self, planes: np.ndarray, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(plane part, image pixels) pairs of the four block positions (p, q): image rows p, p + 2, ...
        and columns q, q + 2, ...; a plane's last row or column is outside an odd-sized image."""
        pairs = []
        for p in range(2):
            rows = (self.ho - p + 1) // 2
            for q in range(2):
                pairs.append((planes[p, q, :, :rows, : (self.wo - q + 1) // 2], image[:, p::2, q::2]))
        return pairs

    def output_transform(self, m: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
        """Y = A^T M A for every tile: m (4, 4, n, th, tw, F) into out (n, Ho, Wo, F)."""
        n = m.shape[2]
        t = scratch("output rows", (2, 4, n, self.th, self.tw, self.f), m.dtype)
        np.add(m[0], m[1], out=t[0])
        t[0] += m[2]
        np.subtract(m[1], m[2], out=t[1])
        t[1] -= m[3]
        planes = scratch("output", (2, 2, n, self.th, self.tw, self.f), m.dtype)
        for p in range(2):
            np.add(t[p, 0], t[p, 1], out=planes[p, 0])
            planes[p, 0] += t[p, 2]
            np.subtract(t[p, 1], t[p, 2], out=planes[p, 1])
            planes[p, 1] -= t[p, 3]
        for plane, pixels in self._planes_and_image(planes, out):
            pixels[...] = plane

    def output_adjoint(self, g: np.ndarray, d_m: np.ndarray, scratch: Scratch) -> np.ndarray:
        """M's gradient A dY A^T for every tile: g (n, Ho, Wo, F) into d_m (4, 4, n, th, tw, F)."""
        n = len(g)
        planes = scratch("output", (2, 2, n, self.th, self.tw, self.f), g.dtype)
        if not self.exact:
            planes[...] = 0
        for plane, pixels in self._planes_and_image(planes, g):
            plane[...] = pixels
        second = scratch("output rows", (4, n, self.th, self.tw, self.f), g.dtype)
        for p, row in ((0, d_m[0]), (1, second)):
            left, right = planes[p, 0], planes[p, 1]
            row[0] = left
            np.add(left, right, out=row[1])
            np.subtract(left, right, out=row[2])
            np.negative(right, out=row[3])
        np.add(d_m[0], second, out=d_m[1])
        np.subtract(d_m[0], second, out=d_m[2])
        np.negative(second, out=d_m[3])
        return d_m


def _transform_in(d: list[np.ndarray], out: np.ndarray) -> None:
    """B^T along one axis: the 4 tile positions ``out[0..3]`` from the 4 shifted views ``d``."""
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def _adjoint_in(d_u: np.ndarray, even: np.ndarray, odd: np.ndarray, shift: int, scratch: np.ndarray) -> None:
    """B along one axis, overlapping tiles added: the gradients ``d_u[0..3]`` of the 4 tile positions
    (stacked on the first axis; the last axis is the flattened planes, ``shift`` shorter) into the
    even and the odd parity planes (flattened along the last axis), which they fill.

    Position k of a tile is parity k % 2 shifted by k // 2 lines (``shift`` values each), and with
    B applied d0 = u0, d1 = u1 - u2 + u3, d2 = u1 + u2 - u0, d3 = -u3: so even = d0 + d2 shifted,
    odd = d1 + d3 shifted.
    """
    length = d_u.shape[-1]
    u0, u1, u2, u3 = d_u[0], d_u[1], d_u[2], d_u[3]
    even[..., :length] = u0
    even[..., length:] = 0
    np.subtract(u1, u2, out=odd[..., :length])
    odd[..., :length] += u3
    odd[..., length:] = 0
    np.add(u1, u2, out=scratch)
    scratch -= u0
    even[..., shift:] += scratch
    odd[..., shift:] -= u3


class Scratch:
    """One thread's scratch arrays in a layer's workspace: one buffer per role that only grows, so
    that a chunk of any size (the last of a batch, a few images in inference) reuses it."""

    def __init__(self, workspace: Workspace, part: int) -> None:
        self.workspace, self.part = workspace, part

    def __call__(self, role: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A contiguous array of ``shape`` for ``role`` (whatever the last user left in it)."""
        size = int(np.prod(shape))
        return self.workspace.rows(f"winograd {role} {self.part}", size, (), dtype)[:size].reshape(shape)


@functools.lru_cache(maxsize=64)
def _plan(image_shape: tuple[int, int, int], filters: int, padding: str | int) -> WinogradConvolution:
    return WinogradConvolution(image_shape, filters, padding)


def plan(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...], padding: str | int) -> WinogradConvolution:
    """The (shared, cached) tiling for x (N, H, W, C) and a (3, 3, C, F) kernel."""
    return _plan(tuple(x_shape[1:]), kernel_shape[3], padding)


class WinogradCache:
    """What a training forward keeps for backward: the transformed input (16, N, tiles, C) and U."""

    def __init__(self, transformed: np.ndarray, kernel: np.ndarray) -> None:
        self.transformed, self.kernel = transformed, kernel


def winograd_conv2d_forward(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, padding: str | int, keep: bool,
    relu: bool = False, relu_mask: np.ndarray | None = None, workspace: Workspace | None = None,
) -> tuple[np.ndarray, WinogradCache | None]:
    """(N, H, W, C) * (3, 3, C, F) [+ bias] [then ReLU] -> (N, Ho, Wo, F), stride 1.

    Returns the output and, with ``keep``, what winograd_conv2d_backward can reuse. ``relu_mask``
    (bool, like the output) receives output > 0. Intermediate arrays live in ``workspace``."""
    conv = plan(x.shape, kernel.shape, padding)
    workspace = workspace if workspace is not None else Workspace()
    u = conv.kernel_transform(kernel)
    n, tiles = len(x), conv.tiles
    out = np.empty((n, conv.ho, conv.wo, conv.f), x.dtype)
    # What backward needs lives in the layer's workspace, reused from step to step: a fresh array of
    # four times the input each step costs page faults of about a quarter of the layer's time (and
    # a layer's backward always belongs to its latest forward).
    kept = Scratch(workspace, -1)("kept", (16, n, tiles, conv.c), x.dtype) if keep else None

    def work(part: int, start: int, stop: int) -> None:
        scratch = Scratch(workspace, part)
        for a, b in conv.chunks(start, stop, x.itemsize):
            size = b - a
            v = kept[:, a:b] if kept is not None else scratch("v", (16, size, tiles, conv.c), x.dtype)
            conv.input_transform(conv.padded(x[a:b], scratch),
                                 v.reshape(4, 4, size, conv.th, conv.tw, conv.c), scratch)
            m = scratch("m", (16, size * tiles, conv.f), x.dtype)
            np.matmul(v.reshape(16, size * tiles, conv.c), u, out=m)
            conv.output_transform(m.reshape(4, 4, size, conv.th, conv.tw, conv.f), out[a:b], scratch)
            finish_block(out[a:b], bias, relu, None if relu_mask is None else relu_mask[a:b])

    parallel_for(n, work)
    return out, None if kept is None else WinogradCache(kept, u)


def winograd_conv2d_backward(
    grad: np.ndarray, x: np.ndarray, cache: WinogradCache | None, kernel: np.ndarray, with_bias: bool,
    padding: str | int, need_input_grad: bool = True, relu_mask: np.ndarray | None = None,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients (d_input or None, d_kernel, d_bias or None) of winograd_conv2d_forward.

    ``cache``: what the forward kept (None: x is transformed again). With ``relu_mask`` grad is
    first zeroed where the mask is false."""
    conv = plan(x.shape, kernel.shape, padding)
    workspace = workspace if workspace is not None else Workspace()
    tiles, dtype = conv.tiles, grad.dtype
    u_t = None
    if need_input_grad:
        u_t = (conv.kernel_transform(kernel) if cache is None else cache.kernel).transpose(0, 2, 1)
    d_x = np.empty(x.shape, dtype) if need_input_grad else None

    def work(part: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        scratch = Scratch(workspace, part)
        d_u = np.zeros((16, conv.c, conv.f), dtype)
        d_bias = np.zeros(conv.f, dtype) if with_bias else None
        for a, b in conv.chunks(start, stop, dtype.itemsize):
            size = b - a
            g = grad[a:b]
            if relu_mask is not None:
                g = np.multiply(g, relu_mask[a:b], out=scratch("masked", (size, *grad.shape[1:]), dtype))
            if d_bias is not None:
                d_bias += g.reshape(-1, conv.f).sum(axis=0)
            if cache is not None:
                v = cache.transformed[:, a:b]
            else:
                v = scratch("v", (16, size, tiles, conv.c), dtype)
                conv.input_transform(conv.padded(x[a:b], scratch),
                                     v.reshape(4, 4, size, conv.th, conv.tw, conv.c), scratch)
            d_m = scratch("m", (16, size * tiles, conv.f), dtype)
            conv.output_adjoint(g, d_m.reshape(4, 4, size, conv.th, conv.tw, conv.f), scratch)
            v = v.reshape(16, size * tiles, conv.c)
            d_u += np.matmul(v.transpose(0, 2, 1), d_m)
            if d_x is not None:
                d_v = scratch("v gradient", (16, size * tiles, conv.c), dtype)
                np.matmul(d_m, u_t, out=d_v)
                conv.input_adjoint(d_v.reshape(4, 4, size, conv.th, conv.tw, conv.c), d_x[a:b], scratch)
        return d_u, d_bias

    d_u, d_bias = summed_parts(parallel_for(len(x), work))
    return d_x, conv.kernel_gradient(d_u), d_bias
