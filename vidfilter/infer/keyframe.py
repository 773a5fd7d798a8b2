"""Keyframe scheduling: run the network every K frames and interpolate the background in between.

The background of a fixed-camera recording changes slowly, so the expensive estimate is made on
keyframes only and blended linearly in time for the frames between two keyframes.

Streaming design (no frame is buffered, whatever K): the keyframes of the fixed grid
(``0, K, 2K, ...`` and the last frame) are computed *ahead* by a look-ahead reader of their own
(see :mod:`vidfilter.infer.pipeline`), so when the sequential stream reaches a frame both of its
keyframes are already known and the frame leaves at once. The network runs concurrently with
decoding and writing, and memory holds a few backgrounds, not K frames.

Adaptive policy (``--adaptive``): every frame is compared with the background it would get (the
median absolute residual on a sub-sampled grid, robust to the animals); when that rises more than
``bound`` above its level at the last keyframe, the frame becomes a keyframe itself. If the new
keyframe is still at the level of the previous one but far from the next grid keyframe, a jump
(a lamp, a camera bump) lies ahead: its background is *held* rather than blended towards the far
side of the jump, until the jump itself triggers the next keyframe. So every frame's residual
stays within ``bound`` of its keyframe's, and no interpolation crosses a detected jump.

The state at a grid keyframe depends on nothing before it, so a run resumed at the last grid
keyframe before its durable prefix reproduces the uninterrupted output exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

#: sub-sampling of the drift measure (every 4th pixel in y and x)
DRIFT_STRIDE = 4


def is_fixed_keyframe(t: int, every: int, n_frames: int) -> bool:
    """Keyframes of the fixed grid: every ``every``-th frame and the last frame."""
    return t % every == 0 or t == n_frames - 1


def grid(start: int, every: int, n_frames: int) -> list[int]:
    """The fixed-grid keyframes at or after ``start``."""
    first = -(-start // every) * every
    ks = list(range(first, n_frames, every))
    if n_frames - 1 >= start and (not ks or ks[-1] != n_frames - 1):
        ks.append(n_frames - 1)
    return ks


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


class Interp(NamedTuple):
    """The background of frame ``t`` between two keyframes, left for the writer to materialise
    (straight into the output dtype, see :func:`vidfilter.infer.pipeline.background_as`)."""

    bg0: np.ndarray
    t0: int
    bg1: np.ndarray
    t1: int
    t: int

    @property
    def weight(self) -> float:
        return (self.t - self.t0) / (self.t1 - self.t0)

    def array(self) -> np.ndarray:
        return interpolate(self.bg0, self.t0, self.bg1, self.t1, self.t)


def _small(x: np.ndarray) -> np.ndarray:
    """The sub-sampled grid the drift is measured on (spatial axes are the first two)."""
    return np.ascontiguousarray(x[::DRIFT_STRIDE, ::DRIFT_STRIDE], dtype=np.float32)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.abs(a - b)))


class _Key(NamedTuple):
    t: int
    bg: np.ndarray
    small: np.ndarray


def schedule(
    frames: Iterator[tuple[int, np.ndarray]],
    estimate: Callable[[int, np.ndarray], np.ndarray],
    grid_backgrounds: Iterator[tuple[int, np.ndarray]],
    n_frames: int,
    every: int,
    *,
    adaptive: bool = False,
    bound: float = 0.01,
    keyframes: list[int] | None = None,
    to_float: Callable[[np.ndarray], np.ndarray],
) -> Iterator[tuple[int, np.ndarray, Any]]:
    """Yield ``(t, frame, background)`` in order; ``background`` is an array on keyframes, an
    :class:`Interp` between them, or the held keyframe background.

    ``frames`` yields the recording from a grid keyframe on (frame 0, or where a resumed run starts);
    ``grid_backgrounds`` yields ``(g, background)`` for the fixed-grid keyframes
    :func:`grid` ``(start, every, n_frames)`` in order (computed ahead, elsewhere); ``estimate``
    computes the adaptive keyframes in line.
    """
    keyframes = keyframes if keyframes is not None else []

    def small_frame(frame: np.ndarray) -> np.ndarray:
        return to_float(np.ascontiguousarray(frame[::DRIFT_STRIDE, ::DRIFT_STRIDE]))

    pending_grid: dict[int, np.ndarray] = {}

    def grid_bg(g: int) -> np.ndarray:
        while g not in pending_grid:
            try:
                k, bg = next(grid_backgrounds)
            except StopIteration:
                raise RuntimeError(f"keyframe look-ahead ended before keyframe {g}") from None
            pending_grid[k] = bg
        return pending_grid.pop(g)

    left: _Key | None = None
    right: _Key | None = None
    hold = False
    key_drift = 0.0
    settle = False  # the frame after a keyframe sets the noise floor of the baseline

    def new_key(t: int, frame: np.ndarray, bg: np.ndarray, extra: bool = False) -> None:
        nonlocal left, right, hold, key_drift, settle
        keyframes.append(t)
        previous = left
        left = _Key(t, bg, _small(bg))
        if right is None or right.t <= t:
            nxt = t + every - t % every if t < n_frames - 1 else None
            if nxt is not None:
                nxt = min(nxt, n_frames - 1)
                rbg = grid_bg(nxt)
                right = _Key(nxt, rbg, _small(rbg))
            else:
                right = None
        hold = False
        if adaptive:
            key_drift = _mad(small_frame(frame), left.small)
            settle = True
            if extra and right is not None:
                # an extra keyframe still at the old level but far from the next grid keyframe:
                # a jump lies ahead, so hold this background rather than blend across the jump
                hold = _mad(left.small, previous.small) <= bound < _mad(left.small, right.small)

    for t, frame in frames:
        if left is None or (right is not None and t == right.t):
            bg = right.bg if right is not None else grid_bg(t)
            new_key(t, frame, bg)
            yield t, frame, bg
            continue
        assert left is not None
        if right is None:  # after the last keyframe (only a recording cut short): hold
            yield t, frame, left.bg
            continue
        if adaptive:
            sf = small_frame(frame)
            w = np.float32((t - left.t) / (right.t - left.t))
            expect = left.small if hold else (1 - w) * left.small + w * right.small
            if settle:
                # a model that keeps the keyframe's own noise (identity-like) has ~0 residual on
                # it but the noise of two frames on every other: the residual of the frame right
                # after the keyframe is the level the baseline must not go below
                key_drift = max(key_drift, _mad(sf, expect))
                settle = False
            if _mad(sf, expect) - key_drift > bound:
                bg = estimate(t, to_float(frame))
                new_key(t, frame, bg, extra=True)
                yield t, frame, bg
                continue
        yield t, frame, (left.bg if hold else Interp(left.bg, left.t, right.bg, right.t, t))
