"""Per-channel sums over blocks viewed as wide rows (engine/kernels/batch_norm.py): blocks of
different sizes (viewed with different widths) add up to the sums over every row."""

from __future__ import annotations

import numpy as np

from engine.kernels.batch_norm import WideSums, wide_rows


def test_blocks_of_any_width_add_up_to_the_channel_sums():
    rng = np.random.default_rng(0)
    channels = 5
    z = rng.standard_normal((96 + 24 + 7, channels)).astype(np.float32)
    g = rng.standard_normal(z.shape).astype(np.float32)
    sums, products = WideSums(channels, np.float32), WideSums(channels, np.float32)
    widths = set()
    for start, stop in ((0, 96), (96, 120), (120, len(z))):  # 32, 8 and 1 rows side by side
        wide_z, r = wide_rows(z[start:stop])
        wide_g, _ = wide_rows(g[start:stop])
        widths.add(r)
        sums.add(wide_z)
        products.add(wide_g, wide_z)
    assert widths == {32, 8, 1}
    first, second = sums.totals()
    sum_g, sum_gz = products.totals()
    z64, g64 = z.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(first, z64.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(second, (z64 * z64).sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(sum_g, g64.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sum_gz, (g64 * z64).sum(axis=0), rtol=1e-5, atol=1e-5)
    assert first.dtype == np.float64


def test_no_blocks_give_zeros():
    first, second = WideSums(3, np.float32).totals()
    assert first.tolist() == [0.0, 0.0, 0.0] and second.tolist() == [0.0, 0.0, 0.0]
