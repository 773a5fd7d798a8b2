"""Polarity: are the animals darker or lighter than the plate, and the foreground and masks that follow.

The polarity says how a frame's foreground comes from its background: ``dark`` animals on a light
plate ``background - frame``, ``bright`` ones ``frame - background``, ``absolute``
``|frame - background|``. Inference (the stored outputs) and evaluation (the scores) share this
arithmetic:

- :func:`subtract`: the foreground in the arrays' own dtype (integers saturate, as stored);
  :func:`clamp_background`: the background kept on the plate's side of the frame.
- :func:`foreground` / :func:`threshold_mask`: the foreground in grey levels and the paper's rule
  ``foreground > 10``; :func:`mask_level`: the same rule on a stored foreground.
- :func:`residual_noise` / :func:`signed_residual`: ``frame - background`` is mostly plate (animals
  cover a few % of the pixels), so its median is the frame's global offset (exposure change, or the
  bias of a max projection) and ``1.4826 * MAD`` its noise sigma; and the residual turned by polarity.
- :func:`object_mask`: whole objects for trackers and box scores, by hysteresis on the offset-free
  residual from the paper's 10 grey levels down to the noise, then closed and dilated: a faint worm
  body between a dark head and tail stays one object. :func:`clean_mask`: closing, then removal of
  small components.
- :func:`polarity_evidence` / :func:`detect_polarity`: the polarity of a recording, from how its
  pixels change over time.

All thresholds are in **grey levels on the 8-bit scale** whatever the dtype: a frame or background
is first brought to ``[0, 1]`` by its dtype (``uint8 / 255``, ``uint16 / 65535``, floats taken as
already in ``[0, 1]``, as :func:`vidfilter.io.scaling.to_float` does) and then multiplied by
``scale`` (255). So ``threshold=10`` means 10/255 of the full range for a uint16 recording too, and a
uint8 frame can be compared with the float32 background an estimator returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.io.scaling import dtype_scale, to_float
from vidfilter.io.source import FrameSource, to_gray
from vidfilter.temporal.statistic import statistic_frames

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


#: Frames spread over a recording that :func:`polarity_evidence` reads, and the fewest it can judge.
POLARITY_FRAMES, MIN_POLARITY_FRAMES = 16, 5


def polarity_frames(n_frames: int) -> np.ndarray:
    """The indices :func:`polarity_evidence` reads from a recording of ``n_frames`` (none when too short)."""
    idx = statistic_frames(n_frames, POLARITY_FRAMES)
    return idx if idx.size >= MIN_POLARITY_FRAMES else idx[:0]


def polarity_name(polarity: Any) -> str:
    """``polarity`` (a name or a :class:`~vidfilter.config.Polarity`) as one of :data:`POLARITIES`."""
    p = str(getattr(polarity, "value", polarity))
    if p not in POLARITIES:
        import difflib

        close = difflib.get_close_matches(p, POLARITIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown polarity {p!r}{hint} (valid: {', '.join(POLARITIES)})")
    return p


def _difference(frame: np.ndarray, background: np.ndarray, polarity: Any) -> np.ndarray:
    if polarity == "bright":
        return frame - background
    if polarity == "dark":
        return background - frame
    return np.abs(frame - background)


def subtract(frame: np.ndarray, background: np.ndarray, polarity: Any) -> np.ndarray:
    """The foreground in the arrays' own dtype: ``frame - background`` (bright), ``background - frame``
    (dark), else ``|frame - background|``. Floats keep the sign; integers saturate at 0 (OpenCV), so a
    stored foreground is exactly the difference of the stored frame and background."""
    if not np.issubdtype(frame.dtype, np.integer):
        return _difference(frame, background, polarity)
    if frame.ndim == 3 and frame.shape[-1] > 4:  # more channels than OpenCV's element types hold
        d = _difference(frame.astype(np.int32), background.astype(np.int32), polarity)
        return np.clip(d, 0, np.iinfo(frame.dtype).max).astype(frame.dtype)
    import cv2

    if polarity == "dark":
        return cv2.subtract(background, frame)
    if polarity == "bright":
        return cv2.subtract(frame, background)
    return cv2.absdiff(frame, background)


def clamp_background(frame: np.ndarray, background: np.ndarray, polarity: Any) -> np.ndarray:
    """Dark animals only darken the plate, so the background is never darker than the frame
    (``max(background, frame)``); bright animals only brighten it (``min``). Absolute: unchanged."""
    if polarity == "dark":
        return np.maximum(background, frame)
    if polarity == "bright":
        return np.minimum(background, frame)
    return background


def grey_levels(image: Any, scale: float = 255.0) -> np.ndarray:
    """``image`` as float32 grey levels on a ``[0, scale]`` scale (by its dtype; floats are ``[0, 1]``)."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr.astype(np.float32) * np.float32(scale / dtype_scale(arr.dtype))


def _turned(residual: np.ndarray, polarity: str) -> np.ndarray:
    """``frame - background`` turned so that objects of ``polarity`` are positive (``|.|`` for absolute)."""
    return np.abs(residual) if polarity == "absolute" else (-residual if polarity == "dark" else residual)


def _reduce_channels(d: np.ndarray, frame_ndim: int) -> np.ndarray:
    # (H, W, C) colour frames: a pixel is as foreground as its most changed channel
    return d.max(axis=-1) if frame_ndim == 3 else d


def _grey_pair(frame: Any, background: Any, scale: float) -> tuple[np.ndarray, np.ndarray]:
    f, b = grey_levels(frame, scale), grey_levels(background, scale)
    if f.shape != b.shape:
        raise ConfigError(f"frame shape {f.shape} differs from background shape {b.shape}")
    return f, b


def foreground(frame: Any, background: Any, polarity: Any = "absolute", scale: float = 255.0) -> np.ndarray:
    """Foreground in grey levels: ``|frame - background|`` (absolute), ``background - frame`` (dark)
    or ``frame - background`` (bright). Colour ``(H, W, C)`` frames give the per-pixel channel max."""
    p = polarity_name(polarity)
    f, b = _grey_pair(frame, background, scale)
    return _reduce_channels(_turned(f - b, p), f.ndim)


def threshold_mask(
    frame: Any, background: Any, threshold: float = 10.0, polarity: Any = "absolute", scale: float = 255.0
) -> np.ndarray:
    """The paper's mask: ``foreground(frame, background, polarity) > threshold`` (grey levels of ``scale``).

    The comparison is exact for integer grey levels whatever float round-off the background went
    through (see :data:`ROUNDOFF`): a difference of exactly ``threshold`` is not foreground.
    """
    return foreground(frame, background, polarity, scale) > threshold + ROUNDOFF


def mask_level(threshold: float, dtype: Any, integer: bool) -> float:
    """What a stored foreground must exceed to be masked, for ``threshold`` grey levels on the 8-bit
    scale: in ``dtype``'s units on an ``integer`` foreground, in ``[0, 1]`` on a float one, where
    :data:`ROUNDOFF` keeps an exact ``threshold`` (10/255 in float32) out as :func:`threshold_mask` does."""
    return threshold * dtype_scale(dtype) / 255.0 if integer else (threshold + ROUNDOFF) / 255.0


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
    f, b = _grey_pair(frame, background, scale)
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


def signed_residual(frame: Any, background: Any, polarity: Any, subtract_offset: bool, scale: float) -> tuple[np.ndarray, Noise]:
    """``frame - background`` in grey levels, less its median offset when asked, turned so that
    objects of ``polarity`` are positive (``|.|`` for absolute), channels reduced; and its noise."""
    p = polarity_name(polarity)
    f, b = _grey_pair(frame, background, scale)
    noise = residual_noise(f, b, scale=1.0)  # already grey levels: scale=1 keeps float32 as is
    r = f - b
    if subtract_offset:
        r = r - np.float32(noise.offset)
    return _reduce_channels(_turned(r, p), f.ndim), noise


def object_mask(
    frame: Any, background: Any, *, k_low: float = 3.0, k_high: float = 5.0, floor_low: float = 1.0, floor_high: float = 10.0,
    closing: int = 6, dilate: int = 2, polarity: Any = "absolute", subtract_offset: bool = True, min_area: int = 0,
    min_seed: int = MIN_SEED, scale: float = 255.0,
) -> np.ndarray:
    """Whole-object mask: hysteresis thresholds from the residual noise level, then closing.

    ``residual`` as in :func:`signed_residual` (offset removed, polarity applied). Pixels above
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

    r, noise = signed_residual(frame, background, polarity, subtract_offset, scale)
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


#: detect_polarity: one side must outweigh the other by this factor to decide dark or bright, and
#: at least this share of the sampled pixels must change (animals cover ~1 % of a worm plate).
POLARITY_MARGIN = 1.5
POLARITY_MIN_SHARE = 2e-4
#: below POLARITY_MIN_SHARE (but at least POLARITY_MIN_PIXELS changed pixels) one side must outweigh
#: the other this many times: a nearly still animal (a zebrafish larva resting in a 1024² dish, 50
#: changed pixels at 512²) is decided when its votes agree, a few flickering pixels are not
POLARITY_SMALL_MARGIN = 10.0
POLARITY_MIN_PIXELS = 25


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
        if self.changed < POLARITY_MIN_PIXELS:
            return "absolute"
        margin = POLARITY_MARGIN if self.changed >= POLARITY_MIN_SHARE * self.pixels else POLARITY_SMALL_MARGIN
        if self.dark > margin * self.bright:
            return "dark"
        if self.bright > margin * self.dark:
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


def _plate_median(img: np.ndarray, size: int) -> np.ndarray:
    """Median filter of a float image in ``[0, 1]`` with a ``size`` window (edges replicated), on
    8-bit levels: OpenCV's histogram median (0.01 s at 256² with a 21 px window, where scipy's
    takes 0.29 s). The plate level it gives is compared with the extremes of pixels that changed
    by more than 2 x 5 noise sigmas, far above the 1/255 it rounds to."""
    import cv2

    levels = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return cv2.medianBlur(levels, size).astype(np.float32) / np.float32(255.0)


def polarity_evidence(
    sources: FrameSource | list[FrameSource], n: int = POLARITY_FRAMES, k: float = 5.0, max_side: int = 512
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
        if idx.size < MIN_POLARITY_FRAMES:  # too short to tell what moves from noise
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
            half = _plate_median(med[::2, ::2], (size // 2) | 1)
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


def detect_polarity(sources: FrameSource | list[FrameSource], n: int = POLARITY_FRAMES, k: float = 5.0, max_side: int = 512) -> str:
    """Are the animals darker or lighter than the plate? ``"dark"``, ``"bright"`` or ``"absolute"``.

    The verdict of :func:`polarity_evidence`: one side must outweigh the other by
    :data:`POLARITY_MARGIN` when at least :data:`POLARITY_MIN_SHARE` of the pixels change, by
    :data:`POLARITY_SMALL_MARGIN` when fewer do, and at least :data:`POLARITY_MIN_PIXELS` must
    change (else nothing moves); otherwise ``"absolute"``.
    """
    return polarity_evidence(sources, n=n, k=k, max_side=max_side).polarity
