"""Camera-shift registration: the translation of each frame against the recording's first frame.

A camera bumped by a few pixels mid-recording breaks two things the method relies on:
a time-lag pair straddling the bump no longer shows the same plate at the same pixel, so the
network is taught to blur the texture, and a temporal statistic over the recording (the max
channel) mixes two copies of the plate. With registration on:

- every frame's shift ``s_t = (dy, dx)`` (where the plate appears relative to frame 0, whole
  pixels) comes from cross-correlation of a central window against the same window of frame 0
  (:func:`correlation_peak`, tapered by :func:`hann_taper`);
- the temporal statistic is accumulated in frame 0's coordinates (each frame moved by ``-s_t``);
- a training pair crops its target where the input's plate went (offset ``s_b - s_a``) and the
  statistic where the input's crop lies in frame 0's coordinates;
- at inference the statistic is moved by ``s_t`` to each network frame.

The backgrounds stay in each frame's own coordinates, so foregrounds need no resampling. Shifts are
rounded to whole pixels: a camera bump is a whole-image translation of a few pixels, and an integer
move keeps 8-bit frames exact (no interpolation blur in the target).

What is correlated and compared is a band-passed window (difference of Gaussians, :data:`BAND`):
the fine band holds sensor and codec noise, the coarse one illumination (vignetting, exposure and
gain changes). Neither tells where the plate is; left in, they decide the correlation on smooth or
compressed content, whose peak is then a plateau with a maximum that wanders with noise, block
artefacts or a change of exposure (shifts of several pixels on a still H.264 clip).

A correlation peak is only a candidate. It first moves to the neighbour within a pixel (itself
included) that matches frame 0 best, as the maximum of a broad, tapered peak can sit a pixel or
two off.
It is then accepted when moving the frame back by it makes the band-passed window match frame 0's
clearly better, measured as the unshifted match is, over the pixels the move leaves covered:

- the median ``|frame - frame 0|`` falls below :data:`IMPROVEMENT` of its unshifted value, and by
  at least :data:`MIN_GAIN` (the median ignores the animals, a small share of the window; on
  band-passed values it is not held to whole grey levels, where medians of 3 and 2 grey levels
  read as a 33 % gain), and
- the gain holds across the window: the per-tile medians (:data:`TILE` pixels a side) improve by a
  mean of at least :data:`SIGNIFICANCE` standard errors of their spread. A camera shift improves
  the tiles with plate texture alike; a peak that follows an animal improves the tiles it crosses,
  and one on codec noise improves tiles at random.

``auto`` turns registration on for a recording when the camera moved by a pixel or more in
:data:`CONFIRM` consecutive surveyed frames (the statistic's frames): a bump persists, a single
odd frame does not, and a still camera costs nothing per frame.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from vidfilter.io.scaling import to_float
from vidfilter.io.source import FrameSource, to_gray

log = logging.getLogger(__name__)

#: side of the central window correlated against frame 0 (full resolution: whole-pixel accuracy)
WINDOW = 512
#: Gaussian sigmas (pixels) of the band-pass: finer detail is noise, coarser is illumination
BAND = (1.0, 8.0)
#: a shift is accepted when it brings the median |frame - frame 0| of the band-passed window below
#: this share of its unshifted value, ...
IMPROVEMENT = 0.9
#: ... by at least this much (a tenth of an 8-bit grey level: a smaller gain changes nothing visible), ...
MIN_GAIN = 0.1 / 255
#: ... and the per-tile medians improve consistently: a mean gain of at least this many standard
#: errors (one-sided p ~ 0.01 for 20 tiles) over tiles of this side (pixels; smaller in small
#: windows, so that there are at least 4 along the shorter side)
SIGNIFICANCE = 2.5
TILE = 32
#: consecutive surveyed frames that must show a shift before ``auto`` registers a recording
CONFIRM = 2
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


def _tile_medians(image: np.ndarray, side: int) -> np.ndarray:
    """The median of each whole ``side`` x ``side`` tile of ``image`` (the partial ones at the
    bottom and right edges left out), flattened."""
    th, tw = image.shape[0] // side, image.shape[1] // side
    tiles = image[: th * side, : tw * side].reshape(th, side, tw, side).swapaxes(1, 2).reshape(th * tw, side * side)
    return np.median(tiles, axis=1)


def hann_taper(shape: tuple[int, int]) -> np.ndarray:
    """A radially symmetric Hann window of ``shape`` (float32): the symmetric 1-D Hann window of
    ``max(shape)`` samples, read at each pixel's distance from the centre (pixel coordinates scaled
    so that both sides span ``max(shape)``; linear between samples, 0 beyond the last). The same
    values as scikit-image's ``filters.window("hann", shape)``; written with numpy because importing
    that function imports ``scipy.signal``, a second of a run's setup on a cold start."""
    n = max(shape)
    samples = np.hanning(n)
    centre = n / 2 - 0.5
    ys, xs = ((np.arange(s, dtype=np.float32) * np.float32(n / s) - np.float32(centre)) for s in shape)
    radius = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2) + np.float32(centre)
    return np.interp(radius, np.arange(n), samples, left=0.0, right=0.0).astype(np.float32)


def correlation_peak(reference: np.ndarray, moving: np.ndarray) -> tuple[int, int]:
    """The whole-pixel shift ``(dy, dx)`` that registers ``moving`` with ``reference``: the
    maximum of their circular cross-correlation (by FFT, unnormalised), with shifts beyond half a
    side wrapped to negative ones. ``moving`` moved by ``(dy, dx)`` matches ``reference``. Equals
    scikit-image's ``phase_cross_correlation(reference, moving, upsample_factor=1,
    normalization=None)`` (tested), in numpy alone for the same import cost as :func:`hann_taper`."""
    shape = reference.shape
    product = np.fft.rfft2(reference) * np.conj(np.fft.rfft2(moving))
    corr = np.fft.irfft2(product, s=shape)
    peak = np.unravel_index(int(np.argmax(np.abs(corr))), shape)
    return tuple(int(p - s) if p > s // 2 else int(p) for p, s in zip(peak, shape))  # type: ignore[return-value]


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
        self.box = _window_box(np.asarray(reference).shape[:2], window)
        self.max_shift = int(max_shift)
        self.ref_raw = self._centred(self._prepare_raw(reference))
        self._taper = hann_taper(self.ref_raw.shape)
        self.ref_clipped = self._clipped(self.ref_raw)
        self.ref = self._taper * self.ref_clipped
        self.cache: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()  # inference estimates keyframes from two threads
        self._rejected = False

    @classmethod
    def for_source(cls, src: FrameSource, **kw: Any) -> Registration:
        return cls(np.asarray(src[0]), **kw)

    def _prepare_raw(self, frame: np.ndarray) -> np.ndarray:
        """The grey window of ``frame``, band-passed (:data:`BAND`)."""
        from scipy import ndimage

        win = to_float(np.ascontiguousarray(to_gray(np.asarray(frame)[self.box])), check_finite=False)  # crop first: grey of the window only
        if not np.isfinite(win).all():
            return np.zeros_like(win)  # NaN/Inf: flat here; the samplers' checks name the frame
        fine, coarse = BAND
        return ndimage.gaussian_filter(win, fine, mode="nearest") - ndimage.gaussian_filter(win, coarse, mode="nearest")

    @staticmethod
    def _centred(win: np.ndarray) -> np.ndarray:
        return win - np.float32(np.median(win))  # exposure changes do not move the peak

    @staticmethod
    def _clipped(win: np.ndarray) -> np.ndarray:
        """Clip at 3 robust sigmas: animals (high contrast, moving) would otherwise pull the peak
        towards their own motion; the plate texture they cover is what must match."""
        sigma = 1.4826 * float(np.median(np.abs(win)))
        return np.clip(win, -3 * sigma, 3 * sigma) if sigma > 0 else win

    def _refined(self, clipped: np.ndarray, cand: tuple[int, int]) -> tuple[int, int]:
        """The shift within a pixel of the correlation peak ``cand`` (itself included) whose move
        back gives the smallest mean squared difference of the clipped windows (``clipped``: the
        frame's), over the pixels all nine leave covered: the measure the correlation maximises,
        without its taper. On smooth or compressed content the peak is broad, and the taper, which
        weighs the centre, can move its maximum a pixel or two."""
        k = max(abs(cand[0]), abs(cand[1])) + 1
        h, w = clipped.shape
        if 2 * k >= min(h, w):
            return cand
        ref = self.ref_clipped[k : h - k : 2, k : w - k : 2]  # every other pixel: enough to rank nine neighbours

        def mismatch(d: tuple[int, int]) -> float:  # the frame moved back by d
            return float(np.mean(np.square(ref - clipped[k + d[0] : h - k + d[0] : 2, k + d[1] : w - k + d[1] : 2])))

        return min(((cand[0] + a, cand[1] + b) for a in (-1, 0, 1) for b in (-1, 0, 1)), key=mismatch)

    def _improves(self, mov: np.ndarray, dy: int, dx: int) -> bool:
        """Does moving the band-passed frame window back by ``(dy, dx)`` make it match frame 0's
        clearly better (:data:`IMPROVEMENT`, :data:`MIN_GAIN`) and consistently across the window
        (:data:`SIGNIFICANCE`)? Both matches are measured over the pixels the move leaves covered."""
        k = max(abs(dy), abs(dx))
        h, w = mov.shape
        if 2 * k >= min(h, w):
            return False  # nothing would be left to compare
        inner = (slice(k, h - k), slice(k, w - k))
        before = np.abs(self.ref_raw - mov)[inner]
        after = np.abs(self.ref_raw - translate(mov, -dy, -dx))[inner]
        m_before, m_after = float(np.median(before[::2, ::2])), float(np.median(after[::2, ::2]))  # every other pixel: plenty for a median
        if not (m_after < IMPROVEMENT * m_before and m_before - m_after >= MIN_GAIN):
            return False
        side = max(4, min(TILE, min(before.shape) // 4))
        gains = _tile_medians(before, side) - _tile_medians(after, side)
        if gains.size < 4:
            return True  # too small a window to judge consistency
        mean, spread = float(gains.mean()), float(gains.std(ddof=1))
        return mean > 0 and mean * np.sqrt(gains.size) >= SIGNIFICANCE * spread

    def shift(self, frame: np.ndarray, t: int | None = None) -> tuple[int, int]:
        """Where frame ``t``'s content lies relative to frame 0, ``(dy, dx)`` whole pixels
        (cached by ``t`` when given)."""
        if t is not None:
            with self._lock:
                hit = self.cache.get(t)
            if hit is not None:
                return hit
        mov = self._centred(self._prepare_raw(frame))
        if mov.shape != self.ref.shape:
            raise ValueError(f"frame window {mov.shape} differs from the reference window {self.ref.shape}")
        est = (0, 0)
        if float(mov.std()) > 1e-6 and float(self.ref.std()) > 1e-6:  # a flat frame (blank, saturated): nothing to correlate
            clipped = self._clipped(mov)
            found = correlation_peak(self.ref, self._taper * clipped)
            cand = (-found[0], -found[1])  # the peak is the shift that undoes the move
            if cand != (0, 0):
                cand = self._refined(clipped, cand)
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
        """Has the camera moved: a shift of a pixel or more in :data:`CONFIRM` consecutive frames
        seen so far (in time order)? A single shifted frame does not count."""
        with self._lock:
            shifts = [self.cache[t] for t in sorted(self.cache)]
        run = 0
        for s in shifts:
            run = run + 1 if s != (0, 0) else 0
            if run >= CONFIRM:
                return True
        return False

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
    from vidfilter.io.prefetch import served_index

    reg = Registration.for_source(src, **kw)
    for t in frames:
        reg.shift(np.asarray(src[int(t)]), served_index(src, int(t)))
    return reg

