"""Tile geometry and blend weights (pure numpy): coverage, context, alignment, weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidfilter.errors import ConfigError
from vidfilter.infer.tiling import axis_tiles, blend_weights, min_tile, tile_grid


@st.composite
def geometries(draw):
    """(height, width, tile, margin, align) with a tile large enough for the margin."""
    align = draw(st.sampled_from([1, 2, 4, 8, 32]))
    margin = draw(st.integers(0, 40))
    tile = draw(st.integers(min_tile(margin, align), min_tile(margin, align) + 100))
    height = draw(st.integers(1, 400))
    width = draw(st.integers(1, 400))
    return height, width, tile, margin, align


@settings(max_examples=150, deadline=None)
@given(geometries())
def test_grid_covers_aligns_and_gives_context(geo):
    """Every pixel gets positive weight, only from tiles where it has >= margin context on cut sides."""
    height, width, tile, margin, align = geo
    # Act
    g = tile_grid(height, width, tile, margin, align)
    # Assert: padded frame and tile shapes
    for size, padded, t in ((height, g.padded_height, g.tile_h), (width, g.padded_width, g.tile_w)):
        if size <= tile:  # one tile over the whole, unpadded axis
            assert padded == size and t == size
        else:
            assert padded % align == 0 and padded - size < align
            assert t % align == 0 and t <= tile
    # tiles inside the padded frame, origins aligned, last flush
    ys = sorted({t.y0 for t in g})
    xs = sorted({t.x0 for t in g})
    for t in g:
        assert t.shape == g.tile_shape
        assert 0 <= t.y0 and t.y1 <= g.padded_height and 0 <= t.x0 and t.x1 <= g.padded_width
        assert t.y0 % align == 0 and t.x0 % align == 0
    assert ys[0] == 0 and ys[-1] + g.tile_h == g.padded_height
    assert xs[0] == 0 and xs[-1] + g.tile_w == g.padded_width
    # neighbours overlap by >= 2*margin
    for starts, t in ((ys, g.tile_h), (xs, g.tile_w)):
        for a, b in zip(starts, starts[1:]):
            assert a + t - b >= 2 * margin
    # positive weight only with context, and everywhere covered
    total = np.zeros((g.padded_height, g.padded_width))
    for t in g:
        w = g.weights(t)
        yy, xx = np.nonzero(w > 0)
        top, bottom, left, right = t.sides
        if top:
            assert yy.min() >= margin
        if bottom:
            assert yy.max() <= g.tile_h - 1 - margin
        if left:
            assert xx.min() >= margin
        if right:
            assert xx.max() <= g.tile_w - 1 - margin
        total[t.slices] += w
    assert (total > 0).all()
    np.testing.assert_allclose(g.weight_sum(), total, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (512, 512), (31, 600), (600, 31)])
def test_small_axes_are_not_cut_or_padded(shape):
    """An axis that fits in one tile is one read window over the real frame (no padding)."""
    g = tile_grid(*shape, 512, 100, 32)
    assert g.tile_h == min(shape[0], g.tile_h) and all(t.y1 <= g.padded_height for t in g)
    if shape[0] <= 512:
        assert (g.padded_height, g.tile_h) == (shape[0], shape[0])
    if shape[1] <= 512:
        assert (g.padded_width, g.tile_w) == (shape[1], shape[1])
    assert (g.weight_sum() > 0).all()
    assert g.whole == (max(shape) <= 512)


@pytest.mark.parametrize(
    ("size", "tile", "margin", "align", "starts"),
    [
        (1024, 512, 160, 32, [0, 192, 352, 512]),  # default net: steps of 6, 5, 5 x 32, last flush
        (1000, 100, 10, 1, list(range(0, 901, 75))),  # 13 evenly spread tiles
        (100, 40, 0, 1, [0, 30, 60]),  # no margin: even spread, flush end
    ],
)
def test_axis_examples(size, tile, margin, align, starts):
    """Hand-checked 1-D layouts."""
    padded, t, got, ramp = axis_tiles(size, tile, margin, align)
    assert got == starts
    assert padded == -(-size // align) * align and t == tile
    assert ramp == t - max(np.diff(got)) - 2 * margin


def test_tile_too_small_for_margin_raises():
    """A tile that cannot hold 2*margin + align pixels is refused with advice."""
    with pytest.raises(ConfigError, match="at least 352"):
        tile_grid(1000, 1000, 256, 160, 32)


def test_blend_weights_profile():
    """Zero over the margin on cut sides, Hann ramp, 1 elsewhere; frame borders keep weight 1."""
    w = blend_weights(20, 20, 3, (True, False, True, False), 4)
    assert w.dtype == np.float32 and not w.flags.writeable
    col = w[:, 10]
    assert (col[:3] == 0).all() and (col[3:7] > 0).all() and (col[3:7] < 1).all() and (col[7:] == 1).all()
    assert np.all(np.diff(col[3:8]) > 0)
    assert (w[10, 7:] == 1).all()  # right side is a frame border
    interior = blend_weights(20, 20, 3)
    assert (interior[:3] == 0).all() and (interior[-3:] == 0).all() and (interior[:, -3:] == 0).all()


def test_blend_weights_partition_of_unity():
    """With the nominal overlap (2*margin + ramp) the two ramps of neighbours sum to exactly 1."""
    margin, ramp, t = 5, 9, 40
    step = t - 2 * margin - ramp
    a = blend_weights(1, t, margin, (False, False, False, True), ramp)[0]
    b = blend_weights(1, t, margin, (False, False, True, False), ramp)[0]
    total = np.zeros(t + step)
    total[:t] += a
    total[step:] += b
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_blend_weights_cached():
    """Weights are computed once per (shape, margin, sides, ramp)."""
    assert blend_weights(64, 48, 8, (True, True, False, True), 5) is blend_weights(64, 48, 8, [1, 1, 0, 1], 5)
