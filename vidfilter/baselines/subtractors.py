"""OpenCV's adaptive background subtractors (MOG2, KNN): the background is
``getBackgroundImage()`` after each frame is applied. State is one model per pixel, independent
of the recording's length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.baselines.base import BackgroundEstimator
from vidfilter.errors import ConfigError
from vidfilter.io.source import FrameSource

__all__ = ["OpenCVSubtractor"]


class OpenCVSubtractor(BackgroundEstimator):
    """OpenCV's MOG2 or KNN background model on the 8-bit frame (``history`` frames of memory)."""

    stateful = True

    def __init__(self, kind: str = "mog2", history: int = 500) -> None:
        super().__init__()
        if kind not in ("mog2", "knn"):
            raise ConfigError(f"kind must be 'mog2' or 'knn', got {kind!r}")
        self.kind = self.name = kind
        self.history = history
        self._sub: Any = None

    def prepare(self, src: FrameSource) -> None:
        import cv2

        if self.kind == "mog2":
            self._sub = cv2.createBackgroundSubtractorMOG2(history=self.history, detectShadows=False)
        else:
            self._sub = cv2.createBackgroundSubtractorKNN(history=self.history, detectShadows=False)

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        assert self._sub is not None, "prepare() first"
        img = np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)
        self._sub.apply(img)
        bg = self._sub.getBackgroundImage()
        if bg.ndim == 3 and frame.ndim == 2:
            bg = bg[..., 0]
        return bg.astype(np.float32) / 255.0
