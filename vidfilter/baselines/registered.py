"""Projections that follow the camera: the median / max / min of the frames moved into frame 0's
coordinates (:mod:`vidfilter.temporal.register`), moved back onto each frame it is the background of.

The classical projections assume a still camera; after a bump of a few pixels every edge of the
plate shows in the foreground. This is the same registration the model uses (one phase correlation
per frame, whole pixels, and only where the camera moved: on a still camera these equal the plain
projections over the same frames), so a comparison of the two on a moving camera is like for like.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.baselines.base import BackgroundEstimator
from vidfilter.errors import ConfigError
from vidfilter.io.source import FrameSource

__all__ = ["RegisteredProjection"]


class RegisteredProjection(BackgroundEstimator):
    """Per-pixel ``kind`` ("median", "max" or "min") of ``n_frames`` frames spread over the
    recording, accumulated in frame 0's coordinates and moved by each frame's camera shift.

    ``mode``: "auto" registers only where a surveyed frame moved; "on" always. Memory: as the plain
    projection (``n_frames`` frames for the median, one running frame for max / min).
    """

    def __init__(self, kind: str = "median", n_frames: int = 51, *, mode: str = "auto", max_shift: int = 32) -> None:
        super().__init__()
        if kind not in ("median", "max", "min"):
            raise ConfigError(f"kind must be 'median', 'max' or 'min', got {kind!r}")
        if mode not in ("auto", "on"):
            raise ConfigError(f"mode must be 'auto' or 'on', got {mode!r}")
        if n_frames < 1:
            raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
        self.kind, self.n_frames, self.mode, self.max_shift = kind, n_frames, mode, max_shift
        self.name = f"{kind}-registered"
        self.registration: Any = None  # a Registration when the camera moved (the run summary reports it)

    def setup_frames(self, n_frames: int) -> np.ndarray:
        """The frames the statistic and the survey read (:func:`vidfilter.temporal.statistic_frames`)."""
        from vidfilter.temporal import statistic_frames

        return statistic_frames(n_frames, self.n_frames)

    def setup_params(self) -> dict[str, Any]:
        return {"estimator": "registered", "kind": self.kind, "n_frames": self.n_frames, "mode": self.mode,
                "max_shift": self.max_shift}

    def setup_state(self) -> dict[str, np.ndarray] | None:
        return super().setup_state() if self.registration is None else None  # shifts are not kept: set up again

    def restore_setup(self, state: dict[str, np.ndarray]) -> None:
        super().restore_setup(state)
        self.registration = None

    def prepare(self, src: FrameSource) -> None:
        from vidfilter.temporal import statistic_and_registration

        self._bg, self.registration = statistic_and_registration(
            src, self.kind, self.n_frames, self.mode, self.max_shift, what=f"the {self.kind} follows each frame",
        )

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        assert self._bg is not None, "prepare() first"
        if self.registration is None:
            return self._bg
        from vidfilter.temporal import translate

        return translate(self._bg, *self.registration.shift(frame, t))
