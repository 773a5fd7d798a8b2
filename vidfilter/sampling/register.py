"""Camera-shift registration: the translation of each frame against the recording's first frame.

A camera bumped by a few pixels mid-recording breaks two things the method relies on (DESIGN §6):
a time-lag pair straddling the bump no longer shows the same plate at the same pixel, so the
network is taught to blur the texture, and a temporal statistic over the recording (the max
channel) mixes two copies of the plate. With registration on:

- every frame's shift ``s_t = (dy, dx)`` (where the plate appears relative to frame 0, whole
  pixels) comes from phase correlation of a central window (scikit-image's
  ``phase_cross_correlation``) against the same window of frame 0;
- the temporal statistic is accumulated in frame 0's coordinates (each frame moved by ``-s_t``);
- a training pair crops its target where the input's plate went (offset ``s_b - s_a``) and the
  statistic where the input's crop lies in frame 0's coordinates;
- at inference the statistic is moved by ``s_t`` to each network frame.

The backgrounds stay in each frame's own coordinates, so foregrounds need no resampling. Shifts are
rounded to whole pixels: a camera bump is a whole-image translation of a few pixels, and an integer
move keeps 8-bit frames exact (no interpolation blur in the target). ``auto`` turns registration on
for a recording when any of the surveyed frames (the statistic's frames) has moved by a pixel or
more, so a still camera costs nothing per frame.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from vidfilter.io.convert import to_float
from vidfilter.io.source import FrameSource, to_gray

log = logging.getLogger(__name__)

#: side of the central window correlated against frame 0 (full resolution: whole-pixel accuracy)
WINDOW = 512
#: a shift is accepted when it brings the median |frame - frame 0| of the window below this share
#: of its unshifted value (a still camera with moving animals otherwise shows spurious 1 px peaks)
IMPROVEMENT = 0.9
#: frames whose shift is kept (whole pixels, two ints each); older entries are dropped first
CACHE_FRAMES = 4096


def translate(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` with its content moved by ``(dy, dx)`` whole pixels; the uncovered border repeats
    the nearest edge pixel (``out[y, x] = image[y - dy, x - dx]`` clamped to the image)."""
    if dy == 0 and dx == 0:
        return image
    h, w = image.shape[:2]
    pad = [(max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return np.ascontiguousarray(padded[y0 : y0 + h, x0 : x0 + w])


def _window_box(shape: tuple[int, int], side: int) -> tuple[slice, slice]:
    h, w = shape
    sh, sw = min(h, side), min(w, side)
    y0, x0 = (h - sh) // 2, (w - sw) // 2
    return slice(y0, y0 + sh), slice(x0, x0 + sw)


class Registration:
    """Shifts of a recording's frames against its frame 0 (see the module docstring).

    Parameters
    ----------
    reference : ndarray
        Frame 0 of the recording (grey or colour, any dtype).
    window : int
        Side of the central window that is correlated.
    max_shift : int
        Larger estimates are treated as failures (a scene change, a blank frame): the frame
        counts as unshifted and a warning names it once.
    """

    def __init__(self, reference: np.ndarray, *, window: int = WINDOW, max_shift: int = 32) -> None:
        from skimage.filters import window as make_window

        self.box = _window_box(np.asarray(reference).shape[:2], window)
        self.max_shift = int(max_shift)
        self.ref_raw = self._centred(self._prepare_raw(reference))
        self._taper = make_window("hann", self.ref_raw.shape).astype(np.float32)
        self.ref = self._taper * self._clipped(self.ref_raw)
        self.cache: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()  # inference estimates keyframes from two threads
        self._rejected = False

    @classmethod
    def for_source(cls, src: FrameSource, **kw: Any) -> Registration:
        return cls(np.asarray(src[0]), **kw)

    def _prepare_raw(self, frame: np.ndarray) -> np.ndarray:
        win = to_float(np.ascontiguousarray(to_gray(np.asarray(frame)[self.box])), check_finite=False)  # crop first: grey of the window only
        return win if np.isfinite(win).all() else np.zeros_like(win)  # NaN/Inf: flat here; the samplers' checks name the frame

    @staticmethod
    def _centred(win: np.ndarray) -> np.ndarray:
        return win - np.float32(np.median(win))  # exposure changes do not move the peak

    @staticmethod
    def _clipped(win: np.ndarray) -> np.ndarray:
        """Clip at 3 robust sigmas: animals (high contrast, moving) would otherwise pull the peak
        towards their own motion; the plate texture they cover is what must match."""
        sigma = 1.4826 * float(np.median(np.abs(win)))
        return np.clip(win, -3 * sigma, 3 * sigma) if sigma > 0 else win

    def _improves(self, mov: np.ndarray, dy: int, dx: int) -> bool:
        """Does moving the frame back by the estimate make its plate match frame 0's better? The
        median |difference| ignores the animals (a small share of the window)."""
        k = max(abs(dy), abs(dx))
        inner = (slice(k, mov.shape[0] - k or None), slice(k, mov.shape[1] - k or None))
        before = float(np.median(np.abs(self.ref_raw - mov)[inner]))
        after = float(np.median(np.abs(self.ref_raw - translate(mov, -dy, -dx))[inner]))
        return after < IMPROVEMENT * before

    def shift(self, frame: np.ndarray, t: int | None = None) -> tuple[int, int]:
        """Where frame ``t``'s content lies relative to frame 0, ``(dy, dx)`` whole pixels
        (cached by ``t`` when given)."""
        if t is not None:
            with self._lock:
                hit = self.cache.get(t)
            if hit is not None:
                return hit
        from skimage.registration import phase_cross_correlation

        mov = self._centred(self._prepare_raw(frame))
        if mov.shape != self.ref.shape:
            raise ValueError(f"frame window {mov.shape} differs from the reference window {self.ref.shape}")
        est = (0, 0)
        if float(mov.std()) > 1e-6 and float(self.ref.std()) > 1e-6:  # a flat frame (blank, saturated): nothing to correlate
            found = phase_cross_correlation(self.ref, self._taper * self._clipped(mov), upsample_factor=1, normalization=None)[0]
            cand = (-int(round(float(found[0]))), -int(round(float(found[1]))))  # it returns the shift that undoes the move
            if cand != (0, 0) and self._improves(mov, *cand):
                est = cand
        if max(abs(est[0]), abs(est[1])) > self.max_shift:
            if not self._rejected:
                log.warning("frame %s: estimated camera shift %s is beyond %d px; treated as unshifted", t, est, self.max_shift)
                self._rejected = True
            est = (0, 0)
        if t is not None:
            with self._lock:
                if len(self.cache) >= CACHE_FRAMES:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[t] = est
        return est

    def _shifts(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self.cache.values())

    @property
    def moved(self) -> bool:
        """Has any frame seen so far moved by a pixel or more?"""
        return any(s != (0, 0) for s in self._shifts())

    @property
    def largest(self) -> int:
        """The largest shift seen so far, pixels (Chebyshev)."""
        return max((max(abs(a), abs(b)) for a, b in self._shifts()), default=0)

    def to_reference(self, frame: np.ndarray, t: int) -> np.ndarray:
        """Frame ``t`` moved into frame 0's coordinates."""
        dy, dx = self.shift(frame, t)
        return translate(frame, -dy, -dx)

    def summary(self) -> dict[str, Any]:
        """What the survey found, for reports: frames seen, how many moved, the largest shift."""
        shifts = self._shifts()
        moved = sum(s != (0, 0) for s in shifts)
        return {"frames_seen": len(shifts), "frames_moved": moved, "largest_shift_px": self.largest}


def survey(src: FrameSource, frames: np.ndarray, **kw: Any) -> Registration:
    """A :class:`Registration` of ``src`` with the shifts of ``frames`` measured (one read each)."""
    reg = Registration.for_source(src, **kw)
    for t in frames:
        reg.shift(np.asarray(src[int(t)]), int(t))
    return reg


def statistic_and_registration(
    src: FrameSource, kind: str, n: int, mode: str, max_shift: int, *, what: str = "registered to frame 0",
) -> tuple[np.ndarray | None, Registration | None]:
    """The temporal statistic of ``src`` (``kind`` "none": no statistic) and the registration to
    apply: None when ``mode`` is "off", or "auto" and no surveyed frame moved. The statistic's
    ``n`` frames are the survey (one read each); without a statistic the same frames are surveyed.
    Shared by training (:func:`vidfilter.sampling.pairs.make_samplers`) and inference
    (:class:`vidfilter.infer.pipeline.ModelBackground`) so both decide alike; ``what`` ends the log line."""
    from vidfilter.sampling.temporal import statistic_frames, temporal_statistic

    stat = None
    if kind != "none":
        reg = Registration.for_source(src, max_shift=max_shift) if mode != "off" else None
        stat = temporal_statistic(src, kind, n, registration=reg)  # type: ignore[arg-type]
    else:
        reg = survey(src, statistic_frames(len(src), n), max_shift=max_shift) if mode != "off" else None
    if reg is None or not (mode == "on" or reg.moved):
        return stat, None
    log.info("%s: the camera moved (largest shift %d px over %d surveyed frames): %s", src.path, reg.largest, len(reg.cache), what)
    return stat, reg
