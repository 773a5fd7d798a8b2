"""vidfilter.synth: synthetic recordings with exact ground truth (tests, demo, benchmarks, pretraining).

- :class:`SyntheticRecording` / :func:`make_recording` (``recording.py``): worm-like animals on a
  textured plate, with still animals, illumination drift, camera shifts and trails; frames are
  rendered on demand from ``(seed, t)`` and the :class:`RecordingParams`. :func:`write_video`
  streams one to MP4 / FFV1.
- ``lookalike.py``: small BBBC026 / BBBC042 / microglia look-alikes with exact ground truth, the
  inputs of the static mode's tests and benchmarks.
"""

from __future__ import annotations

from vidfilter.synth.recording import (
    RecordingParams, SyntheticFrame, SyntheticRecording, make_recording, write_long_video, write_video,
)

__all__ = ["RecordingParams", "SyntheticFrame", "SyntheticRecording", "make_recording", "write_long_video", "write_video"]
