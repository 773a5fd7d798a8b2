"""Crop extraction for the static mode: annotated images -> a crop bank (``vidfilter extract-crops``).

A **crop bank** is a folder::

    BANK/
      targets/000000.tif ...      target objects (Ot): float32 linear crops, zero outside the object
      unwanted/000000.tif ...     unwanted objects (Ou), same format
      backgrounds/000000.tif ...  one per image: the linear image with every object set to zero
                                  ("fill me"); uncompressed, so training memory-maps it
      manifest.json               provenance (inputs, annotations, settings, vidfilter version) and,
                                  per crop, its source image, box and statistics
      contact_sheet.png           crops of each class and background thumbnails, to inspect

Crops are lossless (float32 TIFF, zlib) in the *linear* units of
:mod:`vidfilter.synth.preprocess` (grey, complemented when ``preprocess.invert``), so intensities
add up when pairs are synthesised. The bank is written to ``BANK.partial`` and renamed when done;
the folder carries vidfilter's marker file (:data:`vidfilter.io.ownership.MARKER_NAME`) from the
moment it appears under that name, so a rerun after a kill may clear it and ``--overwrite`` may
replace a finished bank, while a folder vidfilter did not write is never deleted.

Recipes (``config.static.extract.recipe``), after the supplement of the paper:

- ``labels``: a label or mask image per image; connected components of the pixels whose value is
  in ``target_labels`` / ``unwanted_labels`` become Ot / Ou crops.
- ``points`` (BBBC026): Otsu on the (smoothed) log image, connected components; a component is
  an Ot crop if it holds only target points, an Ou crop if only unwanted points, else discarded
  (mixed, debris, or no point). Points come from a colour-coded PNG per image, or from marks
  drawn on the image itself (the BBBC026 ground-truth layout; marked pixels are replaced by the
  median of their neighbourhood before anything else).
- ``boxes`` (BBBC042): per labelled box, Otsu inside the box keeping the largest component (Ot);
  the boxes are zeroed, then random squares (``square_size``) outside every box give Ou crops by
  the same procedure. Boxes from CSV ``x0,y0,x1,y1[,class]`` (per image, or one file with an
  ``image``/``frame`` column), Pascal VOC XML, COCO JSON, or BBBC042 ``positions/<id>.txt``.
- ``focus`` (microglia, no annotation): local (or Otsu) threshold, components of at least
  ``min_area`` px; each crop is scored by the mean ``|LoG|`` over its object pixels; scores below
  the low threshold are out of focus (Ou), above the high one in focus (Ot), between discarded.

Backgrounds: the linear image with the foreground (grown by ``background_dilate`` px) set to 0;
for boxes, every box and the thresholded foreground outside them.

Annotations and images are paired by file stem (``a.png`` <-> ``ANN/a.png|.csv|.xml|.txt``).
With a folder of per-image annotations, files without an image among the inputs are ignored;
an annotation file that names images (CSV ``image``/``frame`` column, COCO, VOC ``filename``)
must find each of them among the inputs, and every input image needs an annotation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from vidfilter.config import Config
from vidfilter.config_static import ExtractConfig, PreprocessConfig
from vidfilter.errors import ConfigError, InputNotFoundError, TrainingInputError, UnreadableInputError, UnsupportedInputError
from vidfilter.synth.preprocess import encode, linearise, resolve_gain

__all__ = [
    "BANK_FORMAT",
    "BANK_KIND",
    "BANK_VERSION",
    "CLASS_DIRS",
    "Crop",
    "Extracted",
    "extract_boxes",
    "extract_crops",
    "extract_labels",
    "extract_points",
    "focus_candidates",
    "foreground_mask",
    "read_points",
    "write_bank",
]

log = logging.getLogger(__name__)

BANK_FORMAT = "vidfilter-crops"
BANK_VERSION = 1
#: Folder of each crop class inside a bank.
CLASS_DIRS = {"target": "targets", "unwanted": "unwanted"}
_ANN_SUFFIXES = {
    "points": (".png", ".tif", ".tiff"),
    "labels": (".png", ".tif", ".tiff"),
    "boxes": (".csv", ".xml", ".txt", ".json"),
}
_EIGHT = np.ones((3, 3), bool)


# ---------------------------------------------------------------------------------------------
# data


@dataclass
class Crop:
    """One object crop: ``image`` float32 linear, zero outside the object; ``bbox`` ``(x0, y0, x1, y1)``
    in the source image (pixel edges); ``focus`` the mean |LoG| score when it was computed."""

    role: str
    image: np.ndarray
    source: int = -1
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    focus: float | None = None

    def stats(self) -> dict[str, Any]:
        v = self.image[self.image > 0]
        d: dict[str, Any] = {
            "role": self.role, "source": self.source, "bbox": list(self.bbox),
            "shape": list(self.image.shape), "area": int(v.size),
            "mean": float(v.mean()) if v.size else 0.0, "max": float(v.max()) if v.size else 0.0,
            "p10": float(np.quantile(v, 0.1)) if v.size else 0.0, "p90": float(np.quantile(v, 0.9)) if v.size else 0.0,
        }
        if self.focus is not None:
            d["focus"] = float(self.focus)
        return d


@dataclass
class Extracted:
    """What one image gave: crops (Ot and Ou), its background, and how many objects were discarded."""

    crops: list[Crop] = field(default_factory=list)
    background: np.ndarray | None = None
    discarded: int = 0


# ---------------------------------------------------------------------------------------------
# segmentation helpers


def _threshold_image(lin: np.ndarray, cfg: ExtractConfig, gain: float) -> np.ndarray:
    img = lin
    if cfg.threshold_on_log:
        img = encode(lin, PreprocessConfig(log=True), gain)
    if cfg.smooth > 0:
        img = ndimage.gaussian_filter(img, cfg.smooth)
    return img.astype(np.float32, copy=False)


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy * yy + xx * xx <= r * r


def _remove_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0 or min_area <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_area
    keep[0] = False
    return keep[lab]


def foreground_mask(lin: np.ndarray, cfg: ExtractConfig, gain: float, *, min_area: int | None = None) -> np.ndarray:
    """Objects of a linear image: the configured threshold (Otsu or local, on the log image when
    ``threshold_on_log``, after a Gaussian of sigma ``smooth``), an opening of radius ``opening``,
    then components of at least ``min_area`` px (default ``cfg.min_area``)."""
    from skimage.filters import threshold_local, threshold_otsu

    img = _threshold_image(lin, cfg, gain)
    if float(img.max()) == float(img.min()):
        return np.zeros(img.shape, bool)
    if cfg.threshold == "otsu":
        mask = img > threshold_otsu(img)
    else:
        block = min(cfg.local_block, 2 * (min(img.shape) // 2) - 1)
        mask = img > threshold_local(img, block_size=max(block, 3), method="gaussian", offset=-cfg.local_offset)
    if cfg.opening > 0:
        mask = ndimage.binary_opening(mask, structure=_disk(cfg.opening))
    return _remove_small(mask, cfg.min_area if min_area is None else min_area)


def _background(lin: np.ndarray, foreground: np.ndarray, dilate: int) -> np.ndarray:
    fg = ndimage.binary_dilation(foreground, structure=_disk(dilate)) if dilate > 0 else foreground
    bg = lin.copy()
    bg[fg] = 0.0
    return bg


def _touches_border(sl: tuple[slice, slice], shape: tuple[int, ...]) -> bool:
    return sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == shape[0] or sl[1].stop == shape[1]


def _too_big(sl: tuple[slice, slice], cfg: ExtractConfig) -> bool:
    return cfg.max_size is not None and max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) > cfg.max_size


def _components(lab: np.ndarray, cfg: ExtractConfig, out: Extracted) -> Iterator[tuple[int, tuple[slice, slice]]]:
    """``(label, slices)`` of each component of ``lab`` that may give a crop; those touching the
    border (unless ``cfg.keep_border``) or larger than ``cfg.max_size`` are counted in ``out.discarded``."""
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        if (not cfg.keep_border and _touches_border(sl, lab.shape)) or _too_big(sl, cfg):
            out.discarded += 1
            continue
        yield k, sl


def _component_crop(lin: np.ndarray, lab: np.ndarray, k: int, sl: tuple[slice, slice], role: str, source: int) -> Crop:
    img = np.where(lab[sl] == k, lin[sl], 0.0).astype(np.float32)
    bbox = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return Crop(role, img, source, bbox)


def _largest_component_crop(sub: np.ndarray, cfg: ExtractConfig, gain: float, origin: tuple[int, int], role: str, source: int) -> Crop | None:
    """Otsu inside ``sub`` (a box or square of the linear image), keep the largest component."""
    from skimage.filters import threshold_otsu

    img = _threshold_image(sub, cfg, gain)
    if img.size < 4 or float(img.max()) == float(img.min()):
        return None
    mask = img > threshold_otsu(img)
    lab, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    k = int(sizes.argmax())
    if sizes[k] < cfg.min_area:
        return None
    sl = ndimage.find_objects((lab == k).astype(np.int32))[0]
    img_c = np.where(lab[sl] == k, sub[sl], 0.0).astype(np.float32)
    y0, x0 = origin
    bbox = (x0 + sl[1].start, y0 + sl[0].start, x0 + sl[1].stop, y0 + sl[0].stop)
    return Crop(role, img_c, source, bbox)


# ---------------------------------------------------------------------------------------------
# recipes on one image


def extract_labels(lin: np.ndarray, labels: np.ndarray, cfg: ExtractConfig, *, source: int = -1) -> Extracted:
    """Ot / Ou crops from the components of the pixels whose label is a target / unwanted id."""
    labels = np.asarray(labels)
    if labels.ndim == 3:  # a label image saved as colour: any channel
        labels = labels[..., 0]
    if labels.shape != lin.shape:
        raise UnsupportedInputError(f"the label image is {labels.shape} but its image is {lin.shape}; they must match")
    out = Extracted()
    for role, ids in (("target", cfg.target_labels), ("unwanted", cfg.unwanted_labels)):
        mask = _remove_small(np.isin(labels, ids), cfg.min_area)
        lab, _ = ndimage.label(mask, structure=_EIGHT)
        for k, sl in _components(lab, cfg, out):
            out.crops.append(_component_crop(lin, lab, k, sl, role, source))
    out.background = _background(lin, labels != 0, cfg.background_dilate)
    return out


def extract_points(
    lin: np.ndarray, points: dict[str, list[tuple[int, int]]], cfg: ExtractConfig, gain: float, *, source: int = -1
) -> Extracted:
    """Components of the thresholded image, classed by the points inside them (BBBC026).

    ``points``: ``{"target": [(y, x)], "unwanted": [...], "discard": [...]}``. A component with
    only target points is Ot, only unwanted points Ou; mixed, discard-coloured or unmarked
    components are discarded.
    """
    from vidfilter.eval.objects import points_per_object

    everything = foreground_mask(lin, cfg, gain, min_area=1)  # backgrounds lose small objects (debris) too
    fg = _remove_small(everything, cfg.min_area)
    lab, n = ndimage.label(fg, structure=_EIGHT)
    counts = {role: points_per_object(lab, points.get(role, [])) for role in ("target", "unwanted", "discard")}
    out = Extracted()
    for k, sl in _components(lab, cfg, out):
        t, u, d = (int(counts[r][k]) if k < len(counts[r]) else 0 for r in ("target", "unwanted", "discard"))
        role = "target" if t and not u and not d else "unwanted" if u and not t and not d else None
        if role is None:
            out.discarded += 1
            continue
        out.crops.append(_component_crop(lin, lab, k, sl, role, source))
    out.background = _background(lin, everything, cfg.background_dilate)
    return out


def _box_pixels(box: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    x1, y1 = min(shape[1], int(np.ceil(x1))), min(shape[0], int(np.ceil(y1)))
    return x0, y0, x1, y1


def extract_boxes(
    lin: np.ndarray,
    target_boxes: np.ndarray,
    all_boxes: np.ndarray,
    cfg: ExtractConfig,
    gain: float,
    rng: np.random.Generator,
    *,
    source: int = -1,
) -> Extracted:
    """BBBC042: Ot = largest Otsu component inside each target box; Ou = the same inside random
    squares outside every box; background = image with the boxes and the thresholded foreground zeroed."""
    out = Extracted()
    h, w = lin.shape
    covered = np.zeros(lin.shape, bool)
    for box in np.asarray(all_boxes, np.float64).reshape(-1, 4):
        x0, y0, x1, y1 = _box_pixels(box, lin.shape)
        covered[y0:y1, x0:x1] = True
    for box in np.asarray(target_boxes, np.float64).reshape(-1, 4):
        x0, y0, x1, y1 = _box_pixels(box, lin.shape)
        if x1 - x0 < 2 or y1 - y0 < 2:
            out.discarded += 1
            continue
        crop = _largest_component_crop(lin[y0:y1, x0:x1], cfg, gain, (y0, x0), "target", source)
        if crop is None or (cfg.max_size is not None and max(crop.image.shape) > cfg.max_size):
            out.discarded += 1
            continue
        out.crops.append(crop)
    lo, hi = cfg.square_size
    for _ in range(cfg.squares_per_image):
        for _attempt in range(50):
            s = int(min(rng.integers(lo, hi + 1), h, w))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            if not covered[y : y + s, x : x + s].any():
                crop = _largest_component_crop(lin[y : y + s, x : x + s], cfg, gain, (y, x), "unwanted", source)
                if crop is not None:
                    out.crops.append(crop)
                break
    fg = foreground_mask(lin, cfg, gain, min_area=1) | covered
    out.background = _background(lin, fg, cfg.background_dilate)
    return out


def focus_candidates(lin: np.ndarray, cfg: ExtractConfig, gain: float, *, source: int = -1) -> Extracted:
    """Microglia: components of the thresholded image as crops without a class yet, each with its
    focus score (mean |LoG| over its object pixels, on the thresholded image's scale)."""
    fg = foreground_mask(lin, cfg, gain)
    img = encode(lin, PreprocessConfig(log=True), gain) if cfg.threshold_on_log else lin
    log_abs = np.abs(ndimage.gaussian_laplace(img.astype(np.float32), cfg.focus_sigma))
    lab, _ = ndimage.label(fg, structure=_EIGHT)
    out = Extracted()
    for k, sl in _components(lab, cfg, out):
        crop = _component_crop(lin, lab, k, sl, "", source)
        crop.focus = float(log_abs[sl][lab[sl] == k].mean())
        out.crops.append(crop)
    out.background = _background(lin, fg, cfg.background_dilate)
    return out


def split_by_focus(crops: list[Crop], cfg: ExtractConfig) -> tuple[list[Crop], int, tuple[float, float]]:
    """Class focus candidates: score < low -> unwanted, > high -> target, between -> discarded."""
    if not crops:
        return [], 0, (0.0, 0.0)
    scores = np.array([c.focus for c in crops], np.float64)
    lo, hi = cfg.focus_thresholds
    if cfg.focus_units == "quantile":
        lo, hi = (float(np.quantile(scores, q)) for q in (lo, hi))
    kept, discarded = [], 0
    for c, s in zip(crops, scores):
        if s > hi:
            c.role = "target"
        elif s < lo:
            c.role = "unwanted"
        else:
            discarded += 1
            continue
        kept.append(c)
    return kept, discarded, (float(lo), float(hi))


# ---------------------------------------------------------------------------------------------
# inputs and annotations


def list_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files of ``inputs`` (files, folders, glob patterns), in natural order, no duplicates."""
    from vidfilter.io.images_source import list_images

    out: list[Path] = []
    for item in inputs:
        spec = os.fspath(item)
        if not Path(spec).exists() and not any(c in spec for c in "*?["):
            raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
        files = list_images(spec)
        if not files:
            raise UnreadableInputError(f"{spec}: holds no PNG/TIFF/JPEG images")
        out.extend(f for f in files if f not in out)
    return out


def read_points(path: str | os.PathLike[str], cfg: ExtractConfig) -> dict[str, list[tuple[int, int]]]:
    """Points of a colour-coded PNG by the configured colours: ``{"target", "unwanted", "discard"}``."""
    from vidfilter.eval.groundtruth import load_points_png

    colors: dict[str, tuple[int, int, int]] = {}
    for role, cols in (("target", cfg.target_colors), ("unwanted", cfg.unwanted_colors), ("discard", cfg.discard_colors)):
        for i, c in enumerate(cols):
            colors[f"{role}:{i}"] = tuple(int(v) for v in c)  # type: ignore[assignment]
    found = load_points_png(path, colors)
    out: dict[str, list[tuple[int, int]]] = {"target": [], "unwanted": [], "discard": []}
    for name, pts in found.items():
        out[name.split(":")[0]].extend(pts)
    return out


def _strip_marks(image: np.ndarray, cfg: ExtractConfig) -> np.ndarray:
    """Replace pixels painted in an annotation colour by the median of their 5x5 neighbourhood."""
    if image.ndim != 3 or image.shape[-1] < 3 or image.dtype != np.uint8:
        raise UnsupportedInputError(
            "points drawn on the image itself need an 8-bit RGB image; pass the colour-coded point PNGs with --annotations"
        )
    rgb = image[..., :3]
    marks = np.zeros(rgb.shape[:2], bool)
    for c in list(cfg.target_colors) + list(cfg.unwanted_colors) + list(cfg.discard_colors):
        marks |= np.all(rgb == np.asarray(c, np.uint8), axis=-1)
    grey = image.copy()
    if marks.any():
        med = ndimage.median_filter(rgb, size=(5, 5, 1))
        grey[..., :3][marks] = med[marks]
    return grey


@dataclass
class _Item:
    image: Path
    annotation: Any = None  # path, boxes (FrameBoxes) or None (embedded / no annotation)
    source: str | None = None


def _stem_key(key: Any) -> str:
    return Path(str(key)).stem


def pair_annotations(images: list[Path], annotations: str | os.PathLike[str] | None, recipe: str, cfg: ExtractConfig) -> list[_Item]:
    """Pair each image with its annotation (see the module docstring for the rules)."""
    if recipe == "focus":
        if annotations is not None:
            log.warning("the focus recipe uses no annotation; ignoring %s", annotations)
        return [_Item(p) for p in images]
    if annotations is None:
        if recipe == "points":  # marks drawn on the images themselves (BBBC026 ground-truth layout)
            return [_Item(p, None, "embedded") for p in images]
        raise ConfigError(f"the {recipe} recipe needs --annotations (a file or a folder of per-image files)")
    ann = Path(annotations)
    if not ann.exists():
        raise InputNotFoundError(f"annotations {ann} do not exist; check the path")
    by_stem: dict[str, Path] = {}
    for p in images:
        if p.stem in by_stem:
            raise ConfigError(f"two input images share the name {p.stem!r} ({by_stem[p.stem]}, {p}); annotations are matched by name")
        by_stem[p.stem] = p
    if recipe == "boxes":
        return _pair_boxes(images, by_stem, ann, cfg)
    if ann.is_dir():
        files = {f.stem: f for f in sorted(ann.iterdir()) if f.suffix.lower() in _ANN_SUFFIXES[recipe]}
        items = []
        for p in images:
            if p.stem not in files:
                raise InputNotFoundError(
                    f"{p}: no annotation in {ann} (looked for {p.stem} with suffix {', '.join(_ANN_SUFFIXES[recipe])})"
                )
            items.append(_Item(p, files[p.stem], str(files[p.stem])))
        return items
    if len(images) != 1:
        raise ConfigError(f"one annotation file {ann} for {len(images)} images; pass a folder of per-image annotations")
    if ann.resolve() == images[0].resolve() and recipe == "points":
        return [_Item(images[0], None, "embedded")]
    return [_Item(images[0], ann, str(ann))]


def _load_box_file(f: Path, cfg: ExtractConfig) -> dict[Any, Any]:
    from vidfilter.eval import groundtruth as gt

    fmt = cfg.box_format
    if fmt == "auto":
        fmt = {".csv": "csv", ".xml": "voc", ".json": "coco", ".txt": "positions"}.get(f.suffix.lower(), "")
        if not fmt:
            raise UnsupportedInputError(f"{f}: unknown box file type; use .csv, .xml (VOC), .json (COCO) or .txt (positions)")
    if fmt == "csv":
        return gt.load_boxes_csv(f)
    if fmt == "voc":
        return gt.load_boxes_voc(f)
    if fmt == "coco":
        return gt.load_boxes_coco(f)
    return gt.load_boxes_positions(f, columns=cfg.box_columns)


def _pair_boxes(images: list[Path], by_stem: dict[str, Path], ann: Path, cfg: ExtractConfig) -> list[_Item]:
    suffixes = _ANN_SUFFIXES["boxes"]
    if ann.is_dir():
        files = sorted(f for f in ann.iterdir() if f.suffix.lower() in suffixes)
        table: dict[str, tuple[Any, Path]] = {}
        for f in files:
            for key, boxes in _load_box_file(f, cfg).items():
                stem = _stem_key(key)
                if stem in by_stem:  # a folder may hold annotations of images not used here
                    table[stem] = (boxes, f)
    else:
        loaded = _load_box_file(ann, cfg)
        single = len(loaded) == 1 and len(images) == 1 and _stem_key(next(iter(loaded))) == ann.stem
        table = {}
        for key, boxes in loaded.items():
            stem = images[0].stem if single else _stem_key(key)
            if stem not in by_stem:
                raise InputNotFoundError(
                    f"{ann} annotates image {key!r}, which is not among the inputs; add the image or remove its annotation"
                )
            table[stem] = (boxes, ann)
    items = []
    for p in images:
        if p.stem not in table:
            raise InputNotFoundError(f"{p}: no boxes for this image in {ann}; annotate it or leave it out")
        boxes, f = table[p.stem]
        items.append(_Item(p, boxes, str(f)))
    return items


# ---------------------------------------------------------------------------------------------
# the bank


def _write_tiff(path: Path, data: np.ndarray, *, compress: bool) -> None:
    import tifffile

    tifffile.imwrite(path, np.ascontiguousarray(data, np.float32), compression="zlib" if compress else None)


def _thumb(img: np.ndarray, cell: int) -> np.ndarray:
    import cv2

    h, w = img.shape
    s = cell / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    hi = float(np.quantile(small, 0.995)) if small.size else 0.0
    small = np.clip(small / hi, 0, 1) if hi > 0 else small
    out = np.zeros((cell, cell), np.float32)
    y0, x0 = (cell - small.shape[0]) // 2, (cell - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def contact_sheet(groups: dict[str, list[np.ndarray]], *, cell: int = 64, columns: int = 12) -> np.ndarray:
    """uint8 grid: one titled section per group, each image scaled to fit a ``cell`` and to its own
    99.5th percentile."""
    import cv2

    pad = 2
    width = columns * (cell + pad) + pad
    sections = []
    for name, imgs in groups.items():
        header = np.full((20, width), 40, np.uint8)
        cv2.putText(header, f"{name} ({len(imgs)} shown)", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
        rows = max(1, -(-len(imgs) // columns))
        grid = np.full((rows * (cell + pad) + pad, width), 40, np.uint8)
        for i, img in enumerate(imgs):
            r, c = divmod(i, columns)
            y, x = pad + r * (cell + pad), pad + c * (cell + pad)
            grid[y : y + cell, x : x + cell] = np.rint(_thumb(img, cell) * 255).astype(np.uint8)
        sections += [header, grid]
    return np.vstack(sections)


#: ``kind`` recorded in the marker file of a crop bank.
BANK_KIND = "crop-bank"


def write_bank(
    out: str | os.PathLike[str],
    targets: Sequence[Crop | np.ndarray],
    unwanted: Sequence[Crop | np.ndarray],
    backgrounds: Sequence[np.ndarray],
    preprocess: PreprocessConfig,
    log_gain: float,
    *,
    overwrite: bool = False,
    contact: int = 48,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a crop bank (layout in the module docstring) from crops and backgrounds in linear units.

    Crops may be :class:`Crop` objects or float arrays (zero outside the object). Written to
    ``OUT.partial`` (marked as vidfilter's from its creation) and renamed when complete; a
    leftover ``OUT.partial`` of a killed run is cleared first. ``meta`` is merged into the manifest.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    ForeignOutputError
        ``out`` (with ``overwrite``) or ``OUT.partial`` exists but vidfilter did not write it.
    """
    from vidfilter import __version__
    from vidfilter.io.ownership import check_replaceable
    from vidfilter.io.sink import atomic_write_bytes, commit_path, discard_partial, make_partial_folder, partial_path, remove_aside

    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            from vidfilter.errors import OutputExistsError

            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or choose another --out")
        check_replaceable(out)  # refused before any work, not at the final rename
    roles = {
        "target": [c if isinstance(c, Crop) else Crop("target", np.asarray(c, np.float32)) for c in targets],
        "unwanted": [c if isinstance(c, Crop) else Crop("unwanted", np.asarray(c, np.float32)) for c in unwanted],
    }
    partial = partial_path(out)
    discard_partial(partial)  # a leftover of vidfilter's (anything else is refused)
    make_partial_folder(partial, BANK_KIND)
    try:
        records = []
        for role, lst in roles.items():
            (partial / CLASS_DIRS[role]).mkdir()
            for j, c in enumerate(lst):
                c.role = role
                name = f"{CLASS_DIRS[role]}/{j:06d}.tif"
                _write_tiff(partial / name, c.image, compress=True)
                records.append({"file": name, **c.stats()})
        (partial / "backgrounds").mkdir()
        bg_records = []
        for j, bg in enumerate(backgrounds):
            name = f"backgrounds/{j:06d}.tif"
            _write_tiff(partial / name, bg, compress=False)
            nz = bg[bg > 0]
            fill = [float(v) for v in np.quantile(nz, [0.25, 0.75])] if nz.size else [0.0, 0.0]
            bg_records.append({"file": name, "source": j, "shape": list(bg.shape), "zero_fraction": float(1 - nz.size / bg.size), "fill": fill})
        meta = dict(meta or {})
        manifest = {
            "format": BANK_FORMAT, "version": BANK_VERSION, "vidfilter_version": __version__, "created_unix": time.time(),
            "preprocess": preprocess.model_dump(mode="json"), "log_gain": float(log_gain), "dtypes": meta.pop("dtypes", []),
            "counts": {"target": len(roles["target"]), "unwanted": len(roles["unwanted"]), "backgrounds": len(backgrounds),
                       "discarded": meta.pop("discarded", 0)},
            **meta, "crops": records, "backgrounds": bg_records,
        }
        atomic_write_bytes(partial / "manifest.json", json.dumps(manifest, indent=1).encode())
        if contact:
            import cv2

            sheet = contact_sheet({
                "targets (Ot)": [c.image for c in roles["target"][:contact]],
                "unwanted (Ou)": [c.image for c in roles["unwanted"][:contact]],
                "backgrounds (zeros = fill me)": list(backgrounds[: min(contact, 12)]),
            })
            cv2.imwrite(str(partial / "contact_sheet.png"), sheet)
        commit_path(partial, out, overwrite=overwrite)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_aside(partial)
        raise
    return out


def extract_crops(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: Config,
    *,
    annotations: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Build a crop bank at ``out`` from annotated images (``config.static.extract`` recipe).

    Parameters
    ----------
    inputs
        Image files, folders or glob patterns (PNG/TIFF/JPEG; 8/16-bit or float; grey or RGB).
    out
        The bank folder to write (see the module docstring).
    config
        ``config.static.preprocess`` and ``config.static.extract`` are used.
    annotations
        A file or a folder of per-image files (points PNG, label images, box files); ``None`` for
        the focus recipe and for points drawn on the images themselves.

    Returns
    -------
    dict
        ``output, images, targets, unwanted, backgrounds, discarded, seconds``.

    Raises
    ------
    TrainingInputError
        A class got no crop at all (the message says which setting to look at).
    """
    from vidfilter.io.images_source import read_image
    from vidfilter.io.sink import check_output_path

    t0 = time.perf_counter()
    pre, cfg = config.static.preprocess, config.static.extract
    images = list_inputs(inputs)
    out = Path(out)
    check_output_path(out, inputs=[*images, *([annotations] if annotations else [])], overwrite=overwrite)
    items = pair_annotations(images, annotations, cfg.recipe, cfg)
    rng = np.random.default_rng(cfg.seed)
    crops: list[Crop] = []
    backgrounds: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    discarded = 0
    dtypes: set[str] = set()
    gain: float | None = None
    from tqdm.auto import tqdm

    for i, item in enumerate(tqdm(items, desc="extract", unit="image", disable=not progress)):
        raw = read_image(item.image)
        if item.source == "embedded":
            raw = _strip_marks(raw, cfg)
        dtypes.add(str(raw.dtype))
        g = resolve_gain(pre, raw.dtype)
        if gain is None:
            gain = g
        elif g != gain:
            raise UnsupportedInputError(
                f"{item.image} is {raw.dtype} but earlier images were {sorted(dtypes)[0]}: the log transform would differ; "
                "convert the images to one dtype or set static.preprocess.log_gain"
            )
        lin = linearise(raw, pre)
        if cfg.recipe == "labels":
            from vidfilter.eval.groundtruth import load_mask

            got = extract_labels(lin, load_mask(item.annotation, binary=False), cfg, source=i)
        elif cfg.recipe == "points":
            pts = read_points(item.image if item.source == "embedded" else item.annotation, cfg)
            got = extract_points(lin, pts, cfg, gain, source=i)
        elif cfg.recipe == "boxes":
            fb = item.annotation
            tboxes = fb.of_class(cfg.target_class) if cfg.target_class is not None else fb.boxes
            got = extract_boxes(lin, tboxes, fb.boxes, cfg, gain, rng, source=i)
        else:
            got = focus_candidates(lin, cfg, gain, source=i)
        crops.extend(got.crops)
        discarded += got.discarded
        assert got.background is not None
        backgrounds.append(got.background)
        sources.append({
            "image": str(item.image), "annotation": item.source, "shape": list(raw.shape), "dtype": str(raw.dtype),
            "crops": len(got.crops), "discarded": got.discarded,
        })
    focus_bounds = None
    if cfg.recipe == "focus":
        crops, dropped, focus_bounds = split_by_focus(crops, cfg)
        discarded += dropped
    by_role = {role: [c for c in crops if c.role == role] for role in CLASS_DIRS}
    for role, lst in by_role.items():
        if not lst:
            raise TrainingInputError(_no_crops_hint(role, cfg, len(items)))
        if cfg.max_crops is not None and len(lst) > cfg.max_crops:
            keep = np.sort(rng.choice(len(lst), cfg.max_crops, replace=False))
            by_role[role] = [lst[int(j)] for j in keep]

    write_bank(
        out, by_role["target"], by_role["unwanted"], backgrounds, pre, gain or 255.0, overwrite=overwrite,
        contact=cfg.contact_sheet,
        meta={
            "application": config.application, "extract": cfg.model_dump(mode="json"), "dtypes": sorted(dtypes),
            "discarded": discarded, "focus_bounds": focus_bounds, "sources": sources,
        },
    )
    summary = {
        "output": str(out), "images": len(items), "targets": len(by_role["target"]), "unwanted": len(by_role["unwanted"]),
        "backgrounds": len(backgrounds), "discarded": discarded, "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("crop bank %s: %d target, %d unwanted crops, %d backgrounds (%d objects discarded)", out,
             summary["targets"], summary["unwanted"], summary["backgrounds"], discarded)
    return summary


def _no_crops_hint(role: str, cfg: ExtractConfig, n_images: int) -> str:
    what = "target (Ot)" if role == "target" else "unwanted (Ou)"
    hints = {
        "labels": f"no pixel of the labels {cfg.target_labels if role == 'target' else cfg.unwanted_labels} formed an object of "
        f">= {cfg.min_area} px; check static.extract.{role}_labels",
        "points": f"no object held only {role} points; check static.extract.{role}_colors against the annotation colours, "
        "or lower static.extract.min_area",
        "boxes": "no box gave an object; check static.extract.target_class and min_area" if role == "target"
        else "no random square outside the boxes gave an object; raise static.extract.squares_per_image or lower square_size",
        "focus": "no object scored " + ("above the high" if role == "target" else "below the low")
        + " focus threshold; check static.extract.focus_thresholds and min_area",
    }
    return f"no {what} crops from {n_images} image(s): {hints[cfg.recipe]}"
