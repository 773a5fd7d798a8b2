"""The run's default mask (fixed thresholds) on the real open field under each ``--refine`` mode.

The mouse recording of ``benchmarks/masks_loro.py`` (its three 300-frame windows, every 5th frame,
the ``open-arena`` bundle, truth ``quality_arena.mouse_mask``, predicted components >= 100 px)
with the background of each refinement mode, after a run's exposure match and clamp (``--background
run`` there), or the network's refined output alone (``model``). Scores: box F1, pixel precision and
recall of ``foreground > T`` for T in 10 (the default), 15 and 25 grey levels.

    python benchmarks/refine_masks.py [--data ../shared/data] [--out benchmarks/results/refine_masks_mouse.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import masks_loro  # noqa: E402
from _common import machine  # noqa: E402

CASES = [("full", "model"), ("full", "run"), ("snap", "run"), ("off", "run")]
THRESHOLDS = (10, 15, 25)


def main(argv: list[str] | None = None) -> int:
    from vidfilter.polarity import threshold_mask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "refine_masks_mouse.json"))
    args = ap.parse_args(argv)
    masks_loro.candidates = lambda pol: {f"fixed {t}": partial(threshold_mask, threshold=float(t), polarity=pol)
                                         for t in THRESHOLDS}
    load = masks_loro._bundle
    res = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cases": {}}
    for refine, mode in CASES:
        def bundle(setup: str, refine: str = refine):  # type: ignore[no-untyped-def]
            b, p = load(setup)
            b.config = b.config.override({"infer.refine": refine})
            return b, p

        masks_loro._bundle = bundle
        rec = masks_loro.mouse(Path(args.data), 5, mode)
        if isinstance(rec, str):
            print(f"skipped: {rec}")
            return 0
        scores = masks_loro.score(rec, progress=False)["scores"]
        res["cases"][f"{refine}/{mode}"] = {k: {"box_f1": v["box"]["f1"], "pixel_precision": v["pixel"]["precision"],
                                                "pixel_recall": v["pixel"]["recall"]} for k, v in scores.items()}
        print(refine, mode, json.dumps(res["cases"][f"{refine}/{mode}"]), flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
