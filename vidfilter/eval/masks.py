"""Foreground masks from a frame and its background.

All thresholds are in **grey levels on the 8-bit scale** whatever the dtype: a frame or background
is first brought to ``[0, 1]`` by its dtype (``uint8 / 255``, ``uint16 / 65535``, floats taken as
already in ``[0, 1]``, as :func:`vidfilter.io.convert.to_float` does) and then multiplied by
``scale`` (255). So ``threshold=10`` means 10/255 of the full range for a uint16 recording too, and a
uint8 frame can be compared with the float32 background an estimator returns.

- :func:`threshold_mask`: the paper's rule ``|frame - background| > 10`` (or one-sided with
  ``polarity="dark"`` — ``background - frame``, dark animals on a light plate — or ``"bright"``).
- :func:`otsu_mask`: Otsu's threshold on an image (optionally Gaussian-smoothed first), the rule of
  the static-mode benchmarks (BBBC042, BBBC026); :func:`otsu_foreground_mask`: the same on the
  filtered foreground ``|frame - background|`` (or one-sided), a threshold chosen per frame.
- :func:`residual_noise` / :func:`noise_threshold` / :func:`noise_mask`: a threshold chosen from
  the residual noise level instead of a fixed 10. The residual
  ``frame - background`` is mostly plate (animals cover a few % of the pixels), so its median is the
  frame's global offset (exposure change, or the bias of a max projection) and ``1.4826 * MAD`` its
  noise sigma, both robust to the animals. The mask is
  ``(residual - offset) > max(k * sigma, floor)`` in the chosen polarity, then cleaned.
- :func:`object_mask`: whole objects for trackers and box scores. Hysteresis on the offset-free
  residual: components that reach ``max(k_high * sigma, floor_high)`` (by default the paper's 10
  grey levels) grown to where the residual leaves the noise (``max(k_low * sigma, floor_low)``),
  then closed over small gaps and optionally dilated. A faint worm body between a dark head and
  tail stays one object instead of three fragments.
- :func:`clean_mask`: small morphological closing, then removal of components below ``min_area``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.io.convert import dtype_scale

__all__ = [
    "POLARITIES",
    "ROUNDOFF",
    "Noise",
    "clean_mask",
    "foreground",
    "grey_levels",
    "noise_mask",
    "noise_threshold",
    "object_mask",
    "otsu_foreground_mask",
    "otsu_mask",
    "residual_noise",
    "threshold_mask",
]

#: Valid ``polarity`` values.
POLARITIES = ("absolute", "dark", "bright")

#: MAD -> standard deviation for Gaussian noise.
_MAD_TO_SIGMA = 1.4826

#: Half-width, in MAD sigmas, of the window in which :func:`residual_noise` measures the noise.
_CLIP = 3.5

#: Differences within this many grey levels above a threshold count as equal to it. A uint8 value
#: ``v`` that went through ``float32(v / 255) * 255`` comes back as ``v +- 2e-5``, so without it an
#: exact integer difference of 10 could land on either side of ``> 10`` (measured on the worms
#: set: max projection box F1 .188 instead of .195).
ROUNDOFF = 1e-3
#: object_mask: an object needs this many pixels above the seed threshold (see its docstring); 40 =
#: the smallest object of the 640-px worm protocol (docs/benchmarks.md), measured on its even frames: F1 of the
#: model .306 -> .631, max projection .222 -> .572, median .296 -> .354 (min_seed 0 -> 40)
MIN_SEED = 40


def _polarity(polarity: Any) -> str:
    p = str(getattr(polarity, "value", polarity))
    if p not in POLARITIES:
        import difflib

        close = difflib.get_close_matches(p, POLARITIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown polarity {p!r}{hint} (valid: {', '.join(POLARITIES)})")
    return p


def grey_levels(image: Any, scale: float = 255.0) -> np.ndarray:
    """``image`` as float32 grey levels on a ``[0, scale]`` scale (by its dtype; floats are ``[0, 1]``)."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(np.float32) * np.float32(scale / dtype_scale(arr.dtype))


def _reduce_channels(d: np.ndarray, frame_ndim: int) -> np.ndarray:
    # (H, W, C) colour frames: a pixel is as foreground as its most changed channel
    return d.max(axis=-1) if frame_ndim == 3 else d


def foreground(frame: Any, background: Any, polarity: Any = "absolute", scale: float = 255.0) -> np.ndarray:
    """Foreground in grey levels: ``|frame - background|`` (absolute), ``background - frame`` (dark)
    or ``frame - background`` (bright). Colour ``(H, W, C)`` frames give the per-pixel channel max."""
    p = _polarity(polarity)
    f = grey_levels(frame, scale)
    b = grey_levels(background, scale)
    if f.shape != b.shape:
        raise ConfigError(f"frame shape {f.shape} differs from background shape {b.shape}")
    d = f - b
    if p == "absolute":
        d = np.abs(d)
    elif p == "dark":
        d = -d
    return _reduce_channels(d, f.ndim)


def threshold_mask(
    frame: Any,
    background: Any,
    threshold: float = 10.0,
    polarity: Any = "absolute",
    scale: float = 255.0,
) -> np.ndarray:
    """The paper's mask: ``foreground(frame, background, polarity) > threshold`` (grey levels of ``scale``).

    The comparison is exact for integer grey levels whatever float round-off the background went
    through (see :data:`ROUNDOFF`): a difference of exactly ``threshold`` is not foreground.
    """
    return foreground(frame, background, polarity, scale) > threshold + ROUNDOFF


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
    frame: Any,
    background: Any,
    polarity: Any = "absolute",
    *,
    sigma: float = 1.0,
    floor: float = 0.0,
    scale: float = 255.0,
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


class Noise(NamedTuple):
    """Robust statistics of the residual ``frame - background`` (grey levels)."""

    offset: float  # median: global offset of the frame against the background
    sigma: float  # noise standard deviation inside a MAD-set window (see residual_noise)


def residual_noise(frame: Any, background: Any, scale: float = 255.0, *, exclude: Any = None) -> Noise:
    """Median and robust sigma of ``frame - background`` over the frame.

    The sigma is the standard deviation of the residuals within ``3.5 * max(1.4826 * MAD, 1)``
    grey levels of the median: the MAD keeps the animals out, the windowed standard deviation
    stays right when the residual is quantised to whole grey levels (where the MAD itself is 0).

    ``exclude`` (bool mask) drops pixels known to be foreground; without it the animals' few %
    of pixels barely move the median and MAD.
    """
    f = grey_levels(frame, scale)
    b = grey_levels(background, scale)
    if f.shape != b.shape:
        raise ConfigError(f"frame shape {f.shape} differs from background shape {b.shape}")
    r = f - b
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool)
        r = r[~ex] if ex.shape == r.shape else r[~np.broadcast_to(ex[..., None], r.shape)]
    r = r.ravel()
    if r.size == 0:
        return Noise(0.0, 0.0)
    med = float(np.median(r))
    mad_sigma = _MAD_TO_SIGMA * float(np.median(np.abs(r - med)))
    # Integer frames against an integer background (median, max, MOG2) give residuals quantised
    # to whole grey levels, where the MAD collapses to 0 or 1. The MAD only sets a window
    # (``CLIP`` sigmas, at least 1 grey level of sigma) that excludes the animals; the noise is the
    # standard deviation inside it, which quantisation does not break.
    half = _CLIP * max(mad_sigma, 1.0)
    inside = r[np.abs(r - med) <= half]
    sigma = float(np.sqrt(np.mean((inside - med) ** 2))) if inside.size else mad_sigma
    return Noise(med, sigma)


def noise_threshold(
    frame: Any, background: Any, k: float = 4.0, floor: float = 4.0, scale: float = 255.0, *, exclude: Any = None
) -> float:
    """Threshold from the residual noise: ``max(k * sigma, floor)`` grey levels (see :func:`residual_noise`)."""
    return max(k * residual_noise(frame, background, scale, exclude=exclude).sigma, floor)


def clean_mask(mask: Any, min_area: int = 0, closing: int = 0, connectivity: int = 8) -> np.ndarray:
    """Morphological cleanup: binary closing with a disk of radius ``closing``, then removal of the
    connected components smaller than ``min_area`` pixels."""
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    if closing > 0:
        r = int(closing)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        disk = yy * yy + xx * xx <= r * r
        # pad so closing does not erode at the image border
        padded = np.pad(m, r, mode="edge")
        m = ndimage.binary_closing(padded, structure=disk)[r:-r, r:-r]
    if min_area > 1:
        structure = np.ones((3, 3), bool) if connectivity == 8 else None
        lab, n = ndimage.label(m, structure=structure)
        if n:
            sizes = np.bincount(lab.ravel())
            keep = sizes >= min_area
            keep[0] = False
            m = keep[lab]
    return m


def noise_mask(
    frame: Any,
    background: Any,
    *,
    k: float = 4.0,
    floor: float = 4.0,
    polarity: Any = "absolute",
    subtract_offset: bool = True,
    min_area: int = 0,
    closing: int = 0,
    scale: float = 255.0,
) -> np.ndarray:
    """Mask with a threshold chosen from the residual noise level.

    ``residual = frame - background - offset`` (the offset is the residual's median, removed when
    ``subtract_offset``: exposure changes and the positive bias of a max projection), then the
    polarity (``|.|``, ``-residual`` for dark animals, ``+residual`` for bright), then
    ``> max(k * sigma, floor)``, then :func:`clean_mask` (``closing``, ``min_area``).
    """
    r, noise = _signed_residual(frame, background, polarity, subtract_offset, scale)
    m = r > max(k * noise.sigma, floor) + ROUNDOFF
    return clean_mask(m, min_area=min_area, closing=closing)


def _signed_residual(frame: Any, background: Any, polarity: Any, subtract_offset: bool, scale: float) -> tuple[np.ndarray, Noise]:
    """``frame - background`` in grey levels, less its median offset when asked, turned so that
    objects of ``polarity`` are positive (``|.|`` for absolute), channels reduced; and its noise."""
    p = _polarity(polarity)
    f = grey_levels(frame, scale)
    b = grey_levels(background, scale)
    noise = residual_noise(f, b, scale=1.0)  # already grey levels: scale=1 keeps float32 as is
    r = f - b
    if subtract_offset:
        r = r - np.float32(noise.offset)
    r = np.abs(r) if p == "absolute" else (-r if p == "dark" else r)
    return _reduce_channels(r, f.ndim), noise


def object_mask(
    frame: Any,
    background: Any,
    *,
    k_low: float = 3.0,
    k_high: float = 5.0,
    floor_low: float = 1.0,
    floor_high: float = 10.0,
    closing: int = 6,
    dilate: int = 2,
    polarity: Any = "absolute",
    subtract_offset: bool = True,
    min_area: int = 0,
    min_seed: int = MIN_SEED,
    scale: float = 255.0,
) -> np.ndarray:
    """Whole-object mask: hysteresis thresholds from the residual noise level, then closing.

    ``residual`` as in :func:`noise_mask` (offset removed, polarity applied). Pixels above
    ``high = max(k_high * sigma, floor_high)`` seed objects; each seed's 8-connected region above
    ``low = max(k_low * sigma, floor_low)`` is kept (``skimage.filters.apply_hysteresis_threshold``)
    when at least ``min_seed`` of its pixels are above ``high`` (a speck of dust or a noise peak
    has a few, an animal hundreds: on the real worm plate the matched worms had 580+ such pixels
    and the unmatched components a median of 10); then a closing with a disk of radius ``closing``, a dilation by ``dilate`` px (the soft edge of
    an animal is below the noise-level threshold) and the removal of components under ``min_area``.
    Defaults: chosen on the even frames of the real worm plate (``benchmarks/quality_real.py``,
    scored on the odd ones); ``low`` must not exceed ``high``.
    """
    from scipy import ndimage
    from skimage.filters import apply_hysteresis_threshold

    r, noise = _signed_residual(frame, background, polarity, subtract_offset, scale)
    low = max(k_low * noise.sigma, floor_low) + ROUNDOFF
    high = max(k_high * noise.sigma, floor_high) + ROUNDOFF
    if low > high:
        raise ConfigError(f"object mask: low threshold {low:.2f} > high threshold {high:.2f} grey levels; lower k_low or floor_low")
    m = apply_hysteresis_threshold(r, low, high)
    if min_seed > 1 and m.any():
        lab, n = ndimage.label(m, structure=np.ones((3, 3), bool))
        seeds = np.bincount(lab[r > high], minlength=n + 1)
        seeds[0] = 0
        m = (seeds >= min_seed)[lab]
    m = clean_mask(m, closing=closing)
    if dilate > 0:
        d = int(dilate)
        yy, xx = np.mgrid[-d : d + 1, -d : d + 1]
        m = ndimage.binary_dilation(m, structure=yy * yy + xx * xx <= d * d)
    return clean_mask(m, min_area=min_area) if min_area > 1 else m
