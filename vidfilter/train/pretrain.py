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
for seconds between runs). ``bright-arena`` (512 px) holds light animals on a dark floor, sized
after the flies of ``flies_sleap`` (1024 px frames: flies ~95 px long and ~35 px wide at ~170-200
grey levels on a floor of ~15) and widened to other insect-sized bodies and, in a quarter of the
recordings, thin bright animals; up to one animal rests through a whole recording.

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
    python -m vidfilter.train.pretrain bright-arena --minutes 40 --recordings 12   # one thread: 9442 steps

(what the shipped file's provenance records: its ``config``, ``inputs`` and ``targets`` say how it was made).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vidfilter.errors import ConfigError
from vidfilter.models.shipped import resolve_init
from vidfilter.train.corpus import (
    REPLAY_RECORDINGS, SETUPS, TARGETS, Setup, _setup, background_path, corpus, pretrained_path, replay_corpus,
)

__all__ = ["REPLAY_RECORDINGS", "SETUPS", "Setup", "TARGETS", "background_path", "corpus", "pretrain", "pretrained_path",
           "replay_corpus", "resolve_init"]


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
