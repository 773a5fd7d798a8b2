"""Reuse across recordings (the paper's immobile-animal case, issues 4 and 10).

Train one bundle on several generated recordings whose animals move, then apply it to a *new*
recording where some animals never move, and compare the recall of the still animals with a median
projection of that recording. Writes ``benchmarks/results/reuse.json`` and prints a table.

Usage::

    python benchmarks/reuse.py [--minutes 3] [--size 192] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--work", default="/tmp/vidfilter_reuse")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "reuse.json"))
    args = ap.parse_args(argv)

    from vidfilter.config import Config
    from vidfilter.baselines import ExtremeProjection, MedianProjection
    from vidfilter.eval.score import score_recording
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.models import load_model
    from vidfilter.synth import SyntheticRecording, write_video
    from vidfilter.train.loop import train

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    s, n = args.size, args.frames
    corpus = [write_video(work / f"train{i}.mkv", SyntheticRecording(n, s, s, n_animals=5, seed=100 + i), codec="ffv1")
              for i in range(4)]
    test = SyntheticRecording(n, s, s, n_animals=5, n_still=3, seed=7)
    cfg = Config().override({
        "output.polarity": "dark", "model.preset": "fast", "sampling.crop": 96, "train.batch_size": 8,
        "train.steps": 10**9, "train.minutes": args.minutes, "train.val_every": 100, "train.checkpoint_every": 200,
    })
    t0 = time.perf_counter()
    bundle = train([str(p) for p in corpus], work / "corpus.vfm", cfg, progress=False)
    train_s = time.perf_counter() - t0
    log = json.loads((work / "corpus.report" / "log.json").read_text())

    methods = {
        "vidfilter (trained on 4 other recordings)": ModelBackground(load_model(bundle), cfg),
        "median projection": MedianProjection(),
        "max projection": ExtremeProjection("max"),
    }
    rows = []
    for name, est in methods.items():
        r = score_recording(test, est, polarity="dark", min_area=20)
        rows.append({"method": name, "still_recall": r.still_recall, "moving_recall": r.moving_recall,
                     "pixel_iou": r.pixel.iou, "box_f1": r.box.f1})
    result = {"benchmark": "reuse", "size": s, "frames": n, "train_seconds": round(train_s, 1), "steps": log["steps"],
              "verdict": log["verdict"], "machine": platform.platform(), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"trained {log['steps']} steps in {train_s:.0f} s on 4 recordings; test recording has 3 still animals")
    print(f"{'method':<44} {'still recall':>12} {'moving recall':>13} {'pixel IoU':>9} {'box F1':>7}")
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{r['method']:<44} {f(r['still_recall']):>12} {f(r['moving_recall']):>13} {f(r['pixel_iou']):>9} {f(r['box_f1']):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
