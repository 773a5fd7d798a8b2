"""Batch throughput on a LocalCluster with 1 and 2 single-threaded workers (and in-process for scale).

Generates N small recordings (FFV1, default 6 x 60 frames of 192 x 256) and a width-16, depth-4
U-Net bundle, then runs :func:`vidfilter.distributed.run_batch` on ``LocalCluster(n_workers=k,
processes=True, threads_per_worker=1)`` for k = 1, 2 (cluster start-up excluded, timed from the
first submit to the last result), and :func:`vidfilter.infer.pipeline.run_many` in this process
with all cores as a reference. Writes ``benchmarks/results/distributed.json`` and prints a table
with the ratio 2 workers / 1 worker.

Usage: ``python benchmarks/distributed.py [--recordings 6] [--frames 60] [--size 192 256]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# This file's name would shadow the `distributed` package when run as a script: drop its folder.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch

from vidfilter.config import Config
from vidfilter.distributed.batch import run_batch
from vidfilter.infer.pipeline import run_many
from vidfilter.models import build_model, save_bundle
from vidfilter.synth import SyntheticRecording, write_video

RESULTS = _HERE / "results" / "distributed.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, default=6)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, nargs=2, default=(192, 256))
    ap.add_argument("--workers", type=int, nargs="+", default=(1, 2))
    ap.add_argument("--repeat", type=int, default=2, help="rounds over the worker counts (interleaved); best time kept")
    ap.add_argument("--inprocess", action="store_true", help="also time run_many in this process (all cores)")
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    work = Path(tempfile.mkdtemp(prefix="vidfilter-bench-dist-"))
    try:
        torch.manual_seed(0)
        cfg = Config().override({"model.preset": "fast", "model.depth": 4, "model.residual": False, "infer.device": "cpu"})
        bundle = save_bundle(work / "model.vfm", build_model(cfg.model), cfg)
        h, w = args.size
        videos = [
            str(write_video(work / f"rec{i}.mkv", SyntheticRecording(args.frames, h, w, n_animals=3, seed=i), codec="ffv1"))
            for i in range(args.recordings)
        ]
        total_frames = args.recordings * args.frames
        rows = []

        if args.inprocess:
            t0 = time.perf_counter()
            res = run_many(videos, model=bundle, out_dir=work / "inproc", config=cfg)
            sec = time.perf_counter() - t0
            assert all(r.status == "done" for r in res), res
            rows.append({"mode": f"in-process run_many ({torch.get_num_threads()} torch threads)", "workers": 0, "seconds": sec, "all_seconds": [round(sec, 2)]})

        times: dict[int, list[float]] = {k: [] for k in args.workers}
        for rnd in range(args.repeat):
            for k in args.workers:
                with LocalCluster(n_workers=k, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
                    client.wait_for_workers(k)
                    t0 = time.perf_counter()
                    res = run_batch(videos, model=bundle, out_dir=work / f"w{k}-{rnd}", config=cfg, client=client, summary_name=None)
                    times[k].append(time.perf_counter() - t0)
                assert all(r.status == "done" for r in res), res
        for k in args.workers:
            rows.append({"mode": f"LocalCluster {k} worker(s) x 1 thread", "workers": k, "seconds": min(times[k]),
                         "all_seconds": [round(t, 2) for t in times[k]]})

        for r in rows:
            r["seconds"] = round(r["seconds"], 2)
            r["frames_per_s"] = round(total_frames / r["seconds"], 2)
            r["recordings_per_min"] = round(args.recordings * 60 / r["seconds"], 2)
            r["seconds_per_recording"] = round(r["seconds"] / args.recordings, 3)
        by_k = {r["workers"]: r for r in rows}
        ratio = round(by_k[2]["frames_per_s"] / by_k[1]["frames_per_s"], 3) if 1 in by_k and 2 in by_k else None
        payload = {
            "benchmark": "distributed batch throughput",
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
            "recordings": args.recordings, "frames_per_recording": args.frames, "frame_size": [h, w],
            "model": {"preset": "fast", "width": cfg.model.resolved_width(), "depth": cfg.model.depth},
            "rows": rows, "ratio_2_workers_over_1": ratio, "repeat": args.repeat,
            "note": "cluster start-up excluded; best of the interleaved rounds; the machine may be shared (check load)",
            "load_average": list(os.getloadavg()),
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(payload, indent=2))
        print(f"{args.recordings} recordings x {args.frames} frames of {h}x{w}, width-16 depth-4 U-Net, {os.cpu_count()} CPUs")
        print(f"{'mode':45s} {'seconds':>8s} {'frames/s':>9s} {'rec/min':>8s} {'s/rec':>7s}")
        for r in rows:
            print(f"{r['mode']:45s} {r['seconds']:8.2f} {r['frames_per_s']:9.2f} {r['recordings_per_min']:8.2f} {r['seconds_per_recording']:7.3f}")
        print(f"ratio 2 workers / 1 worker: {ratio}   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        print(f"wrote {RESULTS}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
