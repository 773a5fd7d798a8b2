"""bf16 against float32 on the CPU: the shipped bundles on real recordings.

For each case (a shipped bundle on a real recording of ``../shared/data``, or of ``--data``), the
bundle's background of a few frames spread over the recording is computed twice through
``ModelBackground`` (per frame, the polarity a run would use), once with ``infer.precision: fp32``
and once with ``bf16`` (CPU autocast), each unrefined (``--refine off``: the network's own output)
and refined (``full``, the default). Reported per case and refinement, in grey levels of 255:

- the mean, 99.9th percentile and largest ``|bg_bf16 - bg_fp32|``;
- how much the foreground mask moves: pixels where ``|background - frame| > 10`` in one precision
  and not the other, over the pixels where it holds in either (0 = the same mask);
- the network's seconds per frame in each precision (the mean of the frames after the first).

    python benchmarks/precision.py [--frames 6] [--data ../shared/data]

Writes ``benchmarks/results/precision.json`` and prints a table with the bf16 / fp32 time ratio
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine, md_head, text_table  # noqa: E402
from infer import revision  # noqa: E402

#: (name, bundle, recording under the data folder, config overrides)
CASES = [
    ("worms / worm-plate", "worm-plate", "worms_yolo_640/frames", {}),
    ("mouse / open-arena", "open-arena", "mouse_tracktor/mouse_video.mp4", {}),
    ("flies / bright-arena", "bright-arena", "flies_sleap/clip.mp4", {}),
    ("zebrafish / worm-plate", "worm-plate", "zebrafish_larva", {}),
]
MASK_LEVEL = 10


def backgrounds(bundle: Any, path: str, frames: list[int], precision: str, refine: str,
                overrides: dict[str, Any]) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """The frames (float32 [0, 1]), their backgrounds and the seconds each ``background`` call took."""
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.registry import open as open_source
    from vidfilter.io.scaling import to_float

    cfg = Config().override({"infer.device": "cpu", "infer.precision": precision, "infer.refine": refine, **overrides})
    est = ModelBackground(bundle, cfg)
    src = open_source(path)
    est.prepare(src)
    ims, bgs, secs = [], [], []
    for t in frames:
        im = to_float(src[t])
        t0 = time.perf_counter()
        bgs.append(np.asarray(est.background(t, im), np.float32))
        secs.append(time.perf_counter() - t0)
        ims.append(im)
    return ims, bgs, secs


def compare(ims: list[np.ndarray], a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
    d = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)]) * 255
    moved = union = 0
    for im, x, y in zip(ims, a, b):
        ma, mb = np.abs(x - im) * 255 > MASK_LEVEL, np.abs(y - im) * 255 > MASK_LEVEL
        moved += int(np.count_nonzero(ma ^ mb))
        union += int(np.count_nonzero(ma | mb))
    return {"mean": float(d.mean()), "p999": float(np.quantile(d, 0.999)), "max": float(d.max()),
            "mask_moved": moved / max(union, 1), "mask_pixels": union}


def main(argv: list[str] | None = None) -> int:
    import torch

    from vidfilter.io.registry import open as open_source
    from vidfilter.models.bundle import load_model
    from vidfilter.models.shipped import resolve_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--frames", type=int, default=6, help="frames per recording, spread over it")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision.json"))
    args = ap.parse_args(argv)
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "revision": revision(),
                           "cpu_bf16": {"avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
                                        "amx_tile": bool(torch.cpu._is_amx_tile_supported())},
                           "mask_level": MASK_LEVEL, "cases": {}}
    for name, setup, rel, overrides in CASES:
        path = Path(args.data) / rel
        if not path.exists():
            print(f"skip {name}: {path} not found")
            continue
        bundle = load_model(resolve_bundle(setup))
        with open_source(str(path)) as src:
            n = len(src)
        frames = sorted({int(round(x)) for x in np.linspace(0, n - 1, args.frames)})
        case: dict[str, Any] = {"recording": rel, "bundle": setup, "frames": frames}
        for refine in ("off", "full"):
            ims, fp32, s32 = backgrounds(bundle, str(path), frames, "fp32", refine, overrides)
            _, bf16, s16 = backgrounds(bundle, str(path), frames, "bf16", refine, overrides)
            case[refine] = {**compare(ims, fp32, bf16), "fp32_s": float(np.mean(s32[1:])), "bf16_s": float(np.mean(s16[1:]))}
            print(f"{name} refine {refine}: {json.dumps(case[refine])}", flush=True)
        case["shape"] = list(ims[0].shape)
        res["cases"][name] = case
    Path(args.out).write_text(json.dumps(res, indent=1))
    rows = [[name, r, f"{c[r]['mean']:.3f}", f"{c[r]['p999']:.2f}", f"{c[r]['max']:.1f}", f"{c[r]['mask_moved']:.4f}",
             f"{c[r]['fp32_s']:.3f}", f"{c[r]['bf16_s']:.3f}", f"{c[r]['bf16_s'] / c[r]['fp32_s']:.2f}"]
            for name, c in res["cases"].items() for r in ("off", "full")]
    head = "| case | refine | mean abs diff | p99.9 | max | mask moved | fp32 s | bf16 s | bf16 / fp32 |"
    print(text_table(md_head(head), rows, lambda r: "| " + " | ".join(r) + " |"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
