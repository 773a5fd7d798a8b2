"""The temporal median's bitwise selection against numpy's median."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.baselines.projections import temporal_median


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("t", [1, 2, 7, 50, 51])
def test_temporal_median_equals_numpy(dtype, t):
    rng = np.random.default_rng(t)
    top = np.iinfo(dtype).max
    stack = rng.integers(0, top + 1, (t, 130, 37)).astype(dtype)  # 130 rows: blocks and a short last block
    stack[:, :5] = top  # saturated pixels
    stack[:, 5:9] = 0
    got = temporal_median(stack)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.median(stack, axis=0))
    np.testing.assert_array_equal(temporal_median(list(stack)), got)  # a list of frames, never stacked whole


def test_temporal_median_of_colour_and_float_frames():
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (9, 20, 30, 3)).astype(np.uint8)
    np.testing.assert_array_equal(temporal_median(colour), np.median(colour, axis=0))
    np.testing.assert_array_equal(temporal_median(list(colour)), np.median(colour, axis=0))
    floats = rng.random((6, 11, 13), dtype=np.float32)
    np.testing.assert_array_equal(temporal_median(floats), np.median(floats, axis=0))
