"""Classical backgrounds that users would otherwise reach for, streaming through the same readers.

Every estimator has the same two calls, so the pipeline treats them like the model:

- ``prepare(src)``: an optional pre-pass over the recording (bounded memory: at most ``n_frames``
  sampled frames, or a running reduction);
- ``background(t, frame)``: the background of frame ``t`` (float32 [0, 1], same shape as ``frame``).

``stateful`` estimators (MOG2, KNN, running median) must see frames in order; on resume the pipeline
replays earlier frames through them without writing.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.io.convert import dtype_scale, to_float
from vidfilter.io.source import FrameSource


def sample_indices(n: int, k: int) -> np.ndarray:
    """``k`` frame indices spread evenly over ``n`` frames (all of them when ``n <= k``)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


class BackgroundEstimator:
    """Base class: a static background unless ``background`` is overridden."""

    name = "base"
    stateful = False

    def __init__(self) -> None:
        self._bg: np.ndarray | None = None

    def prepare(self, src: FrameSource) -> None:  # pragma: no cover - overridden
        pass

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        assert self._bg is not None, "prepare() first"
        return self._bg


class MedianProjection(BackgroundEstimator):
    """Per-pixel median of ``n_frames`` frames spread over the whole recording."""

    name = "median"

    def __init__(self, n_frames: int = 51) -> None:
        super().__init__()
        self.n_frames = n_frames

    def prepare(self, src: FrameSource) -> None:
        idx = sample_indices(len(src), self.n_frames)
        stack = np.stack([src[int(t)] for t in idx])  # n_frames x H x W in the source dtype
        # unrounded median (mean of the two middle values for an even count), partitioned in the source dtype
        self._bg = (np.median(stack, axis=0) / dtype_scale(src.dtype)).astype(np.float32)


class ExtremeProjection(BackgroundEstimator):
    """Per-pixel max (dark animals on a light plate) or min (light animals) over the recording."""

    def __init__(self, kind: str = "max", n_frames: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.name = kind
        self.n_frames = n_frames

    def prepare(self, src: FrameSource) -> None:
        reduce = np.maximum if self.kind == "max" else np.minimum
        idx = range(len(src)) if self.n_frames is None else sample_indices(len(src), self.n_frames)
        acc = None
        it = src.iter() if self.n_frames is None else (src[int(t)] for t in idx)
        for frame in it:
            acc = frame.copy() if acc is None else reduce(acc, frame, out=acc)
        self._bg = to_float(acc)


class RunningMedian(BackgroundEstimator):
    """Median of the last ``window`` frames seen (a causal running window), recomputed every ``every`` frames."""

    name = "running-median"
    stateful = True

    def __init__(self, window: int = 50, every: int = 10) -> None:
        super().__init__()
        self.window = window
        self.every = every
        self._buf: deque[np.ndarray] = deque(maxlen=window)
        self._since = 0

    def prepare(self, src: FrameSource) -> None:
        self._buf.clear()
        self._bg = None
        self._since = 0

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        self._buf.append(frame.copy())
        self._since += 1
        if self._bg is None or self._since >= self.every:
            self._bg = np.median(np.stack(self._buf), axis=0).astype(np.float32)
            self._since = 0
        return self._bg


class OpenCVSubtractor(BackgroundEstimator):
    """OpenCV's MOG2 or KNN background model; the background is ``getBackgroundImage()``."""

    stateful = True

    def __init__(self, kind: str = "mog2", history: int = 500) -> None:
        super().__init__()
        self.kind = kind
        self.name = kind
        self.history = history
        self._sub = None

    def prepare(self, src: FrameSource) -> None:
        import cv2

        if self.kind == "mog2":
            self._sub = cv2.createBackgroundSubtractorMOG2(history=self.history, detectShadows=False)
        else:
            self._sub = cv2.createBackgroundSubtractorKNN(history=self.history, detectShadows=False)

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        img = np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)
        self._sub.apply(img)
        bg = self._sub.getBackgroundImage()
        if bg.ndim == 3 and frame.ndim == 2:
            bg = bg[..., 0]
        return bg.astype(np.float32) / 255.0


BASELINES = {
    "median": MedianProjection,
    "max": lambda: ExtremeProjection("max"),
    "min": lambda: ExtremeProjection("min"),
    "running-median": RunningMedian,
    "mog2": lambda: OpenCVSubtractor("mog2"),
    "knn": lambda: OpenCVSubtractor("knn"),
}


def make_baseline(name: str) -> BackgroundEstimator:
    """Build a baseline by name, suggesting the nearest valid name for a typo."""
    if name not in BASELINES:
        import difflib

        close = difflib.get_close_matches(name, list(BASELINES) + ["model"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint} (valid: model, {', '.join(BASELINES)})")
    return BASELINES[name]()
