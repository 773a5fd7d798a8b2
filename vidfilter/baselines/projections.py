"""Projections over time: median (frames spread over the whole recording, or a running window)
and min / max. Memory is bounded by the number of frames sampled or the window, never by the
recording's length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.baselines.base import BackgroundEstimator, sample_indices
from vidfilter.errors import ConfigError
from vidfilter.io.scaling import dtype_scale, to_float
from vidfilter.io.source import FrameSource
from vidfilter.temporal.statistic import temporal_median

__all__ = ["ExtremeProjection", "MedianProjection", "RunningMedian", "temporal_median"]


class MedianProjection(BackgroundEstimator):
    """Per-pixel median of ``n_frames`` frames spread evenly over the whole recording.

    Holds ``n_frames`` frames in the source dtype (51 x 4 MB for 2048^2 uint8).
    """

    name = "median"

    def __init__(self, n_frames: int = 51) -> None:
        super().__init__()
        if n_frames < 1:
            raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
        self.n_frames = n_frames

    def setup_frames(self, n_frames: int) -> np.ndarray:
        return sample_indices(n_frames, self.n_frames)

    def setup_params(self) -> dict[str, Any]:
        return {"estimator": self.name, "n_frames": self.n_frames}

    def prepare(self, src: FrameSource) -> None:
        frames = [src[int(t)] for t in self.setup_frames(len(src))]  # n_frames of H x W in the source dtype
        # unrounded median (mean of the two middle values for an even count)
        self._bg = (temporal_median(frames) / dtype_scale(src.dtype)).astype(np.float32)


class ExtremeProjection(BackgroundEstimator):
    """Per-pixel max (dark animals on a light plate) or min (light animals) over the recording.

    A running reduction: one frame of memory. ``n_frames`` samples that many frames spread over
    the recording instead of reading them all.
    """

    def __init__(self, kind: str = "max", n_frames: int | None = None) -> None:
        super().__init__()
        if kind not in ("max", "min"):
            raise ConfigError(f"kind must be 'max' or 'min', got {kind!r}")
        self.kind = self.name = kind
        self.n_frames = n_frames

    def setup_frames(self, n_frames: int) -> np.ndarray:
        return np.arange(0) if self.n_frames is None else sample_indices(n_frames, self.n_frames)

    def setup_params(self) -> dict[str, Any]:
        return {"estimator": self.kind, "n_frames": self.n_frames}  # n_frames None: every frame (a pass kept)

    def prepare(self, src: FrameSource) -> None:
        reduce = np.maximum if self.kind == "max" else np.minimum
        frames = src.iter() if self.n_frames is None else (src[int(t)] for t in self.setup_frames(len(src)))
        acc = None
        for frame in frames:
            acc = frame.copy() if acc is None else reduce(acc, frame, out=acc)
        self._bg = to_float(acc)


#: Frames are kept in the running window as uint16 fractions of 65535: exact for uint8 sources
#: (v / 255 * 65535 = 257 v) and within 1e-5 otherwise, at half the memory of float32.
_RING_SCALE = 65535.0


class RunningMedian(BackgroundEstimator):
    """Median of the last ``window`` frames (a causal running window), recomputed every ``every`` frames.

    The window is a preallocated ring buffer of ``window`` frames (uint16, 2 bytes per pixel).
    """

    name = "running-median"
    stateful = True

    def __init__(self, window: int = 50, every: int = 10) -> None:
        super().__init__()
        if window < 1 or every < 1:
            raise ConfigError(f"window and every must be >= 1, got window={window} every={every}")
        self.window = window
        self.every = every
        self._ring: np.ndarray | None = None
        self._filled = 0
        self._next = 0
        self._since = 0

    def prepare(self, src: FrameSource) -> None:
        self._ring = None
        self._bg = None
        self._filled = self._next = self._since = 0

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        if self._ring is None or self._ring.shape[1:] != frame.shape:
            self._ring = np.empty((self.window, *frame.shape), dtype=np.uint16)
            self._filled = self._next = 0
        np.rint(np.clip(frame, 0.0, 1.0) * _RING_SCALE, out=self._ring[self._next], casting="unsafe")
        self._next = (self._next + 1) % self.window
        self._filled = min(self._filled + 1, self.window)
        self._since += 1
        if self._bg is None or self._since >= self.every:
            med = np.median(self._ring[: self._filled], axis=0)
            self._bg = (med / _RING_SCALE).astype(np.float32)
            self._since = 0
        return self._bg
