"""A robust temporal statistic of a recording, used as an optional second input channel.

Giving the network the per-pixel max (dark animals on a light plate), min (bright animals) or
median of frames spread over the recording lets it learn a *correction* of that statistic rather
than the whole plate texture (cheap training on a CPU). The same function is used at
training and at inference time, so both see the same channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from vidfilter.errors import TrainingInputError
from vidfilter.io.convert import to_float
from vidfilter.io.source import FrameSource, to_gray

if TYPE_CHECKING:
    from vidfilter.sampling.register import Registration

StatisticKind = Literal["max", "min", "median"]


def statistic_frames(n_frames: int, n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Indices of ``n`` frames spread evenly over ``[start, stop)`` (all of them if fewer)."""
    stop = n_frames if stop is None else stop
    if stop - start <= n:
        return np.arange(start, stop)
    return np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))


def temporal_statistic(
    src: FrameSource, kind: StatisticKind = "max", n: int = 32, *, registration: Registration | None = None
) -> np.ndarray:
    """Per-pixel ``kind`` over ``n`` frames spread across ``src``, as float32 ``(H, W)`` in [0, 1].

    Streaming: max/min keep one running frame; median keeps the ``n`` frames in the source dtype
    (``n × H × W`` bytes for uint8). Colour frames are converted to grey (BT.601).

    Parameters
    ----------
    src : FrameSource
        The recording.
    kind : {"max", "min", "median"}
        The statistic.
    n : int
        Number of frames sampled (evenly spaced, first and last included).
    registration : Registration, optional
        Measure each sampled frame's camera shift and accumulate in frame 0's coordinates
        (:mod:`vidfilter.sampling.register`); the shifts stay in the registration's cache.
    """
    if kind not in ("max", "min", "median"):
        raise ValueError(f"unknown temporal statistic {kind!r}; use max, min or median")
    idx = statistic_frames(len(src), n)
    if idx.size == 0:
        raise TrainingInputError(f"{src.path}: recording has no frames")
    contiguous = idx.size == len(src)
    frames = src.iter(0, len(src)) if contiguous else (src[int(t)] for t in idx)
    acc: np.ndarray | None = None
    stack: list[np.ndarray] = []
    for t, frame in zip(idx, frames):
        frame = to_gray(np.asarray(frame))
        if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
            raise TrainingInputError(f"{src.path}: frame {int(t)} holds NaN or Inf values; replace them before training")
        if registration is not None:
            frame = registration.to_reference(frame, int(t))
        if kind == "median":
            stack.append(frame)
        elif acc is None:
            acc = frame.copy()
        elif kind == "max":
            np.maximum(acc, frame, out=acc)
        else:
            np.minimum(acc, frame, out=acc)
    if kind == "median":
        med = np.median(np.stack(stack), axis=0)
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(stack[0].dtype, 1.0)
        return (med / scale).astype(np.float32)
    assert acc is not None
    return to_float(acc)


#: detect_polarity: one side must outweigh the other by this factor to decide dark or bright, and
#: at least this share of the sampled pixels must change (animals cover ~1 % of a worm plate).
POLARITY_MARGIN = 1.5
POLARITY_MIN_SHARE = 2e-4
@dataclass(frozen=True)
class PolarityEvidence:
    """What :func:`polarity_evidence` found: the weight of the dark and bright votes and how much changed."""

    dark: float
    bright: float
    changed: int
    pixels: int

    @property
    def ratio(self) -> float:
        """Dark over bright evidence (``inf`` when nothing votes bright)."""
        return self.dark / self.bright if self.bright > 0 else (float("inf") if self.dark > 0 else 1.0)

    @property
    def polarity(self) -> str:
        """``"dark"``, ``"bright"`` or ``"absolute"`` (too little change, or no side outweighs the other)."""
        if self.changed < max(POLARITY_MIN_SHARE * self.pixels, 25):
            return "absolute"
        if self.dark > POLARITY_MARGIN * self.bright:
            return "dark"
        if self.bright > POLARITY_MARGIN * self.dark:
            return "bright"
        return "absolute"

    def describe(self) -> str:
        """One line for logs and reports, e.g. ``dark (dark:bright evidence 7.3:1, 2.9 % of pixels changed)``."""
        share = 100.0 * self.changed / max(self.pixels, 1)
        if self.dark >= self.bright:
            odds = f"dark:bright evidence {self.ratio:.3g}:1" if self.bright > 0 else "no bright evidence"
        else:
            odds = f"bright:dark evidence {self.bright / self.dark:.3g}:1" if self.dark > 0 else "no dark evidence"
        return f"{self.polarity} ({odds}, {share:.2g} % of pixels changed)"


def polarity_evidence(
    sources: FrameSource | list[FrameSource], n: int = 16, k: float = 5.0, max_side: int = 512
) -> PolarityEvidence:
    """Are the animals darker or lighter than the plate? The evidence behind :func:`detect_polarity`.

    For each recording, ``n`` frames spread over it are read (subsampled to at most ``max_side``
    pixels a side, so memory is bounded whatever the frame size) and each frame's global offset
    against their per-pixel median is removed (flicker, exposure). Where a pixel changes over time
    (``max - min`` projection above ``k`` robust sigmas) one of the two extremes is an animal and
    the other the plate. The plate level there comes from a spatial median filter of the median
    frame, which smooths thin animals away even when they barely move (so the temporal median
    still holds them). The extreme closer to that level is the plate, so the pixel votes *dark*
    (the min is the animal) or *bright* (the max is), with the weight of its change beyond the
    noise. Near a wall or a rim the filtered level is a blend of both sides, and a resting animal
    against a dark wall made the floor it uncovers look brighter than the "plate" (mouse_tracktor,
    frames 9490-9789). So a pixel votes only where a second plate level agrees on the side: the
    median frame at the nearest pixel outside the changed region (its holes filled, so a resting
    animal's unchanged core is inside it).
    """
    from scipy import ndimage

    srcs = [sources] if isinstance(sources, FrameSource) else list(sources)
    dark = bright = 0.0
    n_changed = n_px = 0
    for src in srcs:
        idx = statistic_frames(len(src), n)
        if idx.size < 5:  # too short to tell what moves from noise
            continue
        h, w = src.frame_shape[:2]
        step = max(1, -(-max(h, w) // max_side))
        grey = (to_gray(np.asarray(src[int(t)]))[::step, ::step] for t in idx)
        # frames with NaN/Inf are left to the sampler's checks, which name the frame
        frames = np.stack([to_float(g) for g in grey if not np.issubdtype(g.dtype, np.floating) or np.isfinite(g).all()])
        if len(frames) < 5:
            continue
        med = np.median(frames, axis=0)
        frames -= np.median((frames - med).reshape(len(frames), -1), axis=1)[:, None, None]
        r = frames - med
        thr = k * max(1.4826 * float(np.median(np.abs(r))), 1.0 / 255)
        hi, lo = frames.max(axis=0), frames.min(axis=0)
        change = hi - lo
        changed = change > 2 * thr  # the range of n noisy samples reaches ~ 4-6 sigma
        size = max(9, min(med.shape) // 12) | 1  # >> an animal's width, << the plate's shading
        if size >= 21:  # the plate is smooth at this scale: filter at half resolution (4x fewer pixels, 4x smaller window)
            half = ndimage.median_filter(med[::2, ::2], size=(size // 2) | 1, mode="nearest")
            plate = np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[: med.shape[0], : med.shape[1]]
        else:
            plate = ndimage.median_filter(med, size=size, mode="nearest")
        # the second plate level: the median frame at the nearest pixel outside the (filled) changed region
        nearest = ndimage.distance_transform_edt(ndimage.binary_fill_holes(changed), return_distances=False, return_indices=True)
        outside = med[nearest[0], nearest[1]]
        lo_is_animal = (2 * plate - hi - lo) > 0  # the max is the closer extreme to the plate level
        votes = changed & (lo_is_animal == ((2 * outside - hi - lo) > 0))
        weight = (change - 2 * thr)[votes]
        dark += float(weight[lo_is_animal[votes]].sum())
        bright += float(weight[~lo_is_animal[votes]].sum())
        n_changed += int(changed.sum())
        n_px += changed.size
    return PolarityEvidence(dark, bright, n_changed, n_px)


def detect_polarity(sources: FrameSource | list[FrameSource], n: int = 16, k: float = 5.0, max_side: int = 512) -> str:
    """Are the animals darker or lighter than the plate? ``"dark"``, ``"bright"`` or ``"absolute"``.

    The verdict of :func:`polarity_evidence`: one side must outweigh the other by
    :data:`POLARITY_MARGIN`, and at least :data:`POLARITY_MIN_SHARE` of the pixels must change
    (else nothing moves); otherwise ``"absolute"``.
    """
    return polarity_evidence(sources, n=n, k=k, max_side=max_side).polarity
