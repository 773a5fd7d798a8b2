"""Reader/writer throughput: VideoFrameSource vs OpenCV, plus Zarr and FFV1 writers when present.

For H.264 videos generated here (PyAV, 512², 1024², 2048²; moving blobs over a textured
background with noise, GOP 50, 3 B-frames) it measures, in one run:

- ``cv2_seq``:     ``cv2.VideoCapture`` sequential decode (BGR frames), the baseline;
- ``vf_seq``:      ``VideoFrameSource(color="gray").iter()`` sequential decode;
- ``vf_seq_rgb``:  the same with ``color="keep"`` (RGB frames, like OpenCV's BGR);
- ``vf_random``:   ``src[t]`` for random ``t`` (frames per second of random reads);
- ``index_ms``:    building the frame index on first open (no cache);
- ``zarr_write`` / ``zarr_read``: ``OmeZarrWriter`` image sink append / ``ZarrFrameSource.iter``
  (grey uint8), if ``vidfilter.io.zarr_sink`` exists;
- ``ffv1_write``:  ``FFV1Sink`` append (grey uint8), if ``vidfilter.io.video_sink`` exists.

Usage::

    python benchmarks/io.py [--quick] [--out benchmarks/results/io.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import text_table


def make_frames(size: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """Grey frames: a smooth textured background, three moving discs, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    bg = 110 + 40 * np.sin(7 * xx + 3 * yy) * np.cos(5 * yy)
    frames = []
    for t in range(n):
        img = bg.copy()
        for k in range(3):
            cx = (0.2 + 0.6 * ((t * (0.004 + 0.002 * k) + 0.3 * k) % 1.0)) * size
            cy = (0.5 + 0.3 * np.sin(t * 0.05 + k)) * size
            r = size * 0.04
            img[(xx * size - cx) ** 2 + (yy * size - cy) ** 2 < r * r] = 230 - 60 * k
        img += rng.normal(0, 3, img.shape).astype(np.float32)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def write_h264(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.height, s.width = frames[0].shape
        s.pix_fmt = "yuv420p"
        s.options = {"preset": "veryfast", "g": "50", "bf": "3", "crf": "23"}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _fps(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_cv2(path: Path) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    t0 = time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return _fps(n, dt)


def bench_vf(path: Path, n_random: int, cache: Path) -> dict[str, float]:
    from vidfilter.io.video_source import VideoFrameSource

    os.environ["VIDFILTER_CACHE_DIR"] = str(cache)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    src = VideoFrameSource(path)  # cold: builds the index (and decodes frame 0)
    out["index_ms"] = 1000 * (time.perf_counter() - t0)
    with src:
        n = len(src)
        t0 = time.perf_counter()
        for _ in src.iter():
            pass
        out["vf_seq"] = _fps(n, time.perf_counter() - t0)
        picks = random.Random(0).sample(range(n), min(n_random, n))
        t0 = time.perf_counter()
        for t in picks:
            src[t]
        out["vf_random"] = _fps(len(picks), time.perf_counter() - t0)
    with VideoFrameSource(path, color="keep") as src:
        t0 = time.perf_counter()
        for _ in src.iter():
            pass
        out["vf_seq_rgb"] = _fps(len(src), time.perf_counter() - t0)
    return out


def bench_writers(frames: list[np.ndarray], tmp: Path, fps: int = 25) -> dict[str, float | None]:
    out: dict[str, float | None] = {"zarr_write": None, "zarr_read": None, "ffv1_write": None}
    n = len(frames)
    if importlib.util.find_spec("vidfilter.io.zarr_sink") is not None:
        from vidfilter.io.zarr_sink import OmeZarrWriter
        from vidfilter.io.zarr_source import ZarrFrameSource

        store = tmp / f"bench-{frames[0].shape[0]}.zarr"
        t0 = time.perf_counter()
        with OmeZarrWriter(store, overwrite=True) as w:
            sink = w.image("frames", frames[0].shape, frames[0].dtype, fps=fps, n_frames=n)
            for f in frames:
                sink.append(f)
            sink.close()
            w.finalise()
        out["zarr_write"] = _fps(n, time.perf_counter() - t0)
        with ZarrFrameSource(store / "frames") as src:
            t0 = time.perf_counter()
            for _ in src.iter():
                pass
            out["zarr_read"] = _fps(len(src), time.perf_counter() - t0)
    if importlib.util.find_spec("vidfilter.io.video_sink") is not None:
        from vidfilter.io.video_sink import FFV1Sink

        t0 = time.perf_counter()
        with FFV1Sink(tmp / f"bench-{frames[0].shape[0]}.mkv", frames[0].shape, frames[0].dtype, fps=fps,
                      overwrite=True) as sink:
            for f in frames:
                sink.append(f)
        out["ffv1_write"] = _fps(n, time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames, 512² and 1024² only")
    ap.add_argument("--frames", type=int, default=None, help="frames per video (default 150, quick 40)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "io.json")
    args = ap.parse_args(argv)
    sizes = [512, 1024] if args.quick else [512, 1024, 2048]
    n = args.frames or (40 if args.quick else 150)
    n_random = 10 if args.quick else 30
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vidfilter-bench-") as d:
        tmp = Path(d)
        for size in sizes:
            frames = make_frames(size, n)
            video = tmp / f"h264-{size}.mp4"
            write_h264(video, frames)
            row: dict[str, Any] = {"size": size, "frames": n, "file_bytes": video.stat().st_size}
            row["cv2_seq"] = bench_cv2(video)
            row.update(bench_vf(video, n_random, tmp / f"cache-{size}"))
            row.update(bench_writers(frames, tmp))
            rows.append(row)
            print(f"  done {size}x{size}", file=sys.stderr)
    result = {
        "benchmark": "io",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": _versions(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(_table(rows))
    print(f"\nwritten {args.out}")
    return 0


def _versions() -> dict[str, str]:
    import av
    import cv2
    import zarr

    return {"av": av.__version__, "cv2": cv2.__version__, "zarr": zarr.__version__, "numpy": np.__version__}


def _table(rows: list[dict[str, Any]]) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:7.1f}"

    head = (f"{'size':>6} {'cv2_seq':>8} {'vf_seq':>8} {'ratio':>6} {'vf_rgb':>8} {'ratio':>6} {'vf_rand':>8} "
            f"{'ratio':>6} {'index_ms':>9} {'zarr_w':>8} {'zarr_r':>8} {'ffv1_w':>8}")

    def row(r: dict[str, Any]) -> str:
        base = r["cv2_seq"]
        return (
            f"{r['size']:>6} {f(base):>8} {f(r['vf_seq']):>8} {r['vf_seq'] / base:6.2f} {f(r['vf_seq_rgb']):>8} "
            f"{r['vf_seq_rgb'] / base:6.2f} {f(r['vf_random']):>8} {r['vf_random'] / base:6.2f} "
            f"{r['index_ms']:9.1f} {f(r['zarr_write']):>8} {f(r['zarr_read']):>8} {f(r['ffv1_write']):>8}"
        )

    return text_table(["frames per second (higher is better); ratio = vs cv2.VideoCapture sequential (same run)", head], rows, row)


if __name__ == "__main__":
    sys.exit(main())
