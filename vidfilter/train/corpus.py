"""Generated corpora of the shipped setups: :data:`SETUPS` (what a ``worm-plate`` or
``open-arena`` recording looks like, drawn per recording from a seeded generator), :func:`corpus`
(the recordings, with their true backgrounds on request) and :func:`replay_corpus` (the cached
recordings a fine-tuning replays). :mod:`vidfilter.train.pretrain` trains the shipped bundles on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.models.shipped import SETUP_NAMES, shipped_path
from vidfilter.synth import RecordingParams, SyntheticRecording, write_video

__all__ = ["REPLAY_RECORDINGS", "SETUPS", "Setup", "TARGETS", "background_path", "corpus", "pretrained_path",
           "replay_corpus"]

#: What a corpus recording is paired with in training: ``pairs``, a later frame of the same
#: recording (the paper's time-lag pairs, as ``vidfilter train`` does on a user's recording), or
#: ``clean``, the generator's own background of the same frame (supervised: the corpus is generated,
#: so its true background is known, and a slow animal's overlap with itself is never taught as plate).
TARGETS = ("pairs", "clean")


@dataclass(frozen=True)
class Setup:
    """A kind of recording: how to draw one generated recording of it, and its training overrides."""

    polarity: str
    size: int | tuple[int, int]  # side of a square recording, or (height, width)
    frames: int
    draw: Callable[[np.random.Generator], RecordingParams]
    description: str
    lossy: float = 0.0  # share of corpus recordings written as H.264 (crf 18-28), as most users' videos are


def _worm_plate(rng: np.random.Generator) -> RecordingParams:
    lo = float(rng.uniform(25, 45))
    return RecordingParams(
        n_animals=int(rng.integers(3, 7)),
        animal_length=float(rng.uniform(85, 140)),
        animal_width=float(rng.uniform(5, 9)),
        contrast=(lo, lo + float(rng.uniform(10, 30))),
        texture=float(rng.uniform(3, 10)),
        rim=bool(rng.random() < 0.3),
        noise_sigma=float(rng.uniform(0.5, 2.0)),
        vignette=float(rng.uniform(0.0, 0.15)),
        tracks=bool(rng.random() < 0.5),
        trail_depth=float(rng.uniform(2, 6)),
        illumination_drift=float(rng.choice([0.0, 0.0, 0.03])),
        speed=float(rng.uniform(0.7, 3.0)),
    )


def _open_arena(rng: np.random.Generator) -> RecordingParams:
    lo = float(rng.uniform(60, 110))
    length = float(rng.uniform(40, 80))
    params = RecordingParams(
        n_animals=int(rng.integers(1, 4)),
        animal_length=length,
        animal_width=length * float(rng.uniform(0.35, 0.6)),
        contrast=(lo, lo + float(rng.uniform(10, 30))),
        level=float(rng.uniform(130, 200)),
        texture=float(rng.uniform(1, 5)),
        rim=bool(rng.random() < 0.85),
        arena_radius=float(rng.uniform(0.36, 0.48)),
        arena_offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        # wide walls run off the image and leave the surround in the corners, as in mouse_tracktor
        wall=float(rng.uniform(30, 140)) if rng.random() < 0.8 else 0.0,
        wall_level=float(rng.uniform(0.2, 0.45)),
        surround=float(rng.uniform(0.4, 1.5)),
        surround_edge=float(rng.uniform(0, 60)),
        surround_folds=float(rng.uniform(0.05, 0.3)),
        edge_softness=float(rng.uniform(0.3, 1.5)),
        noise_sigma=float(rng.uniform(0.5, 2.5)),
        vignette=float(rng.uniform(0.0, 0.4)),
        illumination_drift=float(rng.choice([0.0, 0.0, 0.03])),
        speed=float(rng.uniform(0.5, 4.0)),
    )
    # most rodents keep to the wall (thigmotaxis): in 70 % of the recordings the body may touch it
    # (centre line 0.5-0.65 body widths from the floor's edge); elsewhere animals keep clear
    hug, gap = rng.random() < 0.7, float(rng.uniform(0.5, 0.65))
    return replace(params, edge_gap=params.animal_width * gap if hug else None)  # type: ignore[operator]


def _bright_arena(rng: np.random.Generator) -> RecordingParams:
    if rng.random() < 0.25:  # thin bright animals (larvae, worms under dark-field light)
        length = float(rng.uniform(50, 120))
        width = float(rng.uniform(4, 9))
    else:  # insect-sized bodies: flies, beetles, bees seen from above
        length = float(rng.uniform(35, 110))
        width = length * float(rng.uniform(0.3, 0.5))
    lo = float(rng.uniform(60, 150))
    n = int(rng.integers(1, 5))
    return RecordingParams(
        n_animals=n,
        # an animal that rests through the whole recording is still an animal (clean targets teach it)
        n_still=int(rng.random() < 0.4),
        animal_length=length,
        animal_width=width,
        contrast=(lo, lo + float(rng.uniform(10, 50))),
        level=float(rng.uniform(10, 60)),
        texture=float(rng.uniform(1, 6)),
        rim=bool(rng.random() < 0.3),
        noise_sigma=float(rng.uniform(0.5, 2.5)),
        vignette=float(rng.uniform(0.0, 0.3)),
        illumination_drift=float(rng.choice([0.0, 0.0, 0.03])),
        speed=float(rng.uniform(0.5, 4.0)),
    )


SETUPS: dict[str, Setup] = {
    "worm-plate": Setup(
        "dark", 512, 60, _worm_plate,
        "dark worms (85-140 px long) crawling on a light, textured agar plate; trails, slow drift",
    ),
    "open-arena": Setup(
        "dark", (480, 640), 60, _open_arena,
        "1-3 dark rodent-sized animals (40-80 px long, 35-60 % as wide) on a smooth floor (130-200) inside "
        "a dark arena wall (thin, or 30-140 px wide, often running off the image, with a ragged darker or "
        "brighter surround in the corners); sharp or soft edges, off-centre arenas, vignetting, slow drift; "
        "half the recordings H.264-compressed",
        lossy=0.5,
    ),
    "bright-arena": Setup(
        "bright", 512, 60, _bright_arena,
        "1-4 light animals on a dark floor (10-60): insect-sized bodies (35-110 px long, 30-50 % as wide) or, in a "
        "quarter of the recordings, thin ones (4-9 px wide); contrast 60-200, up to one animal resting throughout, "
        "a dish rim in 30 %; half the recordings H.264-compressed",
        lossy=0.5,
    ),
}
assert tuple(SETUPS) == SETUP_NAMES, "a setup needs its name in vidfilter.models.shipped.SETUP_NAMES"


def _setup(name: str) -> Setup:
    if name not in SETUPS:
        raise ConfigError(f"unknown setup {name!r}; known setups: {', '.join(SETUPS)}")
    return SETUPS[name]


def pretrained_path(name: str) -> Path:
    """The shipped bundle of setup ``name``."""
    _setup(name)
    return shipped_path(name)


def background_path(recording: str | Path) -> Path:
    """Where :func:`corpus` writes the clean background of ``recording`` (``<stem>.background.zarr``)."""
    recording = Path(recording)
    return recording.with_name(recording.stem + ".background.zarr")


def _write_background(path: Path, rec: Any) -> None:
    """The recording's true background, frame for frame, as uint8 OME-Zarr (``vidfilter convert``'s
    writer: atomic, so an existing store is complete)."""
    from vidfilter.io.export import write_frames

    n, h, w = rec.shape
    frames = (np.clip(np.rint(rec.frame(t).background), 0, 255).astype(np.uint8) for t in range(n))
    write_frames(frames, path, frame_shape=(h, w), dtype=np.uint8, n_frames=n)


def corpus(name: str, folder: str | Path, *, recordings: int = 8, seed: int = 0, backgrounds: bool = False) -> list[Path]:
    """Write ``recordings`` generated recordings of setup ``name`` into ``folder``: lossless FFV1
    (``.mkv``), or H.264 (``.mp4``) for the setup's ``lossy`` share, so that the network also sees
    compression ringing at sharp edges. ``backgrounds``: also write each recording's true background
    beside it (:func:`background_path`), the targets of ``pretrain(..., targets="clean")``."""
    setup = _setup(name)
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    h, w = (setup.size, setup.size) if isinstance(setup.size, int) else setup.size
    paths = []
    for i in range(recordings):
        params = setup.draw(rng)
        # no extra draws for a lossless setup: its corpus stays the one its shipped bundle was trained on
        crf = int(rng.integers(18, 29)) if setup.lossy and rng.random() < setup.lossy else None
        path = folder / f"{name}_{i:02d}.{'mp4' if crf is not None else 'mkv'}"
        # existing files were written atomically, so they are complete: a rerun only adds what is missing
        video, background = not path.exists(), backgrounds and not background_path(path).exists()
        if video or background:
            rec = SyntheticRecording(setup.frames, h, w, params, polarity=setup.polarity, seed=seed * 1000 + i)
            if video:
                write_video(path, rec, **({"codec": "ffv1"} if crf is None else {"codec": "libx264", "crf": crf}))
            if background:
                _write_background(background_path(path), rec)
        paths.append(path)
    return paths


#: recordings of a setup's corpus replayed while a user fine-tunes its bundle (train.replay)
REPLAY_RECORDINGS = 4


def replay_corpus(name: str, recordings: int = REPLAY_RECORDINGS) -> tuple[list[Path], list[Path]]:
    """The first ``recordings`` of setup ``name``'s corpus (seed 0: recordings its shipped bundle was
    trained on) and their clean backgrounds, generated once into the user's cache
    (``$XDG_CACHE_HOME/vidfilter/replay``, else ``~/.cache/vidfilter/replay``); files are written
    atomically, so a cache cut short is completed, not trusted."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidfilter" / "replay" / name
    paths = corpus(name, root, recordings=recordings, seed=0, backgrounds=True)
    return paths, [background_path(p) for p in paths]
