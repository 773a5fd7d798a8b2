"""Per-frame objects: regionprops values against an independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.errors import ConfigError, UnsupportedInputError
from vidfilter.track.objects import OBJECT_COLUMNS, measure_frame, measure_frames


def _blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three shapes (an L, a disc, a 2-px speck) on 60 x 80, and an intensity ramp."""
    mask = np.zeros((60, 80), bool)
    mask[5:25, 5:10] = True  # L: a bar ...
    mask[20:25, 5:30] = True  # ... and its foot
    yy, xx = np.mgrid[:60, :80]
    mask |= (yy - 40.3) ** 2 + (xx - 55.7) ** 2 <= 81
    mask[2, 70:72] = True  # speck
    img = (yy * 3 + xx).astype(np.float32)
    return mask, img


def test_centroid_area_box_and_intensity_match_numpy():
    mask, img = _blobs()
    cols = measure_frame(mask, img, frame=7, min_area=5)
    assert list(cols) == list(OBJECT_COLUMNS)
    assert len(cols["y"]) == 2  # the speck is below min_area
    assert (cols["frame"] == 7).all()
    # independent: pixels of each shape from the mask itself, not from a label image
    yy, xx = np.mgrid[:60, :80]
    shapes = [mask & (xx < 35), mask & (yy > 28)]
    for k, shape in enumerate(shapes):
        ys, xs = np.nonzero(shape)
        assert cols["y"][k] == pytest.approx(ys.mean())
        assert cols["x"][k] == pytest.approx(xs.mean())
        assert cols["area"][k] == ys.size
        assert (cols["bbox_y0"][k], cols["bbox_x0"][k], cols["bbox_y1"][k], cols["bbox_x1"][k]) == (
            ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        assert cols["mean_intensity"][k] == pytest.approx(img[shape].mean())


def test_diagonal_neighbours_are_one_object_and_no_intensity_gives_nan():
    mask = np.zeros((10, 10), np.uint8)
    mask[2, 2] = mask[3, 3] = mask[4, 4] = 1  # 8-connected
    cols = measure_frame(mask)
    assert cols["area"].tolist() == [3]
    assert np.isnan(cols["mean_intensity"]).all()


def test_measure_frames_streams_and_numbers_frames():
    mask, img = _blobs()
    empty = np.zeros_like(mask)

    def gen():
        yield from (mask, empty, mask)

    table = measure_frames(gen(), iter([img, img, img]), min_area=5)
    cols = table.columns()
    assert table.frames == 3 and len(table) == 4
    assert cols["frame"].tolist() == [0, 0, 2, 2]


def test_bad_inputs_are_refused():
    mask, img = _blobs()
    with pytest.raises(UnsupportedInputError, match="2-D"):
        measure_frame(np.zeros((2, 3, 4)))
    with pytest.raises(UnsupportedInputError, match="same"):
        measure_frame(mask, img[:10])
    with pytest.raises(UnsupportedInputError, match="differ in number"):
        measure_frames([mask, mask], [img])
    with pytest.raises(ConfigError, match="min_area"):
        measure_frames([mask], min_area=0)
