"""The engine's vectorised kernels, one module per operation; the layers call them.

Images are (H, W, C); batches are (N, H, W, C); conv filters are (kh, kw, in_channels, filters).

Speed notes (the engine must keep up with PyTorch on a laptop CPU; benchmarks/README.md has the
figures and what was tried):

- Each large kernel splits its batch across the engine's threads (engine.parallel), each calling
  single-threaded BLAS, and works through its images in cache-sized blocks: im2col, matrix
  product, ReLU, pooling, all while a block is in cache. Memory traffic and the number of numpy
  calls (each takes the GIL for a moment) are what cost, so every pass over a large array counts:
  the kernels avoid temporaries, work in place on arrays they own, and never upcast float32.
- Scratch arrays (im2col blocks, padded inputs) live in a per-layer ``Workspace`` and are reused
  from step to step; arrays returned to callers are always fresh.
- Conv2D folds its bias into the matrix product (a column of ones in the im2col matrix), so bias
  and bias gradient cost no extra pass.
- conv_batch_norm runs Conv2D -> BatchNorm -> ReLU -> max pooling as one kernel: statistics and
  pooling are taken from each block of the convolution's output while it is in cache, and only
  the pooled values are normalised; conv_batch_norm_relu does the same without the pooling.
"""
