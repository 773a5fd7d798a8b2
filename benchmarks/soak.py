"""Soak: peak memory and speed of ``vidfilter run`` on long recordings (1k, 5k, 20k frames).

Each run happens in a fresh child process that resets its high-water mark after the heavy imports
(``/proc/self/clear_refs``) and reports its own peak RSS, so the figures are the run's and runs do
not share allocator state. The recording is a 64x64 FFV1 video of a textured plate with a moving
square, generated here. Baseline measured in the same run: decoding the same frames with
``vidfilter.open(...).iter()`` (the floor any pipeline pays), so the table reports the pipeline's
cost as a ratio to decoding alone, which is stable across machines where absolute times are not.

What "flat" means: the peak at 20k frames minus the peak at 1k frames, which must stay small
(a leak of one uint8 64x64 frame per frame would add 78 MB at 20k).

Usage::

    python benchmarks/soak.py [--quick] [--method median] [--out benchmarks/results/soak.json]

``--quick`` uses 500/1000/2000 frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


from vidfilter._peak_rss import peak_rss_run
from vidfilter.synth import write_long_video


def write_video(path: Path, n: int, size: int = 64) -> Path:
    return write_long_video(path, n, size=size, square=8)


def child(args: list[str]) -> dict:
    d = peak_rss_run(args)
    if d["rc"] != 0:
        raise SystemExit(f"vidfilter {' '.join(args)} failed (rc {d['rc']})")
    return d


def decode_seconds(path: Path) -> float:
    import vidfilter

    t0 = time.perf_counter()
    with vidfilter.open(path) as src:
        for _ in src.iter():
            pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--method", default="median")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = ap.parse_args()
    lengths = (500, 1000, 2000) if args.quick else (1000, 5000, 20000)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidfilter-soak-") as tmp:
        os.environ.setdefault("VIDFILTER_CACHE_DIR", str(Path(tmp) / "index-cache"))
        for n in lengths:
            video = write_video(Path(tmp) / f"rec{n}.mkv", n)
            dec = decode_seconds(video)
            res = child(["-q", "run", str(video), "--method", args.method, "--out", str(Path(tmp) / f"o{n}.zarr"), "--threads", "1"])
            rows.append({
                "frames": n, "peak_rss_mb": round(res["kb"] / 1024, 1), "run_s": round(res["seconds"], 2),
                "run_fps": round(n / res["seconds"], 1), "decode_s": round(dec, 2),
                "run_over_decode": round(res["seconds"] / dec, 2) if dec > 0 else None, "hwm_reset": res["reset"],
            })
            print(f"{n:>6} frames: peak RSS {rows[-1]['peak_rss_mb']:.1f} MB, {rows[-1]['run_fps']:.0f} frames/s "
                  f"({rows[-1]['run_over_decode']}x decode-only)", flush=True)
    growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    result = {
        "benchmark": "soak", "method": args.method, "frame_size": [64, 64], "quick": args.quick,
        "rows": rows, "peak_growth_mb": round(growth, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(f"{'frames':>8} {'peak RSS MB':>12} {'run s':>8} {'frames/s':>9} {'decode s':>9} {'run/decode':>11}")
    for r in rows:
        print(f"{r['frames']:>8} {r['peak_rss_mb']:>12.1f} {r['run_s']:>8.2f} {r['run_fps']:>9.1f} {r['decode_s']:>9.2f} {r['run_over_decode']:>11}")
    print(f"peak growth {rows[0]['frames']} -> {rows[-1]['frames']} frames: {growth:+.1f} MB  (written to {out})")


if __name__ == "__main__":
    main()
