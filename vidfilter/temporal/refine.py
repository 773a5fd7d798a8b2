"""The network's background made exact on the plate and bounded by what the recording shows.

A network's background is smooth where the plate has fine texture (an error of a grey level or
two everywhere) and can keep part of an animal that rests. The recording itself holds two exact
facts about its plate, from the frames the setup already samples:

- its **median**, the plate to within the sensor noise averaged over the sample, wherever no
  animal rests for half of it;
- its **extreme projection**: animals only darken (dark polarity) or only lighten (bright) the
  plate, so the plate is never darker than the sample's max (dark animals), nor lighter than its
  min (bright), up to the noise: wherever an animal left its place once in the sample, that
  projection shows the plate there.

:class:`Refinement` applies both to each background the network gives, in two steps:

1. **snap**: the median (shifted by its global offset to the background, so an exposure change
   does not matter) replaces the background where they agree, blending back to the network's value
   over a band as wide again. On the plate side (the background darker than that median for dark
   animals, lighter for bright ones) the band is ``SNAP`` robust sigmas of their difference: there
   the network smoothed the plate, or kept part of an animal the median does not hold. On the
   animal side (the network removed something the median holds: a resting or still animal, or a
   speck of the plate) it is only ``SNAP`` sigmas of the frame's own noise against the median, so
   the snap gives back at most a noise's worth of an animal the network removed; with ``absolute``
   polarity both sides take the narrow band;
2. **bound**: the background is clipped to the extreme projection, shifted by their global
   offset (the projection's noise bias and any exposure change) plus ``BOUND`` robust sigmas of
   their difference: ``min(bg, low + offset + BOUND * sigma)`` for bright animals,
   ``max(bg, high + offset - BOUND * sigma)`` for dark ones; no bound for ``absolute``.

What it cannot change: an animal in every sampled frame is in the median and both projections,
so removing it stays the network's work. Sigmas are ``1.4826 x`` the median absolute deviation of
the difference on a sparse grid of about 65,536 points, with a floor of ``1e-4`` (a thirtieth of an
8-bit level), so that a noise-free recording neither divides by zero nor snaps what differs.
The two constants were chosen on the flies and zebrafish recordings and checked on the others
(``docs/benchmarks.md``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["BOUND", "SNAP", "Refinement"]

#: the snap's width in robust sigmas of (background - median)
SNAP = 1.0
#: the bound's margin in robust sigmas of (background - extreme projection)
BOUND = 3.0
#: points of the sparse grid the offsets and sigmas are measured on
_SAMPLES = 65536
#: the sigmas' floor on the [0, 1] scale
_SIGMA_FLOOR = 1e-4


class Refinement(NamedTuple):
    """The recording's median and min / max projections (float32 ``(H, W)`` in [0, 1], grey)."""

    median: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def __call__(self, background: np.ndarray, polarity: str, frame: np.ndarray | None = None, *,
                 bound: bool = True) -> np.ndarray:
        """``background`` (float32 ``(H, W)`` or ``(H, W, 1)`` in [0, 1]) of ``frame`` (the same shape,
        which sets the noise of the snap's animal side; without it the sigmas' floor) snapped and,
        with ``bound``, bounded (see the module); other shapes (colour) are returned as they are."""
        if background.shape[:2] != self.median.shape or (background.ndim == 3 and background.shape[-1] != 1):
            return background
        b = background[..., 0] if background.ndim == 3 else background
        noise = _SIGMA_FLOOR
        if frame is not None and frame.shape == background.shape:
            noise = self._noise_sigma(frame[..., 0] if frame.ndim == 3 else frame)
        out = self.snap(b.astype(np.float32, copy=False), polarity, noise)
        if bound:
            out = self.bound(out, polarity)
        return out[..., None] if background.ndim == 3 else out

    def _noise_sigma(self, frame: np.ndarray) -> np.float32:
        """The frame's noise against the median: the mean of the smallest 90 % of ``|frame - median -
        offset|`` over 0.6574 (a Gaussian's), which, unlike the median absolute deviation, does not
        fall to 0 when most of an 8-bit frame equals its median to the level."""
        s = max(1, int(np.sqrt(frame.shape[0] * frame.shape[1] / _SAMPLES)))
        d = frame[::s, ::s] - self.median[::s, ::s]
        a = np.abs(d - np.median(d)).ravel()
        cut = np.partition(a, int(0.9 * (a.size - 1)))[: int(0.9 * (a.size - 1)) + 1]
        return np.float32(max(float(cut.mean()) / 0.6574, _SIGMA_FLOOR))

    def _offset_sigma(self, a: np.ndarray, b: np.ndarray) -> tuple[np.float32, np.float32]:
        s = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / _SAMPLES)))
        d = a[::s, ::s] - b[::s, ::s]
        off = np.median(d)
        sigma = max(1.4826 * float(np.median(np.abs(d - off))), _SIGMA_FLOOR)
        return np.float32(off), np.float32(sigma)

    def snap(self, b: np.ndarray, polarity: str, noise: float = _SIGMA_FLOOR) -> np.ndarray:
        """``b`` replaced by the offset median where they agree (see the module); ``noise``: the
        frame's own noise sigma, the band of the animal side."""
        off, sigma = self._offset_sigma(b, self.median)
        plate = self.median + off
        dev = b - plate
        wide, narrow = np.float32(SNAP * sigma), np.float32(SNAP * min(sigma, noise))
        if polarity == "dark":
            band: np.ndarray | np.float32 = np.where(dev > 0, narrow, wide)
        elif polarity == "bright":
            band = np.where(dev < 0, narrow, wide)
        else:
            band = narrow
        w = np.clip(np.abs(dev) / band - 1.0, 0.0, 1.0)
        return plate + w * dev

    def bound(self, b: np.ndarray, polarity: str) -> np.ndarray:
        """``b`` clipped to the extreme projection of ``polarity`` plus its offset and ``BOUND`` sigmas."""
        if polarity == "bright":
            off, sigma = self._offset_sigma(b, self.low)
            return np.minimum(b, self.low + (off + BOUND * sigma))
        if polarity == "dark":
            off, sigma = self._offset_sigma(b, self.high)
            return np.maximum(b, self.high + (off - BOUND * sigma))
        return b
