"""vidfilter.baselines: the classical backgrounds users would otherwise reach for.

Every method streams through the same readers and writers as the model (``vidfilter run
--method NAME``), so every output has the same layout and is scored the same way:

- ``median``: per-pixel median of 51 frames spread over the whole recording;
- ``running-median``: median of a causal window of the last 50 frames, recomputed every 10;
- ``max`` / ``min``: per-pixel max (dark animals) / min (bright animals) over every frame;
- ``median-registered`` / ``max-registered`` / ``min-registered``: the same projections (51 frames)
  following the camera where it moved (``registered.py``; equal to the plain ones on a still camera);
- ``mog2`` / ``knn``: OpenCV's adaptive background subtractors.

All share the :class:`BackgroundEstimator` interface (``prepare(src)``, ``background(t, frame)``)
and hold a bounded number of frames whatever the recording's length.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from vidfilter.baselines.base import BackgroundEstimator, sample_indices
from vidfilter.baselines.projections import ExtremeProjection, MedianProjection, RunningMedian
from vidfilter.baselines.registered import RegisteredProjection
from vidfilter.baselines.subtractors import OpenCVSubtractor
from vidfilter.errors import ConfigError

__all__ = ["BASELINES", "BackgroundEstimator", "ExtremeProjection", "MedianProjection", "OpenCVSubtractor",
    "RegisteredProjection", "RunningMedian", "make_baseline", "sample_indices"]

#: ``--method`` name -> factory with the default settings.
BASELINES: dict[str, Callable[[], BackgroundEstimator]] = {
    "median": MedianProjection,
    "running-median": RunningMedian,
    "max": lambda: ExtremeProjection("max"),
    "min": lambda: ExtremeProjection("min"),
    "median-registered": RegisteredProjection,
    "max-registered": lambda: RegisteredProjection("max"),
    "min-registered": lambda: RegisteredProjection("min"),
    "mog2": lambda: OpenCVSubtractor("mog2"),
    "knn": lambda: OpenCVSubtractor("knn"),
}


def make_baseline(name: str) -> BackgroundEstimator:
    """Build a baseline by name, suggesting the nearest valid name for a typo."""
    if name not in BASELINES:
        close = difflib.get_close_matches(name, [*BASELINES, "model"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown method {name!r}{hint} (valid: model, {', '.join(BASELINES)})")
    return BASELINES[name]()
