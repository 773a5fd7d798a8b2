"""Temporal statistics of a recording: polarity detection."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.sampling.temporal import detect_polarity
from vidfilter.synth import make_recording


def _frames(polarity: str, n_still: int = 0, speed: float = 2.0) -> np.ndarray:
    rec = make_recording(24, 96, 96, n_animals=4, seed=5, polarity=polarity, n_still=n_still, speed=speed)
    return np.stack([rec.frame(t).frame for t in range(24)])


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_detect_polarity_of_generated_animals(polarity: str) -> None:
    assert detect_polarity(ArrayFrameSource(_frames(polarity))) == polarity


def test_detect_polarity_without_motion_is_absolute() -> None:
    """Nothing moves (one frame repeated, plus sensor noise): no side wins."""
    rng = np.random.default_rng(0)
    still = _frames("dark")[:1].repeat(24, axis=0).astype(np.int16)
    still = np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
    assert detect_polarity(ArrayFrameSource(still)) == "absolute"


def test_detect_polarity_pools_recordings_and_bounds_reads() -> None:
    """Several recordings vote together; a large frame is subsampled (same answer)."""
    dark = _frames("dark")
    big = np.repeat(np.repeat(dark, 8, axis=1), 8, axis=2)  # 768² frames
    assert detect_polarity([ArrayFrameSource(dark), ArrayFrameSource(big)], max_side=128) == "dark"


def test_detect_polarity_of_real_recordings(shared_data) -> None:
    """Worms and the mouse are dark on a light floor, the flies light on a dark arena; the bundled
    demo clip too. (The zebrafish larva barely moves in its 38 frames and is not asserted.)"""
    from pathlib import Path

    from vidfilter.io.registry import open as vf_open

    demo = Path(__file__).resolve().parents[2] / "examples" / "mouse_clip.mp4"
    cases = {
        shared_data / "worms_yolo_640" / "frames": "dark",
        shared_data / "mouse_tracktor" / "mouse_video.mp4": "dark",
        shared_data / "flies_sleap" / "clip.mp4": "bright",
        demo: "dark",
    }
    for path, want in cases.items():
        with vf_open(str(path)) as src:
            assert detect_polarity(src) == want, path
