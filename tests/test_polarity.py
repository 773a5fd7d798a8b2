"""Polarity detection: are the animals of a recording darker or lighter than the plate?"""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.polarity import detect_polarity, polarity_evidence
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


def _nearly_still(seed: int, flicker: bool) -> np.ndarray:
    """A 512² plate where one dark 9 x 5 px animal twitches by a pixel (``flicker=False``), or where
    two isolated pixels a frame flash, darker twice as often as brighter (``flicker=True``)."""
    rng = np.random.default_rng(seed)
    frames = np.full((24, 512, 512), 180.0) + rng.normal(0, 2, (24, 512, 512))
    for t in range(24):
        if flicker:
            ys, xs = rng.integers(10, 502, 2), rng.integers(10, 502, 2)
            frames[t, ys, xs] += rng.choice([-80.0, 80.0], 2, p=[2 / 3, 1 / 3])
        else:
            y, x = 256 + (t % 2), 200 + (t // 3) % 2
            frames[t, y - 4 : y + 5, x - 2 : x + 3] = 40.0
    return np.clip(frames, 0, 255).astype(np.uint8)


def test_a_nearly_still_animal_is_decided_and_flicker_is_not() -> None:
    """Under 0.02 % of the pixels change: agreeing votes decide (dark); flashing pixels of both
    signs do not (absolute), although one sign outweighs the other by more than the 1.5:1 that
    decides when more changes."""
    still = polarity_evidence(ArrayFrameSource(_nearly_still(0, flicker=False)))
    assert still.changed < 2e-4 * still.pixels and still.polarity == "dark", still.describe()
    for seed in range(3):
        flashes = polarity_evidence(ArrayFrameSource(_nearly_still(seed, flicker=True)))
        assert flashes.changed < 2e-4 * flashes.pixels and flashes.dark > 1.5 * flashes.bright > 0, flashes.describe()
        assert flashes.polarity == "absolute", flashes.describe()


def test_detect_polarity_pools_recordings_and_bounds_reads() -> None:
    """Several recordings vote together; a large frame is subsampled (same answer)."""
    dark = _frames("dark")
    big = np.repeat(np.repeat(dark, 8, axis=1), 8, axis=2)  # 768² frames
    assert detect_polarity([ArrayFrameSource(dark), ArrayFrameSource(big)], max_side=128) == "dark"


def test_detect_polarity_of_real_recordings(shared_data) -> None:
    """Worms and the mouse are dark on a light floor, the flies light on a dark arena; the bundled
    demo clip too. The zebrafish larva, dark on a light dish, barely moves in its 38 frames (50 of
    262 144 pixels change at 512²), so its verdict rests on votes that agree."""
    from pathlib import Path

    from vidfilter.io.registry import open as vf_open

    demo = Path(__file__).resolve().parents[1] / "examples" / "mouse_clip.mp4"
    cases = {
        shared_data / "worms_yolo_640" / "frames": "dark",
        shared_data / "mouse_tracktor" / "mouse_video.mp4": "dark",
        shared_data / "flies_sleap" / "clip.mp4": "bright",
        shared_data / "zebrafish_larva": "dark",
        demo: "dark",
    }
    for path, want in cases.items():
        with vf_open(str(path)) as src:
            assert detect_polarity(src) == want, path


def _resting_against_wall(polarity: str, size: int = 192, n: int = 24) -> np.ndarray:
    """One animal (20 x 14 px) resting against a wall of the animal's own sign, shifting 2-3 px."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    floor, wall, animal = (160.0, 48.0, 30.0) if polarity == "dark" else (60.0, 190.0, 210.0)
    plate = np.where(xx < size * 0.3, wall, floor)
    frames = []
    for t in range(n):
        cy, cx = size / 2 + 3 * np.sin(t / 3), size * 0.3 + 7 + 2 * np.cos(t / 2)
        body = ((yy - cy) / 10) ** 2 + ((xx - cx) / 7) ** 2 < 1
        f = ndimage.gaussian_filter(np.where(body, animal, plate), 1.0) + rng.normal(0, 2, plate.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_detect_polarity_of_an_animal_resting_against_a_wall(polarity: str) -> None:
    """A wall as dark (or bright) as the animal beside it: the floor the animal uncovers must not
    read as an animal of the other sign."""
    ev = polarity_evidence(ArrayFrameSource(_resting_against_wall(polarity)))
    assert ev.polarity == polarity, ev.describe()
    assert ev.describe().startswith(polarity)


def test_polarity_evidence_describes_itself() -> None:
    ev = polarity_evidence(ArrayFrameSource(_frames("bright")))
    assert ev.polarity == "bright" and ev.bright > ev.dark >= 0 and ev.ratio < 1
    assert "bright:dark evidence" in ev.describe() and "% of pixels changed" in ev.describe()


def test_detect_polarity_of_a_mouse_resting_against_the_wall(shared_data) -> None:
    """mouse_tracktor frames 9490-9789 (10 s): the mouse rests against the dark wall. A vote against
    one plate level alone reads this window as absolute (dark:bright 1.30, margin 1.5), and a
    network trained on an absolute foreground fails here (benchmarks/quality_arena.py, pixel IoU .075)."""
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.source import to_gray

    with vf_open(str(shared_data / "mouse_tracktor" / "mouse_video.mp4")) as src:
        window = np.stack([to_gray(np.asarray(f)) for f in src.iter(9490, 9790)])
    ev = polarity_evidence(ArrayFrameSource(window))
    assert ev.polarity == "dark", ev.describe()
    assert ev.dark > 2 * ev.bright, ev.describe()
