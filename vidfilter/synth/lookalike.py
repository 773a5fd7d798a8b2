"""Small look-alikes of the paper's static-image data sets, with exact ground truth.

The real sets (BBBC026, BBBC042, the microglia images) cannot be downloaded on the machines this
project runs on; these generators write images in the same *layouts* so the loaders, the crop
extraction and the whole extract -> synthesise -> train -> infer -> score chain can be tested.

- :func:`make_coculture` (BBBC026-like): fluorescent co-culture of two cell classes that differ in
  shape and brightness: round, bright "hepatocytes" (radius 7-10 px) and elongated, dimmer
  "fibroblasts" (ellipses 9-13 x 3-4 px, any orientation) on a dark, slightly uneven background
  with sensor noise; cells may touch. Annotation: a colour-coded PNG with one marked pixel per cell
  at its centre (hepatocytes red, fibroblasts green, debris blue, the colours of the BBBC026
  ground-truth images), or the marks drawn on an RGB copy of the image itself (``embedded=True``,
  the published BBBC026 ground-truth layout).
- :func:`make_histology` (BBBC042-like): RGB bright-field tissue: a pale, textured, low-contrast
  background; dark brown star-shaped "astrocytes" (a body and 4-7 tapering processes) with their
  bounding boxes; non-specific stained structures (curved vessel-like streaks and blurred
  smudges) that a threshold picks up too. Boxes are written as BBBC042 ``positions/<id>.txt``
  (whitespace-separated, x0 y0 x1 y1 in columns 4-7), as per-image CSV or as Pascal VOC XML.
- :func:`make_focus_set` (microglia-like): 16-bit fluorescence with in-focus cells (sharp
  branched shapes) and out-of-focus cells (the same shapes blurred), for the unannotated recipe.

All are deterministic functions of their seed. Coordinates: points are ``(y, x)`` pixel indices;
boxes ``(x0, y0, x1, y1)`` in pixel-edge coordinates (``x1, y1`` exclusive), as in
:mod:`vidfilter.eval.metrics`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["HEPATOCYTE", "FIBROBLAST", "DEBRIS", "LookalikeSet", "make_coculture", "make_focus_set",
    "make_histology", "write_coculture", "write_histology"]

#: Point colours of the BBBC026 ground-truth images (RGB).
HEPATOCYTE = (255, 0, 0)
FIBROBLAST = (0, 255, 0)
DEBRIS = (0, 0, 255)


@dataclass
class LookalikeSet:
    """Generated images with ground truth.

    ``images``: the stored images (uint8/uint16, grey or RGB); ``labels``: per image an int32
    label image (0 background, 1 target class, 2 unwanted class; overlaps take the later object);
    ``points``: per image ``{"target": [(y, x), ...], "unwanted": [...], "debris": [...]}``;
    ``boxes``: per image ``(N, 4)`` target boxes; ``names``: file stems.
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]
    names: list[str]
    points: list[dict[str, list[tuple[int, int]]]] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    unwanted_boxes: list[np.ndarray] = field(default_factory=list)
    files: dict[str, list[Path]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------------------------------------
# drawing helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    s = float(n.std())
    return n / s if s > 0 else n


def _window(shape: tuple[int, int], cy: float, cx: float, r: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    h, w = shape
    y0, y1 = max(0, int(cy - r) - 1), min(h, int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r) - 1), min(w, int(cx + r) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return slice(y0, y1), slice(x0, x1), yy - np.float32(cy), xx - np.float32(cx)


def _ellipse(shape: tuple[int, int], cy: float, cx: float, a: float, b: float, angle: float, edge: float = 1.0) -> tuple[tuple[slice, slice], np.ndarray]:
    """Anti-aliased filled ellipse (semi-axes a along ``angle``, b across), values in [0, 1]."""
    sy, sx, dy, dx = _window(shape, cy, cx, max(a, b) + 2 * edge)
    return (sy, sx), _ellipse_on(dy, dx, a, b, angle, edge)


def _ellipse_on(dy: np.ndarray, dx: np.ndarray, a: float, b: float, angle: float, edge: float = 1.0) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / a
    v = (-dx * s + dy * c) / b
    d = (np.sqrt(u * u + v * v) - 1.0) * min(a, b)  # ~ signed distance to the rim (px)
    return np.clip(0.5 - d / edge, 0.0, 1.0).astype(np.float32)


def _segment(shape: tuple[int, int], p0: np.ndarray, p1: np.ndarray, w0: float, w1: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """Anti-aliased tapered segment from ``p0`` to ``p1`` ((y, x)), width ``w0`` -> ``w1``."""
    lo = np.minimum(p0, p1) - max(w0, w1) - 2
    hi = np.maximum(p0, p1) + max(w0, w1) + 2
    h, w = shape
    y0, x0 = max(0, int(lo[0])), max(0, int(lo[1]))
    y1, x1 = min(h, int(hi[0]) + 1), min(w, int(hi[1]) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = p1 - p0
    L2 = float(d @ d) or 1.0
    t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / L2, 0.0, 1.0)
    py, px = p0[0] + t * d[0], p0[1] + t * d[1]
    dist = np.sqrt((yy - py) ** 2 + (xx - px) ** 2)
    half = 0.5 * (w0 + (w1 - w0) * t)
    return (slice(y0, y1), slice(x0, x1)), np.clip(half + 0.5 - dist, 0.0, 1.0).astype(np.float32)


def _stamp(canvas: np.ndarray, window: tuple[slice, slice], values: np.ndarray, *, mode: str = "add") -> None:
    if mode == "add":
        canvas[window] += values
    else:  # "max"
        np.maximum(canvas[window], values, out=canvas[window])


def _place_centres(rng: np.random.Generator, n: int, shape: tuple[int, int], margin: float, min_dist: float, taken: list[np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for _ in range(n):
        for _attempt in range(200):
            p = np.array([rng.uniform(margin, shape[0] - margin), rng.uniform(margin, shape[1] - margin)], np.float32)
            if all(float(np.hypot(*(p - q))) >= min_dist for q in taken + out):
                out.append(p)
                break
    return out


def _to_dtype(x: np.ndarray, dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.clip(x, 0, 1).astype(dtype)
    mx = np.iinfo(dtype).max
    return np.rint(np.clip(x, 0, 1) * mx).astype(dtype)


# ---------------------------------------------------------------------------------------------
# BBBC026-like co-culture


def make_coculture(
    n_images: int = 4,
    size: int | tuple[int, int] = 192,
    *,
    hepatocytes: tuple[int, int] = (6, 9),
    fibroblasts: tuple[int, int] = (6, 9),
    debris: int = 0,
    dtype: Any = np.uint8,
    seed: int = 0,
) -> LookalikeSet:
    """A BBBC026-like co-culture set (see the module docstring); target = hepatocytes (label 1)."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    rng = np.random.default_rng(seed)
    images, labels, points, names = [], [], [], []
    for i in range(n_images):
        bg = 0.05 + 0.015 * _smooth_noise(rng, shape, 24.0)
        cells = np.zeros(shape, np.float32)
        lab = np.zeros(shape, np.int32)
        n_h = int(rng.integers(hepatocytes[0], hepatocytes[1] + 1))
        n_f = int(rng.integers(fibroblasts[0], fibroblasts[1] + 1))
        centres = _place_centres(rng, n_h + n_f + debris, shape, 12.0, 13.0, [])
        pts: dict[str, list[tuple[int, int]]] = {"target": [], "unwanted": [], "debris": []}
        kinds = ["target"] * n_h + ["unwanted"] * n_f + ["debris"] * debris
        order = rng.permutation(len(centres))
        for j in order:
            kind, (cy, cx) = kinds[j], centres[j]
            if kind == "target":  # round, bright, with a dimmer nucleus
                r = rng.uniform(7.0, 10.0)
                sy, sx, dy, dx = _window(shape, cy, cx, r + 2)
                win = (sy, sx)
                body = _ellipse_on(dy, dx, r, r * rng.uniform(0.85, 1.0), rng.uniform(0, np.pi))
                nucleus = _ellipse_on(dy, dx, r * 0.4, r * 0.4, 0.0)
                val = body * (1.0 - 0.35 * nucleus) * rng.uniform(0.45, 0.8)
                code = 1
            elif kind == "unwanted":  # elongated, dimmer
                a, b = rng.uniform(9.0, 13.0), rng.uniform(3.0, 4.0)
                win, body = _ellipse(shape, cy, cx, a, b, rng.uniform(0, np.pi))
                val = body * rng.uniform(0.22, 0.42)
                code = 2
            else:  # debris: a small bright dot
                win, body = _ellipse(shape, cy, cx, 2.0, 2.0, 0.0)
                val = body * rng.uniform(0.5, 0.9)
                code = 3
            _stamp(cells, win, val)
            lab[win][body > 0.5] = code
            pts[kind].append((int(round(cy)), int(round(cx))))
        img = bg + cells + rng.normal(0.0, 0.006, shape).astype(np.float32)
        images.append(_to_dtype(img, dtype))
        labels.append(lab)
        points.append(pts)
        names.append(f"coculture{i:03d}")
    return LookalikeSet(images, labels, names, points=points)


def write_coculture(data: LookalikeSet, folder: str | os.PathLike[str], *, embedded: bool = False) -> LookalikeSet:
    """Write ``images/<name>.png`` and ``points/<name>.png`` (colour-coded marks on black), or with
    ``embedded=True`` only ``images/<name>.png`` as RGB copies with the marks drawn on them.
    ``data.files`` gets the written paths (keys ``images``, ``points``)."""
    import cv2

    root = Path(folder)
    (root / "images").mkdir(parents=True, exist_ok=True)
    if not embedded:
        (root / "points").mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"images": [], "points": []}
    colours = {"target": HEPATOCYTE, "unwanted": FIBROBLAST, "debris": DEBRIS}

    def marked(rgb: np.ndarray, pts: dict[str, list[tuple[int, int]]]) -> np.ndarray:
        """``rgb`` with one pixel of its kind's colour per point, as BGR for OpenCV."""
        for kind, plist in pts.items():
            for y, x in plist:
                rgb[y, x] = colours[kind]
        return rgb[..., ::-1]

    for img, pts, name in zip(data.images, data.points, data.names):
        if embedded and img.dtype != np.uint8:
            raise ValueError("embedded marks need uint8 images")
        p = root / "images" / f"{name}.png"
        cv2.imwrite(str(p), marked(np.repeat(img[..., None], 3, axis=-1), pts) if embedded else img)
        files["images"].append(p)
        if not embedded:
            q = root / "points" / f"{name}.png"
            cv2.imwrite(str(q), marked(np.zeros(img.shape[:2] + (3,), np.uint8), pts))
            files["points"].append(q)
    data.files = files
    return data


# ---------------------------------------------------------------------------------------------
# BBBC042-like histology


def _astrocyte(rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Stain density of a star-shaped cell on a full-size canvas, and its box (x0, y0, x1, y1)."""
    dens = np.zeros(shape, np.float32)
    r = rng.uniform(3.5, 5.0)
    win, body = _ellipse(shape, cy, cx, r, r * rng.uniform(0.8, 1.0), rng.uniform(0, np.pi))
    _stamp(dens, win, body, mode="max")
    n = int(rng.integers(4, 8))
    base = rng.uniform(0, 2 * np.pi)
    p0 = np.array([cy, cx], np.float32)
    for k in range(n):
        ang = base + 2 * np.pi * k / n + rng.uniform(-0.3, 0.3)
        length = rng.uniform(8.0, 15.0)
        mid = p0 + np.array([np.sin(ang), np.cos(ang)], np.float32) * length * 0.55
        ang2 = ang + rng.uniform(-0.4, 0.4)
        tip = mid + np.array([np.sin(ang2), np.cos(ang2)], np.float32) * length * 0.45
        for a, b, w0, w1 in ((p0, mid, 2.4, 1.6), (mid, tip, 1.6, 0.9)):
            wseg, seg = _segment(shape, a, b, w0, w1)
            _stamp(dens, wseg, seg, mode="max")
    ys, xs = np.nonzero(dens > 0.5)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return dens, box


def _streak(rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float) -> np.ndarray:
    dens = np.zeros(shape, np.float32)
    length = rng.uniform(28.0, 50.0)
    ang = rng.uniform(0, np.pi)
    bend = rng.uniform(-0.5, 0.5)
    n = 4
    pts = []
    for k in range(n + 1):
        t = (k / n - 0.5) * length
        a = ang + bend * (k / n - 0.5)
        pts.append(np.array([cy + t * np.sin(a), cx + t * np.cos(a)], np.float32))
    w = rng.uniform(3.0, 4.5)
    for a, b in zip(pts[:-1], pts[1:]):
        win, seg = _segment(shape, a, b, w, w)
        _stamp(dens, win, seg, mode="max")
    return dens


def make_histology(
    n_images: int = 4,
    size: int | tuple[int, int] = 192,
    *,
    astrocytes: tuple[int, int] = (3, 5),
    streaks: tuple[int, int] = (3, 5),
    smudges: tuple[int, int] = (1, 3),
    seed: int = 0,
) -> LookalikeSet:
    """A BBBC042-like histology set (RGB uint8, see the module docstring); target = astrocytes (label 1)."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    rng = np.random.default_rng(seed)
    paper = np.array([0.86, 0.79, 0.73], np.float32)  # pale tissue
    stain = np.array([0.42, 0.55, 0.70], np.float32)  # brown DAB: absorbs blue most
    images, labels, boxes, ub, names = [], [], [], [], []
    for i in range(n_images):
        texture = 0.035 * _smooth_noise(rng, shape, 6.0) + 0.02 * _smooth_noise(rng, shape, 1.2)
        dens = np.zeros(shape, np.float32)
        lab = np.zeros(shape, np.int32)
        n_a = int(rng.integers(astrocytes[0], astrocytes[1] + 1))
        n_s = int(rng.integers(streaks[0], streaks[1] + 1))
        n_m = int(rng.integers(smudges[0], smudges[1] + 1))
        centres = _place_centres(rng, n_a + n_s + n_m, shape, 18.0, 30.0, [])
        bxs, ubxs = [], []
        for j, (cy, cx) in enumerate(centres):
            if j < n_a:
                d, box = _astrocyte(rng, shape, cy, cx)
                d *= rng.uniform(0.55, 0.8)
                lab[d > 0.25] = 1
                bxs.append(box)
            elif j < n_a + n_s:
                d = _streak(rng, shape, cy, cx) * rng.uniform(0.45, 0.7)
                lab[d > 0.25] = 2
            else:
                win, blob = _ellipse(shape, cy, cx, rng.uniform(7, 11), rng.uniform(5, 8), rng.uniform(0, np.pi), edge=4.0)
                d = np.zeros(shape, np.float32)
                _stamp(d, win, blob * rng.uniform(0.35, 0.5))
                lab[d > 0.2] = 2
            if j >= n_a:
                ys, xs = np.nonzero(d > 0.25)
                if ys.size:
                    ubxs.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
            dens = np.maximum(dens, d)
        # Beer-Lambert-like absorption of the stain, on the textured tissue
        rgb = (paper[None, None, :] + texture[..., None]) * np.exp(-dens[..., None] * stain[None, None, :] * 2.2)
        rgb += rng.normal(0.0, 0.01, rgb.shape).astype(np.float32)
        images.append(_to_dtype(rgb, np.uint8))
        labels.append(lab)
        boxes.append(np.asarray(bxs, np.float64).reshape(-1, 4))
        ub.append(np.asarray(ubxs, np.float64).reshape(-1, 4))
        names.append(str(1000 + i))
    return LookalikeSet(images, labels, names, boxes=boxes, unwanted_boxes=ub)


def write_histology(data: LookalikeSet, folder: str | os.PathLike[str], *, box_format: str = "positions") -> LookalikeSet:
    """Write ``images/<id>.tif`` (RGB) and the boxes: ``positions/<id>.txt`` (BBBC042 layout:
    whitespace-separated, columns 4-7 = x0 y0 x1 y1), ``boxes/<id>.csv`` (``x0,y0,x1,y1,class``)
    or ``voc/<id>.xml`` (Pascal VOC, 1-based inclusive)."""
    import tifffile

    root = Path(folder)
    sub = {"positions": "positions", "csv": "boxes", "voc": "voc"}[box_format]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / sub).mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"images": [], "boxes": []}
    for img, bxs, name in zip(data.images, data.boxes, data.names):
        p = root / "images" / f"{name}.tif"
        tifffile.imwrite(p, img, photometric="rgb")
        files["images"].append(p)
        if box_format == "positions":
            q = root / sub / f"{name}.txt"
            q.write_text("".join(f"astrocyte 0 0 0 {x0:.0f} {y0:.0f} {x1:.0f} {y1:.0f}\n" for x0, y0, x1, y1 in bxs))
        elif box_format == "csv":
            q = root / sub / f"{name}.csv"
            q.write_text("x0,y0,x1,y1,class\n" + "".join(f"{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f},astrocyte\n" for x0, y0, x1, y1 in bxs))
        else:
            q = root / sub / f"{name}.xml"
            objs = "".join(
                f"<object><name>astrocyte</name><bndbox><xmin>{x0 + 1:.0f}</xmin><ymin>{y0 + 1:.0f}</ymin>"
                f"<xmax>{x1:.0f}</xmax><ymax>{y1:.0f}</ymax></bndbox></object>"
                for x0, y0, x1, y1 in bxs
            )
            q.write_text(f"<annotation><filename>{name}.tif</filename>{objs}</annotation>")
        files["boxes"].append(q)
    data.files = files
    return data


# ---------------------------------------------------------------------------------------------
# microglia-like focus set


def make_focus_set(
    n_images: int = 2,
    size: int = 160,
    *,
    in_focus: int = 3,
    out_of_focus: int = 3,
    blur: float = 4.0,
    seed: int = 0,
) -> LookalikeSet:
    """16-bit fluorescence with sharp branched cells (label 1) and the same shapes blurred by
    ``blur`` px (label 2), for the unannotated focus recipe."""
    shape = (size, size)
    rng = np.random.default_rng(seed)
    images, labels, names = [], [], []
    for i in range(n_images):
        img = np.full(shape, 0.02, np.float32) + 0.004 * _smooth_noise(rng, shape, 10.0)
        lab = np.zeros(shape, np.int32)
        centres = _place_centres(rng, in_focus + out_of_focus, shape, 22.0, 40.0, [])
        for j, (cy, cx) in enumerate(centres):
            d, _ = _astrocyte(rng, shape, cy, cx)
            if j >= in_focus:
                d = ndimage.gaussian_filter(d, blur) * 2.0
                lab[d > 0.08] = 2
            else:
                lab[d > 0.5] = 1
            img += d * rng.uniform(0.3, 0.5)
        img += rng.normal(0.0, 0.002, shape).astype(np.float32)
        images.append(_to_dtype(img, np.uint16))
        labels.append(lab)
        names.append(f"glia{i:02d}")
    return LookalikeSet(images, labels, names)
