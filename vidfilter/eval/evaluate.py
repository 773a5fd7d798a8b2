"""``vidfilter eval``: score an output store or a background against ground truth.

What is scored (the *prediction*):

- an output store ``OUT.zarr`` of ``vidfilter run`` (any ``--method``): its ``foreground`` group
  (``|frame - background|`` or one-sided, as the run's polarity), its ``mask`` group
  (``--mask-method stored``), or its ``background`` against the input frames (the input recorded
  in the store, or ``--input``);
- a background on its own (an image, an image folder, a video, a TIFF or Zarr stack: one frame
  for every input frame, or a single frame used for all of them) with ``--input FRAMES``.

Foreground masks (:mod:`vidfilter.polarity`, :mod:`vidfilter.eval.masks`): ``fixed`` (foreground > ``threshold`` grey levels on
the 8-bit scale, the paper's rule), ``otsu`` (Otsu on the Gaussian-filtered foreground), ``noise``
(threshold from the residual noise level; needs the frames), ``object`` (whole objects by
hysteresis from the noise level, :func:`vidfilter.polarity.object_mask`; needs the frames),
``stored`` (the store's mask).

Ground truth, any combination:

- ``masks``: a mask per frame (a folder of PNG/TIFF, a TIFF stack, a Zarr array ``T x H x W``;
  one 2-D image for a single frame) -> pixel P/R/F1/IoU pooled over the frames;
- ``boxes``: CSV / COCO JSON / YOLO txt / Pascal VOC (:func:`~vidfilter.io.annotations.load_boxes`)
  -> object P/R/F1: components of at least ``min_area`` px -> boxes, Hungarian matching on
  1/IoU, a match when IoU > ``iou_threshold``;
- ``points``: a CSV ``frame,x,y[,class]`` or a colour-coded PNG (one image) -> point-in-object
  P/R/F1 (BBBC026 style) on the same components.

Ground-truth keys are matched to frames by index, or, when the frames are an image folder, by the
files' names (``000003.png`` is key ``3``, ``"000003"`` or ``"000003.png"``). With integer keys (CSV
files) a frame without a row has no objects; with name keys (COCO, YOLO, VOC) a frame without an
entry is not labelled and is left out. Memory: one frame (and its ground truth) at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError, InputNotFoundError, UnreadableInputError
from vidfilter.eval.masks import noise_mask, otsu_mask
from vidfilter.eval.metrics import BoxScore, PixelScore, PointScore, Scores, mask_to_boxes, scores_table
from vidfilter.polarity import ROUNDOFF, clean_mask, foreground, grey_levels, object_mask, polarity_name as _polarity

__all__ = ["MASK_METHODS", "EvalReport", "evaluate", "parse_frames"]

#: Valid ``mask_method`` values.
MASK_METHODS = ("fixed", "otsu", "noise", "object", "stored")
#: How the report names each mask (``t``: threshold, ``s``: sigma, ``p``: polarity).
_MASK_DESCRIPTIONS = {
    "fixed": "foreground > {t:g} grey levels ({p})",
    "otsu": "Otsu on the foreground smoothed by sigma {s:g} ({p})",
    "noise": "noise-level threshold ({p})",
    "object": "whole objects: hysteresis from the noise level, closing, dilation ({p})",
    "stored": "the run's stored mask",
}


@dataclass
class EvalReport:
    """Scores of one prediction; ``None`` for a kind of ground truth that was not given."""

    prediction: str
    input: str | None
    mask: str
    n_frames: int
    flagged: float
    pixel: Scores | None = None
    box: Scores | None = None
    point: Scores | None = None
    frames_scored: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = {k: getattr(self, k) for k in ("prediction", "input", "mask", "n_frames", "flagged", "frames_scored", "settings")}
        for k in ("pixel", "box", "point"):
            s = getattr(self, k)
            d[k] = None if s is None else s.as_dict()
        return d

    def table(self) -> str:
        """The scores as a markdown table with a one-line header."""
        rows = {name: s for name, s in (("pixel", self.pixel), ("objects (boxes)", self.box), ("points", self.point)) if s is not None}
        head = (f"{self.prediction}: {self.n_frames} frames, mask {self.mask}, "
                f"{100 * self.flagged:.2f} % of the pixels flagged")
        return head + "\n" + scores_table(rows)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`as_dict` to ``path`` (temp file then rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, default=str))
        tmp.replace(p)
        return p


def parse_frames(spec: str | Sequence[int] | slice | None, n: int) -> list[int]:
    """Frame indices from ``None`` (all), a sequence, a slice or ``"START:STOP[:STEP]"`` / ``"T"``."""
    if spec is None:
        return list(range(n))
    if isinstance(spec, slice):
        return list(range(n))[spec]
    if isinstance(spec, str):
        try:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
        except ValueError:
            raise ConfigError(f"frames {spec!r}: use START:STOP[:STEP] or one frame number") from None
        if len(parts) == 1:
            if parts[0] is None:
                return list(range(n))
            parts = [parts[0], parts[0] + 1]
        if len(parts) > 3:
            raise ConfigError(f"frames {spec!r}: use START:STOP[:STEP] or one frame number")
        return list(range(n))[slice(*parts)]
    out = [int(t) for t in spec]
    if bad := [t for t in out if not 0 <= t < n]:
        raise ConfigError(f"frames {bad[:3]} are outside the recording's {n} frames")
    return out


# ---------------------------------------------------------------------------------------------
# opening the prediction


def _is_store(p: Path) -> bool:
    return p.is_dir() and (p / "background").is_dir() and (p.suffix.lower() == ".zarr" or p.name.endswith(".zarr.partial"))


class _Prediction:
    """Per-frame access to a prediction: foreground image (grey levels), stored mask, frame, background."""

    def __init__(self, prediction: str | os.PathLike[str], input: str | os.PathLike[str] | None, polarity: Any) -> None:
        from vidfilter.io.registry import open as vf_open

        self.path = Path(os.fspath(prediction)).expanduser()
        if not self.path.exists():
            raise InputNotFoundError(f"{self.path}: no such file or folder; give an output store OUT.zarr or a background image")
        self.fg = self.mask = self.frames = None
        self.store = _is_store(self.path)
        input_path = None if input is None else str(input)
        if self.store:
            from vidfilter.io.zarr_info import read_ome_zarr_info

            info = read_ome_zarr_info(self.path)
            if not info["complete"]:
                raise ConfigError(f"{self.path} is an incomplete run; finish it (run the same command again) before scoring it")
            attrs = info.get("attrs", {})
            self.store_polarity = str(((attrs.get("config") or {}).get("output") or {}).get("polarity", "absolute"))
            self.bg = vf_open(self.path / "background")
            if "foreground" in info["groups"]:
                self.fg = vf_open(self.path / "foreground")
            if "mask" in info["groups"]:
                self.mask = vf_open(self.path / "mask")
            recorded = (attrs.get("input") or {}).get("path")
            if input_path is None and recorded and Path(recorded).exists():
                input_path = recorded
            self.polarity = _polarity(polarity) if polarity is not None else self.store_polarity
        else:
            if input_path is None:
                raise ConfigError(f"{self.path} is not an output store of `vidfilter run`: to score it as a background give the frames with --input")
            self.bg = vf_open(self.path)
            self.store_polarity = None
            self.polarity = _polarity(polarity) if polarity is not None else "absolute"
        self.input = input_path
        if input_path is not None:
            self.frames = vf_open(input_path)
        self.n = len(self.bg) if self.store or len(self.bg) > 1 else len(self.frames)  # type: ignore[arg-type]
        if self.frames is not None and len(self.frames) != self.n:
            raise ConfigError(f"{input_path} has {len(self.frames)} frames but {self.path} has {self.n}; score the background of the same recording")
        if self.frames is not None and tuple(self.frames.frame_shape)[:2] != tuple(self.bg.frame_shape)[:2]:
            raise ConfigError(
                f"{input_path} frames are {tuple(self.frames.frame_shape)} but {self.path} is {tuple(self.bg.frame_shape)}; they must match"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.bg.frame_shape)[:2]  # type: ignore[return-value]

    def keys(self) -> list[set[Any]]:
        """Candidate ground-truth keys of each frame: its index, and its file name when the frames are images."""
        files = getattr(self.frames, "files", None) if self.frames is not None else None
        if files is None or len(files) != self.n:
            return [{t} for t in range(self.n)]
        return [_file_keys(f) for f in files]

    def _background(self, t: int) -> np.ndarray:
        return self.bg[t if len(self.bg) > 1 else 0]

    def foreground(self, t: int) -> np.ndarray:
        """Foreground of frame ``t`` in grey levels (8-bit scale), following the polarity."""
        if self.fg is not None and self.polarity == self.store_polarity:
            return grey_levels(self.fg[t])
        if self.frames is None:
            raise ConfigError(
                f"polarity {self.polarity!r} differs from the run's ({self.store_polarity!r}) and the input frames are not "
                f"available; give them with --input"
            )
        return foreground(self.frames[t], self._background(t), self.polarity)

    def frames_mask(self, t: int, method: str) -> np.ndarray:
        """The ``noise`` or ``object`` mask of frame ``t``: both are made from the frame itself."""
        if self.frames is None:
            raise ConfigError(f"--mask-method {method} needs the input frames: give them with --input")
        return (noise_mask if method == "noise" else object_mask)(self.frames[t], self._background(t), polarity=self.polarity)

    def stored_mask(self, t: int) -> np.ndarray:
        if self.mask is None:
            raise ConfigError(f"{self.path} has no mask group (run with --mask), or pick --mask-method fixed")
        return np.asarray(self.mask[t]) != 0


# ---------------------------------------------------------------------------------------------
# ground truth lookups


def _file_keys(file: str | os.PathLike[str]) -> set[Any]:
    """The ground-truth keys that name a file: its name, its stem and, when the stem is a number, that number."""
    f = Path(file)
    keys: set[Any] = {f.name, f.stem}
    try:
        keys.add(int(f.stem))
    except ValueError:
        pass
    return keys


def _is_yolo(p: Path) -> bool:
    if p.is_dir():
        return not any(p.glob("*.xml")) and any(p.glob("*.txt"))
    return p.suffix.lower() == ".txt"


def _lookup(gt: Mapping[Any, Any], keys: list[set[Any]], what: str, path: Any) -> list[Any]:
    """Per frame the ground-truth entry, ``"empty"`` (labelled, no objects) or ``None`` (not labelled).

    Frames are matched by their file names when they have some and one of them is a key, else by index.
    """
    found = [next((k for k in cand if k in gt), None) for cand in keys]
    if all(k is None for k in found):
        found = [t if t in gt else None for t in range(len(keys))]
    if gt and all(k is None for k in found):
        sample_gt = sorted(map(str, list(gt)[:3]))
        sample_fr = sorted(map(str, keys[0])) if keys else []
        raise ConfigError(
            f"{path}: no {what} key matches a frame (keys like {sample_gt}; frame 0 is {sample_fr}); "
            f"key the ground truth by frame index or by the frames' file names"
        )
    int_keys = bool(gt) and all(isinstance(k, (int, np.integer)) for k in gt)
    return [gt[k] if k is not None else ("empty" if int_keys else None) for k in found]


class _MaskTruth:
    """Ground-truth masks read one frame at a time."""

    def __init__(self, path: str | os.PathLike[str], keys: list[set[Any]], shape: tuple[int, int]) -> None:
        from vidfilter.io.registry import open as vf_open

        self.path = path
        try:
            self.src = vf_open(path)
        except (UnreadableInputError, ValueError):
            self.src = None
        if self.src is None:  # e.g. a mask file the frame readers do not take
            from vidfilter.io.annotations import load_mask

            arr = load_mask(path, binary=False)
            from vidfilter.io.array_source import ArrayFrameSource

            self.src = ArrayFrameSource(arr if arr.ndim == 3 else arr[None])
        n_gt, n = len(self.src), len(keys)
        files = getattr(self.src, "files", None)
        if n_gt == n:
            self.index: list[int | None] = list(range(n))
        elif files is not None:  # masks named by frame index / frame file name: a subset of the frames
            names = {k: i for i, f in enumerate(files) for k in _file_keys(f)}
            self.index = [next((names[k] for k in cand if k in names), None) for cand in keys]
            if all(i is None for i in self.index):
                raise ConfigError(f"{path}: {n_gt} ground-truth masks for {n} frames and none is named after a frame; give one mask per frame")
        else:
            raise ConfigError(f"{path}: {n_gt} ground-truth masks for {n} frames; give one mask per frame")
        if tuple(self.src.frame_shape)[:2] != tuple(shape):
            raise ConfigError(f"{path}: masks are {tuple(self.src.frame_shape)[:2]} but the frames are {tuple(shape)}")

    def __getitem__(self, t: int) -> np.ndarray | None:
        i = self.index[t]
        return None if i is None else np.asarray(self.src[i]) != 0


def _load_points(path: str | os.PathLike[str], point_class: str | None, n: int) -> dict[Any, list[tuple[float, float]]]:
    from vidfilter.io.annotations import load_points_csv, load_points_png

    p = Path(os.fspath(path))
    if p.suffix.lower() == ".csv":
        by_frame = load_points_csv(p)
    else:
        if n != 1:
            raise ConfigError(f"{p}: a point PNG annotates one image but the prediction has {n} frames; use a CSV frame,x,y[,class]")
        by_frame = {0: load_points_png(p)}
    classes = sorted({c for d in by_frame.values() for c in d})
    if point_class is not None and point_class not in classes:
        raise ConfigError(f"{p}: no points of class {point_class!r}; classes found: {', '.join(classes) or 'none'}")
    return {k: [pt for c, pts in d.items() if point_class in (None, c) for pt in pts] for k, d in by_frame.items()}


# ---------------------------------------------------------------------------------------------


def evaluate(
    prediction: str | os.PathLike[str], *, input: str | os.PathLike[str] | None = None,
    masks: str | os.PathLike[str] | None = None, boxes: str | os.PathLike[str] | None = None,
    points: str | os.PathLike[str] | None = None, mask_method: str = "fixed", threshold: float = 10.0,
    polarity: Any = None, sigma: float = 1.0, min_area: int = 250, connectivity: int = 8, iou_threshold: float = 0.5,
    frames: str | Sequence[int] | slice | None = None, box_class: str | None = None, point_class: str | None = None,
    box_inclusive: bool = False,
) -> EvalReport:
    """Score a prediction (output store or background) against masks, boxes and/or points.

    Parameters
    ----------
    prediction
        ``OUT.zarr`` written by ``vidfilter run``, or a background (then ``input`` is needed).
    input
        The frames (default for a store: the input it recorded, when it still exists).
    masks, boxes, points
        Ground truth (see the module docstring); at least one.
    mask_method : {"fixed", "otsu", "noise", "object", "stored"}
        How the foreground mask is made; ``threshold`` (grey levels) for ``fixed``, ``sigma``
        (Gaussian, px) for ``otsu``.
    polarity : {"absolute", "dark", "bright"}, optional
        Default: the run's polarity for a store, ``absolute`` (the paper's ``|output - input|``) for a background.
    min_area, connectivity, iou_threshold
        Object protocol: components of ``>= min_area`` px, match when ``IoU > iou_threshold``.
    frames
        Frames scored: ``"START:STOP[:STEP]"``, a list or a slice (default all).
    box_class, point_class
        Only ground-truth boxes / points of this class (default all classes).
    box_inclusive
        Box CSV whose ``x1, y1`` are the last pixel (not the edge).
    """
    _check_args(masks, boxes, points, mask_method, min_area)
    pred = _Prediction(prediction, input, polarity)
    keys = pred.keys()
    wanted = parse_frames(frames, pred.n)
    gt_masks = _MaskTruth(masks, keys, pred.shape) if masks is not None else None
    gt_boxes = _box_truth(boxes, keys, pred.shape, box_class, box_inclusive) if boxes is not None else None
    gt_points = _lookup(_load_points(points, point_class, pred.n), keys, "point", points) if points is not None else None

    flagged, scorers = _score_frames(pred, wanted, (gt_masks, gt_boxes, gt_points), mask_method, threshold, sigma,
                                     min_area, connectivity, iou_threshold)
    if not flagged:
        raise ConfigError("no scored frame has ground truth; check the frame keys and --frames")
    scores = {k: s.result() for k, s in scorers.items()}
    return EvalReport(
        prediction=str(pred.path), input=pred.input, mask=_MASK_DESCRIPTIONS[mask_method].format(t=threshold, s=sigma, p=pred.polarity),
        n_frames=len(flagged), flagged=float(np.mean(flagged)),
        pixel=scores.get("pixel"), box=scores.get("box"), point=scores.get("point"),
        frames_scored={k: s.n_frames if k != "point" else s.n_images for k, s in scorers.items()},
        settings={"mask_method": mask_method, "threshold": threshold, "polarity": pred.polarity, "sigma": sigma,
                  "min_area": min_area, "connectivity": connectivity, "iou_threshold": iou_threshold,
                  "masks": None if masks is None else str(masks), "boxes": None if boxes is None else str(boxes),
                  "points": None if points is None else str(points), "box_class": box_class, "point_class": point_class},
    )


def _score_frames(pred: _Prediction, wanted: list[int], truth: tuple[Any, Any, Any], mask_method: str, threshold: float,
                  sigma: float, min_area: int, connectivity: int, iou_threshold: float) -> tuple[list[float], dict[str, Any]]:
    """Score the frames of ``wanted`` that have ground truth (masks, boxes, points; ``None`` where not given);
    returns the share of the pixels flagged in each scored frame and the scorers of the ground truth given."""
    gt_masks, gt_boxes, gt_points = truth
    pix = PixelScore() if gt_masks is not None else None
    box = BoxScore(iou_threshold) if gt_boxes is not None else None
    pts = PointScore() if gt_points is not None else None
    flagged: list[float] = []
    for t in wanted:
        gm = gt_masks[t] if gt_masks is not None else None
        gb = gt_boxes[t] if gt_boxes is not None else None
        gp = gt_points[t] if gt_points is not None else None
        if gm is None and gb is None and gp is None:
            continue  # no ground truth for this frame
        mask = _mask(pred, t, mask_method, threshold, sigma)
        flagged.append(float(mask.mean()))
        if gm is not None:
            pix.update(mask, gm)  # type: ignore[union-attr]
        if gb is not None:
            box.update(mask_to_boxes(mask, min_area=min_area, connectivity=connectivity), np.zeros((0, 4)) if isinstance(gb, str) else gb)  # type: ignore[union-attr]
        if gp is not None:
            objects = clean_mask(mask, min_area=min_area, connectivity=connectivity)
            pts.update(_label(objects, connectivity), [] if isinstance(gp, str) else gp)  # type: ignore[union-attr]
    return flagged, {k: s for k, s in (("pixel", pix), ("box", box), ("point", pts)) if s is not None}


def _check_args(masks: Any, boxes: Any, points: Any, mask_method: str, min_area: int) -> None:
    """ConfigError for no ground truth, an unknown mask method or a ``min_area`` below 1."""
    if masks is None and boxes is None and points is None:
        raise ConfigError("nothing to score against: give ground truth with --masks, --boxes and/or --points")
    if mask_method not in MASK_METHODS:
        import difflib

        close = difflib.get_close_matches(str(mask_method), MASK_METHODS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown mask method {mask_method!r}{hint} (valid: {', '.join(MASK_METHODS)})")
    if min_area < 1:
        raise ConfigError(f"min_area must be >= 1, got {min_area}")


def _box_truth(boxes: str | os.PathLike[str], keys: list[set[Any]], shape: tuple[int, int], box_class: str | None,
               inclusive: bool) -> list[Any]:
    """Per frame the ground-truth boxes (of ``box_class`` when given), as :func:`_lookup` returns them."""
    from vidfilter.io.annotations import load_boxes

    bp = Path(os.fspath(boxes))
    kw: dict[str, Any] = {}
    if _is_yolo(bp) and bp.exists():
        kw["image_size"] = (shape[1], shape[0])
    elif bp.suffix.lower() == ".csv":
        kw["inclusive"] = inclusive
    loaded = load_boxes(bp, **kw)
    if box_class is not None:
        classes = sorted({c for fb in loaded.values() for c in fb.classes})
        if box_class not in classes:
            raise ConfigError(f"{bp}: no boxes of class {box_class!r}; classes found: {', '.join(classes) or 'none'}")
        by_key = {k: fb.of_class(box_class) for k, fb in loaded.items()}
    else:
        by_key = {k: fb.boxes for k, fb in loaded.items()}
    return _lookup(by_key, keys, "box", bp)


def _mask(pred: _Prediction, t: int, method: str, threshold: float, sigma: float) -> np.ndarray:
    if method == "stored":
        return pred.stored_mask(t)
    if method in ("noise", "object"):
        return pred.frames_mask(t, method)
    fg = pred.foreground(t)
    if method == "otsu":
        return otsu_mask(fg, sigma=sigma)
    return fg > threshold + ROUNDOFF


def _label(mask: np.ndarray, connectivity: int) -> np.ndarray:
    from skimage.measure import label

    return label(mask, connectivity=1 if connectivity == 4 else 2)

