"""The run's default mask (fixed thresholds) on the real open field under each ``--refine`` mode.

The mouse recording of ``benchmarks/masks_loro.py`` (its three 300-frame windows, every 5th frame,
the ``open-arena`` bundle, truth ``quality_arena.mouse_mask``, predicted components >= 100 px)
with the background of each refinement mode, after a run's exposure match and clamp (``--background
run`` there), or the network's refined output alone (``model``). Scores: box F1, pixel precision and
recall of ``foreground > T`` for T in 10 (the default), 15 and 25 grey levels.

``--where`` says where the 10-level mask's false pixels lie under ``full`` and ``snap`` (every 30th
frame of each window, after a run's exposure match and clamp): their distance to the mouse (the
truth mask), how many lie farther than 40 px per frame and at what levels, and the false components
of >= 100 px (the predicted components' minimum) with their size, distance and mean level. It is
written under the key ``where``; the other cases are kept.

    python benchmarks/refine_masks.py [--data ../shared/data] [--where] [--out benchmarks/results/refine_masks_mouse.json]
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


def where(rec) -> dict:  # type: ignore[no-untyped-def]
    """Where the false pixels of the 10-level mask lie, against the truth (see the module)."""
    import numpy as np
    from scipy import ndimage

    dist, far, comps = [], [], []
    frames = 0
    for f, bg, _box, gt in rec.items():
        fg = (bg - f) * 255  # dark animals
        fp = (fg > 10) & ~gt
        d = ndimage.distance_transform_edt(~gt)
        dist.append(d[fp])
        far.append(fg[fp & (d > 40)])
        lab, n = ndimage.label(fp, np.ones((3, 3)))
        for i in range(1, n + 1):
            part = lab == i
            if part.sum() >= 100:
                comps.append({"px": int(part.sum()), "min_distance": float(d[part].min()), "mean_level": float(fg[part].mean())})
        frames += 1
    dd, ff = np.concatenate(dist), np.concatenate(far)
    comps.sort(key=lambda c: -c["px"])
    return {"frames": frames, "false_px_per_frame": dd.size / frames,
            "distance_pct_10_50_90": np.percentile(dd, [10, 50, 90]).round(1).tolist(),
            "share_within_15px": float((dd <= 15).mean()), "share_within_40px": float((dd <= 40).mean()),
            "far_px_per_frame": ff.size / frames, "far_levels_pct_50_90_99": np.percentile(ff, [50, 90, 99]).round(1).tolist(),
            "components_ge_100px": len(comps), "components_touching_mouse": sum(c["min_distance"] <= 2 for c in comps),
            "largest_components": comps[:10]}


def main(argv: list[str] | None = None) -> int:
    from vidfilter.polarity import threshold_mask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "refine_masks_mouse.json"))
    ap.add_argument("--where", action="store_true", help="only where the false pixels lie (full and snap)")
    args = ap.parse_args(argv)
    if args.where:
        return main_where(args)
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


def main_where(args: argparse.Namespace) -> int:
    load = masks_loro._bundle
    try:
        res = json.loads(Path(args.out).read_text())
    except (OSError, ValueError):
        res = {}
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "step": 30, "modes": {}}
    for refine in ("full", "snap"):
        def bundle(setup: str, refine: str = refine):  # type: ignore[no-untyped-def]
            b, p = load(setup)
            b.config = b.config.override({"infer.refine": refine})
            return b, p

        masks_loro._bundle = bundle
        rec = masks_loro.mouse(Path(args.data), 30, "run")
        if isinstance(rec, str):
            print(f"skipped: {rec}")
            return 0
        out["modes"][refine] = where(rec)
        print(refine, json.dumps(out["modes"][refine]), flush=True)
    res["where"] = out
    Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
