"""vidfilter.synth: synthetic data with exact ground truth (tests, demo, benchmarks).

- :class:`SyntheticRecording` / :func:`make_recording` (``recording.py``): worm-like animals on a
  textured plate, with still animals, illumination drift, camera shifts and trails; frames are
  rendered on demand from ``(seed, t)``. :func:`write_video` streams one to MP4 / FFV1.
"""

from __future__ import annotations

from vidfilter.synth.recording import SyntheticFrame, SyntheticRecording, make_recording, write_video

__all__ = ["SyntheticFrame", "SyntheticRecording", "make_recording", "write_video"]
