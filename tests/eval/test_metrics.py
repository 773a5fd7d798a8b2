"""Metrics against hand-computed cases (the paper's section 3), including the empty-set rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vidfilter.errors import ConfigError
from vidfilter.eval.metrics import (
    BoxScore,
    PixelScore,
    PointScore,
    box_iou,
    mask_to_boxes,
    match_boxes,
    prf,
    welch_t_test,
    z_prime,
)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, 0), (1.0, 1.0, 1.0)),  # both empty: perfect
        ((0, 0, 4), (0.0, 0.0, 0.0)),  # no prediction, some truth
        ((0, 3, 0), (0.0, 0.0, 0.0)),  # predictions, no truth
        ((2, 2, 0), (0.5, 1.0, 2 / 3)),
        ((3, 1, 2), (0.75, 0.6, 6 / 9)),
    ],
)
def test_prf_hand_computed(counts, expected):
    """P = tp/(tp+fp), R = tp/(tp+fn), F1 = 2tp/(2tp+fp+fn), with the documented empty rules."""
    assert prf(*counts) == pytest.approx(expected)


def test_pixel_score_pools_counts_over_frames():
    """Pooled counts, not the mean of per-frame scores."""
    s = PixelScore()
    # frame 1: tp 1, fp 1, fn 1 ; frame 2: tp 4, fp 0, fn 0
    s.update(np.array([[1, 1], [0, 0]], bool), np.array([[1, 0], [1, 0]], bool))
    s.update(np.ones((2, 2), bool), np.ones((2, 2), bool))
    r = s.result()
    assert (r.tp, r.fp, r.fn) == (5, 1, 1)
    assert r.precision == pytest.approx(5 / 6)
    assert r.recall == pytest.approx(5 / 6)
    assert r.iou == pytest.approx(5 / 7)
    # the mean of per-frame IoUs would be (1/3 + 1) / 2 = 0.667
    assert r.iou != pytest.approx((1 / 3 + 1) / 2)


def test_pixel_score_empty_cases():
    """Empty prediction / empty truth / both empty."""
    z, o = np.zeros((3, 3), bool), np.ones((3, 3), bool)
    both = PixelScore()
    both.update(z, z)
    assert both.result().f1 == 1.0 and both.result().iou == 1.0
    nopred = PixelScore()
    nopred.update(z, o)
    r = nopred.result()
    assert (r.precision, r.recall, r.f1, r.iou) == (0.0, 0.0, 0.0, 0.0)
    nogt = PixelScore()
    nogt.update(o, z)
    r = nogt.result()
    assert (r.precision, r.recall, r.f1, r.iou, r.fp) == (0.0, 0.0, 0.0, 0.0, 9)


def test_pixel_score_shape_mismatch_raises():
    with pytest.raises(ConfigError, match="shape"):
        PixelScore().update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_mask_to_boxes_exclusive_convention_and_min_area():
    """A 3x4 block at rows 2-4, cols 5-8 -> box (5, 2, 9, 5); smaller components are dropped."""
    m = np.zeros((10, 12), bool)
    m[2:5, 5:9] = True  # 12 px
    m[8, 0] = True  # 1 px
    assert mask_to_boxes(m, min_area=12).tolist() == [[5, 2, 9, 5]]
    assert mask_to_boxes(m, min_area=13).shape == (0, 4)
    assert len(mask_to_boxes(m, min_area=1)) == 2
    assert mask_to_boxes(np.zeros((4, 4), bool)).shape == (0, 4)


def test_mask_to_boxes_connectivity():
    """Two diagonal pixels are one component with 8-connectivity, two with 4."""
    m = np.zeros((4, 4), bool)
    m[0, 0] = m[1, 1] = True
    assert mask_to_boxes(m, min_area=1, connectivity=8).tolist() == [[0, 0, 2, 2]]
    assert len(mask_to_boxes(m, min_area=1, connectivity=4)) == 2
    with pytest.raises(ConfigError):
        mask_to_boxes(m, connectivity=6)


def test_box_iou_hand_computed():
    """10x10 boxes offset by 5 px in x: intersection 50, union 150."""
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou.shape == (1, 2)
    assert iou[0].tolist() == pytest.approx([1 / 3, 0.0])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_match_boxes_threshold_is_strict():
    """IoU exactly 0.5 does not match with '>' (the worm protocol), does with '>=' (BBBC042)."""
    gt = [[0, 0, 10, 10]]
    pred = [[0, 0, 10, 5]]  # IoU = 50 / 100 = 0.5
    assert match_boxes(pred, gt).tp == 0
    m = match_boxes(pred, gt, strict=False)
    assert (m.tp, m.fp, m.fn) == (1, 0, 0)


def test_match_boxes_hungarian_beats_greedy():
    """Greedy best-IoU-first pairs p0-g0 (.818) and leaves p1-g1 (.333) unmatched; Hungarian on
    1/IoU prefers p0-g1 (.667) + p1-g0 (.667): cost 3.0 < 1/.818 + 1/.333 = 4.2, so two matches."""
    g0, g1 = [0, 0, 10, 10], [3, 0, 13, 10]
    p0, p1 = [1, 0, 11, 10], [-2, 0, 8, 10]
    iou = box_iou([p0, p1], [g0, g1])
    assert iou[0].tolist() == pytest.approx([9 / 11, 8 / 12])
    assert iou[1].tolist() == pytest.approx([8 / 12, 5 / 15])
    m = match_boxes([p0, p1], [g0, g1], iou_threshold=0.5)
    assert m.tp == 2
    assert sorted(map(tuple, m.pairs.tolist())) == [(0, 1), (1, 0)]


def test_match_boxes_duplicates_and_empty():
    """A duplicate detection is one TP and one FP; empty sides give only FP or FN."""
    gt = [[0, 0, 10, 10]]
    m = match_boxes([[0, 0, 10, 10], [0, 0, 10, 9]], gt)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.ious.tolist() == [1.0]
    assert match_boxes([], gt)[2:] == (0, 0, 1)
    assert match_boxes(gt, [])[2:] == (0, 1, 0)
    assert match_boxes([], [])[2:] == (0, 0, 0)
    # disjoint boxes never match, even with threshold 0
    assert match_boxes([[50, 50, 60, 60]], gt, iou_threshold=0.0).tp == 0


def test_box_score_pools_and_mean_iou():
    """Two frames: (1 TP IoU 1, 1 FN) and (1 TP IoU 0.8, 1 FP) -> P = R = 2/3, mIoU 0.9."""
    s = BoxScore()
    s.update([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]])
    s.update([[0, 0, 10, 8], [40, 40, 50, 50]], [[0, 0, 10, 10]])
    r = s.result()
    assert (r.tp, r.fp, r.fn) == (2, 1, 1)
    assert r.precision == pytest.approx(2 / 3) and r.recall == pytest.approx(2 / 3)
    assert r.iou == pytest.approx(0.9)
    empty = BoxScore()
    empty.update([], [])
    assert empty.result().f1 == 1.0 and empty.result().iou is None


def test_point_score_hand_computed():
    """Objects 1 (2 points inside), 2 (none), 3 (1 point); one point outside every object.

    P = 2/3 objects hit; R = 3/4 points covered; F1 = 2PR/(P+R) = 12/17.
    """
    lab = np.zeros((10, 10), int)
    lab[0:3, 0:3] = 1
    lab[5:8, 0:3] = 2
    lab[5:8, 5:8] = 3
    pts = [(1, 1), (2, 2), (6, 6), (9, 9)]
    s = PointScore()
    s.update(lab, pts)
    r = s.result()
    assert r.precision == pytest.approx(2 / 3)
    assert r.recall == pytest.approx(3 / 4)
    assert r.f1 == pytest.approx(12 / 17)
    assert (r.tp, r.fp, r.fn) == (2, 1, 1)


def test_point_score_empty_and_bool_mask():
    s = PointScore()
    s.update(np.zeros((4, 4), int), [])
    assert s.result().f1 == 1.0
    s2 = PointScore()
    s2.update(np.zeros((4, 4), int), [(1, 1)])
    assert s2.result().recall == 0.0 and s2.result().f1 == 0.0
    s3 = PointScore()  # a bool mask is labelled: two blobs, one hit
    m = np.zeros((5, 5), bool)
    m[0, 0] = m[4, 4] = True
    s3.update(m, [(0, 0), (10, 10)])  # second point outside the image
    r = s3.result()
    assert r.precision == 0.5 and r.recall == 0.5


def test_z_prime_hand_computed():
    """Groups [1, 3] (mean 2, sd 1.414) and [9, 11] (mean 10): Z' = 1 - 3 * 2.828 / 8."""
    assert z_prime([1, 3], [9, 11]) == pytest.approx(1 - 3 * 2 * np.sqrt(2) / 8)
    assert z_prime([1, 3], [9, 11], ddof=0) == pytest.approx(1 - 3 * 2 / 8)
    assert z_prime([1, 3], [1, 3]) == float("-inf")
    with pytest.raises(ConfigError):
        z_prime([1], [2, 3])


def test_welch_t_test_matches_formula():
    """t = (m1 - m2) / sqrt(s1²/n1 + s2²/n2); p from scipy with equal_var=False."""
    a, b = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 8, 10])
    t_hand = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / 4 + b.var(ddof=1) / 5)
    res = welch_t_test(a, b)
    assert res.statistic == pytest.approx(t_hand)
    assert res.pvalue == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert 0 < res.pvalue < 1


def test_worm_protocol_reproduces_max_projection_on_worms(shared_data):
    """The issue-10 figures for the max projection on worms_yolo_640: P .137 R .337 F1 .195
    (|bg - frame| > 10, 8-connected components >= 40 px, Hungarian on 1/IoU, IoU > 0.5)."""
    from vidfilter.baselines import make_baseline
    from vidfilter.io.annotations import load_boxes_csv
    from vidfilter.eval.score import estimator_backgrounds, score_backgrounds
    from vidfilter.io.registry import open as open_source

    worms = shared_data / "worms_yolo_640"
    src = open_source(worms / "frames")
    gt = load_boxes_csv(worms / "boxes.csv")
    by_t = {t: gt[int(f.stem)].boxes for t, f in enumerate(src.files)}
    r = score_backgrounds(src, estimator_backgrounds(make_baseline("max"), src), by_t, min_area=40).box
    assert (round(r.precision, 3), round(r.recall, 3), round(r.f1, 3)) == (0.137, 0.337, 0.195)


def test_welch_pvalue_from_satterthwaite_df():
    """p = 2 * (1 - T_df(|t|)) with df = (a + b)^2 / (a^2 / (n1 - 1) + b^2 / (n2 - 1)), a = s1²/n1, b = s2²/n2."""
    x, y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 8, 10])
    a, b = x.var(ddof=1) / 4, y.var(ddof=1) / 5  # 5/12, 2
    df = (a + b) ** 2 / (a**2 / 3 + b**2 / 4)
    t = (2.5 - 6.0) / np.sqrt(a + b)
    assert welch_t_test(x, y).pvalue == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert welch_t_test(x, x + 100).pvalue < 1e-6
