"""Recipe study on a real recording (issue 10): train each variant on the worm plate's own frames
for a fixed time on the CPU, then score it with the worm benchmark's protocol.

Usage::

    python benchmarks/recipes_real.py [--minutes 4] [--variants a,b] [--data DIR]

Writes ``benchmarks/results/recipes_real.json`` and prints a table. Variants are config overrides
applied on top of ``Config()`` (the defaults of ``vidfilter train``) with ``output.polarity: dark``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

BASE = {"output.polarity": "dark", "model.preset": "fast", "sampling.crop": 128, "train.batch_size": 8,
        "train.steps": 10**9, "train.val_every": 50, "train.checkpoint_every": 100}
VARIANTS: dict[str, dict] = {
    # the paper's recipe as published (lag of one saved frame, SmoothL1, lr 1e-5 x batch)
    "paper-plain": {"model.residual": False, "train.change_weight": 1.0, "sampling.mine_fraction": 0.0,
                    "sampling.lag": [1, 1], "sampling.lag_unit": "frames", "model.temporal_channel": "none"},
    # the synthetic-data recipe (residual, x6 loss, 50 % mined crops, max channel) with short lags
    "short-lags-1-16": {"sampling.lag": [1, 16], "sampling.lag_unit": "frames", "train.lr": 1e-3, "train.loss": "l1",
                        "model.gate": False},
    # long lags: 5-50 % of the recording
    "long-lags-smoothl1-lr8e-5": {"model.gate": False},
    "defaults": {},  # what `vidfilter train` does now (gate + plate correction + stat dropout, long lags, x6, mined crops)
    "no-stat-dropout": {"sampling.stat_dropout": 0.0},
    "gate-l1-lr1e-3": {"train.lr": 1e-3, "train.loss": "l1"},
    "gate-smoothl1-lr1e-3": {"train.lr": 1e-3},
    "gate-l1-lr1e-3-nochangeweight": {"train.lr": 1e-3, "train.loss": "l1", "train.change_weight": 1.0},
    "long-lags-smoothl1-lr1e-3": {"train.lr": 1e-3, "model.gate": False},
    "long-lags-l1-lr1e-3": {"train.lr": 1e-3, "train.loss": "l1", "model.gate": False},
    "long-lags-l1-lr1e-3-nomax": {"train.lr": 1e-3, "train.loss": "l1", "model.temporal_channel": "none"},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--work", default="/tmp/vidfilter_recipes")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "recipes_real.json"))
    args = ap.parse_args(argv)
    frames = Path(args.data) / "worms_yolo_640" / "frames"
    if not frames.is_dir():
        print(f"skipped: {frames} not found")
        return 0
    from quality_real import main as quality_main

    from vidfilter.config import Config
    from vidfilter.train.loop import train

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in args.variants.split(","):
        cfg = Config().override({**BASE, **VARIANTS[name], "train.minutes": args.minutes})
        bundle = Path(args.work) / f"{name}.vfm"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        train([str(frames)], bundle, cfg, progress=False)
        secs = time.perf_counter() - t0
        qjson = Path(args.work) / f"{name}.quality.json"
        quality_main(["--data", args.data, "--model", str(bundle), "--methods", "max,model", "--out", str(qjson)])
        rows = json.loads(qjson.read_text())["rows"]
        log = json.loads((bundle.parent / f"{name}.report" / "log.json").read_text())
        results[name] = {"overrides": VARIANTS[name], "train_seconds": round(secs, 1), "steps": log["steps"],
                         "identity_score": log["identity_score"], "verdict": log["verdict"],
                         "rows": [r for r in rows if r["method"] == "model"]}
        out.write_text(json.dumps(results, indent=2))
    print(f"{'variant':<28} {'steps':>5} {'ident':>6} {'mask':<8} {'P':>6} {'R':>6} {'F1':>6}")
    for name, r in results.items():
        for row in r["rows"]:
            b = row["box"]
            print(f"{name:<28} {r['steps']:>5} {r['identity_score'] or 0:>6.2f} {row['mask']:<8} {b['precision']:>6.3f} {b['recall']:>6.3f} {b['f1']:>6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
