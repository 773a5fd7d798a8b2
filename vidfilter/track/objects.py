"""Per-frame objects of a mask sequence: label, drop small components, measure.

Each frame is labelled on its own (8-connected components, like :mod:`vidfilter.eval.objects`),
components of fewer than ``min_area`` pixels are dropped, and the rest are measured with
:func:`skimage.measure.regionprops`: centroid ``y, x``, ``area``, bounding box (``bbox_y1``,
``bbox_x1`` exclusive, pixel-edge coordinates as in :func:`~vidfilter.eval.objects.objects_to_boxes`)
and the mean of the intensity frame over the object (``NaN`` without intensity frames).

Frames are consumed one at a time and only the object rows are kept, so memory grows with the
number of objects found, never with the number of frames read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError, UnsupportedInputError

__all__ = ["COLUMNS", "OBJECT_COLUMNS", "ObjectTable", "measure_frame", "measure_frames"]

#: Columns of an object table (one row per object and frame), in order.
OBJECT_COLUMNS = ("frame", "y", "x", "area", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "mean_intensity")
#: Columns of a track table: the object columns with ``track_id`` after ``frame``.
COLUMNS = ("frame", "track_id", *OBJECT_COLUMNS[1:])
_DTYPES = {"frame": np.int64, "track_id": np.int64, "area": np.int64, "bbox_y0": np.int64, "bbox_x0": np.int64,
           "bbox_y1": np.int64, "bbox_x1": np.int64, "y": np.float64, "x": np.float64, "mean_intensity": np.float64}
_EIGHT = np.ones((3, 3), bool)


def measure_frame(mask: Any, intensity: Any = None, *, frame: int = 0, min_area: int = 1) -> dict[str, np.ndarray]:
    """Objects of one 2-D mask, as columns (:data:`OBJECT_COLUMNS`) of equal length.

    Parameters
    ----------
    mask : array-like, (H, W)
        Object pixels are the non-zero ones.
    intensity : array-like, (H, W), optional
        The frame whose mean over each object is ``mean_intensity`` (``NaN`` when omitted).
    frame : int
        Written into the ``frame`` column.
    min_area : int
        Components of fewer pixels are dropped.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per column, one entry per object, in label order (top to bottom, left to right).
    """
    from scipy import ndimage
    from skimage.measure import regionprops

    m = np.asarray(mask)
    if m.ndim != 2:
        raise UnsupportedInputError(f"frame {frame}: a mask must be 2-D (H, W), got shape {m.shape}")
    img = None
    if intensity is not None:
        img = np.asarray(intensity)
        if img.shape != m.shape:
            raise UnsupportedInputError(f"frame {frame}: the intensity frame has shape {img.shape}, the mask {m.shape}; "
                                        "pass frames of the same (H, W)")
    labels, _ = ndimage.label(m != 0, structure=_EIGHT)
    props = [p for p in regionprops(labels, intensity_image=img) if p.area >= min_area]
    cols: dict[str, Any] = {
        "frame": np.full(len(props), frame, np.int64),
        "y": np.array([p.centroid[0] for p in props], np.float64),
        "x": np.array([p.centroid[1] for p in props], np.float64),
        "area": np.array([p.area for p in props], np.int64),
        "mean_intensity": np.array([p.intensity_mean if img is not None else np.nan for p in props], np.float64),
    }
    boxes = np.array([p.bbox for p in props], np.int64).reshape(-1, 4)
    for i, name in enumerate(("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")):
        cols[name] = boxes[:, i]
    return {name: cols[name] for name in OBJECT_COLUMNS}


class ObjectTable:
    """Object rows gathered frame by frame, as growing per-column chunks (no frames are kept)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in OBJECT_COLUMNS}
        self.frames = 0

    def add(self, cols: dict[str, np.ndarray]) -> None:
        for name in OBJECT_COLUMNS:
            self._parts[name].append(cols[name])
        self.frames += 1

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts["frame"])

    def columns(self) -> dict[str, np.ndarray]:
        """Every column as one array."""
        return {name: np.concatenate(parts) if parts else np.zeros(0, _DTYPES[name])
                for name, parts in self._parts.items()}


def _pairs(masks: Iterable[Any], intensities: Iterable[Any] | None) -> Iterator[tuple[Any, Any]]:
    """``(mask, intensity or None)`` pairs; a sequence of intensity frames shorter or longer than
    the masks is refused when the shorter one runs out."""
    if intensities is None:
        for m in masks:
            yield m, None
        return
    done = object()
    mi, ii = iter(masks), iter(intensities)
    while True:
        m, i = next(mi, done), next(ii, done)
        if m is done and i is done:
            return
        if m is done or i is done:
            raise UnsupportedInputError("the masks and the intensity frames differ in number; pass one intensity frame per mask")
        yield m, i


def measure_frames(masks: Iterable[Any], intensities: Iterable[Any] | None = None, *, min_area: int = 1) -> ObjectTable:
    """:func:`measure_frame` of every mask (frame numbers from 0), streaming, into an :class:`ObjectTable`."""
    if int(min_area) < 1:
        raise ConfigError(f"min_area must be at least 1 pixel, got {min_area}")
    table = ObjectTable()
    for t, (mask, img) in enumerate(_pairs(masks, intensities)):
        table.add(measure_frame(mask, img, frame=t, min_area=int(min_area)))
    return table
