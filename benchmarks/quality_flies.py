"""Bright animals on a real recording: how much of each fly stays in the background, and how far the
background strays from the plate (``flies_sleap/clip.mp4``, 1500 frames of 1024², light flies on a
dark arena).

In this clip two flies rest in one place for frames 0-1000 and walk from about frame 1050 on; a third
fly near the top never moves. Without labels, each scored frame is compared with a reference made
from the *other* part of the clip: the per-pixel median of every 10th frame of frames >= 1050 for
frames < 1000 (the walking flies have left their resting places), and of frames < 1000 for frames
>= 1050. Fly pixels are where the frame exceeds that reference by more than 25 grey levels. Per
method and part:

- **kept**: the share of the flies' contrast that stays in the background, mean over fly pixels of
  ``(background - reference) / (frame - reference)`` (0 = the fly is removed, 1 = kept whole);
- **plate error**: the mean ``|background - reference|`` over the pixels farther than 8 px from any
  fly pixel (grey levels);
- **plate error, resting places out**: the same without the places where the two references differ
  by more than 25 levels (grown by 8 px): there the reference of the walking part still shows the
  resting flies, so a background that removed them (as it should) is counted wrong by the plain
  plate error of the walking part (13,613 px).

The fly that never moves is in both references, so it is scored on its own, as **still fly kept**:
a fly in every frame stays in the min projection (of every 30th frame), and its mask is the largest
connected component where that projection exceeds its own 61 px median filter by more than 10 grey
levels, opened twice (~780 px near (366, 588): a blurred, out-of-focus fly, 15-30 levels above the
floor; checked by eye). Over every 100th frame, the cell is the share of its contrast over the
frame's 61 px median filter (the plate around it) that stays in the background.
Every 25th frame of each part is scored. Methods: the baselines ``min`` and ``median`` of the whole
clip; each shipped bundle (those of dark animals with the frames inverted, ``infer.invert``: the
network sees ``255 - frame``; ``bright-arena`` as it is); ``--model auto`` (what it picks); with
``--init-minutes M`` that bundle fine-tuned on the clip (``vidfilter train --init``) for M minutes;
with ``--train-minutes M``, ``vidfilter train`` with the defaults; with ``--bundle PATH``, any bundle file.

    python benchmarks/quality_flies.py [--data DIR] [--init-minutes 2] [--train-minutes 3] [--out benchmarks/results/quality_flies.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from _common import bundle_methods, machine, training_methods
from quality_real import data_root

REPO = Path(__file__).resolve().parents[1]
VIDEO = "flies_sleap/clip.mp4"
RESTING, WALKING = (0, 1000), (1050, 1500)
FLY_LEVEL, MARGIN, SCORE_STEP = 25.0, 8, 25
STILL_FILTER, STILL_LEVEL = 61, 10.0


def references(src: Any) -> dict[str, np.ndarray]:
    """Per part, the median of every 10th frame of the other part (float32 grey levels)."""
    from vidfilter.io.source import to_gray

    def med(lo: int, hi: int) -> np.ndarray:
        return np.median(np.stack([to_gray(np.asarray(src[t])) for t in range(lo, hi, 10)]), axis=0).astype(np.float32)

    return {"resting": med(*WALKING), "walking": med(*RESTING)}


def resting_places(refs: dict[str, np.ndarray]) -> np.ndarray:
    """Where the two references differ by more than ``FLY_LEVEL`` (the resting flies), grown by ``MARGIN``."""
    return ndimage.binary_dilation(np.abs(refs["resting"] - refs["walking"]) > FLY_LEVEL, iterations=MARGIN)


def score_part(src: Any, background: Any, ref: np.ndarray, frames: range, places: np.ndarray | None = None) -> dict[str, float]:
    """kept and plate errors (see the module) over ``frames``; ``background(t)`` gives a frame's background."""
    from vidfilter.io.source import to_gray

    num = den = 0.0
    err = np.zeros(2)
    n_err = np.zeros(2)
    for t in frames:
        f = to_gray(np.asarray(src[t])).astype(np.float32)
        b = np.asarray(background(t), np.float32)
        fly = (f - ref) > FLY_LEVEL
        num += float(np.clip(b - ref, 0, None)[fly].sum())
        den += float((f - ref)[fly].sum())
        far = ~ndimage.binary_dilation(fly, iterations=MARGIN)
        for k, region in enumerate((far, far & ~places if places is not None else far)):
            err[k] += float(np.abs(b - ref)[region].sum())
            n_err[k] += float(region.sum())
    e = [float(x / n) if n else float("nan") for x, n in zip(err, n_err)]
    return {"kept": num / den if den else float("nan"), "plate_error": e[0], "plate_error_places_out": e[1]}


def still_fly(src: Any) -> np.ndarray:
    """The mask of the fly that never moves (see the module)."""
    import cv2

    from vidfilter.io.source import to_gray

    low = None
    for t in range(0, len(src), 30):
        f = to_gray(np.asarray(src[t]))
        low = f.copy() if low is None else np.minimum(low, f)
    bright = ndimage.binary_opening((low.astype(np.float32) - cv2.medianBlur(low, STILL_FILTER)) > STILL_LEVEL, iterations=2)
    lab, n = ndimage.label(bright)
    if not n:
        return bright
    return lab == 1 + int(np.argmax(ndimage.sum(bright, lab, range(1, n + 1))))


def score_still(src: Any, background: Any, mask: np.ndarray) -> float:
    """The share of the still fly's contrast (over the frame's median filter) kept in the background."""
    import cv2

    from vidfilter.io.source import to_gray

    num = den = 0.0
    for t in range(0, len(src), 100):
        f = to_gray(np.asarray(src[t]))
        plate = cv2.medianBlur(f, STILL_FILTER).astype(np.float32)
        num += float(np.clip(np.asarray(background(t), np.float32) - plate, 0, None)[mask].sum())
        den += float((f - plate)[mask].sum())
    return num / den if den else float("nan")


def run_and_score(video: Path, out: Path, model: Any, method: str, config: Any, src: Any, refs: dict) -> dict[str, Any]:
    import zarr

    from vidfilter.api import run

    t0 = time.perf_counter()
    result = run(str(video), out, model=model, method=method, config=config)
    secs = time.perf_counter() - t0
    if not result.ok:
        return {"error": result.error}
    import vidfilter

    bg = vidfilter.open(str(out / "background"))
    row = {"seconds": round(secs, 1)}
    for part, (lo, hi) in (("resting", RESTING), ("walking", WALKING)):
        row[part] = score_part(src, lambda t: np.asarray(bg[t]).squeeze(), refs[part], range(lo, hi, SCORE_STEP),
                               refs["places"])
    row["still_fly_kept"] = score_still(src, lambda t: np.asarray(bg[t]).squeeze(), refs["still_fly"])
    del zarr
    return row


def preview(src: Any, out_dirs: dict[str, Path], path: Path, t: int = 500) -> None:
    """One frame and each method's background side by side (downsampled), for the fly that never moves."""
    import cv2

    import vidfilter
    from vidfilter.io.source import to_gray

    tiles = [to_gray(np.asarray(src[t]))]
    for label, d in out_dirs.items():
        tiles.append(np.asarray(vidfilter.open(str(d / "background"))[t]).squeeze())
    small = [cv2.resize(np.ascontiguousarray(x), (384, 384), interpolation=cv2.INTER_AREA) for x in tiles]
    img = np.hstack(small)
    for k, label in enumerate(["frame", *out_dirs]):
        cv2.putText(img, label[:40], (4 + 384 * k, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared data folder holding flies_sleap/")
    ap.add_argument("--train-minutes", type=float, default=0.0, help="also train a model with the defaults for M minutes")
    ap.add_argument("--init-minutes", type=float, default=0.0,
                    help="also fine-tune the bundle --model auto picks (vidfilter train --init) for M minutes")
    ap.add_argument("--bundle", action="append", default=[], help="also score this bundle file (repeatable)")
    ap.add_argument("--work", default="/tmp/vidfilter_quality_flies")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_flies.json"))
    args = ap.parse_args(argv)

    import vidfilter
    from vidfilter.config import Config

    video = data_root(args.data).resolve() / VIDEO
    if not video.is_file():
        print(f"{video} not found; skipping")
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = vidfilter.open(str(video))
    refs = references(src)
    refs.update(still_fly=still_fly(src), places=resting_places(refs))
    from vidfilter.api import auto_model

    methods = {"min": (None, "min", Config()), "median": (None, "median", Config()), **bundle_methods("bright")}
    for path in args.bundle:
        methods[Path(path).name] = (path, "model", Config())
    lines: list[str] = []
    auto, auto_cfg = auto_model([str(video)], work / "auto.zarr", None, Config(), say=lines.append)
    methods[f"--model auto ({auto})"] = (auto, "model", auto_cfg)
    methods.update(training_methods([str(video)], work, auto, auto_cfg, init_minutes=args.init_minutes,
                                    train_minutes=args.train_minutes))
    result: dict[str, Any] = {
        "benchmark": "quality_flies", "video": VIDEO, "auto_line": lines[0],
        "protocol": {"resting": RESTING, "walking": WALKING, "fly_level": FLY_LEVEL, "margin": MARGIN, "every": SCORE_STEP,
                     "still_fly_pixels": int(refs["still_fly"].sum()),
                     "still_fly_centre": [round(float(c)) for c in ndimage.center_of_mass(refs["still_fly"])]},
        "machine": machine(),
        "rows": {},
    }
    dirs: dict[str, Path] = {}
    for label, (model, method, cfg) in methods.items():
        d = work / (label.split(" (")[0].replace(" ", "_").replace(",", "") + ".zarr")
        cfg = cfg.override({"output.overwrite": True})
        result["rows"][label] = run_and_score(video, d, model, method, cfg, src, refs)
        dirs[label] = d
        print(label, json.dumps(result["rows"][label]), flush=True)
    preview(src, dirs, Path(args.out).with_suffix(".png"))
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("\n| method | resting flies kept | walking flies kept | still fly kept | plate error, resting / walking "
          "| the same, resting places out |")
    print("|---|---|---|---|---|---|")
    for label, r in result["rows"].items():
        if "error" in r:
            print(f"| {label} | {r['error']} | | | | |")
            continue
        print(f"| {label} | {r['resting']['kept']:.3f} | {r['walking']['kept']:.3f} | {r['still_fly_kept']:.3f} | "
              f"{r['resting']['plate_error']:.2f} / {r['walking']['plate_error']:.2f} | "
              f"{r['resting']['plate_error_places_out']:.2f} / {r['walking']['plate_error_places_out']:.2f} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
