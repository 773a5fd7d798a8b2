"""Quality on a real open-field recording: short windows of ``mouse_tracktor`` against a long-range reference.

A user's first recording is short. In a 10 s clip a resting mouse sits in one place, so a median or
max projection of that clip keeps it as background, and a network trained on the clip's own
time-lag pairs learns to keep it too (issue 10, "the identity trap"). This benchmark measures that
on real frames without labels:

- **reference background** ``R``: the per-pixel median of frames 450, 470, ... of the 10 000-frame
  video (478 frames over 5 min, after the exposure has settled). The mouse crosses the whole arena
  in that time, so ``R`` is the empty arena; every method below sees only its window (300 of the
  10 000 frames), never ``R``;
- **the mouse** in frame ``t``: the largest 8-connected component of ``R - frame > 25`` grey levels
  (the mouse is ~100 levels darker than the floor; holes filled; at least 200 px). Its mask and box
  are the ground truth;
- **windows**: 300 consecutive frames (10 s at 30 fps), written losslessly (FFV1), the recording a
  user would hand to ``vidfilter``. ``still`` windows: the mouse's reference centroid (sampled every
  20 frames) stays within 30 px over the window (less than the mouse is long, so it covers part of
  its own place throughout); ``moving``: it travels more than 300 px. The stillest windows (smallest
  span) and the most moving ones (longest path), at least 1500 frames apart, are used;
- **scores** on every 5th frame of a window: pixel precision / recall / IoU of the method's mask
  against the mouse's mask, and box F1 (components of at least 100 px, Hungarian matching, a match
  when IoU > 0.5). The mask is ``|background - frame| > 25``, the reference's own rule: a mask
  with a lower threshold (the object mask, hysteresis down to a few grey levels) also takes the
  mouse's soft shadow and blurred edge, which this reference leaves out, so it is not scored here.

Methods: the baselines (max, median, MOG2, KNN) on the window; ``model``: ``vidfilter train WINDOW
--minutes M`` (the defaults) then ``vidfilter run`` (defaults, keyframes included); ``open-arena`` /
``worm-plate``: the shipped bundles through ``vidfilter run`` with no training; ``open-arena+ft``:
``vidfilter train --init open-arena`` for the same minutes (the defaults: targets anchored to the
bundle where it sees an animal, ``train.anchor``); ``open-arena+ft-unanchored``: the same with
``train.anchor: false``; ``open-arena+ft-replay``: anchored, and half of each batch replayed from the
bundle's own corpus (``train.replay: 0.5``). Ratios are against the best baseline in
the same window and mask.

The reference is a long-range median, not labels: where the mouse is light (ears, tail) or sits on
the dark wall it is missed, and compression noise above 25 levels counts as false positives for
every method alike.

Usage::

    python benchmarks/quality_arena.py [--data DIR] [--train-minutes 5 | --train-steps N] [--still 2] [--moving 1] [--only START ...]
        [--methods max,median,mog2,knn] [--rows model,open-arena,open-arena+ft,worm-plate]
        [--bundle LABEL=PATH ...]
        [--out benchmarks/results/quality_arena.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from quality_real import baseline, data_root, fmt, run_method, train_default_model, write_result

REPO = Path(__file__).resolve().parents[1]
VIDEO = "mouse_tracktor/mouse_video.mp4"
#: fine-tuning rows: the config settings on top of the defaults
FINE_TUNING: dict[str, dict[str, Any]] = {
    "open-arena+ft": {}, "open-arena+ft-unanchored": {"train.anchor": False}, "open-arena+ft-replay": {"train.replay": 0.5},
}
#: fine-tuning rows score the tuned network (train.guard false); a row "ROW (defaults)" beside each
#: scores what `vidfilter train --init` writes: that network, or the starting bundle when the check
#: at the end of fine-tuning (vidfilter.train.guard) finds the tuned one worse
UNGUARDED = {"train.guard": False}
SETTLED, REF_STEP = 450, 20  # exposure settles by frame ~450 (shared/data/README.md)
WINDOW, SCORE_STEP = 300, 5
GT_THRESHOLD, GT_MIN_AREA, MIN_AREA = 25.0, 200, 100
STILL_SPAN, MOVING_PATH, SPACING = 30.0, 300.0, 1500


def reference(src: Any) -> np.ndarray:
    """The empty arena: per-pixel median of frames SETTLED, SETTLED + REF_STEP, ... (float32 grey levels)."""
    stack = np.stack([src[t] for t in range(SETTLED, len(src), REF_STEP)])  # 478 x 480 x 640 uint8: 147 MB
    return np.median(stack, axis=0).astype(np.float32)


def mouse_mask(frame: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The ground-truth mouse: largest component of ``ref - frame > 25``, holes filled (empty if < 200 px)."""
    fg = (ref - frame.astype(np.float32)) > GT_THRESHOLD
    lab, n = ndimage.label(fg, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros_like(fg)
    sizes = ndimage.sum(fg, lab, range(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    if sizes[k - 1] < GT_MIN_AREA:
        return np.zeros_like(fg)
    return ndimage.binary_fill_holes(lab == k)


def box_of(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros((0, 4))
    ys, xs = np.nonzero(mask)
    return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float64)


def choose_windows(src: Any, ref: np.ndarray, n_still: int, n_moving: int) -> list[dict[str, Any]]:
    """Windows by the rule of the module docstring, from the mouse's reference centroid every 20 frames."""
    ts = list(range(SETTLED, len(src), REF_STEP))
    cent = []
    for t in ts:
        m = mouse_mask(src[t], ref)
        cent.append(np.argwhere(m).mean(axis=0) if m.any() else (np.nan, np.nan))
    cent = np.asarray(cent, dtype=np.float64)
    per = WINDOW // REF_STEP
    cands: list[dict[str, Any]] = []
    for i in range(len(ts) - per + 1):
        c = cent[i:i + per]
        if ts[i] + WINDOW > len(src) or np.isnan(c).any():
            continue
        span = float(np.max(np.hypot(*(c - c[0]).T)))
        path = float(np.sum(np.hypot(*np.diff(c, axis=0).T)))
        kind = "still" if span < STILL_SPAN else "moving" if path > MOVING_PATH else None
        if kind is not None:
            cands.append({"kind": kind, "start": ts[i], "span_px": round(span, 1), "path_px": round(path, 1)})
    chosen: list[dict[str, Any]] = []
    for kind, n, key in (("still", n_still, lambda w: w["span_px"]), ("moving", n_moving, lambda w: -w["path_px"])):
        for w in sorted((w for w in cands if w["kind"] == kind), key=key):
            if sum(x["kind"] == kind for x in chosen) == n:
                break
            if all(abs(w["start"] - x["start"]) >= SPACING for x in chosen):
                chosen.append(w)
    return sorted(chosen, key=lambda w: w["start"])


def write_window(src: Any, start: int, out: Path) -> Path:
    from vidfilter.io.export import write_frames

    if not out.exists():
        write_frames((src[t] for t in range(start, start + WINDOW)), out, frame_shape=src.shape[1:], dtype=np.uint8,
                     n_frames=WINDOW, fps=src.fps)
    return out


def score_window(path: Path, ref_window: list[np.ndarray], methods: dict[str, Any]) -> list[dict[str, Any]]:
    from vidfilter.polarity import threshold_mask
    from vidfilter.eval.score import score_backgrounds
    from vidfilter.io.registry import open as open_source

    src = open_source(path)
    frames = list(range(0, WINDOW, SCORE_STEP))
    gt_masks = {t: m for t, m in zip(frames, ref_window)}
    gt_boxes = {t: box_of(m) for t, m in gt_masks.items()}
    mask_fn = {"fixed25": partial(threshold_mask, threshold=GT_THRESHOLD, polarity="absolute")}
    rows = []
    for name, method in methods.items():
        t0 = time.perf_counter()
        bgs = list(method(src, frames))
        secs = time.perf_counter() - t0
        res = score_backgrounds(src, bgs, gt_boxes, frames=frames, gt_masks=gt_masks, mask_fn=mask_fn,
                                min_area=MIN_AREA, connectivity=8, iou_threshold=0.5)
        for m, r in res.items():
            rows.append({"method": name, "mask": m, "seconds": round(secs, 1), **r.as_dict()})
    return rows


def table(windows: list[dict[str, Any]], masks: list[str]) -> str:
    lines = []
    for w in windows:
        lines.append(f"\n{w['kind']} window, frames {w['start']}-{w['start'] + WINDOW - 1} "
                     f"(mouse centroid span {w['span_px']} px, path {w['path_px']} px)")
        lines.append(f"{'method':<16}{'mask':<9}{'pix P':>7}{'pix R':>7}{'IoU':>7}{'box F1':>8}{'x best base':>12}{'s':>7}")
        for r in w["rows"]:
            if r["mask"] not in masks:
                continue
            lines.append(f"{r['method']:<16}{r['mask']:<9}{fmt(r['pixel']['precision']):>7}{fmt(r['pixel']['recall']):>7}"
                         f"{fmt(r['pixel']['iou']):>7}{fmt(r['box']['f1']):>8}{fmt(r.get('iou_vs_best_baseline'), 2):>12}"
                         f"{r['seconds']:>7.0f}")
    return "\n".join(lines)


def summary(windows: list[dict[str, Any]]) -> str:
    """Pixel IoU / box F1 per method and window (the README table)."""
    names = list(dict.fromkeys(r["method"] for w in windows for r in w["rows"]))
    head = "".join(f"{w['kind'] + '@' + str(w['start']):>16}" for w in windows)
    lines = [f"{'pixel IoU / box F1':<16}{head}"]
    for n in names:
        cells = []
        for w in windows:
            r = next((r for r in w["rows"] if r["method"] == n), None)
            cells.append(f"{fmt(r['pixel']['iou']) + ' / ' + fmt(r['box']['f1']) if r else '-':>16}")
        lines.append(f"{n:<16}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared data folder holding mouse_tracktor/")
    ap.add_argument("--train-minutes", type=float, default=5.0, help="training budget of the model rows (0: none)")
    ap.add_argument("--train-steps", type=int, help="instead of minutes: N steps per model row (machine- and load-independent)")
    ap.add_argument("--still", type=int, default=2, help="number of still windows")
    ap.add_argument("--moving", type=int, default=1, help="number of moving windows")
    ap.add_argument("--only", type=int, action="append", default=[], metavar="START",
                    help="run only the chosen window that starts at START (repeatable; the choice itself is unchanged)")
    ap.add_argument("--methods", default="max,median,mog2,knn", help="comma list of baselines")
    ap.add_argument("--rows", default="model,open-arena,open-arena+ft,worm-plate", help="model rows")
    ap.add_argument("--bundle", action="append", default=[], metavar="LABEL=PATH",
                    help="also score this bundle as row LABEL, no training (e.g. a candidate before it is shipped)")
    ap.add_argument("--work", default="/tmp/vidfilter_quality_arena")
    ap.add_argument("--refine", choices=["full", "snap", "off"], help="the model rows' infer.refine (default: the config's)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_arena.json"))
    args = ap.parse_args(argv)
    if args.refine:
        import quality_real

        quality_real.MODEL_OVERRIDES["infer.refine"] = args.refine

    video = data_root(args.data).resolve() / VIDEO
    if not video.is_file():
        print(f"skipped: {video} not found (pass --data or set VIDFILTER_SHARED_DATA)")
        return 0
    from vidfilter.io.registry import open as open_source

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = open_source(video)
    t0 = time.perf_counter()
    ref = reference(src)
    windows = choose_windows(src, ref, args.still, args.moving)
    if args.only:
        missing = sorted(set(args.only) - {w["start"] for w in windows})
        if missing:
            ap.error(f"--only {missing}: no such window; the chosen ones start at {[w['start'] for w in windows]}")
        windows = [w for w in windows if w["start"] in args.only]
    print(f"reference from {len(range(SETTLED, len(src), REF_STEP))} frames and {len(windows)} windows in "
          f"{time.perf_counter() - t0:.0f} s: " + ", ".join(f"{w['kind']}@{w['start']}" for w in windows))
    baselines = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows_wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    extra = dict(b.split("=", 1) for b in args.bundle)
    result = {
        "benchmark": "quality_arena",
        "data": str(video),
        "protocol": {
            "reference": f"per-pixel median of frames {SETTLED}::{REF_STEP}",
            "ground_truth": f"largest 8-connected component of reference - frame > {GT_THRESHOLD:g}, holes filled, >= {GT_MIN_AREA} px",
            "window_frames": WINDOW, "scored_every": SCORE_STEP,
            "windows": f"still: centroid span < {STILL_SPAN:g} px; moving: path > {MOVING_PATH:g} px; >= {SPACING} frames apart",
            "mask": f"|background - frame| > {GT_THRESHOLD:g}",
            "boxes": f"components >= {MIN_AREA} px, Hungarian, IoU > 0.5",
        },
        "train_minutes": args.train_minutes, "train_steps": args.train_steps, "extra_bundles": extra,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "windows": windows, "complete": False,
    }
    for w in windows:
        path = write_window(src, w["start"], work / f"mouse_{w['start']}.mkv")
        gt = [mouse_mask(src[w["start"] + t], ref) for t in range(0, WINDOW, SCORE_STEP)]
        w["mouse_px"] = float(np.mean([m.sum() for m in gt]))
        methods: dict[str, Any] = {b: baseline(b) for b in baselines}
        w["training"] = {}
        for row in rows_wanted:
            if row in ("open-arena", "worm-plate"):
                (work / row).mkdir(exist_ok=True)
                methods[row] = run_method(row, work / row)
            elif (row in FINE_TUNING or row == "model") and (args.train_minutes or args.train_steps):
                init = None if row == "model" else "open-arena"
                info = train_default_model(path, args.train_minutes, work / f"{path.stem}_{row}.vfm", init,
                                           args.train_steps, None if init is None else {**FINE_TUNING[row], **UNGUARDED})
                w["training"][row] = info
                print(f"  {w['kind']}@{w['start']} {row}: {info['steps']} steps, {info['verdict']}; check {info['check']}")
                (work / row).mkdir(exist_ok=True)
                methods[row] = run_method(info["bundle"], work / row)
                if init is not None:
                    (work / f"{row}-defaults").mkdir(exist_ok=True)
                    accepted = (info["check"] or {}).get("accepted")
                    methods[f"{row} (defaults)"] = run_method(info["bundle"] if accepted else init, work / f"{row}-defaults")
        for label, bundle in extra.items():
            (work / label).mkdir(exist_ok=True)
            methods[label] = run_method(bundle, work / label)
        w["rows"] = score_window(path, gt, methods)
        for r in w["rows"]:
            best = max((b["pixel"]["iou"] for b in w["rows"] if b["method"] in baselines and b["mask"] == r["mask"]),
                       default=None)
            r["iou_vs_best_baseline"] = r["pixel"]["iou"] / best if best else None
        print(table([w], ["fixed25"]))
        write_result(args.out, result)  # after every window: a run that stops keeps what it scored

    result["complete"] = True
    out = write_result(args.out, result)
    print("\n" + summary(windows))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
