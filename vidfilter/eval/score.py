"""Scoring whole recordings: frames + backgrounds + ground truth -> pixel and object scores.

The helpers the quality benchmarks call:

- :func:`estimator_backgrounds`: run a background estimator (a baseline of
  :mod:`vidfilter.baselines`, or the model's ``ModelBackground``) over a recording and yield
  its backgrounds, feeding stateful estimators every frame in order;
- :func:`score_backgrounds`: real data with box (and optionally mask) ground truth;
- :func:`score_recording`: a :class:`~vidfilter.synth.SyntheticRecording` with exact masks and
  labels, including the recall of the *still* and the *moving* animals separately (the paper's
  immobile-animal case).

A *mask function* ``mask_fn(frame, background) -> bool (H, W)`` turns a frame (stored dtype) and a
background (float32 [0, 1]) into the foreground mask; by default the paper's
``|frame - background| > 10`` (:func:`~vidfilter.polarity.threshold_mask`). Memory: one frame
and one background at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.eval.metrics import BoxScore, PixelScore, Scores, mask_to_boxes
from vidfilter.io.scaling import to_float
from vidfilter.polarity import residual_noise, threshold_mask

__all__ = ["MaskFn", "QualityResult", "RecordingResult", "estimator_backgrounds", "score_backgrounds",
    "score_recording"]

MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _mask_fns(mask_fn: MaskFn | Mapping[str, MaskFn] | None, threshold: float, polarity: Any) -> dict[str, MaskFn]:
    """The named mask functions to score; one named ``""`` (by default the threshold mask) unless
    ``mask_fn`` is a mapping."""
    if isinstance(mask_fn, Mapping):
        return dict(mask_fn)
    return {"": mask_fn if mask_fn is not None else partial(threshold_mask, threshold=threshold, polarity=polarity)}


def _with_backgrounds(frames: list[int], backgrounds: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """``(t, background)`` for each frame to score; a ConfigError when the backgrounds run out first."""
    bg_iter = iter(backgrounds)
    for i, t in enumerate(frames):
        try:
            bg = next(bg_iter)
        except StopIteration:
            raise ConfigError(f"{len(frames)} frames to score but only {i} backgrounds") from None
        yield t, bg


def _frames(n: int, frames: Sequence[int] | None) -> list[int]:
    return list(range(n)) if frames is None else [int(t) for t in frames]


def _score_masks(mask_fn: Any, threshold: float, polarity: Any, wanted: list[int], backgrounds: Iterable[np.ndarray],
                 new_acc: Callable[[], Any], at: Callable[[int, np.ndarray], tuple[np.ndarray, tuple[Any, ...]]]) -> Any:
    """Score the mask functions of :func:`_mask_fns` on each frame of ``wanted``: ``at(t, background)`` gives the
    frame and the further arguments of ``new_acc().update(mask, ...)``. The results by name, or the one when
    ``mask_fn`` is not a mapping."""
    named = _mask_fns(mask_fn, threshold, polarity)
    acc = {name: new_acc() for name in named}
    for t, bg in _with_backgrounds(wanted, backgrounds):
        frame, args = at(t, bg)
        for name, fn in named.items():
            acc[name].update(np.asarray(fn(frame, bg), dtype=bool), *args)
    out = {name: a.result() for name, a in acc.items()}
    return out if isinstance(mask_fn, Mapping) else out[""]


def estimator_backgrounds(estimator: Any, src: Any, frames: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """Backgrounds (float32 [0, 1]) of ``estimator`` for ``frames`` (default all) of ``src``.

    Calls ``estimator.prepare(src)`` first. A ``stateful`` estimator (MOG2, KNN, running median)
    sees every frame from 0 up to the last one requested, in order; the others only the frames
    asked for.
    """
    from vidfilter.io.registry import open as open_source

    src = open_source(src)
    wanted = _frames(len(src), frames)
    estimator.prepare(src)
    if getattr(estimator, "stateful", False):
        want = set(wanted)
        if wanted != sorted(wanted):
            raise ConfigError("a stateful estimator needs the frames in increasing order")
        last = max(wanted, default=-1)
        for t, frame in enumerate(src.iter(0, last + 1)):
            bg = estimator.background(t, to_float(frame))
            if t in want:
                yield bg
    else:
        for t in wanted:
            yield estimator.background(t, to_float(src[t]))


@dataclass
class QualityResult:
    """Scores of one method on one recording.

    ``box``: object scores (None without box ground truth); ``pixel``: pixel scores (None without
    mask ground truth); ``flagged``: mean fraction of the frame in the mask; ``in_boxes``: share of
    the mask's pixels inside a true box (a pixel-precision proxy when only boxes are known);
    ``noise``: median over frames of the residual noise sigma (grey levels, see
    :func:`~vidfilter.polarity.residual_noise`); ``n_frames`` scored.
    """

    box: Scores | None
    pixel: Scores | None
    flagged: float
    in_boxes: float | None
    noise: float
    n_frames: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _gt_at(gt: Any, t: int) -> Any:
    """The ground truth of frame ``t`` from a sequence or a mapping (``None`` when there is none)."""
    if gt is None:
        return None
    if isinstance(gt, Mapping):
        return gt.get(t)
    return gt[t]


def _box_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        # pixels whose centre lies inside the box
        c0, r0 = max(int(np.ceil(x0 - 0.5)), 0), max(int(np.ceil(y0 - 0.5)), 0)
        c1, r1 = int(np.ceil(x1 - 0.5)), int(np.ceil(y1 - 0.5))
        m[r0:r1, c0:c1] = True
    return m


def score_backgrounds(
    src: Any, backgrounds: Iterable[np.ndarray], gt_boxes: Sequence[Any] | Mapping[int, Any] | None, *,
    frames: Sequence[int] | None = None, gt_masks: Sequence[Any] | Mapping[int, Any] | None = None,
    mask_fn: MaskFn | Mapping[str, MaskFn] | None = None, threshold: float = 10.0, polarity: Any = "absolute",
    min_area: int = 250, connectivity: int = 8, iou_threshold: float = 0.5,
) -> Any:
    """Score the backgrounds of a recording against box (and/or mask) ground truth.

    Returns a :class:`QualityResult`, or ``dict name -> QualityResult`` when ``mask_fn`` is a
    mapping of named mask functions (each background is computed once and scored by all).

    Parameters
    ----------
    src : FrameSource, path or array
        The recording (opened with :func:`vidfilter.open`).
    backgrounds : iterable of float32 [0, 1] arrays
        One per scored frame, in the order of ``frames``.
    gt_boxes : sequence or mapping frame index -> (N, 4) boxes, or None
        Indexed by the frame index ``t`` (a missing key: no objects in that frame).
    frames : sequence of int, optional
        Frame indices scored (default all).
    gt_masks : sequence or mapping frame index -> mask, optional
        For pixel scores.
    mask_fn : callable, optional
        ``(frame, background) -> mask``; default ``threshold_mask(threshold, polarity)``.
    min_area, connectivity, iou_threshold
        Object protocol: components of ``>= min_area`` px -> boxes, match when ``IoU > iou_threshold``.
    """
    from vidfilter.io.registry import open as open_source

    src = open_source(src)

    def at(t: int, bg: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        frame = src[t]
        g = _gt_at(gt_boxes, t)
        g = np.zeros((0, 4)) if g is None else np.asarray(getattr(g, "boxes", g), dtype=np.float64).reshape(-1, 4)
        return frame, (g, _gt_at(gt_masks, t), residual_noise(frame, bg).sigma, min_area, connectivity)

    return _score_masks(mask_fn, threshold, polarity, _frames(len(src), frames), backgrounds,
                        lambda: _Acc(gt_boxes is not None, gt_masks is not None, iou_threshold), at)


class _Acc:
    def __init__(self, boxes: bool, masks: bool, iou_threshold: float) -> None:
        self.box = BoxScore(iou_threshold) if boxes else None
        self.pix = PixelScore() if masks else None
        self.flagged: list[float] = []
        self.noise: list[float] = []
        self.in_box = [0, 0]

    def update(self, mask: np.ndarray, g: np.ndarray, gm: Any, sigma: float, min_area: int, connectivity: int) -> None:
        self.flagged.append(float(mask.mean()))
        self.noise.append(sigma)
        if self.box is not None:
            self.box.update(mask_to_boxes(mask, min_area=min_area, connectivity=connectivity), g)
            self.in_box[0] += int(np.count_nonzero(mask & _box_mask(g, mask.shape)))
            self.in_box[1] += int(np.count_nonzero(mask))
        if self.pix is not None:
            self.pix.update(mask, np.zeros(mask.shape, bool) if gm is None else gm)

    def result(self) -> QualityResult:
        return QualityResult(
            box=self.box.result() if self.box is not None else None,
            pixel=self.pix.result() if self.pix is not None else None,
            flagged=float(np.mean(self.flagged)) if self.flagged else 0.0,
            in_boxes=(self.in_box[0] / self.in_box[1] if self.in_box[1] else None) if self.box is not None else None,
            noise=float(np.median(self.noise)) if self.noise else 0.0,
            n_frames=len(self.flagged),
        )


@dataclass
class RecordingResult:
    """Scores of one method on a synthetic recording.

    ``pixel`` / ``box``: against the exact masks and the animals' boxes; ``still_recall`` /
    ``moving_recall``: share of (frame, animal) pairs whose animal pixels are at least ``cover``
    covered by the predicted mask, for still and for moving animals (None when there are none);
    ``still_pixels`` / ``moving_pixels``: pixel recall restricted to those animals;
    ``still_box_recall`` / ``moving_box_recall``: share of those animals' true boxes matched by the
    object protocol (the same Hungarian matching as ``box``, counted per group).
    """

    pixel: Scores
    box: Scores
    still_recall: float | None
    moving_recall: float | None
    still_pixels: float | None
    moving_pixels: float | None
    n_frames: int
    still_box_recall: float | None = None
    moving_box_recall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _label_boxes(labels: np.ndarray, min_area: int) -> tuple[np.ndarray, list[int]]:
    """Boxes of the labels with at least ``min_area`` pixels, and those labels."""
    from scipy import ndimage

    out, ids = [], []
    n = int(labels.max())
    if n == 0:
        return np.zeros((0, 4)), ids
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is not None and areas[k] >= min_area:
            out.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
            ids.append(k)
    return np.asarray(out, dtype=np.float64).reshape(-1, 4), ids


def score_recording(
    rec: Any, backgrounds: Iterable[np.ndarray] | Any, *, frames: Sequence[int] | None = None,
    mask_fn: MaskFn | Mapping[str, MaskFn] | None = None, threshold: float = 10.0, polarity: Any = "absolute",
    min_area: int = 250, connectivity: int = 8, iou_threshold: float = 0.5, cover: float = 0.5,
) -> Any:
    """Score backgrounds of a synthetic recording against its exact ground truth.

    Returns a :class:`RecordingResult`, or ``dict name -> RecordingResult`` when ``mask_fn`` is a
    mapping of named mask functions (each background is computed once and scored by all).

    Parameters
    ----------
    rec : SyntheticRecording
        Gives ``rec.frame(t)`` (frame, true background, mask), ``rec.labels(t)``,
        ``rec.still_labels`` and ``rec.moving_labels``.
    backgrounds : iterable of float32 [0, 1] arrays, or an estimator
        One per scored frame (in the order of ``frames``); an object with ``prepare`` and
        ``background`` is run through :func:`estimator_backgrounds` on the recording.
    min_area
        True objects are the animals with at least ``min_area`` mask pixels in the frame (the
        boxes of their labels, so touching animals stay two objects); smaller ones (mostly off the
        image) are left out of the box score. Predicted boxes: components ``>= min_area``.
    mask_fn : callable or mapping name -> callable, optional
        ``(frame, background) -> mask``; default ``threshold_mask(threshold, polarity)``.
    cover
        An animal is recalled in a frame when at least this share of its pixels is in the mask.
    """
    from vidfilter.io.array_source import ArrayFrameSource

    wanted = _frames(len(rec), frames)
    if hasattr(backgrounds, "prepare") and hasattr(backgrounds, "background"):
        backgrounds = estimator_backgrounds(backgrounds, ArrayFrameSource(rec, fps=getattr(rec, "fps", None)), wanted)
    still = set(getattr(rec, "still_labels", ()))

    def at(t: int, bg: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
        sf = rec.frame(t)
        labels = rec.labels(t)
        return sf.frame, (sf.mask, labels, *_label_boxes(labels, min_area), min_area, connectivity)

    return _score_masks(mask_fn, threshold, polarity, wanted, backgrounds, lambda: _RecAcc(still, iou_threshold, cover), at)


class _RecAcc:
    """Pooled counts of :func:`score_recording` for one mask function."""

    def __init__(self, still: set[int], iou_threshold: float, cover: float) -> None:
        self.still = still
        self.cover = cover
        self.pix, self.box = PixelScore(), BoxScore(iou_threshold)
        self.counts = {"still": [0, 0], "moving": [0, 0]}  # recalled, total
        self.pixels = {"still": [0, 0], "moving": [0, 0]}  # covered, total
        self.boxes = {"still": [0, 0], "moving": [0, 0]}  # matched, total
        self.n = 0

    def update(self, mask: np.ndarray, truth: np.ndarray, labels: np.ndarray, gt_boxes: np.ndarray,
               gt_ids: list[int], min_area: int, connectivity: int) -> None:
        self.pix.update(mask, truth)
        match = self.box.update(mask_to_boxes(mask, min_area=min_area, connectivity=connectivity), gt_boxes)
        matched = {gt_ids[j] for j in match.pairs[:, 1].tolist()}
        for k in gt_ids:
            kind = "still" if k in self.still else "moving"
            self.boxes[kind][1] += 1
            self.boxes[kind][0] += int(k in matched)
        n_lab = int(labels.max())
        if n_lab:
            area = np.bincount(labels.ravel(), minlength=n_lab + 1)
            hit = np.bincount(labels[mask].ravel(), minlength=n_lab + 1)
            for k in np.nonzero(area[1:])[0] + 1:
                kind = "still" if int(k) in self.still else "moving"
                self.counts[kind][1] += 1
                self.counts[kind][0] += int(hit[k] >= self.cover * area[k])
                self.pixels[kind][0] += int(hit[k])
                self.pixels[kind][1] += int(area[k])
        self.n += 1

    def result(self) -> RecordingResult:
        shares = {f"{kind}_{name}": c[kind][0] / c[kind][1] if c[kind][1] else None
                  for name, c in (("recall", self.counts), ("pixels", self.pixels), ("box_recall", self.boxes))
                  for kind in ("still", "moving")}
        return RecordingResult(pixel=self.pix.result(), box=self.box.result(), n_frames=self.n, **shares)
