"""Foreground masks for evaluation, beside the paper's fixed threshold (:mod:`vidfilter.polarity`).

Thresholds are in grey levels on the 8-bit scale whatever the dtype, as in :mod:`vidfilter.polarity`.

- :func:`otsu_mask`: Otsu's threshold on an image (optionally Gaussian-smoothed first), the rule of
  the static-mode benchmarks (BBBC042, BBBC026); :func:`otsu_foreground_mask`: the same on the
  filtered foreground ``|frame - background|`` (or one-sided), a threshold chosen per frame.
- :func:`noise_threshold` / :func:`noise_mask`: a threshold chosen from the residual noise level
  (:func:`~vidfilter.polarity.residual_noise`) instead of a fixed 10. The mask is
  ``(residual - offset) > max(k * sigma, floor)`` in the chosen polarity, then cleaned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.polarity import ROUNDOFF, clean_mask, foreground, residual_noise, signed_residual

__all__ = ["noise_mask", "noise_threshold", "otsu_foreground_mask", "otsu_mask"]


def otsu_mask(image: Any, *, sigma: float = 0.0, dark: bool = False) -> np.ndarray:
    """Pixels above Otsu's threshold of ``image`` (below it with ``dark=True``).

    ``sigma`` > 0 smooths with a Gaussian first (Otsu on a filtered image). A constant image has
    no foreground (all ``False``).
    """
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    if sigma > 0:
        img = gaussian_filter(img, sigma)
    if img.size == 0 or float(img.max()) == float(img.min()):
        return np.zeros(img.shape, dtype=bool)
    t = threshold_otsu(img)
    return img < t if dark else img > t


def otsu_foreground_mask(
    frame: Any, background: Any, polarity: Any = "absolute", *, sigma: float = 1.0, floor: float = 0.0, scale: float = 255.0
) -> np.ndarray:
    """Otsu's threshold on the Gaussian-filtered foreground image (the alternative to a fixed 10).

    ``foreground(frame, background, polarity)`` (grey levels) is smoothed with a Gaussian of
    ``sigma`` px, then the pixels above ``max(otsu_threshold, floor)`` are the mask. Otsu always
    splits the histogram in two, so on a frame with no animal it flags the upper half of the
    noise: ``floor`` (grey levels) keeps such frames empty.
    """
    from scipy.ndimage import gaussian_filter
    from skimage.filters import threshold_otsu

    fg = foreground(frame, background, polarity, scale)
    if sigma > 0:
        fg = gaussian_filter(fg, sigma)
    if fg.size == 0 or float(fg.max()) == float(fg.min()):
        return fg > floor + ROUNDOFF
    return fg > max(float(threshold_otsu(fg)), floor)


def noise_threshold(
    frame: Any, background: Any, k: float = 4.0, floor: float = 4.0, scale: float = 255.0, *, exclude: Any = None
) -> float:
    """Threshold from the residual noise: ``max(k * sigma, floor)`` grey levels (see :func:`~vidfilter.polarity.residual_noise`)."""
    return max(k * residual_noise(frame, background, scale, exclude=exclude).sigma, floor)


def noise_mask(
    frame: Any, background: Any, *, k: float = 4.0, floor: float = 4.0, polarity: Any = "absolute",
    subtract_offset: bool = True, min_area: int = 0, closing: int = 0, scale: float = 255.0,
) -> np.ndarray:
    """Mask with a threshold chosen from the residual noise level.

    ``residual = frame - background - offset`` (the offset is the residual's median, removed when
    ``subtract_offset``: exposure changes and the positive bias of a max projection), then the
    polarity (``|.|``, ``-residual`` for dark animals, ``+residual`` for bright), then
    ``> max(k * sigma, floor)``, then :func:`~vidfilter.polarity.clean_mask` (``closing``, ``min_area``).
    """
    r, noise = signed_residual(frame, background, polarity, subtract_offset, scale)
    m = r > max(k * noise.sigma, floor) + ROUNDOFF
    return clean_mask(m, min_area=min_area, closing=closing)
