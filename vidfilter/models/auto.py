"""``--model auto``: pick a shipped bundle from what the recordings show, or say that none fits.

Three things are measured on frames spread over the recordings (:func:`measure`):

- the polarity (:func:`vidfilter.polarity.polarity_evidence`): ``worm-plate`` and ``open-arena`` were
  trained on dark animals on a light plate, ``bright-arena`` on light animals on a dark floor; a
  bundle of the other polarity runs with the frames inverted (``infer.invert``) when no bundle of
  the animals' own polarity fits;
- the animals' width: each sampled frame, its global offset removed (flicker, exposure), minus the
  per-pixel median of the samples, turned to the polarity, above 5 robust sigmas (at least 8 grey
  levels); each connected component of at least 20 px (scikit-image ``regionprops``) gives its
  thickness (twice its largest inner distance to the edge) and its area, and the medians over all
  components are kept, in the recording's pixels. Thickness, not length: where an animal moves
  little only its moving parts differ from the median, and those are as thick as the animal but
  shorter;
- whether the view is an arena: the share of the frame's border band (its outer 8 %) darker than
  half the plate's median level (a wall, a dish rim, an open field's surround; measured on the
  frames as they are, whatever the polarity). It decides only between setups that both hold the
  measured thickness.

:func:`choose` compares them with each shipped setup's corpus (``vidfilter.train.corpus.SETUPS``):
``worm-plate`` holds thin dark animals (worms 5-9 px wide), ``open-arena`` dark rodent-sized bodies
(16-48 px wide), most of them inside a dark wall, ``bright-arena`` light animals 4-55 px wide
(insect-sized bodies, and thin ones). A setup fits when the measured thickness lies within its
range widened by :data:`TOLERANCE`; the setups of the animals' polarity are tried first, then the
others on inverted frames; where two fit (10-14 px), a view whose border band is at least
:data:`ARENA_SHARE` dark is an arena. When none fits the choice is ``None`` with the reason, and
the caller trains a model instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidfilter.io.source import FrameSource, to_gray

__all__ = ["Choice", "Measures", "TOLERANCE", "choose", "measure"]

#: each setup's ranges are widened by this factor both ways (a range lo-hi becomes lo/T-hi*T)
TOLERANCE = 1.6
#: frames sampled per recording, and the side they are measured at (larger frames are subsampled)
FRAMES, MAX_SIDE = 16, 512
#: share of the border band darker than half the plate level that makes a view an arena
ARENA_SHARE = 0.25


@dataclass(frozen=True)
class Measures:
    """What :func:`measure` found: the polarity and its line, the animals' median thickness and
    area (recording pixels; NaN when nothing was seen), how many components were measured, and the
    dark share of the border band."""

    polarity: str
    polarity_line: str
    width: float
    area: float
    components: int
    border_dark: float


@dataclass(frozen=True)
class Choice:
    """The bundle :func:`choose` picked (``None``: none fits) and the one line that says why."""

    name: str | None
    reason: str
    invert: bool = False  # bright animals: the bundle of dark ones runs on inverted frames (infer.invert)


def _frames(src: FrameSource) -> tuple[np.ndarray, int]:
    from vidfilter.io.scaling import to_float
    from vidfilter.temporal.statistic import statistic_frames

    h, w = src.frame_shape[:2]
    step = max(1, -(-max(h, w) // MAX_SIDE))
    idx = statistic_frames(len(src), FRAMES)
    return np.stack([to_float(to_gray(np.asarray(src[int(t)]))[::step, ::step]) for t in idx]), step


def _shapes(frames: np.ndarray, polarity: str, step: int) -> list[tuple[float, float]]:
    """(thickness, area) in recording pixels of each animal-like component of every frame."""
    from scipy import ndimage
    from skimage.measure import regionprops

    med = np.median(frames, axis=0)
    frames = frames - np.median((frames - med).reshape(len(frames), -1), axis=1)[:, None, None]
    sign = -1.0 if polarity == "dark" else 1.0
    out: list[tuple[float, float]] = []
    for f in frames:
        r = sign * (f - med)
        level = max(5 * 1.4826 * float(np.median(np.abs(r))), 8 / 255)
        lab, _ = ndimage.label(r > level)
        for p in regionprops(lab):
            if p.area * step * step >= 20:
                inner = ndimage.distance_transform_edt(np.pad(p.image, 1))
                out.append((2.0 * float(inner.max()) * step, float(p.area) * step * step))
    return out


def _border_dark(frames: np.ndarray) -> float:
    """Share of the outer 8 % band of the median frame darker than half the plate's median level."""
    med = np.median(frames, axis=0)
    h, w = med.shape
    by, bx = max(1, int(0.08 * h)), max(1, int(0.08 * w))
    band = np.concatenate([med[:by].ravel(), med[-by:].ravel(), med[:, :bx].ravel(), med[:, -bx:].ravel()])
    level = float(np.median(med[by:-by, bx:-bx])) if h > 2 * by and w > 2 * bx else float(np.median(med))
    return float(np.mean(band < 0.5 * level))


def measure(sources: FrameSource | Sequence[FrameSource]) -> Measures:
    """The polarity, animal size and arena measures of ``sources`` (see the module)."""
    from vidfilter.polarity import polarity_evidence

    srcs = [sources] if isinstance(sources, FrameSource) else list(sources)
    ev = polarity_evidence(srcs)
    shapes: list[tuple[float, float]] = []
    dark: list[float] = []
    for src in srcs:
        frames, step = _frames(src)
        if ev.polarity in ("dark", "bright"):
            shapes += _shapes(frames, ev.polarity, step)
        dark.append(_border_dark(frames))
    wa = np.array(shapes) if shapes else np.full((1, 2), np.nan)
    return Measures(ev.polarity, ev.describe(), float(np.median(wa[:, 0])), float(np.median(wa[:, 1])), len(shapes),
                    float(np.mean(dark)) if dark else 0.0)


#: per shipped setup: the corpus's animal widths (recording pixels), whether it is the arena setup,
#: and what its animals look like
_FITS: dict[str, dict[str, Any]] = {
    "worm-plate": {"width": (5.0, 9.0), "arena": False, "polarity": "dark", "what": "thin animals"},
    "open-arena": {"width": (16.0, 48.0), "arena": True, "polarity": "dark", "what": "rodent-sized bodies"},
    "bright-arena": {"width": (4.0, 55.0), "arena": None, "polarity": "bright", "what": "insect-sized bodies or thin animals"},
}


def _within(value: float, lo_hi: tuple[float, float]) -> bool:
    return lo_hi[0] / TOLERANCE <= value <= lo_hi[1] * TOLERANCE


def choose(m: Measures, available: Sequence[str]) -> Choice:
    """The shipped bundle among ``available`` whose setup fits ``m`` (see the module), or ``None``."""
    seen = (f"{m.width:.0f} px thick, {m.area:.0f} px² in {m.components} moving parts; "
            f"{100 * m.border_dark:.0f} % of the border dark")
    if m.polarity not in ("dark", "bright"):
        return Choice(None, f"no shipped bundle fits: no clear polarity ({m.polarity_line})")
    if not m.components or not np.isfinite(m.width):
        return Choice(None, "no shipped bundle fits: no moving animal was measured in the sampled frames")
    fits = [name for name, fit in _FITS.items() if name in available and _within(m.width, fit["width"])]
    own = [name for name in fits if _FITS[name]["polarity"] == m.polarity]
    if own:  # a bundle of animals of this polarity
        fits, invert = own, False
    else:  # a bundle of the other polarity sees the inverted frames
        invert = True
    if len(fits) > 1:  # a thickness two setups hold: the view decides
        arena = m.border_dark >= ARENA_SHARE
        fits = [name for name in fits if _FITS[name]["arena"] == arena] or fits
    if not fits:
        return Choice(None, f"no shipped bundle fits the {m.polarity} animals measured ({seen})")
    what = _FITS[fits[0]]["what"]
    if invert:
        return Choice(fits[0], f"{fits[0]} on inverted frames: {m.polarity} {what} ({seen})", invert=True)
    return Choice(fits[0], f"{fits[0]}: {m.polarity} {what} ({seen})")
