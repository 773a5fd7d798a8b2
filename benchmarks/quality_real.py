"""Quality on real data: box-level scores of each background method on ``worms_yolo_640`` (issue 10).

Protocol (issue 10, one run, every method scored the same way):

- foreground mask ``|background - frame| > 10`` grey levels (``fixed10``), or the noise-level
  mask (``noise``: threshold ``max(k * sigma, floor)`` from the residual's robust sigma after
  removing its median offset, small closing; :func:`vidfilter.eval.masks.noise_mask`);
- 8-connected components of at least 40 px -> boxes (x1, y1 exclusive; the CSV boxes are already
  edge coordinates, see :mod:`vidfilter.eval.metrics`);
- Hungarian matching on 1/IoU, a match when IoU > 0.5 -> box precision, recall, F1 (pooled over
  the 100 frames) and the mean IoU of matches.

The set has box labels only, so the "pixel" columns are proxies: ``flag%`` (mean share of the frame
in the mask), ``inbox`` (share of the mask's pixels inside a labelled box) and ``noise`` (median
residual sigma in grey levels).

Methods form a registry, ``METHODS``: a method is a callable ``(src, frames) -> iterator of backgrounds``
(float32 [0, 1], one per scored frame in order). ``--model BUNDLE`` adds ``model``, the trained bundle
through ``vidfilter.infer.pipeline.ModelBackground``. Ratios are against the max projection with
the same mask, measured in the same run.

Usage::

    python benchmarks/quality_real.py [--data DIR] [--model BUNDLE] [--methods max,median,...]
        [--masks fixed10,noise] [--step 1] [--out benchmarks/results/quality_real.json]

The data folder is ``--data``, else ``$VIDFILTER_SHARED_DATA``, else ``<repo>/../shared/data``;
without it the benchmark prints why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

Method = Callable[[Any, Sequence[int]], Iterator[np.ndarray]]


def baseline(name: str) -> Method:
    """A method running the baseline ``name`` of :mod:`vidfilter.baselines` (its defaults)."""

    def method(src: Any, frames: Sequence[int]) -> Iterator[np.ndarray]:
        from vidfilter.baselines import make_baseline
        from vidfilter.eval.score import estimator_backgrounds

        return estimator_backgrounds(make_baseline(name), src, frames)

    return method


def median_all(src: Any, frames: Sequence[int]) -> Iterator[np.ndarray]:
    """Median over *every* frame (the figure quoted in issue 10); the baseline samples 51."""
    from vidfilter.baselines import MedianProjection
    from vidfilter.eval.score import estimator_backgrounds

    return estimator_backgrounds(MedianProjection(n_frames=len(src)), src, frames)


def model_method(bundle_path: str) -> Method:
    """The trained model as a method (``ModelBackground(load_model(path), Config())``)."""

    def method(src: Any, frames: Sequence[int]) -> Iterator[np.ndarray]:
        from vidfilter.config import Config
        from vidfilter.eval.score import estimator_backgrounds
        from vidfilter.infer.pipeline import ModelBackground
        from vidfilter.models.bundle import load_model

        return estimator_backgrounds(ModelBackground(load_model(bundle_path), Config()), src, frames)

    return method


#: name -> (src, frames) -> iterator of float32 [0, 1] backgrounds of those frames (stateful
#: estimators still see every frame up to the last one). Add entries to compare more methods.
METHODS: dict[str, Method] = {
    "max": baseline("max"),
    "median": baseline("median"),
    "median-all": median_all,
    "running-median": baseline("running-median"),
    "mog2": baseline("mog2"),
    "knn": baseline("knn"),
}

#: Noise-level mask parameters (grey levels): threshold max(K * sigma, FLOOR), closing radius. One
#: setting for every method (not tuned per method); a grid over k 3-6, floor 6-12, closing 0-4
#: found floor 10 best for max (F1 .311) and floor 6 for median (.217) / MOG2 (.197).
NOISE_K, NOISE_FLOOR, NOISE_CLOSING = 4.0, 8.0, 4


def masks(threshold: float) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    from vidfilter.eval.masks import noise_mask, threshold_mask

    return {
        "fixed10" if threshold == 10 else f"fixed{threshold:g}": partial(threshold_mask, threshold=threshold, polarity="absolute"),
        "noise": partial(noise_mask, k=NOISE_K, floor=NOISE_FLOOR, closing=NOISE_CLOSING, polarity="absolute"),
    }


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("VIDFILTER_SHARED_DATA")
    return Path(env) if env else REPO / ".." / "shared" / "data"


def load_worms(worms: Path) -> tuple[Any, dict[int, np.ndarray]]:
    """The ``worms_yolo_640`` frames (a FrameSource) and their boxes by frame index ``t``."""
    from vidfilter.eval.groundtruth import load_boxes_csv
    from vidfilter.io.registry import open as open_source

    src = open_source(worms / "frames")
    numbers = [int(Path(f).stem) for f in src.files]  # frame t is original frame number numbers[t]
    gt = load_boxes_csv(worms / "boxes.csv")
    return src, {t: gt[n].boxes for t, n in enumerate(numbers) if n in gt}


def score_methods(
    src: Any,
    gt_by_t: dict[int, np.ndarray],
    methods: dict[str, Method],
    mask_names: list[str],
    *,
    threshold: float = 10.0,
    min_area: int = 40,
    step: int = 1,
    tap: Callable[[str, int, np.ndarray], None] | None = None,
) -> list[dict[str, Any]]:
    """Score each method with each mask by the protocol of the module docstring.

    Returns one row per (method, mask): ``method, mask, seconds`` and the fields of
    :class:`~vidfilter.eval.score.QualityResult`. ``tap(name, t, background)``, when given, sees
    every scored background (e.g. to keep one for a figure).
    """
    from vidfilter.eval.score import score_backgrounds

    all_masks = masks(threshold)
    frames = list(range(0, len(src), step))
    rows: list[dict[str, Any]] = []
    for name, method in methods.items():
        t0 = time.perf_counter()
        bgs = method(src, frames)
        if tap is not None:
            bgs = _tapped(bgs, frames, partial(tap, name))
        res = score_backgrounds(
            src, bgs, gt_by_t, frames=frames, mask_fn={m: all_masks[m] for m in mask_names},
            min_area=min_area, connectivity=8, iou_threshold=0.5,
        )
        secs = time.perf_counter() - t0
        for m in mask_names:
            rows.append({"method": name, "mask": m, "seconds": round(secs, 2), **res[m].as_dict()})
    return rows


def _tapped(bgs: Iterator[np.ndarray], frames: list[int], fn: Callable[[int, np.ndarray], None]) -> Iterator[np.ndarray]:
    for t, bg in zip(frames, bgs):
        fn(t, bg)
        yield bg


def fmt(x: float | None, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared data folder holding worms_yolo_640/")
    ap.add_argument("--model", help="a trained bundle to score as method 'model'")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list (default: all baselines)")
    ap.add_argument("--masks", default="fixed10,noise", help="comma list of mask methods")
    ap.add_argument("--threshold", type=float, default=10.0, help="fixed threshold, grey levels")
    ap.add_argument("--min-area", type=int, default=40)
    ap.add_argument("--step", type=int, default=1, help="score every STEP-th frame (backgrounds still use all)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_real.json"))
    args = ap.parse_args(argv)

    root = data_root(args.data).resolve()
    worms = root / "worms_yolo_640"
    if not (worms / "frames").is_dir() or not (worms / "boxes.csv").is_file():
        print(f"skipped: worms_yolo_640 not found under {root} (pass --data or set VIDFILTER_SHARED_DATA)")
        return 0

    src, gt_by_t = load_worms(worms)

    methods = dict(METHODS)
    if args.model:
        methods["model"] = model_method(args.model)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.model and "model" not in names:
        names.append("model")
    unknown = [n for n in names if n not in methods]
    if unknown:
        ap.error(f"unknown methods {unknown}; valid: {', '.join(methods)}")
    mask_names = [m.strip() for m in args.masks.split(",") if m.strip()]
    if "max" not in names:
        names.insert(0, "max")  # the reference of the ratios

    frames = list(range(0, len(src), args.step))
    rows = score_methods(src, gt_by_t, {n: methods[n] for n in names}, mask_names,
                         threshold=args.threshold, min_area=args.min_area, step=args.step)

    ref = {r["mask"]: r["box"]["f1"] for r in rows if r["method"] == "max"}
    for r in rows:
        base = ref.get(r["mask"])
        r["f1_vs_max"] = r["box"]["f1"] / base if base else None

    result = {
        "benchmark": "quality_real",
        "data": str(worms),
        "n_frames": len(frames),
        "protocol": {
            "mask": f"|background - frame| > {args.threshold:g} grey levels (fixed) or noise-level",
            "noise_mask": {"k": NOISE_K, "floor": NOISE_FLOOR, "closing": NOISE_CLOSING, "offset": "median removed"},
            "components": "8-connected", "min_area": args.min_area,
            "matching": "Hungarian on 1/IoU, match when IoU > 0.5", "boxes": "x0,y0,x1,y1 exclusive (edge coordinates)",
        },
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)

    print(f"worms_yolo_640: {len(frames)} frames, box protocol of issue 10 (min area {args.min_area} px, IoU > 0.5)")
    print()
    print("| method | mask | box P | box R | box F1 | F1 / max | mIoU | flag % | inbox | noise | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["box"]
        print(
            f"| {r['method']} | {r['mask']} | {fmt(b['precision'])} | {fmt(b['recall'])} | {fmt(b['f1'])} | "
            f"{fmt(r['f1_vs_max'], 2)} | {fmt(b['iou'])} | {100 * r['flagged']:.2f} | {fmt(r['in_boxes'])} | "
            f"{r['noise']:.2f} | {r['seconds']:.1f} |"
        )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
