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

1. **snap**: where the background is within ``SNAP`` robust sigmas of the median (after their
   global offset, so an exposure change does not matter), the median replaces it, blending back
   to the network's value over the next ``SNAP`` sigmas. Where they differ more (an animal the
   network removed and the median keeps, a lighting change), the network's value stays;
2. **bound**: the background is clipped to the extreme projection, shifted by their global
   offset (the projection's noise bias and any exposure change) plus ``BOUND`` robust sigmas of
   their difference: ``min(bg, low + offset + BOUND * sigma)`` for bright animals,
   ``max(bg, high + offset - BOUND * sigma)`` for dark ones; no bound for ``absolute``.

What it cannot change: an animal in every sampled frame is in the median and both projections,
so removing it stays the network's work (the snap can give back its faint rim, within a sigma of
the median). Sigmas are ``1.4826 x`` the median absolute deviation of the difference on a sparse
grid (the drift measure's), with a floor of ``1e-4`` (a thirtieth of an 8-bit level), so that a
noise-free recording neither divides by zero nor snaps what differs.
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

    def __call__(self, background: np.ndarray, polarity: str) -> np.ndarray:
        """``background`` (float32 ``(H, W)`` or ``(H, W, 1)`` in [0, 1]) snapped and bounded (see the
        module); other shapes (colour) are returned as they are."""
        if background.shape[:2] != self.median.shape or (background.ndim == 3 and background.shape[-1] != 1):
            return background
        b = background[..., 0] if background.ndim == 3 else background
        out = self.snap(b.astype(np.float32, copy=False))
        out = self.bound(out, polarity)
        return out[..., None] if background.ndim == 3 else out

    def _offset_sigma(self, a: np.ndarray, b: np.ndarray) -> tuple[np.float32, np.float32]:
        s = max(1, int(np.sqrt(a.shape[0] * a.shape[1] / _SAMPLES)))
        d = a[::s, ::s] - b[::s, ::s]
        off = np.median(d)
        sigma = max(1.4826 * float(np.median(np.abs(d - off))), _SIGMA_FLOOR)
        return np.float32(off), np.float32(sigma)

    def snap(self, b: np.ndarray) -> np.ndarray:
        """``b`` replaced by the offset median within ``SNAP`` sigmas of it, blended up to twice that."""
        off, sigma = self._offset_sigma(b, self.median)
        plate = self.median + off
        w = np.clip(np.abs(b - plate) / (SNAP * sigma) - 1.0, 0.0, 1.0)
        return plate + w * (b - plate)

    def bound(self, b: np.ndarray, polarity: str) -> np.ndarray:
        """``b`` clipped to the extreme projection of ``polarity`` plus its offset and ``BOUND`` sigmas."""
        if polarity == "bright":
            off, sigma = self._offset_sigma(b, self.low)
            return np.minimum(b, self.low + (off + BOUND * sigma))
        if polarity == "dark":
            off, sigma = self._offset_sigma(b, self.high)
            return np.maximum(b, self.high + (off - BOUND * sigma))
        return b
