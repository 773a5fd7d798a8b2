"""Objects of a filtered static image and the static-mode scores (``vidfilter.eval.objects``)."""

from __future__ import annotations

import numpy as np

from vidfilter.static.config import ScoreConfig
from vidfilter.eval.objects import StaticScore, detect_objects, objects_to_boxes, points_per_object


def discs(shape, centres, r, value=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float32)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
    return img


def test_otsu_objects_and_watershed_split_touching_cells():
    """Two touching discs are one Otsu component and two watershed objects; specks below min_area go."""
    img = discs((60, 80), [(30, 25), (30, 42)], 9)
    img[5, 5] = 1.0
    assert detect_objects(img, min_area=20).max() == 1
    lab = detect_objects(img, method="otsu_watershed", min_area=20, watershed_distance=5)
    assert lab.max() == 2 and lab[30, 25] != lab[30, 42] and lab[5, 5] == 0


def test_points_per_object_and_boxes():
    lab = np.zeros((10, 10), np.int32)
    lab[1:4, 1:4] = 1
    lab[6:9, 5:10] = 2
    counts = points_per_object(lab, [(2, 2), (2, 3), (7, 7), (0, 9), (50, 50)])
    assert counts.tolist() == [2, 2, 1]  # two on background / outside, two in object 1, one in object 2
    np.testing.assert_array_equal(objects_to_boxes(lab), [[1, 1, 4, 4], [5, 6, 10, 9]])


def test_static_score_boxes_and_points():
    """Boxes (IoU >= 0.5, the BBBC042 rule) and points (a TP object holds a point of the class)."""
    img = discs((60, 80), [(15, 15), (40, 60)], 6)
    s = StaticScore(ScoreConfig(match="boxes", min_area=10))
    s.update(img, [[9, 9, 22, 22], [0, 40, 10, 50]])  # one right, one missed; the second disc is a FP
    r = s.result()
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)
    p = StaticScore(ScoreConfig(match="points", min_area=10))
    p.update(img, [(15, 15), (5, 70)])
    r = p.result()
    assert (r.precision, r.recall) == (0.5, 0.5)
