"""The interface every background estimator shares (the baselines here and the model's
``vidfilter.infer.pipeline.ModelBackground``).

- ``prepare(src)``: an optional pre-pass over the recording, in bounded memory (at most a fixed
  number of sampled frames, or a running reduction);
- ``background(t, frame)``: the background of frame ``t`` as float32 ``[0, 1]``, same shape as
  ``frame`` (which is float32 ``[0, 1]`` too).

A ``stateful`` estimator (MOG2, KNN, running median) must see the frames in order, each once; on
resume the pipeline replays the earlier frames through it without writing. A stateless one may be
asked for any frame in any order.
"""

from __future__ import annotations

import numpy as np

from vidfilter.io.source import FrameSource

__all__ = ["BackgroundEstimator", "sample_indices"]


def sample_indices(n: int, k: int) -> np.ndarray:
    """``k`` frame indices spread evenly over ``n`` frames, first and last included (all when ``n <= k``)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


class BackgroundEstimator:
    """Base class: a static background computed by ``prepare`` unless ``background`` is overridden."""

    name = "base"
    stateful = False

    def __init__(self) -> None:
        self._bg: np.ndarray | None = None

    def prepare(self, src: FrameSource) -> None:  # pragma: no cover - overridden
        """Pre-pass over the recording (default: nothing)."""

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        """The background of frame ``t`` (float32 [0, 1])."""
        assert self._bg is not None, "prepare() first"
        return self._bg
