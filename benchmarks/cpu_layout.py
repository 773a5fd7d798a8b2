"""The U-Net on the CPU: default (NCHW) memory format against channels-last, and bf16 autocast.

The tiled engine runs the model channels-last on the CPU (``TiledEngine.channels_last``); this is
the measurement behind that choice. One more row runs the network's forward as it was written
before two changes (``as before``): the input skip concatenated in float32 (under bf16 autocast
``torch.cat`` then promotes the whole full-resolution map to float32 and may drop the channels-last
layout) and out-of-place LeakyReLU. Each preset runs on one 2048² frame (the engine's default tile
runs a 2048² frame whole), random weights (a small perturbation of the initial ones, so the residual output layer is
not zero), ``torch.inference_mode``, the mean of ``--repeats`` passes (5) after one
warm-up, with the torch threads of the machine. The output of each variant is compared with the
NCHW float32 one (largest absolute difference).

    python benchmarks/cpu_layout.py [--size 2048] [--repeats 3]

Writes ``benchmarks/results/cpu_layout.json`` and prints a table with each variant's ratio to
NCHW float32 measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import md_head, text_table  # noqa: E402
from infer import forward_as_before, machine, out_of_place, revision  # noqa: E402


def time_variant(net, x, *, channels_last: bool, bf16: bool, repeats: int, before: bool = False):  # type: ignore[no-untyped-def]
    """Mean seconds of one forward pass of ``net`` on ``x``, and the output."""
    if before:
        with out_of_place(net):
            return _timed(net, lambda v: forward_as_before(net, v), x, channels_last=channels_last, bf16=bf16, repeats=repeats)
    return _timed(net, net, x, channels_last=channels_last, bf16=bf16, repeats=repeats)


def _timed(net, fn, x, *, channels_last: bool, bf16: bool, repeats: int):  # type: ignore[no-untyped-def]
    import torch

    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    with torch.inference_mode(), ctx():
        y = fn(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn(x)
    net.to(memory_format=torch.contiguous_format)
    return (time.perf_counter() - t0) / repeats, y.float()


def main() -> int:
    import torch

    from vidfilter.config import Config
    from vidfilter.models import build_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presets", nargs="+", default=["fast", "paper"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_layout.json"))
    args = ap.parse_args()
    res = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "revision": revision(),
           "tile": args.size, "repeats": args.repeats, "runs": {}}
    rows = []
    for preset in args.presets:
        torch.manual_seed(0)
        net = build_model(Config().override({"model.preset": preset, "model.temporal_channel": "none"}).model).eval()
        with torch.no_grad():  # the residual output layer starts at zero (output = input): make every layer count
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        x = torch.rand(1, net.in_channels if hasattr(net, "in_channels") else 1, args.size, args.size)
        base, ref = time_variant(net, x, channels_last=False, bf16=False, repeats=args.repeats)
        variants = (("NCHW fp32", False, False, False), ("channels-last fp32", True, False, False),
                    ("channels-last fp32, as before", True, False, True), ("channels-last bf16", True, True, False),
                    ("channels-last bf16, as before", True, True, True))
        for name, cl, bf, before in variants:
            s, y = (base, ref) if name == "NCHW fp32" else time_variant(net, x, channels_last=cl, bf16=bf, repeats=args.repeats,
                                                                       before=before)
            diff = float((y - ref).abs().max())
            res["runs"][f"{preset}/{name}"] = {"seconds": s, "over_nchw_fp32": s / base, "max_abs_diff": diff}
            rows.append((preset, name, s, s / base, diff))
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(f"{res['machine']['cpu']}, {res['machine']['cores']} cores, torch {torch.__version__}, one {args.size}² frame")
    print(text_table(md_head("| preset | variant | s per frame | / NCHW fp32 | max abs diff |"), rows,
                     lambda r: f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.2f}x | {r[4]:.1e} |"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
