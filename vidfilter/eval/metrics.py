"""The paper's scores (Javer & Rittscher, section 3), pooled over a set of frames.

Pixel level
    :class:`PixelScore` accumulates true/false positive and false negative pixel counts over
    frames (``update(pred_mask, gt_mask)``) and :meth:`PixelScore.result` gives precision, recall,
    F1 and IoU of the pooled counts (not the mean of per-frame scores).

Object level (boxes)
    :func:`mask_to_boxes` turns a foreground mask into bounding boxes of its connected components
    of at least ``min_area`` pixels; :func:`match_boxes` pairs predicted and true boxes by the
    Hungarian algorithm on the cost ``1 / IoU`` and counts a pair as a match when
    ``IoU > iou_threshold``; :class:`BoxScore` pools the matches over frames (P/R/F1 and the mean
    IoU of the matches).

Object level (points, BBBC026 style)
    :class:`PointScore`: a predicted object is a true positive when at least one annotation point
    of the class lies inside it; recall is the share of points covered by at least one object.

Plate level
    :func:`z_prime` (Z'-factor) and :func:`welch_t_test` between two groups of per-image counts.

Conventions
-----------
**Boxes** are ``(x0, y0, x1, y1)`` float arrays of shape ``(N, 4)`` in *pixel-edge* coordinates:
pixel column ``i`` covers ``[i, i + 1)``, so a component covering columns ``c0 .. c1 - 1`` has
``x0 = c0`` and ``x1 = c1`` (``x1, y1`` exclusive; width ``x1 - x0``). This is the bounding box
``skimage.measure.regionprops`` reports, and it is what normalised YOLO/COCO boxes become when
multiplied by the image size. The worms CSV (``worms_yolo_640/boxes.csv``, "(x1, y1) is the
bottom-right edge", converted from YOLO) is already in this convention and is used unchanged;
files that give the *last pixel* (inclusive, e.g. Pascal VOC) are converted by
:mod:`vidfilter.io.annotations`.

**Empty sets.** A ratio ``a / (a + b)`` whose denominator is 0 is defined as **1.0 when both the
prediction and the ground truth are empty** (nothing to find, nothing found: perfect) and
**0.0 when only one of them is empty** (everything missed, or everything false). So with no
prediction and some ground truth P = R = F1 = 0; with predictions and no ground truth P = R = F1 = 0;
with both empty P = R = F1 = IoU = 1. The mean IoU of matches is ``None`` when there is no match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from vidfilter.errors import ConfigError

__all__ = ["BoxMatch", "BoxScore", "PixelScore", "PointScore", "Scores", "TTest", "box_iou", "mask_to_boxes",
    "match_boxes", "prf", "scores_table", "welch_t_test", "z_prime"]


def _ratio(num: float, den: float, *, both_empty: bool) -> float:
    if den > 0:
        return float(num) / float(den)
    return 1.0 if both_empty else 0.0


@dataclass(frozen=True)
class Scores:
    """Precision, recall, F1 (and IoU where it applies) from pooled counts.

    ``iou`` is the pixel (Jaccard) IoU ``tp / (tp + fp + fn)`` for pixel scores and the mean IoU
    of the matched pairs for box scores (``None`` without matches); ``None`` for point scores.
    """

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    iou: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain ``dict`` (JSON-ready)."""
        return asdict(self)


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of counts, with the empty-set rules of the module docstring.

    >>> prf(0, 0, 0)
    (1.0, 1.0, 1.0)
    >>> prf(0, 0, 3)
    (0.0, 0.0, 0.0)
    """
    if min(tp, fp, fn) < 0:
        raise ValueError(f"counts must be >= 0, got tp={tp} fp={fp} fn={fn}")
    both_empty = tp == 0 and fp == 0 and fn == 0
    p = _ratio(tp, tp + fp, both_empty=both_empty)
    r = _ratio(tp, tp + fn, both_empty=both_empty)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, both_empty=both_empty)
    return p, r, f1


def _as_bool(mask: Any, what: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != bool:
        arr = arr != 0
    if arr.ndim < 2:
        raise ConfigError(f"{what} must be a 2-D (or N-D) mask, got shape {arr.shape}")
    return arr


class _Pooled:
    """True positive, false positive and false negative counts pooled over frames."""

    def __init__(self) -> None:
        self.tp = 0
        self.fp = 0
        self.fn = 0
        self.n_frames = 0

    def _add(self, tp: int, fp: int, fn: int) -> None:
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.n_frames += 1

    def _scores(self, iou: float | None) -> Scores:
        return Scores(*prf(self.tp, self.fp, self.fn), self.tp, self.fp, self.fn, iou)


# ---------------------------------------------------------------------------------------------
# pixel level


class PixelScore(_Pooled):
    """Pixel precision / recall / F1 / IoU pooled over a set of frames.

    Examples
    --------
    >>> s = PixelScore()
    >>> s.update(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]]))
    >>> r = s.result()
    >>> (r.tp, r.fp, r.fn, r.iou)
    (1, 1, 1, 0.3333333333333333)
    """

    def __init__(self) -> None:
        super().__init__()
        self.n_pixels = 0

    def update(self, pred_mask: Any, gt_mask: Any) -> None:
        """Add one frame (boolean or 0/non-0 masks of the same shape)."""
        pred = _as_bool(pred_mask, "pred_mask")
        gt = _as_bool(gt_mask, "gt_mask")
        if pred.shape != gt.shape:
            raise ConfigError(f"pred_mask shape {pred.shape} differs from gt_mask shape {gt.shape}")
        tp = int(np.count_nonzero(pred & gt))
        self._add(tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(gt)) - tp)
        self.n_pixels += pred.size

    def result(self) -> Scores:
        """Scores of the pooled counts; ``iou = tp / (tp + fp + fn)``."""
        both_empty = self.tp == 0 and self.fp == 0 and self.fn == 0
        return self._scores(_ratio(self.tp, self.tp + self.fp + self.fn, both_empty=both_empty))


# ---------------------------------------------------------------------------------------------
# boxes


def _boxes(b: Any, what: str) -> np.ndarray:
    arr = np.asarray(b, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConfigError(f"{what} must be an (N, 4) array of x0, y0, x1, y1, got shape {arr.shape}")
    return arr


def mask_to_boxes(mask: Any, min_area: int = 250, connectivity: int = 8) -> np.ndarray:
    """Bounding boxes of the connected components of ``mask`` with at least ``min_area`` pixels.

    Parameters
    ----------
    mask : array_like (H, W)
        Foreground mask (bool, or 0 / non-0).
    min_area : int
        Smallest component kept, in pixels (``area >= min_area``). The paper uses 250 on
        2048-px worm frames; the 640-px worm protocol (docs/benchmarks.md) uses 40.
    connectivity : {8, 4}
        Pixel neighbourhood of a component (8: diagonal neighbours join).

    Returns
    -------
    numpy.ndarray
        ``(N, 4)`` float64 ``x0, y0, x1, y1`` with ``x1, y1`` exclusive (see the module
        docstring), sorted by ``(y0, x0)`` as the components are labelled in raster order.
    """
    from skimage.measure import label, regionprops

    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity!r}")
    m = _as_bool(mask, "mask")
    if m.ndim != 2:
        raise ConfigError(f"mask_to_boxes needs a 2-D mask, got shape {m.shape}")
    lab = label(m, connectivity=1 if connectivity == 4 else 2)
    out = []
    for region in regionprops(lab):
        if region.area >= min_area:
            r0, c0, r1, c1 = region.bbox
            out.append((c0, r0, c1, r1))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def box_iou(a: Any, b: Any) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of two sets of ``x0, y0, x1, y1`` boxes."""
    a = _boxes(a, "a")
    b = _boxes(b, "b")
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


class BoxMatch(NamedTuple):
    """Result of :func:`match_boxes` for one frame.

    ``pairs`` ``(M, 2)`` int indices ``(pred, gt)`` of the matches (IoU above the threshold) and
    ``ious`` their IoU; ``tp = M``, ``fp = n_pred - M``, ``fn = n_gt - M``.
    """

    pairs: np.ndarray
    ious: np.ndarray
    tp: int
    fp: int
    fn: int


_NO_MATCH_COST = 1e12


def match_boxes(pred: Any, gt: Any, iou_threshold: float = 0.5, *, strict: bool = True) -> BoxMatch:
    """One-to-one matching of predicted to true boxes (Hungarian algorithm on ``1 / IoU``).

    The assignment minimises the sum of ``1 / IoU`` over pairs (pairs with IoU 0 get a prohibitive
    cost and are never matched); an assigned pair is a match when ``IoU > iou_threshold``
    (``>=`` with ``strict=False``, the BBBC042 rule). Unmatched predictions are false positives
    (so a duplicate detection of one object counts once as a TP and once as a FP), unmatched true
    boxes false negatives.
    """
    from scipy.optimize import linear_sum_assignment

    p = _boxes(pred, "pred")
    g = _boxes(gt, "gt")
    empty = BoxMatch(np.zeros((0, 2), dtype=np.intp), np.zeros(0), 0, len(p), len(g))
    if len(p) == 0 or len(g) == 0:
        return empty
    iou = box_iou(p, g)
    with np.errstate(divide="ignore"):
        cost = np.where(iou > 0, 1.0 / np.where(iou > 0, iou, 1.0), _NO_MATCH_COST)
    rows, cols = linear_sum_assignment(cost)
    vals = iou[rows, cols]
    keep = vals > iou_threshold if strict else vals >= iou_threshold
    keep &= vals > 0
    pairs = np.stack([rows[keep], cols[keep]], axis=1).astype(np.intp)
    m = int(keep.sum())
    return BoxMatch(pairs, vals[keep], m, len(p) - m, len(g) - m)


class BoxScore(_Pooled):
    """Object precision / recall / F1 from box matching, pooled over frames, plus the mean IoU of matches.

    Examples
    --------
    >>> s = BoxScore()
    >>> m = s.update([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]])
    >>> r = s.result()
    >>> (r.tp, r.fp, r.fn, r.precision, r.recall, r.iou)
    (1, 0, 1, 1.0, 0.5, 1.0)
    """

    def __init__(self, iou_threshold: float = 0.5, *, strict: bool = True) -> None:
        super().__init__()
        self.iou_threshold = iou_threshold
        self.strict = strict
        self.iou_sum = 0.0

    def update(self, pred_boxes: Any, gt_boxes: Any) -> BoxMatch:
        """Match one frame's boxes and add the counts; returns the frame's :class:`BoxMatch`."""
        m = match_boxes(pred_boxes, gt_boxes, self.iou_threshold, strict=self.strict)
        self._add(m.tp, m.fp, m.fn)
        self.iou_sum += float(m.ious.sum())
        return m

    def result(self) -> Scores:
        """Pooled scores; ``iou`` is the mean IoU of the matched pairs (``None`` without matches)."""
        return self._scores(self.iou_sum / self.tp if self.tp else None)


# ---------------------------------------------------------------------------------------------
# points (BBBC026)


class PointScore:
    """Point-in-object scoring of one class (BBBC026 style), pooled over images.

    A predicted object is a true positive when at least one annotation point of the class lies
    inside it, else a false positive. Recall is the share of the points covered by at least one
    object. ``tp`` counts objects, ``fn`` uncovered points; F1 is the harmonic mean of P and R.
    Points of other classes are simply not passed in (an object holding only those is a FP).
    """

    def __init__(self) -> None:
        self.n_objects = 0
        self.tp_objects = 0
        self.n_points = 0
        self.covered_points = 0
        self.n_images = 0

    def update(self, objects: Any, points: Iterable[Sequence[float]]) -> None:
        """Add one image.

        Parameters
        ----------
        objects : array_like (H, W)
            Label image of the predicted objects (0 = background, each object its own integer).
            A bool mask is labelled into 8-connected components first.
        points : iterable of (y, x)
            Annotation points of the class (pixel indices; fractional values are rounded).
            Points outside the image count as not covered.
        """
        lab = np.asarray(objects)
        if lab.dtype == bool:
            from skimage.measure import label

            lab = label(lab, connectivity=2)
        if lab.ndim != 2:
            raise ConfigError(f"objects must be a 2-D label image, got shape {lab.shape}")
        ids = np.unique(lab)
        ids = ids[ids != 0]
        pts = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
        yx = np.rint(pts).astype(np.int64)
        inside = (yx[:, 0] >= 0) & (yx[:, 0] < lab.shape[0]) & (yx[:, 1] >= 0) & (yx[:, 1] < lab.shape[1])
        hit = np.zeros(len(yx), dtype=lab.dtype)
        hit[inside] = lab[yx[inside, 0], yx[inside, 1]]
        hit_ids = set(np.unique(hit[hit != 0]).tolist())
        self.n_objects += len(ids)
        self.tp_objects += sum(1 for i in ids.tolist() if i in hit_ids)
        self.n_points += len(yx)
        self.covered_points += int(np.count_nonzero(hit))
        self.n_images += 1

    def result(self) -> Scores:
        """``precision = TP objects / objects``, ``recall = covered points / points``."""
        both_empty = self.n_objects == 0 and self.n_points == 0
        p = _ratio(self.tp_objects, self.n_objects, both_empty=both_empty)
        r = _ratio(self.covered_points, self.n_points, both_empty=both_empty)
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
        return Scores(p, r, f1, self.tp_objects, self.n_objects - self.tp_objects, self.n_points - self.covered_points)


# ---------------------------------------------------------------------------------------------
# plate-level statistics


def _group(x: Any, what: str, n_min: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size < n_min:
        raise ConfigError(f"{what} needs at least {n_min} values, got {arr.size}")
    return arr


def z_prime(group1: Any, group2: Any, *, ddof: int = 1) -> float:
    """Z'-factor ``1 - 3 (s1 + s2) / |m1 - m2|`` of two groups of per-image counts.

    ``s`` are standard deviations with ``ddof`` (1: sample std, the usual choice). Returns
    ``-inf`` when the means are equal. Z' > 0.5 is an excellent assay, 0-0.5 a usable one.
    """
    a = _group(group1, "group1", ddof + 1)
    b = _group(group2, "group2", ddof + 1)
    spread = 3.0 * (a.std(ddof=ddof) + b.std(ddof=ddof))
    gap = abs(a.mean() - b.mean())
    if gap == 0:
        return float("-inf")
    return float(1.0 - spread / gap)


class TTest(NamedTuple):
    """Welch's t statistic and two-sided p-value."""

    statistic: float
    pvalue: float


def welch_t_test(group1: Any, group2: Any) -> TTest:
    """Welch's unequal-variance t-test between two groups (``scipy.stats.ttest_ind(equal_var=False)``)."""
    from scipy.stats import ttest_ind

    a = _group(group1, "group1", 2)
    b = _group(group2, "group2", 2)
    res = ttest_ind(a, b, equal_var=False)
    return TTest(float(res.statistic), float(res.pvalue))


def scores_table(rows: Mapping[str, Scores]) -> str:
    """A small markdown table of named :class:`Scores` (for reports and benchmarks)."""
    lines = ["| name | P | R | F1 | IoU | TP | FP | FN |", "|---|---|---|---|---|---|---|---|"]
    for name, s in rows.items():
        iou = "" if s.iou is None else f"{s.iou:.3f}"
        lines.append(f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {iou} | {s.tp} | {s.fp} | {s.fn} |")
    return "\n".join(lines)
