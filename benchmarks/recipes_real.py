"""Recipe study on a real recording (issue 10): train each variant on the worm plate's own frames
for a fixed time on the CPU, then score it with the worm benchmark's protocol.

Usage::

    python benchmarks/recipes_real.py [--minutes 4] [--variants a,b] [--data DIR]

Writes ``benchmarks/results/recipes_real.json`` and prints a table. Variants are config overrides
applied on top of ``Config()`` (the defaults of ``vidfilter train``) with ``output.polarity: dark``;
``cpu-defaults`` is ``Config()`` untouched (polarity detected, preset and crop chosen for the CPU).
Each trained model is scored per frame with quality_real's masks: ``fixed10``, ``noise``,
``object`` and ``object-tuned`` (parameters chosen on the even frames, scored on the odd ones), and
the fidelity figures ``plate`` / ``removed`` against the labels-median reference.
Variants measured before the object mask existed keep their fixed10 / noise rows only.
"""

from __future__ import annotations

import argparse
import os
import sys
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
    "defaults": {},  # the recipe of `vidfilter train` (gate + plate correction + stat dropout, long lags, x6, mined crops)
    "cpu-defaults": None,  # Config() as is: what `vidfilter train frames/ --minutes M` does on a CPU
    "cosine": {"train.lr_schedule": "cosine"},
    "no-polarity-target": {"train.polarity_target": False},  # the recipe before the polarity-aware target
    "l1": {"train.loss": "l1"},
    "steps-900": {"train.steps": 900},  # the defaults stopped at 900 steps (does the step count set the object-mask F1?)
    "paper-256": {"model.preset": "paper", "sampling.crop": 256},  # the paper's network and crop on the CPU
    "no-stat-dropout": {"sampling.stat_dropout": 0.0},
    "gate-l1-lr1e-3": {"train.lr": 1e-3, "train.loss": "l1"},
    "gate-smoothl1-lr1e-3": {"train.lr": 1e-3},
    "gate-l1-lr1e-3-nochangeweight": {"train.lr": 1e-3, "train.loss": "l1", "train.change_weight": 1.0},
    "long-lags-smoothl1-lr1e-3": {"train.lr": 1e-3, "model.gate": False},
    "long-lags-l1-lr1e-3": {"train.lr": 1e-3, "train.loss": "l1", "model.gate": False},
    "long-lags-l1-lr1e-3-nomax": {"train.lr": 1e-3, "train.loss": "l1", "model.temporal_channel": "none"},
}


def main(argv: list[str] | None = None) -> int:
    from quality_real import add_study_options, open_study

    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    add_study_options(ap, "recipes")
    args = ap.parse_args(argv)

    from vidfilter.config import Config

    study = open_study(args.data, args.out)
    if study is None:
        return 0
    for name in args.variants.split(","):
        over = VARIANTS[name]
        base = {"train.steps": 10**9} if over is None else {**BASE, **over}
        cfg = Config().override({**base, "train.minutes": args.minutes})
        bundle = Path(args.work) / f"{name}.vfm"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        secs = study.train(bundle, cfg)
        rows, log = study.score(bundle, ["fixed10", "noise", "object"], tuned=True)
        study.results[name] = {"overrides": over, "minutes": args.minutes, "train_seconds": round(secs, 1), "steps": log["steps"],
                         "identity_score": log["identity_score"], "verdict": log["verdict"], "rows": rows,
                         "load_average": os.getloadavg()}
        study.save()
    print(f"{'variant':<30} {'steps':>5} {'ident':>6} {'mask':<13} {'P':>6} {'R':>6} {'F1':>6} {'plate':>6} {'removed':>7}")
    for name, r in study.results.items():
        for row in r["rows"]:
            b = row["box"]
            plate, removed = row.get("plate"), row.get("removed")
            print(f"{name:<30} {r['steps']:>5} {r['identity_score'] or 0:>6.2f} {row['mask']:<13} {b['precision']:>6.3f} "
                  f"{b['recall']:>6.3f} {b['f1']:>6.3f} {'-' if plate is None else f'{plate:6.2f}':>6} "
                  f"{'-' if removed is None else f'{removed:.3f}':>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
