"""Keyframe scheduling: run the network every K frames and interpolate the background in between.

The background of a fixed-camera recording changes slowly, so the expensive estimate is made on
keyframes only and blended linearly in time for the frames between two keyframes.

Streaming design (no frame is buffered, whatever K): the keyframes of the fixed grid
(``0, K, 2K, ...``, and the last frame when the adaptive check is off; with it on, the frames
after the last multiple of K keep that keyframe's background under the check, which saves a
network run and the look-ahead's decoding up to the last frame) are computed *ahead* by a look-ahead reader of their own
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

#: sub-sampling of the drift measure: every 4th pixel in y and x, or sparser on frames so large that
#: this keeps more than :data:`DRIFT_SAMPLES` pixels (every 8th at 2048², 3.9 -> 0.8 ms a frame)
DRIFT_STRIDE = 4
DRIFT_SAMPLES = 65536


def drift_stride(shape: tuple[int, ...]) -> int:
    """The stride of the drift measure for frames of ``shape`` (spatial axes first)."""
    return max(DRIFT_STRIDE, int(np.sqrt(shape[0] * shape[1] / DRIFT_SAMPLES)))


def is_fixed_keyframe(t: int, every: int, n_frames: int, tail: bool = True) -> bool:
    """Keyframes of the fixed grid: every ``every``-th frame, and with ``tail`` the last frame."""
    return t % every == 0 or (tail and t == n_frames - 1)


def grid(start: int, every: int, n_frames: int, tail: bool = True) -> list[int]:
    """The fixed-grid keyframes at or after ``start`` (see :func:`is_fixed_keyframe`)."""
    first = -(-start // every) * every
    ks = list(range(first, n_frames, every))
    if tail and n_frames - 1 >= start and (not ks or ks[-1] != n_frames - 1):
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
    (straight into the output dtype, see :func:`vidfilter.infer.outputs.background_as`); a held
    keyframe background has ``t1 == t0``."""

    bg0: np.ndarray
    t0: int
    bg1: np.ndarray
    t1: int
    t: int

    @property
    def weight(self) -> float:
        """The share of ``bg1`` in the blend (0 for a held background, ``t0 == t1``)."""
        return (self.t - self.t0) / (self.t1 - self.t0) if self.t1 != self.t0 else 0.0

    def array(self) -> np.ndarray:
        return interpolate(self.bg0, self.t0, self.bg1, self.t1, self.t)


def _small(x: np.ndarray) -> np.ndarray:
    """The sub-sampled grid the drift is measured on (spatial axes are the first two)."""
    s = drift_stride(x.shape)
    return np.ascontiguousarray(x[::s, ::s], dtype=np.float32)


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
    tail: bool = True,
) -> Iterator[tuple[int, np.ndarray, Any]]:
    """Yield ``(t, frame, background)`` in order; ``background`` is an array on keyframes, an
    :class:`Interp` between them (``t1 == t0`` for a held keyframe background).

    ``frames`` yields the recording from a grid keyframe on (frame 0, or where a resumed run starts);
    ``grid_backgrounds`` yields ``(g, background)`` for the fixed-grid keyframes
    :func:`grid` ``(start, every, n_frames, tail)`` in order (computed ahead, elsewhere); ``estimate``
    computes the adaptive keyframes in line. Without ``tail`` the last frame is no grid keyframe: the
    frames after the last multiple of ``every`` keep its background, and the adaptive check adds a
    keyframe where they drift from it (an ``--every`` keyframe's network run and the look-ahead's
    decoding up to the last frame are saved once per recording).
    """
    state = _Schedule(estimate, grid_backgrounds, n_frames, every, adaptive, bound, keyframes, to_float, tail)
    for t, frame in frames:
        yield t, frame, state.background(t, frame)


class _Schedule:
    """The state of :func:`schedule`: the keyframes either side of the current frame and the drift
    level measured at the left one."""

    def __init__(
        self, estimate: Callable[[int, np.ndarray], np.ndarray], grid_backgrounds: Iterator[tuple[int, np.ndarray]],
        n_frames: int, every: int, adaptive: bool, bound: float, keyframes: list[int] | None,
        to_float: Callable[[np.ndarray], np.ndarray], tail: bool = True,
    ) -> None:
        self.estimate, self.grid_backgrounds, self.to_float = estimate, grid_backgrounds, to_float
        self.n_frames, self.every, self.adaptive, self.bound, self.tail = n_frames, every, adaptive, bound, tail
        self.keyframes = keyframes if keyframes is not None else []
        self.pending_grid: dict[int, np.ndarray] = {}
        self.left: _Key | None = None
        self.right: _Key | None = None
        self.hold = False
        self.key_drift = 0.0
        self.settle = False  # the frame after a keyframe sets the noise floor of the baseline

    def small_frame(self, frame: np.ndarray) -> np.ndarray:
        s = drift_stride(frame.shape)
        return self.to_float(np.ascontiguousarray(frame[::s, ::s]))

    def grid_bg(self, g: int) -> np.ndarray:
        while g not in self.pending_grid:
            try:
                k, bg = next(self.grid_backgrounds)
            except StopIteration:
                raise RuntimeError(f"keyframe look-ahead ended before keyframe {g}") from None
            self.pending_grid[k] = bg
        return self.pending_grid.pop(g)

    def next_grid_key(self, t: int) -> _Key | None:
        """The fixed-grid keyframe after ``t``; ``None`` at the last frame."""
        g = t + self.every - t % self.every
        if t >= self.n_frames - 1 or (g > self.n_frames - 1 and not self.tail):
            return None
        g = min(g, self.n_frames - 1)
        bg = self.grid_bg(g)
        return _Key(g, bg, _small(bg))

    def new_key(self, t: int, frame: np.ndarray, bg: np.ndarray, extra: bool = False) -> None:
        self.keyframes.append(t)
        previous, self.left = self.left, _Key(t, bg, _small(bg))
        if self.right is None or self.right.t <= t:
            self.right = self.next_grid_key(t)
        self.hold = False
        if self.adaptive:
            self.key_drift = _mad(self.small_frame(frame), self.left.small)
            self.settle = True
            if extra and self.right is not None:
                # an extra keyframe still at the old level but far from the next grid keyframe:
                # a jump lies ahead, so hold this background rather than blend across the jump
                self.hold = _mad(self.left.small, previous.small) <= self.bound < _mad(self.left.small, self.right.small)

    def background(self, t: int, frame: np.ndarray) -> Any:
        """The background of frame ``t``, making it a keyframe when due or when it drifted."""
        left, right = self.left, self.right
        if left is None or (right is not None and t == right.t):
            bg = right.bg if right is not None else self.grid_bg(t)
            self.new_key(t, frame, bg)
            return bg
        if self.adaptive and self.drifted(t, frame, left, right):
            bg = self.estimate(t, self.to_float(frame))
            self.new_key(t, frame, bg, extra=True)
            return bg
        if right is None or self.hold:  # after the last keyframe, or ahead of a jump: hold
            return Interp(left.bg, left.t, left.bg, left.t, t)
        return Interp(left.bg, left.t, right.bg, right.t, t)

    def drifted(self, t: int, frame: np.ndarray, left: _Key, right: _Key | None) -> bool:
        """Whether the frame's residual rose more than ``bound`` above its level at the keyframe."""
        sf = self.small_frame(frame)
        if self.hold or right is None:
            expect = left.small
        else:
            w = np.float32((t - left.t) / (right.t - left.t))
            expect = (1 - w) * left.small + w * right.small
        if self.settle:
            # a model that keeps the keyframe's own noise (identity-like) has ~0 residual on
            # it but the noise of two frames on every other: the residual of the frame right
            # after the keyframe is the level the baseline must not go below
            self.key_drift = max(self.key_drift, _mad(sf, expect))
            self.settle = False
        return _mad(sf, expect) - self.key_drift > self.bound
