"""Crop extraction recipes of the static mode (``config.static.extract.recipe``, after the paper's
supplement): one linear image and its annotation -> Ot / Ou crops and a background, the image with
its foreground (grown by ``background_dilate`` px) set to 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from vidfilter.errors import UnsupportedInputError
from vidfilter.static.bank import Crop
from vidfilter.static.config import ExtractConfig, PreprocessConfig
from vidfilter.static.preprocess import encode

__all__ = ["Extracted", "extract_boxes", "extract_labels", "extract_points", "focus_candidates",
    "foreground_mask", "split_by_focus"]

_EIGHT = np.ones((3, 3), bool)


@dataclass
class Extracted:
    """What one image gave: crops (Ot and Ou), its background, the share of the image zeroed in
    that background, and how many objects were discarded."""

    crops: list[Crop] = field(default_factory=list)
    background: np.ndarray | None = None
    zeroed_share: float = 0.0
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


def _levels(lin: np.ndarray, cfg: ExtractConfig, gain: float) -> np.ndarray:
    """The image the foreground threshold sees: :func:`_threshold_image`, minus its background
    estimate when ``cfg.flatten`` (a grey opening of that radius, box-smoothed over the same window)."""
    img = _threshold_image(lin, cfg, gain)
    if cfg.flatten > 0:
        size = (2 * cfg.flatten + 1,) * 2
        img = img - ndimage.uniform_filter(ndimage.grey_opening(img, size=size), size)
    return img


def _threshold_level(img: np.ndarray, cfg: ExtractConfig) -> float | np.ndarray:
    """The configured threshold of ``img``: Otsu's value, or the local threshold per pixel."""
    from skimage.filters import threshold_local, threshold_otsu

    if cfg.threshold == "otsu":
        return float(threshold_otsu(img))
    block = min(cfg.local_block, 2 * (min(img.shape) // 2) - 1)
    return threshold_local(img, block_size=max(block, 3), method="gaussian", offset=-cfg.local_offset)


def _threshold_mask(img: np.ndarray, cfg: ExtractConfig, min_area: int, level: float | np.ndarray | None = None) -> np.ndarray:
    """``img`` above ``level`` (default the configured threshold), opened, components of at least ``min_area`` px."""
    if float(img.max()) == float(img.min()):
        return np.zeros(img.shape, bool)
    mask = img > (_threshold_level(img, cfg) if level is None else level)
    if cfg.opening > 0:
        mask = ndimage.binary_opening(mask, structure=_disk(cfg.opening))
    return _remove_small(mask, min_area)


def foreground_mask(lin: np.ndarray, cfg: ExtractConfig, gain: float, *, min_area: int | None = None) -> np.ndarray:
    """Objects of a linear image: the configured threshold (Otsu or local, on the log image when
    ``threshold_on_log``, after a Gaussian of sigma ``smooth`` and, when ``flatten``, minus the
    background estimate), an opening of radius ``opening``, then components of at least
    ``min_area`` px (default ``cfg.min_area``)."""
    return _threshold_mask(_levels(lin, cfg, gain), cfg, cfg.min_area if min_area is None else min_area)


def _set_background(out: Extracted, lin: np.ndarray, foreground: np.ndarray, dilate: int) -> None:
    """``out.background``: ``lin`` with ``foreground`` (grown by ``dilate`` px) zeroed;
    ``out.zeroed_share``: the share of the image so zeroed."""
    fg = ndimage.binary_dilation(foreground, structure=_disk(dilate)) if dilate > 0 else foreground
    bg = lin.copy()
    bg[fg] = 0.0
    out.background = bg
    out.zeroed_share = float(fg.mean()) if fg.size else 0.0


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
    _set_background(out, lin, labels != 0, cfg.background_dilate)
    return out


def _point_markers(points: dict[str, list[tuple[int, int]]], fg: np.ndarray) -> tuple[np.ndarray, list[str], int]:
    """Watershed markers: one id per point on ``fg`` (``roles[id - 1]`` its role), and how many
    points could not seed (off the image or off ``fg``). Points of different roles on one pixel
    make it a discard marker."""
    markers = np.zeros(fg.shape, np.int32)
    roles: list[str] = []
    off = 0
    for role in ("target", "unwanted", "discard"):
        for y, x in points.get(role, []):
            y, x = int(round(y)), int(round(x))
            if not (0 <= y < fg.shape[0] and 0 <= x < fg.shape[1]) or not fg[y, x]:
                off += 1
            elif markers[y, x]:
                if roles[markers[y, x] - 1] != role:
                    roles[markers[y, x] - 1] = "discard"
            else:
                roles.append(role)
                markers[y, x] = len(roles)
    return markers, roles, off


def _unmarked(fg: np.ndarray, markers: np.ndarray) -> int:
    """Components of ``fg`` that hold no marker."""
    lab, n = ndimage.label(fg, structure=_EIGHT)
    return n - int(np.count_nonzero(np.unique(lab[markers > 0])))


def _grow(img: np.ndarray, fg: np.ndarray, markers: np.ndarray, compactness: float) -> np.ndarray:
    """Regions of ``markers`` over ``fg``: a compact watershed of ``-img`` scaled to the objects'
    contrast (their 1st-99th percentile range), so ``compactness`` is per px whatever the units."""
    from skimage.segmentation import watershed

    lo, hi = np.percentile(img[fg], (1, 99))
    scale = float(hi - lo) if hi > lo else 1.0
    return watershed(-img / scale, markers, mask=fg, connectivity=2, compactness=compactness)


def _rescue(img: np.ndarray, fg: np.ndarray, points: dict[str, list[tuple[int, int]]], cfg: ExtractConfig) -> np.ndarray:
    """Annotated objects the threshold missed: components of ``img`` above a lower level
    (``point_rescue`` of the way from the image's median to the threshold) that hold a point off
    ``fg``, each no larger than the largest component of ``fg``."""
    missed = _point_markers(points, ~fg)[0] > 0
    if cfg.point_rescue <= 0 or not missed.any() or float(img.max()) == float(img.min()):
        return np.zeros(fg.shape, bool)
    med = float(np.median(img))
    weak = _threshold_mask(img, cfg, 1, med + cfg.point_rescue * (_threshold_level(img, cfg) - med))
    lab, _ = ndimage.label(weak, structure=_EIGHT)
    sizes = np.bincount(lab.ravel())
    largest = int(np.bincount(ndimage.label(fg, structure=_EIGHT)[0].ravel())[1:].max(initial=0))
    keep = np.zeros(sizes.size, bool)
    keep[np.unique(lab[missed])] = True
    keep[0] = False
    keep &= sizes <= max(largest, cfg.min_area)
    return keep[lab]


def extract_points(
    lin: np.ndarray, points: dict[str, list[tuple[int, int]]], cfg: ExtractConfig, gain: float, *, source: int = -1
) -> Extracted:
    """One object per annotated point (BBBC026), grown over the foreground by a seeded watershed.

    ``points``: ``{"target": [(y, x)], "unwanted": [...], "discard": [...]}``. The foreground is
    :func:`foreground_mask`; each point on it seeds a compact watershed of the inverted thresholded
    image confined to the foreground (:func:`_grow`, ``point_compactness``), so touching objects
    are split between their points instead of being lost. The region of a target point is Ot, of
    an unwanted point Ou, each crop holding its region's pixels only; regions of discard points,
    regions under ``min_area``, points off the foreground and foreground components without a
    point are discarded.
    """
    img = _levels(lin, cfg, gain)
    everything = _threshold_mask(img, cfg, 1)  # backgrounds lose small objects (debris) too
    everything |= _rescue(img, _remove_small(everything, cfg.min_area), points, cfg)
    fg = _remove_small(everything, cfg.min_area)
    markers, roles, off = _point_markers(points, fg)
    out = Extracted(discarded=off + _unmarked(fg, markers))
    regions = _grow(img, fg, markers, cfg.point_compactness) if roles else np.zeros(fg.shape, np.int32)
    for k, sl in _components(regions, cfg, out):
        if roles[k - 1] == "discard" or np.count_nonzero(regions[sl] == k) < cfg.min_area:
            out.discarded += 1
            continue
        out.crops.append(_component_crop(lin, regions, k, sl, roles[k - 1], source))
    _set_background(out, lin, everything, cfg.background_dilate)
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
    _set_background(out, lin, fg, cfg.background_dilate)
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
    _set_background(out, lin, fg, cfg.background_dilate)
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
