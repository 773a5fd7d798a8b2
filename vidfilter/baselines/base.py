"""The interface every background estimator shares (the baselines here and the model's
``vidfilter.infer.pipeline.ModelBackground``).

- ``settle(config)``: the run's resolved config (its polarity), before the frames stream;
- ``prepare(src)``: an optional pre-pass over the recording, in bounded memory (at most a fixed
  number of sampled frames, or a running reduction);
- ``setup_frames(n)``: the frames ``prepare`` reads one by one from a recording of ``n`` frames,
  so that the pipeline can read them once together with the other setup reads;
- ``setup_params()`` / ``setup_state()`` / ``restore_setup(state)``: what ``prepare`` depends on
  besides the frames, its result as float32 images, and how to take that result back, so that a
  run can keep the setup of an input and skip it next time (:mod:`vidfilter.infer.setup_cache`);
  ``setup_params() is None`` (the default): nothing kept, ``prepare`` runs every time;
- ``background(t, frame)``: the background of frame ``t`` as float32 ``[0, 1]``, same shape as
  ``frame`` (which is float32 ``[0, 1]`` too).

A ``stateful`` estimator (MOG2, KNN, running median) must see the frames in order, each once; on
resume the pipeline replays the earlier frames through it without writing. A stateless one may be
asked for any frame in any order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.io.source import FrameSource
from vidfilter.temporal.statistic import statistic_frames as sample_indices  # (n, k): k indices spread over n frames

__all__ = ["BackgroundEstimator", "sample_indices"]


class BackgroundEstimator:
    """Base class: a static background computed by ``prepare`` unless ``background`` is overridden."""

    name = "base"
    stateful = False

    def __init__(self) -> None:
        self._bg: np.ndarray | None = None

    def setup_frames(self, n_frames: int) -> np.ndarray:
        """The frame indices ``prepare`` reads one by one from ``n_frames`` frames (default: none)."""
        return np.arange(0)

    def settle(self, config: Any) -> None:
        """Told the run's resolved config (its polarity) before the frames stream (default: nothing)."""

    def prepare(self, src: FrameSource) -> None:  # pragma: no cover - overridden
        """Pre-pass over the recording (default: nothing)."""

    def setup_params(self) -> dict[str, Any] | None:
        """What ``prepare``'s result depends on besides the frames (``None``: nothing to keep)."""
        return None

    def setup_state(self) -> dict[str, np.ndarray] | None:
        """``prepare``'s result as float32 images (``None`` where it cannot be restored)."""
        return {"background": self._bg} if self._bg is not None and self._bg.dtype == np.float32 else None

    def restore_setup(self, state: dict[str, np.ndarray]) -> None:
        """Take back a result of ``prepare`` that :meth:`setup_state` gave (instead of calling ``prepare``)."""
        self._bg = state["background"]

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        """The background of frame ``t`` (float32 [0, 1])."""
        assert self._bg is not None, "prepare() first"
        return self._bg
