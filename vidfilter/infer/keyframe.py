"""Keyframe scheduling: run the network every K frames and interpolate the background in between.

The background of a fixed-camera recording changes slowly, so the expensive estimate is made on
keyframes only and blended linearly in time for the frames between two keyframes. The adaptive
policy adds a keyframe when the frame drifts away from the last estimate: the median absolute
residual ``|frame - background|`` (robust to the animals, which cover a small share of pixels)
exceeds ``bound``.
"""

from __future__ import annotations

import numpy as np


def is_fixed_keyframe(t: int, every: int, n_frames: int) -> bool:
    """Keyframes of the fixed grid: every ``every``-th frame and the last frame."""
    return t % every == 0 or t == n_frames - 1


def drift(frame: np.ndarray, background: np.ndarray, stride: int = 4) -> float:
    """Median absolute residual on a sub-sampled grid (cheap and robust to moving objects)."""
    f = frame[..., ::stride, ::stride]
    b = background[..., ::stride, ::stride]
    return float(np.median(np.abs(f - b)))


def interpolate(bg0: np.ndarray, t0: int, bg1: np.ndarray, t1: int, t: int) -> np.ndarray:
    """Linear interpolation in time between the backgrounds of keyframes ``t0 < t1``."""
    if t1 == t0 or t == t0:
        return bg0
    if t == t1:
        return bg1
    w = np.float32((t - t0) / (t1 - t0))
    return (1 - w) * bg0 + w * bg1
