"""Tracking: does vidfilter's preprocessing make a real tracker better?

Every mask sequence below goes to the same linker, :func:`vidfilter.track.track_masks` with its
defaults (``min_area`` 50 px, ``max_distance`` 30 px, ``max_gap`` 30 frames), and the tracks are
scored against the exact trajectories of generated recordings with ``motmetrics`` (MOTA, IDF1, ID
switches; a track point matches a true animal when its centroid lies within 20 px of the animal's,
a bit under half a worm's length).

Generated recordings (``vidfilter.synth.SyntheticRecording``: dark worm-like animals, 48 x 5 px, on
a textured plate with vignette and sensor noise; written as H.264, crf 18). Full mode: 400 frames of
384 x 384; ``--quick``: 150 frames of 256 x 256. One recording per case:

- ``crawling``: 5 crawling worms;
- ``immobile``: 4 crawling worms and 2 that never move (at most 0.5 px over the recording);
- ``touching``: 2 crawling worms and two blob-like animals (ellipses 22 x 14 px) that approach,
  touch for ~20 frames (the pair turns while in contact) and part, twice (rendered here over the
  plate of a ``SyntheticRecording``; their true centroids are the ellipse centres);
- ``shift``: 5 crawling worms, the camera moves by (12, -9) px half-way;
- ``drift``: 5 crawling worms, illumination gain ``1 + 0.25 sin(2 pi t / T)``.

The worms' true centroid is the centroid of their pixels in the recording's label image (the pixels
they change by at least 10 grey levels), so a perfect segmentation scores MOTA 1.

Mask rows (``vidfilter.run(..., config=output.mask on, output.polarity dark)``, the fixed rule
``background - frame > 10`` grey levels; the baselines' polarity set to dark as the animals are):

- ``model``: ``vidfilter.train(recording, train.minutes M)`` (``Config()`` defaults otherwise; 1.5
  min full, 0.25 min quick), then ``vidfilter.run(model=that.vfm)``;
- ``worm-plate``: the shipped bundle, no training;
- ``median`` / ``max``: vidfilter's baselines (the max projection is the one for dark animals);
- ``mog2``: vidfilter's MOG2 baseline (OpenCV's, history 500, shadows off) under the same mask rule;
- ``mog2-own``: OpenCV MOG2's own foreground mask (``createBackgroundSubtractorMOG2()`` defaults,
  ``detectShadows=False``), as a user of OpenCV would take it;
- ``otsu``: ``skimage.filters.threshold_otsu`` per raw frame, pixels at or below it (animals darker).

Real recordings (skipped when the shared data folder is absent): the first 3000 of the 10 000
frames of ``mouse_tracktor/mouse_video.mp4`` (to bound time; re-encoded H.264 crf 18) with the
shipped ``open-arena`` bundle, and the 100 frames of ``worms_yolo_640`` with ``worm-plate``; both
``vidfilter.run(..., mask on)`` then ``vidfilter.track(store)``; no ground truth, so object counts,
track counts and track lengths are reported, and a preview PNG of the tracks over a foreground
frame is written to ``benchmarks/results/tracking/``.

Needs ``motmetrics`` (not a vidfilter dependency): ``.venv/bin/python -m pip install motmetrics``.

Usage::

    python benchmarks/tracking.py [--quick] [--cases crawling,immobile,touching,shift,drift]
        [--rows model,worm-plate,median,max,mog2,mog2-own,otsu] [--train-minutes M] [--no-real]
        (--rows may also name median-registered, max-registered, running-median, knn)
        [--data DIR] [--work /tmp/vidfilter_tracking] [--out benchmarks/results/tracking.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import md_head, text_table
from infer import log, machine, revision
from quality_real import data_root, train_default_model, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MATCH_PX = 20.0
ANIMAL = {"animal_length": 48.0, "animal_width": 5.0}
MODES = {"full": {"frames": 400, "side": 384, "minutes": 1.5},
         "quick": {"frames": 150, "side": 256, "minutes": 0.25}}
ALL_CASES = ("crawling", "immobile", "touching", "shift", "drift")
ALL_ROWS = ("model", "worm-plate", "median", "max", "mog2", "mog2-own", "otsu")
#: Other vidfilter baselines a run may ask for with --rows (not in the default set).
MORE_ROWS = ("median-registered", "max-registered", "running-median", "knn")
MOUSE_FRAMES = 3000


# -- generated recordings ------------------------------------------------------------------------
def case_params(case: str, n: int) -> dict[str, Any]:
    """The :class:`~vidfilter.synth.RecordingParams` fields of a case (seed fixed per case)."""
    base = {"n_animals": 5, "speed": 1.5, "seed": 11, **ANIMAL}
    extra = {
        "crawling": {},
        "immobile": {"n_animals": 6, "n_still": 2, "seed": 12},
        "touching": {"n_animals": 2, "seed": 13},
        "shift": {"shift_at": n // 2, "shift_px": (12.0, -9.0), "seed": 14},
        "drift": {"illumination_drift": 0.25, "seed": 15},
    }[case]
    return {**base, **extra}


@dataclass
class BlobPair:
    """Two dark elliptical animals that approach, touch, turn together and part, twice per recording."""

    n: int
    side: int
    a: float = 11.0  # semi-axis along the pair's axis
    b: float = 7.0
    apart: float = 55.0  # extra half-distance at the widest
    contrast: float = 60.0

    def centres(self, t: int) -> np.ndarray:
        """(2, 2) true centres (y, x) of the two blobs in frame ``t``."""
        period, s = self.n / 2, 0.15
        half = (self.a - 1.5) + self.apart * max(0.0, abs(math.cos(math.pi * t / period)) - s) / (1 - s)
        theta = 0.3 + 0.5 * math.pi * t / self.n
        turn = 2 * math.pi * t / self.n  # the pair's midpoint circles 20 px around the centre once
        c = self.side / 2 + 20 * np.array([math.sin(turn), math.cos(turn)])
        u = np.array([math.sin(theta), math.cos(theta)])
        return np.stack([c + half * u, c - half * u])

    def coverage(self, t: int) -> list[np.ndarray]:
        """Anti-aliased coverage in [0, 1] of each blob (frame-sized, float32)."""
        theta = 0.3 + 0.5 * math.pi * t / self.n
        yy, xx = np.mgrid[0:self.side, 0:self.side].astype(np.float32)
        out = []
        for cy, cx in self.centres(t):
            u = (yy - cy) * math.sin(theta) + (xx - cx) * math.cos(theta)
            v = -(yy - cy) * math.cos(theta) + (xx - cx) * math.sin(theta)
            rho = np.sqrt((u / self.a) ** 2 + (v / self.b) ** 2)
            out.append(np.clip(0.5 - (rho - 1.0) * self.b, 0.0, 1.0).astype(np.float32))
        return out


class CaseRecording:
    """A generated case: frames (``len``, ``[t]``, ``fps`` for ``write_video``) and the true
    centroids of every animal in every frame rendered, gathered while the video is written."""

    def __init__(self, case: str, n: int, side: int) -> None:
        from vidfilter.synth import SyntheticRecording

        self.rec = SyntheticRecording(n, side, side, **case_params(case, n))
        self.pair = BlobPair(n, side) if case == "touching" else None
        self.fps = self.rec.fps
        self.n = n
        self.still = sorted(self.rec.still_labels)
        self.focus = self.still if case == "immobile" else [101, 102] if self.pair else []
        self.truth: dict[int, list[tuple[int, float, float]]] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t: int) -> np.ndarray:
        from scipy import ndimage

        frame, labels = self.rec[t], self.rec.labels(t)
        ids = [int(k) for k in np.unique(labels) if k]
        rows = [(k, *ndimage.center_of_mass(labels == k)) for k in ids]
        if self.pair is not None:
            cover = self.pair.coverage(t)
            dark = np.maximum(cover[0], cover[1]) * self.pair.contrast
            frame = np.clip(frame.astype(np.float32) - dark, 0, 255).round().astype(np.uint8)
            rows += [(101 + i, float(c[0]), float(c[1])) for i, c in enumerate(self.pair.centres(t))]
        self.truth[t] = rows
        return frame

    def truth_table(self) -> Any:
        import pandas as pd

        rows = [(t, k, y, x) for t in sorted(self.truth) for k, y, x in self.truth[t]]
        return pd.DataFrame(rows, columns=["frame", "id", "y", "x"])


def make_case(case: str, n: int, side: int, work: Path) -> tuple[Path, Any, CaseRecording]:
    """Write the case's H.264 video; return its path, the truth table and the recording."""
    from vidfilter.synth import write_video

    rec = CaseRecording(case, n, side)
    path = write_video(work / f"{case}.mp4", rec, crf=18)
    return path, rec.truth_table(), rec


# -- masks -----------------------------------------------------------------------------------------
def run_config(extra: dict[str, Any] | None = None) -> Any:
    from vidfilter.config import Config

    return Config().override({"output.mask": True, "output.polarity": "dark", "output.overwrite": True, **(extra or {})})


def store_masks(store: Path) -> Iterator[np.ndarray]:
    from vidfilter.io.registry import open as vf_open

    src = vf_open(store / "mask")
    try:
        for m in src.iter(0, len(src)):
            yield np.asarray(m) != 0
    finally:
        src.close()


def raw_frames(video: Path) -> Iterator[np.ndarray]:
    from vidfilter.io.registry import open as vf_open

    src = vf_open(video)
    try:
        yield from src.iter(0, len(src))
    finally:
        src.close()


def otsu_masks(video: Path) -> Iterator[np.ndarray]:
    from skimage.filters import threshold_otsu

    for f in raw_frames(video):
        yield f <= threshold_otsu(f)


def mog2_own_masks(video: Path) -> Iterator[np.ndarray]:
    import cv2

    sub = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
    for f in raw_frames(video):
        yield sub.apply(np.ascontiguousarray(f)) > 0


MaskRow = tuple[Callable[[], Iterator[np.ndarray]], dict[str, Any]]


def vidfilter_masks(video: Path, row: str, work: Path, minutes: float) -> MaskRow:
    """Run vidfilter for a mask row; the store's masks (as a generator factory) and what was done."""
    import vidfilter

    store = work / f"{video.stem}_{row}.zarr"
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if row == "model":
        info["training"] = train_default_model(video, minutes, work / f"{video.stem}.vfm")
        res = vidfilter.run(video, out=store, model=info["training"]["bundle"], config=run_config())
    elif row == "worm-plate":
        res = vidfilter.run(video, out=store, model="worm-plate", config=run_config())
    else:
        res = vidfilter.run(video, out=store, method=row, config=run_config())
    if not res.ok:
        raise RuntimeError(f"vidfilter.run {row} on {video.name} failed: {res.error}")
    info.update(seconds=round(time.perf_counter() - t0, 1), keyframes=res.keyframes, registration=res.registration)
    return (lambda: store_masks(store)), info


def masks_for(row: str, video: Path, work: Path, minutes: float) -> MaskRow:
    """The masks of a row (a generator factory: each call reads them again) and what was done for them."""
    if row == "otsu":
        return (lambda: otsu_masks(video)), {}
    if row == "mog2-own":
        return (lambda: mog2_own_masks(video)), {}
    return vidfilter_masks(video, row, work, minutes)


# -- tracking and scoring --------------------------------------------------------------------------
def link(masks: Iterator[np.ndarray]) -> tuple[Any, float, str | None]:
    """The tracks of a mask sequence (the linker's defaults), its seconds, and the linker's refusal if any."""
    from vidfilter.errors import ConfigError
    from vidfilter.track import track_masks

    t0 = time.perf_counter()
    try:
        df = track_masks(masks)
    except ConfigError as e:
        return None, time.perf_counter() - t0, str(e)
    return df, time.perf_counter() - t0, None


def score(truth: Any, tracks: Any, n_frames: int, focus: list[int]) -> dict[str, Any]:
    """motmetrics over every frame: MOTA, IDF1, switches, FP, FN; recall and switches of the ``focus`` animals."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    by_gt = dict(tuple(truth.groupby("frame")))
    by_hyp = dict(tuple(tracks.groupby("frame"))) if tracks is not None and len(tracks) else {}
    empty = np.zeros((0, 2))
    for t in range(n_frames):
        g, h = by_gt.get(t), by_hyp.get(t)
        gp = g[["y", "x"]].to_numpy() if g is not None else empty
        hp = h[["y", "x"]].to_numpy() if h is not None else empty
        d = mm.distances.norm2squared_matrix(gp, hp, max_d2=MATCH_PX**2)
        acc.update(g["id"].tolist() if g is not None else [], h["track_id"].tolist() if h is not None else [], d, frameid=t)
    names = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects", "mostly_tracked"]
    s = mm.metrics.create().compute(acc, metrics=names, name="case").iloc[0]
    out = {k: float(s[k]) for k in names}
    out["tracks"] = int(tracks["track_id"].nunique()) if tracks is not None and len(tracks) else 0
    out["animals"] = int(truth["id"].nunique())
    ev = acc.mot_events
    if focus:
        mine = ev[ev["OId"].isin(focus)]
        hit = mine["Type"].isin(["MATCH", "SWITCH"]).sum()
        out["focus_recall"] = float(hit / max(1, mine["Type"].isin(["MATCH", "SWITCH", "MISS"]).sum()))
        out["focus_switches"] = int((mine["Type"] == "SWITCH").sum())
    return out


def bench_case(case: str, mode: dict[str, Any], rows: list[str], work: Path, minutes: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    video, truth, rec = make_case(case, mode["frames"], mode["side"], work)
    res: dict[str, Any] = {"case": case, "frames": mode["frames"], "side": mode["side"],
                           "params": case_params(case, mode["frames"]), "focus_ids": rec.focus,
                           "render_seconds": round(time.perf_counter() - t0, 1), "rows": []}
    log(f"{case}: {video.name} written in {res['render_seconds']} s, {truth['id'].nunique()} animals")
    for row in rows:
        t1 = time.perf_counter()
        try:
            factory, info = masks_for(row, video, work, minutes)
            tracks, link_s, refused = link(factory())
        except Exception as e:  # a failing row is a result, not the end of the benchmark
            res["rows"].append({"row": row, "error": f"{type(e).__name__}: {e}"})
            log(f"  {row}: FAILED {e}")
            continue
        r = {"row": row, **info, "link_seconds": round(link_s, 1), "refused": refused,
             **score(truth, tracks, mode["frames"], rec.focus), "total_seconds": round(time.perf_counter() - t1, 1)}
        res["rows"].append(r)
        log(f"  {row}: MOTA {r['mota']:.3f} IDF1 {r['idf1']:.3f} IDsw {r['num_switches']:.0f} tracks {r['tracks']} "
            f"({r['total_seconds']} s)" + (f" linker refused: {refused}" if refused else ""))
    return res


# -- real recordings -------------------------------------------------------------------------------
class _Head:
    """The first ``n`` frames of a FrameSource, for ``write_video``."""

    def __init__(self, src: Any, n: int) -> None:
        self.src, self.n, self.fps = src, min(n, len(src)), src.fps or 30.0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t: int) -> np.ndarray:
        return np.asarray(self.src[t])


def mouse_clip(video: Path, work: Path) -> Path:
    from vidfilter.io.registry import open as vf_open
    from vidfilter.synth import write_video

    out = work / f"mouse_first{MOUSE_FRAMES}.mp4"
    if not out.exists():
        src = vf_open(video)
        try:
            write_video(out, _Head(src, MOUSE_FRAMES), crf=18)
        finally:
            src.close()
    return out


def track_lengths(df: Any) -> dict[str, Any]:
    """Objects, tracks, objects per frame and the track-length distribution (frames with the object)."""
    lengths = df.groupby("track_id").size().to_numpy() if len(df) else np.zeros(0)
    per_frame = df.groupby("frame").size() if len(df) else None
    pct = {f"p{q}": float(np.percentile(lengths, q)) for q in (10, 50, 90, 99)} if len(lengths) else {}
    return {"objects": int(len(df)), "tracks": int(len(lengths)), "length_percentiles": pct,
            "length_max": int(lengths.max()) if len(lengths) else 0,
            "tracks_over_100_frames": int((lengths > 100).sum()),
            "objects_per_frame_median": float(per_frame.median()) if per_frame is not None else 0.0}


def preview(store: Path, df: Any, title: str, png: Path) -> int:
    """Tracks (10 frames or longer) drawn over the foreground of the middle frame; the PNG's size in bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidfilter.io.registry import open as vf_open
    from vidfilter.polarity import grey_levels

    src = vf_open(store / "foreground")
    try:
        fg = grey_levels(src[len(src) // 2])
    finally:
        src.close()
    h, w = fg.shape[:2]
    fig, ax = plt.subplots(figsize=(6, 6 * h / w), dpi=90)
    ax.imshow(fg, cmap="gray_r", vmin=0, vmax=max(20.0, float(np.percentile(fg, 99.9))))
    long = [g for _, g in df.groupby("track_id") if len(g) >= 10] if len(df) else []
    cmap = plt.get_cmap("tab20")
    for i, g in enumerate(long):
        ax.plot(g["x"], g["y"], "-", lw=0.8, color=cmap(i % 20))
    ax.set_title(f"{title}: {len(long)} tracks of 10+ frames", fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png.stat().st_size


def bench_real(name: str, video: Path, bundle: str, work: Path, frames_note: str) -> dict[str, Any]:
    import vidfilter

    t0 = time.perf_counter()
    store = work / f"real_{name}.zarr"
    res = vidfilter.run(video, out=store, model=bundle, config=run_config({"output.polarity": "auto"}))
    if not res.ok:
        return {"recording": name, "error": res.error}
    run_s = time.perf_counter() - t0
    df = vidfilter.track(store)
    out = {"recording": name, "input": str(video), "frames": res.frames, "frames_note": frames_note, "bundle": bundle,
           "run_seconds": round(run_s, 1), "track_seconds": round(time.perf_counter() - t0 - run_s, 1),
           "keyframes": res.keyframes, **track_lengths(df)}
    png = RESULTS / "tracking" / f"{name}_tracks.png"
    out["preview"] = str(png.relative_to(REPO))
    out["preview_bytes"] = preview(store, df, f"{name}, {bundle}", png)
    log(f"{name}: {out['objects']} objects, {out['tracks']} tracks, lengths {out['length_percentiles']} "
        f"({out['run_seconds']} s run, {out['track_seconds']} s track)")
    return out


def bench_reals(data: Path, work: Path) -> list[dict[str, Any]]:
    out = []
    mouse = data / "mouse_tracktor" / "mouse_video.mp4"
    if mouse.is_file():
        out.append(bench_real("mouse", mouse_clip(mouse, work), "open-arena", work,
                              f"first {MOUSE_FRAMES} of 10000 frames, re-encoded H.264 crf 18"))
    worms = data / "worms_yolo_640" / "frames"
    if worms.is_dir():
        out.append(bench_real("worms", worms, "worm-plate", work, "all 100 PNG frames"))
    return out


# -- output ----------------------------------------------------------------------------------------
def case_table(cases: list[dict[str, Any]]) -> str:
    head = md_head("| case | mask | MOTA | IDF1 | ID sw. | FP | FN | tracks / animals | focus recall | focus ID sw. | s |")
    rows = [(c, r) for c in cases for r in c["rows"]]

    def line(cr: tuple[dict[str, Any], dict[str, Any]]) -> str:
        c, r = cr
        if "error" in r:
            return f"| {c['case']} | {r['row']} | failed: {r['error'][:60]} | | | | | | | | |"
        fr = f"{r['focus_recall']:.2f}" if "focus_recall" in r else "–"
        fs = str(r["focus_switches"]) if "focus_switches" in r else "–"
        note = " (linker refused)" if r.get("refused") else ""
        return (f"| {c['case']} | {r['row']}{note} | {r['mota']:.3f} | {r['idf1']:.3f} | {r['num_switches']:.0f} | "
                f"{r['num_false_positives']:.0f} | {r['num_misses']:.0f} | {r['tracks']} / {r['animals']} | {fr} | {fs} | "
                f"{r['total_seconds']:.0f} |")
    return text_table(head, rows, line)


def real_table(reals: list[dict[str, Any]]) -> str:
    head = md_head("| recording | frames | bundle | objects | objects/frame (median) | tracks | tracks > 100 fr. | "
                   "length p10 / p50 / p90 / p99 / max | run s | track s |")

    def line(r: dict[str, Any]) -> str:
        if "error" in r:
            return f"| {r['recording']} | failed: {r['error']} | | | | | | | | |"
        p = r["length_percentiles"]
        lengths = " / ".join(f"{p[k]:g}" for k in ("p10", "p50", "p90", "p99")) + f" / {r['length_max']}"
        return (f"| {r['recording']} | {r['frames']} | {r['bundle']} | {r['objects']} | {r['objects_per_frame_median']:g} | "
                f"{r['tracks']} | {r['tracks_over_100_frames']} | {lengths} | {r['run_seconds']:.0f} | {r['track_seconds']:.0f} |")
    return text_table(head, reals, line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="150 frames of 256², 0.25 min training (≤ 5 min)")
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--rows", default=",".join(ALL_ROWS))
    ap.add_argument("--train-minutes", type=float, help="training budget of the model row (default 1.5, quick 0.25)")
    ap.add_argument("--no-real", action="store_true", help="skip the shared real recordings")
    ap.add_argument("--data", help="shared data folder (default ../shared/data or $VIDFILTER_SHARED_DATA)")
    ap.add_argument("--work", default="/tmp/vidfilter_tracking")
    ap.add_argument("--out", default=str(RESULTS / "tracking.json"))
    args = ap.parse_args(argv)
    try:
        import motmetrics  # noqa: F401
    except ImportError:
        print("benchmarks/tracking.py needs motmetrics (not a vidfilter dependency): "
              ".venv/bin/python -m pip install motmetrics")
        return 2
    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]
    minutes = args.train_minutes if args.train_minutes is not None else mode["minutes"]
    work = Path(args.work) / mode_name
    work.mkdir(parents=True, exist_ok=True)
    cases, rows = [c for c in args.cases.split(",") if c], [r for r in args.rows.split(",") if r]
    bad = sorted(set(cases) - set(ALL_CASES)) + sorted(set(rows) - set(ALL_ROWS) - set(MORE_ROWS))
    if bad:
        ap.error(f"unknown case or row: {bad}")
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "tracking", "mode": mode_name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python benchmarks/tracking.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(), "revision": revision(),
        "protocol": {"linker": "vidfilter.track.track_masks defaults: min_area 50, max_distance 30, max_gap 30",
                     "match_px": MATCH_PX, "mask": "vidfilter --mask (fixed: background - frame > 10), polarity dark",
                     "train_minutes": minutes, **mode},
        "cases": [], "real": [], "complete": False,
    }
    for case in cases:
        result["cases"].append(bench_case(case, mode, rows, work, minutes))
        write_result(args.out, result)  # after every case: a run that stops keeps what it scored
    data = data_root(args.data)
    if args.no_real:
        result["real_skipped"] = "--no-real"
    elif not data.is_dir():
        result["real_skipped"] = f"{data} absent"
        log(f"real recordings skipped: {data} absent")
    else:
        result["real"] = bench_reals(data.resolve(), work)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["complete"] = True
    out = write_result(args.out, result)
    print(case_table(result["cases"]))
    if result["real"]:
        print("\n" + real_table(result["real"]))
    print(f"\n{mode_name} mode, {result['seconds'] / 60:.1f} min; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
