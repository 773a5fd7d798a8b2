"""vidfilter.synth: synthetic data with exact ground truth (tests, demo, benchmarks).

- :class:`SyntheticRecording` / :func:`make_recording` (``recording.py``): worm-like animals on a
  textured plate, with still animals, illumination drift, camera shifts and trails; frames are
  rendered on demand from ``(seed, t)``. :func:`write_video` streams one to MP4 / FFV1.

Static mode (single images, pairs synthesised from crops; see ``docs/static.md``):

- ``preprocess.py``: image -> linear grey [0, 1] (RGB -> grey, complement) -> log, shared by all steps.
- ``crops.py``: ``vidfilter extract-crops``: annotated images -> a crop bank (labels, colour-coded
  points, boxes, or the unannotated focus split); :func:`~vidfilter.synth.crops.write_bank`.
- ``paste.py``: the pair synthesiser (input = bg1 + Ou1 + Ot, target = bg2 + Ou2 + Ot) and the
  pair source :func:`vidfilter.train.loop.train` uses in static mode; ``dataset.py``: its
  DataLoader dataset (imports torch).
- ``lookalike.py``: small BBBC026 / BBBC042 / microglia look-alikes with exact ground truth.
"""

from __future__ import annotations

from vidfilter.synth.recording import SyntheticFrame, SyntheticRecording, make_recording, write_long_video, write_video

__all__ = ["SyntheticFrame", "SyntheticRecording", "make_recording", "write_long_video", "write_video"]
