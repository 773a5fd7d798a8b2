"""vidfilter.temporal: what a recording's frames share over time, for training, inference and the baselines.

- ``statistic.py``: the per-pixel max / min / median of frames spread over a recording
  (:func:`temporal_statistic`), and whether it follows the camera (:func:`statistic_and_registration`);
- ``register.py``: camera-shift registration, each frame's translation against frame 0 (:class:`Registration`).
"""

from vidfilter.temporal.register import Registration, survey, translate
from vidfilter.temporal.statistic import (
    StatisticKind, statistic_and_registration, statistic_frames, temporal_median, temporal_statistic, temporal_statistics)

__all__ = ["Registration", "StatisticKind", "statistic_and_registration", "statistic_frames", "survey",
    "temporal_median", "temporal_statistic", "temporal_statistics", "translate"]
