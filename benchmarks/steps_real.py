"""Step-count study on the real worm plate (issue 10): how the box F1 moves with training steps.

The recipe study saw the object-mask F1 of the defaults at .52-.57 after ~900 steps and at
.22-.24 after ~1300 steps, each from a single training. This study separates the step count from
the seed: each seed trains ``Config()`` with ``output.polarity: dark`` and the CPU preset (the
recipe study's ``BASE``) in stages, resuming from the checkpoint after each stage (exact resume:
staged training equals one uninterrupted run), and scores the bundle after every stage with
quality_real's masks.

Usage::

    python benchmarks/steps_real.py [--seeds 0,1] [--stages 300,600,900,1200,1500,1800] [--data DIR]
                                    [--set train.ema=0.99 --tag ema0.99]

Writes ``benchmarks/results/steps_real.json`` (keyed ``seed<S><tag>``) and prints one row per
(run, steps, mask). ``--set KEY=VALUE`` (repeatable) adds config overrides to the recipe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    from quality_real import add_study_options, open_study

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--stages", default="300,600,900,1200,1500,1800")
    ap.add_argument("--masks", default="fixed10,object")
    add_study_options(ap, "steps")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (YAML value)")
    ap.add_argument("--tag", default="", help="suffix of the result keys, e.g. -ema0.99")
    ap.add_argument("--keep", action="store_true", help="keep a copy of each stage's bundle (WORK/<run>-<steps>.vfm) for re-scoring")
    args = ap.parse_args(argv)
    from recipes_real import BASE

    from vidfilter.config import Config

    study = open_study(args.data, args.out)
    if study is None:
        return 0
    import yaml

    stages = [int(s) for s in args.stages.split(",")]
    extra = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    for seed in (int(s) for s in args.seeds.split(",")):
        name = f"seed{seed}{args.tag}"
        bundle = Path(args.work) / f"{name}.vfm"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        for stale in (bundle, bundle.with_suffix(".ckpt")):
            stale.unlink(missing_ok=True)
        rows_seed = study.results.setdefault(name, {})
        for steps in stages:
            cfg = Config().override({**BASE, **extra, "train.steps": steps, "train.seed": seed})
            secs = study.train(bundle, cfg, resume=True)
            if args.keep:
                import shutil

                shutil.copyfile(bundle, bundle.with_name(f"{name}-{steps}.vfm"))
            rows, log = study.score(bundle, args.masks.split(","))
            rows_seed[str(steps)] = {"steps": log["steps"], "stage_seconds": round(secs, 1), "val": log.get("final_val_loss"),
                                     "identity_score": log["identity_score"], "rows": rows}
            study.save()
            print(f"{name} steps {steps}: " + ", ".join(f"{r['mask']} {r['box']['f1']:.3f}" for r in rows), flush=True)
    print(f"{'run':<14} {'steps':>5} {'mask':<8} {'P':>6} {'R':>6} {'F1':>6} {'plate':>6} {'removed':>7}")
    for seed, by_steps in study.results.items():
        for steps, r in by_steps.items():
            for row in r["rows"]:
                b = row["box"]
                print(f"{seed:<14} {steps:>5} {row['mask']:<8} {b['precision']:>6.3f} {b['recall']:>6.3f} {b['f1']:>6.3f} "
                      f"{row.get('plate', 0):>6.2f} {row.get('removed', 0):>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
