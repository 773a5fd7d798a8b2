"""Pretrained bundles per setup: a generated corpus, trained with the defaults of ``vidfilter train``.

A first run is minutes on a CPU with one recording, and in that recording some animals barely move:
time-lag pairs of that recording alone teach the network to keep them ("the identity trap",
``docs/architecture.md``). A bundle trained beforehand on *generated* recordings of the same kind of setup, whose
animals all crawl, has already learned that the animals are not plate; ``vidfilter train --init
worm-plate`` fine-tunes it on the user's recording.

A setup is a distribution of :class:`~vidfilter.synth.RecordingParams` (animal size,
contrast, plate texture, noise, trails, drift, speed), drawn per corpus recording from a seeded
generator. ``worm-plate`` is sized after the real worm plate of the ``worms_yolo_640`` recordings
(640 px frames: worm boxes 90-130 px across, plate ~205 grey levels, worms 40-60 darker, plate
texture ~10 levels std after smoothing); its generated recordings are 512 px square.
``open-arena`` (480x640 recordings) is sized after the open field of the ``mouse_tracktor`` video
(640x480 frames: the mouse ~900 px in area, ~45 px across, ~100 grey levels darker than a smooth floor that falls from ~157 in the middle
to ~125 at the rim; the rim at ~0.44 of the shorter side; a wall at ~0.32 of the floor level that
runs off the image, with a light cloth at ~1.2-1.3x the floor in the corners; one animal, resting
for seconds between runs).

Training targets: the corpus is generated, so each frame's true background is known, and by default
(``targets="clean"``) the network is taught to output it. Time-lag pairs of the corpus (``--targets
pairs``, what ``vidfilter train`` does on a user's recording, where nothing else exists) teach a slow
animal's overlap with itself as plate; measured on the real recordings, the clean-target bundles keep
less of the animals that barely move (README, "Clean targets").

The shipped bundles live in ``vidfilter/models/pretrained/<setup>.vfm`` (found by name through
:mod:`vidfilter.models.shipped`) and were built with (2 AVX-512 CPU cores, ~20 min each; figures in
``docs/benchmarks.md``)::

    python -m vidfilter.train.pretrain worm-plate --steps 2065 --minutes 1000
    python -m vidfilter.train.pretrain open-arena --steps 4204 --minutes 1000 --recordings 12

(what the shipped file's provenance records: its ``config``, ``inputs`` and ``targets`` say how it was made).
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.models.shipped import SETUP_NAMES, resolve_init, shipped_path
from vidfilter.synth import RecordingParams, SyntheticRecording, write_video

logger = logging.getLogger(__name__)

__all__ = ["REPLAY_RECORDINGS", "SETUPS", "Setup", "TARGETS", "background_path", "corpus", "pretrain", "pretrained_path",
           "replay_corpus", "resolve_init"]

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


def pretrain(
    name: str,
    out: str | Path,
    *,
    minutes: float | None = 20.0,
    steps: int | None = None,
    recordings: int = 8,
    work: str | Path | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    init: str | Path | None = None,
    crop: int | None = None,
    targets: str = "clean",
    progress: bool = False,
) -> Path:
    """Train the bundle of setup ``name`` on a generated corpus, with ``vidfilter train``'s defaults
    (``Config()``: on a CPU the fast width-16 network, 128 px crops) and the setup's polarity.

    ``init`` continues from a bundle's weights and ``crop`` sets the crop side: a second stage on
    larger crops (a curriculum on crop size) shows the network more context around each pixel.
    ``targets`` (:data:`TARGETS`): ``clean`` (the default) trains on (frame, true background) pairs,
    which the generator can give and a user's recording cannot; ``pairs`` on time-lag pairs of the corpus."""
    from vidfilter.config import Config
    from vidfilter.train.loop import train

    setup = _setup(name)
    out = Path(out)
    work = Path(work) if work is not None else out.with_name(out.stem + ".corpus")
    if targets not in TARGETS:
        raise ConfigError(f"targets {targets!r}: choose one of {', '.join(TARGETS)}")
    clean = targets == "clean"
    paths = corpus(name, work, recordings=recordings, seed=seed, backgrounds=clean)
    over: dict[str, Any] = {"output.polarity": setup.polarity, "train.seed": seed,
                            "train.steps": steps if steps is not None else 10**9, "train.minutes": minutes}
    if crop is not None:
        over["sampling.crop"] = crop
    over.update(overrides or {})
    cfg = Config().override(over)
    return train([str(p) for p in paths], out, cfg, resume=True, progress=progress, init_bundle=init,
                 targets=[str(background_path(p)) for p in paths] if clean else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vidfilter.train.pretrain", description=__doc__.split("\n")[0])
    ap.add_argument("setup", choices=sorted(SETUPS))
    ap.add_argument("--out", help="bundle to write (default: the shipped file in vidfilter/models/pretrained/)")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--work", help="where the generated corpus goes (default: next to the bundle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", help="continue from this bundle (a second curriculum stage)")
    ap.add_argument("--crop", type=int, help="crop side in px (default: vidfilter train's, 128 on a CPU)")
    ap.add_argument("--targets", choices=TARGETS, default="clean",
                    help="clean (default): each frame with its generated background (supervised); pairs: time-lag pairs of the corpus")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out) if args.out else pretrained_path(args.setup)
    path = pretrain(args.setup, out, minutes=args.minutes, steps=args.steps, recordings=args.recordings,
                    work=args.work, seed=args.seed, init=args.init, crop=args.crop, targets=args.targets, progress=True)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
