"""A still animal on a real recording: how much of the zebrafish larva stays in the background, and
how far the background strays from the plate (``zebrafish_larva/``: 38 TIFF frames of 1024², a dark
larva in a light dish, nearly still: it moves about 5 px over the clip; lamp flicker).

Nothing computed from this clip alone can remove the larva (it is in every frame); only a model that
has learned what an animal looks like elsewhere can. Truth per frame (no labels exist): the larva's
mask is the largest connected component, inside the dish floor (the plate level above 120, eroded by
40 px), where a 41 px median filter of the frame exceeds the frame by more than 25 grey levels
(opened once, then grown by 2 px where the contrast exceeds 12). Checked by eye on frames 0, 18 and
37: eyes, body and most of the tail, nothing else (``docs/benchmarks.md``). Per method, over all 38
frames:

- **kept**: the share of the larva's contrast that stays in the background, ``sum(max(plate - bg, 0)) /
  sum(plate - frame)`` over the mask, where ``plate`` is the 41 px median filter of the frame (the
  plate under the larva); 0 = removed, 1 = kept whole;
- **plate error**: the mean ``|bg - ref|`` outside the mask grown by 12 px, where ``ref`` is the
  per-pixel median of the 38 frames, each with its global offset (flicker) removed, plus the frame's
  own offset (grey levels; sensor noise is averaged out of ``ref``).

Methods: ``median`` and ``max`` of the clip; each shipped bundle (those of bright animals on
inverted frames); ``--model auto``; with ``--init-minutes M`` the auto bundle fine-tuned on the clip;
with ``--train-minutes M`` ``vidfilter train`` with the defaults.

    python benchmarks/quality_zebrafish.py [--data DIR] [--init-minutes 2] [--train-minutes 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from _common import bundle_methods, machine, training_methods
from quality_real import data_root

REPO = Path(__file__).resolve().parents[1]
FOLDER = "zebrafish_larva"
FILTER, LARVA_LEVEL, GROW_LEVEL, FLOOR_LEVEL, FLOOR_ERODE, MARGIN = 41, 25.0, 12.0, 120, 40, 12


def larva(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The larva's mask in ``frame`` (uint8) and the plate under it (see the module)."""
    import cv2

    plate = cv2.medianBlur(frame, FILTER)
    floor = ndimage.binary_erosion(plate > FLOOR_LEVEL, iterations=FLOOR_ERODE)
    d = plate.astype(np.float32) - frame
    core = ndimage.binary_opening((d > LARVA_LEVEL) & floor)
    lab, n = ndimage.label(core)
    if not n:
        return np.zeros_like(core), plate.astype(np.float32)
    sizes = ndimage.sum(core, lab, range(1, n + 1))
    mask = ndimage.binary_dilation(lab == 1 + int(np.argmax(sizes)), iterations=2) & (d > GROW_LEVEL)
    return mask, plate.astype(np.float32)


def truth(src: Any) -> dict[str, Any]:
    """Masks, plates under the larva, and the flicker-corrected plate reference of every frame."""
    frames = [np.asarray(src[t]) for t in range(len(src))]
    offsets = np.array([float(np.median(f)) for f in frames])
    offsets -= np.median(offsets)
    flat = np.median(np.stack([f.astype(np.float32) - o for f, o in zip(frames, offsets)]), axis=0)
    masks, plates = zip(*(larva(f) for f in frames))
    return {"frames": frames, "masks": masks, "plates": plates, "ref": [flat + o for o in offsets]}


def score(bg_of: Any, tr: dict[str, Any]) -> dict[str, float]:
    num = den = err = n_err = 0.0
    for t, f in enumerate(tr["frames"]):
        b = np.asarray(bg_of(t), np.float32)
        m, plate = tr["masks"][t], tr["plates"][t]
        num += float(np.clip(plate - b, 0, None)[m].sum())
        den += float((plate - f)[m].sum())
        far = ~ndimage.binary_dilation(m, iterations=MARGIN)
        err += float(np.abs(b - tr["ref"][t])[far].sum())
        n_err += float(far.sum())
    return {"kept": num / den, "plate_error": err / n_err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared data folder holding zebrafish_larva/")
    ap.add_argument("--init-minutes", type=float, default=0.0, help="also fine-tune the auto bundle for M minutes")
    ap.add_argument("--train-minutes", type=float, default=0.0, help="also train a model with the defaults for M minutes")
    ap.add_argument("--work", default="/tmp/vidfilter_quality_zebrafish")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_zebrafish.json"))
    args = ap.parse_args(argv)

    import vidfilter
    from vidfilter.api import auto_model, run
    from vidfilter.config import Config

    folder = data_root(args.data).resolve() / FOLDER
    if not folder.is_dir():
        print(f"{folder} not found; skipping")
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = vidfilter.open(str(folder))
    tr = truth(src)
    methods = {"median": (None, "median", Config()), "max": (None, "max", Config()), **bundle_methods("dark")}
    lines: list[str] = []
    auto, auto_cfg = auto_model([str(folder)], work / "auto.zarr", None, Config(), say=lines.append)
    methods[f"--model auto ({auto})"] = (auto, "model", auto_cfg)
    methods.update(training_methods([str(folder)], work, auto, auto_cfg, init_minutes=args.init_minutes,
                                    train_minutes=args.train_minutes))
    result: dict[str, Any] = {
        "benchmark": "quality_zebrafish", "folder": FOLDER, "auto_line": lines[0] if lines else "",
        "mask_pixels_mean": float(np.mean([m.sum() for m in tr["masks"]])),
        "larva_contrast_mean": float(np.mean([(p - f)[m].mean() for f, m, p in zip(tr["frames"], tr["masks"], tr["plates"])])),
        "machine": machine(), "rows": {},
    }
    for label, (model, method, cfg) in methods.items():
        out = work / (label.split(" (")[0].replace(" ", "_").replace(",", "").replace("-", "") + ".zarr")
        t0 = time.perf_counter()
        r = run(str(folder), out, model=model, method=method, config=cfg.override({"output.overwrite": True}))
        if not r.ok:
            result["rows"][label] = {"error": r.error}
            continue
        bg = vidfilter.open(str(out / "background"))
        result["rows"][label] = {"seconds": round(time.perf_counter() - t0, 1), **score(lambda t: np.asarray(bg[t]).squeeze(), tr)}
        print(label, json.dumps(result["rows"][label]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\n{result['auto_line']}\n\n| method | larva kept in the background | plate error (grey levels) |\n|---|---|---|")
    for label, r in result["rows"].items():
        print(f"| {label} | {r['error']} | |" if "error" in r else f"| {label} | {r['kept']:.3f} | {r['plate_error']:.2f} |")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
