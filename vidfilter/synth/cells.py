"""Fluorescence-like images of two cell classes that share one brightness range, with exact truth.

The classes differ only in what a threshold cannot see:

- ``case="shape"``: class A (the target) are round nuclei (radius 5-7 px), class B elongated cells
  (about 20 x 8 px, any orientation);
- ``case="texture"``: both are round (radius 6-8 px); A is smooth, B is speckled (its interior
  modulated by fine noise, the same mean).

Each object's peak contrast is drawn from the same range for both classes, so no global threshold
separates them. The illumination is uneven, as under a microscope whose field is not flat: the
image is ``illumination * (plate + cells) + offset + noise``, where ``illumination`` is
``1 + 0.2 * u * tanh(f / 1.5)`` for a smooth field ``f`` of unit spread (0.8-1.2 at ``u = 1``,
0.4-1.6 at ``u = 3``), and ``offset`` a second smooth field scaled to ``0 .. 0.03 * u``;
``unevenness = u`` scales both (1 = a typical widefield image, 3 = a strong vignette; nothing
saturates). Objects neither touch nor overlap (centres at least 24 px apart).

:func:`make_two_class_set` returns a :class:`~vidfilter.synth.lookalike.LookalikeSet` (labels: 1 =
A, 2 = B, 0 = plate; ``instances``: one id per object; points: the object centres), which
:func:`~vidfilter.synth.lookalike.write_coculture` writes as images and point annotations (A red,
B green). Deterministic in the seed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import ndimage

from vidfilter.synth.lookalike import LookalikeSet, _ellipse_on, _place_centres, _smooth_noise, _to_dtype, _window

__all__ = ["CASES", "make_two_class_set", "object_contrasts"]

#: the cases of :func:`make_two_class_set`
CASES = ("shape", "texture")

#: peak contrast of both classes above the plate (linear [0, 1] units, before the illumination)
CONTRAST = (0.12, 0.40)


def _illumination(rng: np.random.Generator, shape: tuple[int, int], unevenness: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth multiplicative field and a smooth additive offset (see the module docstring)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((yy - h / 2) * np.sin(theta) + (xx - w / 2) * np.cos(theta)) / (0.5 * max(h, w))
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.35 * max(h, w)) ** 2))
    f = 0.6 * ramp + 1.2 * (spot - spot.mean()) + 0.4 * _smooth_noise(rng, shape, max(h, w) / 8)
    f = f / max(float(f.std()), 1e-6)
    g = _smooth_noise(rng, shape, max(h, w) / 6)
    g = (g - float(g.min())) / max(float(g.max() - g.min()), 1e-6)
    return (1.0 + 0.2 * unevenness * np.tanh(f / 1.5)).astype(np.float32), (0.03 * unevenness * g).astype(np.float32)


def _cell(rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float, kind: str, case: str) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """One object's window, its footprint (peak 1) and its values (the footprint, speckled for a
    textured class)."""
    if case == "shape" and kind == "unwanted":
        a, b = rng.uniform(9.0, 11.0), rng.uniform(3.5, 4.5)
    elif case == "shape":
        a = rng.uniform(5.0, 7.0)
        b = a * rng.uniform(0.9, 1.0)
    else:
        a = rng.uniform(6.0, 8.0)
        b = a * rng.uniform(0.9, 1.0)
    sy, sx, dy, dx = _window(shape, cy, cx, max(a, b) + 3)
    body = _ellipse_on(dy, dx, a, b, rng.uniform(0, np.pi), edge=1.5)
    values = body
    if case == "texture" and kind == "unwanted":
        speckle = ndimage.gaussian_filter(rng.standard_normal(body.shape).astype(np.float32), 0.8)
        speckle /= max(float(speckle.std()), 1e-6)
        values = body * np.clip(1.0 + 0.7 * speckle, 0.2, 1.8)
    return (sy, sx), body, values.astype(np.float32)


def make_two_class_set(
    n_images: int = 4,
    size: int | tuple[int, int] = 512,
    *,
    case: Literal["shape", "texture"] = "shape",
    unevenness: float = 1.0,
    per_class: tuple[int, int] = (20, 30),
    noise: float = 0.008,
    dtype: Any = np.uint8,
    seed: int = 0,
) -> LookalikeSet:
    """Images of the two classes of ``case`` (see the module docstring); target = class A (label 1).

    Attached to the returned set: ``instances`` (one int32 image per image, object ids from 1) and
    ``classes`` (per image, the class of object ``k`` at index ``k - 1``: 1 = A, 2 = B).
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, not {case!r}")
    shape = (size, size) if isinstance(size, int) else tuple(size)
    rng = np.random.default_rng(seed)
    images, labels, points, names, instances, classes = [], [], [], [], [], []
    for i in range(n_images):
        illum, offset = _illumination(rng, shape, unevenness)
        plate = 0.10 + 0.01 * _smooth_noise(rng, shape, 3.0)
        cells = np.zeros(shape, np.float32)
        lab = np.zeros(shape, np.int32)
        inst = np.zeros(shape, np.int32)
        n_a = int(rng.integers(per_class[0], per_class[1] + 1))
        n_b = int(rng.integers(per_class[0], per_class[1] + 1))
        centres = _place_centres(rng, n_a + n_b, shape, 14.0, 24.0, [])
        kinds = ["target"] * n_a + ["unwanted"] * n_b
        pts: dict[str, list[tuple[int, int]]] = {"target": [], "unwanted": [], "debris": []}
        cls = []
        for j in rng.permutation(len(centres)):
            kind, (cy, cx) = kinds[j], centres[j]
            cls.append(1 if kind == "target" else 2)
            k = len(cls)
            win, body, values = _cell(rng, shape, float(cy), float(cx), kind, case)
            cells[win] += values * np.float32(rng.uniform(*CONTRAST))
            on = body > 0.5
            lab[win][on] = 1 if kind == "target" else 2
            inst[win][on] = k
            pts[kind].append((int(round(float(cy))), int(round(float(cx)))))
        img = illum * (plate + cells) + offset + rng.normal(0.0, noise, shape).astype(np.float32)
        images.append(_to_dtype(img, dtype))
        labels.append(lab)
        instances.append(inst)
        classes.append(np.array(cls, np.int32))
        points.append(pts)
        names.append(f"{case}{i:03d}")
    out = LookalikeSet(images, labels, names, points=points)
    out.instances = instances  # type: ignore[attr-defined]
    out.classes = classes  # type: ignore[attr-defined]
    return out


def object_contrasts(image: np.ndarray, instances: np.ndarray, ring: tuple[int, int] = (3, 8)) -> np.ndarray:
    """Per object id ``1..N`` of ``instances``: the mean of ``image`` over the object minus the
    median over a ring ``ring[0]..ring[1]`` px around it that no object covers (NaN where no such
    pixel exists). The contrast a tracker or a threshold sees, measured the same way on an input
    and on a filtered output."""
    img = np.asarray(image, np.float64)
    n = int(instances.max())
    out = np.full(n, np.nan)
    occupied = ndimage.binary_dilation(instances > 0, iterations=ring[0])
    for k, sl in enumerate(ndimage.find_objects(instances), start=1):
        if sl is None:
            continue
        pad = ring[1] + 1
        win = tuple(slice(max(0, s.start - pad), s.stop + pad) for s in sl)
        obj = instances[win] == k
        dist = ndimage.distance_transform_edt(~obj)
        annulus = (dist > ring[0]) & (dist <= ring[1]) & ~occupied[win]
        if annulus.any() and obj.any():
            out[k - 1] = float(img[win][obj].mean()) - float(np.median(img[win][annulus]))
    return out
