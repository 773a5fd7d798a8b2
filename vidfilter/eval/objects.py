"""Objects of a filtered static image and the paper's static-mode scores (the paper's section 3).

- :func:`detect_objects`: Otsu's threshold (optionally on a Gaussian-smoothed image), components
  of at least ``min_area`` pixels, optionally split by a watershed on the distance transform
  (BBBC026: "objects from Otsu + watershed on the output"). Returns a label image.
- :func:`points_per_object`: how many annotation points fall inside each object (the
  point-in-object counting behind :class:`~vidfilter.eval.metrics.PointScore`).
- :func:`objects_to_boxes`: bounding boxes of the objects of a label image (pixel-edge coordinates).
- :class:`StaticScore`: pools the score of a set of images by a
  :class:`~vidfilter.static.config.ScoreConfig`: box matching (BBBC042: boxes of components
  > 300 px, IoU >= 0.5) or point-in-object counting (BBBC026), on the network's output or, for the
  baseline, on the raw (preprocessed) image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from vidfilter.static.config import ScoreConfig
from vidfilter.errors import ConfigError
from vidfilter.eval.masks import otsu_mask
from vidfilter.eval.metrics import BoxScore, PointScore, Scores

__all__ = ["StaticScore", "detect_objects", "objects_to_boxes", "points_per_object"]


def detect_objects(
    image: Any,
    *,
    method: str = "otsu",
    smooth: float = 0.0,
    min_area: int = 1,
    watershed_distance: int = 7,
) -> np.ndarray:
    """Label image (int32, 0 = background) of the objects of ``image``.

    ``method="otsu"``: 8-connected components above Otsu's threshold (after a Gaussian of sigma
    ``smooth``) with at least ``min_area`` pixels. ``"otsu_watershed"``: the same mask, then each
    component split by a watershed of its distance transform from markers at least
    ``watershed_distance`` px apart (touching round cells become separate objects).
    """
    from scipy import ndimage

    if method not in ("otsu", "otsu_watershed"):
        raise ConfigError(f"unknown object method {method!r}; use otsu or otsu_watershed")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ConfigError(f"detect_objects needs a 2-D image, got shape {img.shape}")
    mask = otsu_mask(img, sigma=smooth)
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n and min_area > 1:
        sizes = np.bincount(lab.ravel())
        keep = sizes >= min_area
        keep[0] = False
        lab, n = ndimage.label(keep[lab], structure=np.ones((3, 3), bool))
    if method == "otsu" or n == 0:
        return lab.astype(np.int32)
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndimage.distance_transform_edt(lab > 0)
    peaks = peak_local_max(dist, min_distance=int(watershed_distance), labels=lab, exclude_border=False)
    markers = np.zeros(lab.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    split = watershed(-dist, markers, mask=lab > 0)
    # a component without a marker (too thin for a peak) keeps its own label
    missing = (split == 0) & (lab > 0)
    if missing.any():
        extra, _ = ndimage.label(missing, structure=np.ones((3, 3), bool))
        split = np.where(missing, extra + split.max(), split)
    if min_area > 1:  # pieces of a split component may fall below the size
        sizes = np.bincount(split.ravel())
        keep = sizes >= min_area
        keep[0] = False
        split = np.where(keep[split], split, 0)
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(split.astype(np.int32))[0]


def points_per_object(labels: Any, points: Iterable[Sequence[float]]) -> np.ndarray:
    """``counts[k]`` = number of ``(y, x)`` points inside object ``k`` (index 0: points on the
    background or outside the image)."""
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ConfigError(f"labels must be a 2-D label image, got shape {lab.shape}")
    n = int(lab.max()) + 1 if lab.size else 1
    pts = np.asarray(list(points), dtype=np.float64).reshape(-1, 2)
    yx = np.rint(pts).astype(np.int64)
    inside = (yx[:, 0] >= 0) & (yx[:, 0] < lab.shape[0]) & (yx[:, 1] >= 0) & (yx[:, 1] < lab.shape[1])
    ids = np.zeros(len(yx), np.int64)
    ids[inside] = lab[yx[inside, 0], yx[inside, 1]]
    return np.bincount(ids, minlength=n)


def objects_to_boxes(labels: Any) -> np.ndarray:
    """``(N, 4)`` ``x0, y0, x1, y1`` (``x1, y1`` exclusive) of objects ``1..N`` of a label image."""
    from scipy import ndimage

    lab = np.asarray(labels)
    out = []
    for sl in ndimage.find_objects(lab):
        if sl is not None:
            out.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
    return np.asarray(out, np.float64).reshape(-1, 4)


class StaticScore:
    """The paper's object score of filtered (or raw) static images, pooled over images.

    ``update(image, truth)``: ``truth`` is an ``(N, 4)`` box array for ``cfg.match == "boxes"``,
    a list of ``(y, x)`` points of the target class for ``"points"``. :meth:`result` gives
    precision, recall and F1 (:class:`~vidfilter.eval.metrics.Scores`).
    """

    def __init__(self, cfg: ScoreConfig | None = None) -> None:
        self.cfg = cfg or ScoreConfig()
        self._scorer: BoxScore | PointScore
        if self.cfg.match == "boxes":
            self._scorer = BoxScore(self.cfg.iou, strict=not self.cfg.iou_inclusive)
        else:
            self._scorer = PointScore()

    def objects(self, image: Any) -> np.ndarray:
        c = self.cfg
        return detect_objects(image, method=c.objects, smooth=c.smooth, min_area=c.min_area, watershed_distance=c.watershed_distance)

    def update(self, image: Any, truth: Any) -> np.ndarray:
        """Score one image; returns its object label image."""
        lab = self.objects(image)
        if isinstance(self._scorer, BoxScore):
            self._scorer.update(objects_to_boxes(lab), truth)
        else:
            self._scorer.update(lab, truth)
        return lab

    def result(self) -> Scores:
        return self._scorer.result()
