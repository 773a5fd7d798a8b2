"""Polarity detection on real and generated recordings: the verdict and its evidence per case.

``vidfilter train`` with ``output.polarity: auto`` asks :func:`vidfilter.polarity.polarity_evidence`
whether the animals are darker or lighter than the plate. A wrong or undecided answer costs a whole
training (mouse window 9490: ``absolute``, pixel IoU .075 against .776 with ``--polarity dark``), so
this prints, for every case, the expected polarity, the verdict and the dark:bright ratio (the
verdict needs 1.5:1):

- real recordings in ``../shared/data`` (worms, the full mouse video, 10 s windows of it, flies, the
  bundled demo clip, the zebrafish larva, dark on a light dish, which barely moves);
- generated recordings (``vidfilter.synth``) of both polarities: crawling, never-moving and slow
  animals, plate tracks, a camera shift, exposure drift, an open arena with a rim and a wall, and one
  animal resting against a wall of its own sign.

Usage::

    python benchmarks/polarity.py [--data DIR] [--out benchmarks/results/polarity.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from quality_real import data_root

REPO = Path(__file__).resolve().parents[1]
MOUSE_WINDOWS = (1430, 6690, 9490, 500, 2500, 4500, 6500, 8500, 9500)


def resting_against_wall(polarity: str, seed: int, size: int = 192, n: int = 24) -> np.ndarray:
    """One 20 x 14 px animal resting against a wall as dark (bright) as itself, shifting 2-3 px."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    floor, wall, animal = (160.0, 48.0, 30.0) if polarity == "dark" else (60.0, 190.0, 210.0)
    plate = np.where(xx < size * 0.3, wall, floor)
    frames = []
    for t in range(n):
        cy, cx = size / 2 + 3 * np.sin(t / 3 + seed), size * 0.3 + 7 + 2 * np.cos(t / 2 + seed)
        body = ((yy - cy) / 10) ** 2 + ((xx - cx) / 7) ** 2 < 1
        f = ndimage.gaussian_filter(np.where(body, animal, plate), 1.0) + rng.normal(0, 2, plate.shape)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(frames)


def generated_cases(seeds: int) -> list[tuple[str, str, Any]]:
    from vidfilter.synth import make_recording

    scenarios: dict[str, dict[str, Any]] = {
        "moving": {}, "immobile": {"n_still": 3}, "slow": {"speed": 0.3}, "tracks": {"tracks": True},
        "shift": {"shift_at": 12, "shift_px": (3, 2)}, "drift": {"illumination_drift": 0.08},
    }
    cases = []
    for pol in ("dark", "bright"):
        for seed in range(seeds):
            size = (96, 160, 256)[seed % 3]
            for name, kw in scenarios.items():
                cases.append((f"gen {name} {size}px s{seed}", pol, lambda kw=kw, size=size, seed=seed, pol=pol:
                              make_recording(24, size, size, n_animals=4, seed=seed, polarity=pol, **kw)))
            size = (128, 192, 256)[seed % 3]
            for name, speed in (("arena", 2.0), ("arena still", 0.2)):
                cases.append((f"gen {name} {size}px s{seed}", pol, lambda speed=speed, size=size, seed=seed, pol=pol:
                              make_recording(24, size, size, seed=seed, polarity=pol, rim=True, wall=60.0, n_animals=1,
                                             animal_length=size / 8, animal_width=size / 16, speed=speed)))
            cases.append((f"gen against-wall s{seed}", pol, lambda seed=seed, pol=pol: resting_against_wall(pol, seed)))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="shared data folder")
    ap.add_argument("--seeds", type=int, default=6, help="generated draws per scenario and polarity")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "polarity.json"))
    args = ap.parse_args(argv)

    from vidfilter.io.array_source import ArrayFrameSource
    from vidfilter.io.registry import open as open_source
    from vidfilter.io.source import to_gray
    from vidfilter.polarity import polarity_evidence

    rows: list[dict[str, Any]] = []

    def record(name: str, want: str | None, src: Any) -> None:
        t0 = time.perf_counter()
        ev = polarity_evidence(src)
        rows.append({"case": name, "expected": want, "verdict": ev.polarity, "dark": ev.dark, "bright": ev.bright,
                     "changed": ev.changed, "pixels": ev.pixels, "describe": ev.describe(),
                     "seconds": round(time.perf_counter() - t0, 3)})
        ok = "" if want is None else ("ok" if ev.polarity == want else "WRONG" if ev.polarity != "absolute" else "undecided")
        print(f"{name:32s} {want or '-':7s} {ok:9s} {ev.describe()}", flush=True)

    root = data_root(args.data).resolve()
    real = [("worms_yolo_640/frames", "dark"), ("flies_sleap/clip.mp4", "bright"), ("zebrafish_larva", "dark"),
            ("mouse_tracktor/mouse_video.mp4", "dark")]
    for rel, want in real:
        path = root / rel
        if not path.exists():
            print(f"{rel}: not found, skipped")
            continue
        with open_source(str(path)) as src:
            record(rel, want, src)
            if rel.startswith("mouse"):
                for start in MOUSE_WINDOWS:
                    window = np.stack([to_gray(np.asarray(f)) for f in src.iter(start, start + 300)])
                    record(f"mouse window {start}-{start + 299}", "dark", ArrayFrameSource(window))
    with open_source(str(REPO / "examples" / "mouse_clip.mp4")) as src:
        record("examples/mouse_clip.mp4 (demo)", "dark", src)
    for name, want, make in generated_cases(args.seeds):
        rec = make()
        frames = rec if isinstance(rec, np.ndarray) else np.stack([rec.frame(t).frame for t in range(24)])
        record(name, want, ArrayFrameSource(frames))

    scored = [r for r in rows if r["expected"]]
    right = sum(r["verdict"] == r["expected"] for r in scored)
    wrong = sum(r["verdict"] not in (r["expected"], "absolute") for r in scored)
    print(f"\n{right}/{len(scored)} right, {wrong} wrong, {len(scored) - right - wrong} undecided (absolute)")
    worst = min(scored, key=lambda r: (r["dark"] / max(r["bright"], 1e-12)) if r["expected"] == "dark"
                else (r["bright"] / max(r["dark"], 1e-12)))
    print(f"smallest margin: {worst['case']}: {worst['describe']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "polarity", "machine": {"python": platform.python_version(),
                                                                    "platform": platform.platform()},
                               "right": right, "wrong": wrong, "scored": len(scored), "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
