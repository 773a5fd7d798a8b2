"""Does the pair sampler keep up with training? Sampler pairs/s vs training-step pairs/s.

An H.264 recording (generated, 1024² by default) is sampled two ways:
- ``pool``: the frame pool of :mod:`vidfilter.sampling` (sequential runs, refreshed over time);
- ``naive``: every pair seeks to a random frame t and reads t and t + lag (one GOP decode each);
and the training step (forward + backward + Adam, crop 256, batch 8) is timed for the ``fast``
and ``paper`` presets on this machine's CPU (or GPU when present). Ratios > 1 mean the sampler
produces pairs faster than the model consumes them.

    python benchmarks/train.py [--quick] [--size 1024] [--frames 120]

Writes ``benchmarks/results/train.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidfilter.config import Config
from vidfilter.io import registry
from vidfilter.models import build_model
from vidfilter.sampling import make_samplers
from vidfilter.synth import make_recording, write_video
from vidfilter.train.loop import pair_loss


def time_pool(video: Path, cfg: Config, n_pairs: int) -> dict[str, float]:
    t0 = time.perf_counter()
    sset = make_samplers([str(video)], cfg, validation=False)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = 0
    while done < n_pairs:
        sset.train.batch(cfg.train.batch_size)
        done += cfg.train.batch_size
    dt = time.perf_counter() - t0
    decoded = sset.train.pool.frames_decoded
    sset.close()
    return {"pairs_per_s": done / dt, "setup_s": setup, "pairs": done, "frames_decoded": decoded}


def time_naive(video: Path, crop: int, lag: int, n_pairs: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    src = registry.open(str(video))
    h, w = src.shape[1:3]
    t0 = time.perf_counter()
    for _ in range(n_pairs):
        t = int(rng.integers(len(src) - lag))
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        a = src[t][y : y + crop, x : x + crop].astype(np.float32) / 255
        b = src[t + lag][y : y + crop, x : x + crop].astype(np.float32) / 255
        _ = np.stack([a, b])
    dt = time.perf_counter() - t0
    src.close()
    return {"pairs_per_s": n_pairs / dt, "pairs": n_pairs}


def time_train_step(preset: str, crop: int, batch: int, steps: int, device: torch.device) -> dict[str, float]:
    cfg = Config().override({"model.preset": preset, "sampling.crop": crop, "train.batch_size": batch})
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.resolved_lr())
    x = torch.rand(batch, 1, crop, crop, device=device)
    y = torch.rand(batch, 1, crop, crop, device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step() -> None:
        with amp:
            out = model(x)
        loss = pair_loss(out, y, x, cfg.train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"pairs_per_s": steps * batch / dt, "s_per_step": dt / steps, "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames, pairs and steps")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.json"))
    args = ap.parse_args()
    n_frames = args.frames or (60 if args.quick else 250)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lag = 5
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        t0 = time.perf_counter()
        rec = make_recording(n_frames, args.size, args.size, n_animals=8, seed=0, noise_sigma=2.0)
        write_video(video, rec, crf=23)
        gen_s = time.perf_counter() - t0
        cfg = Config().override({
            "sampling.crop": args.crop, "sampling.lag": [1, lag], "train.batch_size": args.batch,
            "sampling.mine_fraction": 0.5,
        })
        pool = time_pool(video, cfg, 200 if args.quick else 1000)
        naive = time_naive(video, args.crop, lag, 10 if args.quick else 50)
    steps = 2 if args.quick else 10
    fast = time_train_step("fast", args.crop, args.batch, steps, device)
    paper = time_train_step("paper", args.crop, args.batch, max(1, steps // 2) if device.type == "cpu" else steps, device)
    result = {
        "machine": {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "host": platform.node()},
        "video": {"size": args.size, "frames": n_frames, "codec": "libx264 crf 23", "generate_s": gen_s},
        "crop": args.crop, "batch": args.batch, "lag": [1, lag],
        "sampler_pool": pool, "sampler_naive": naive, "train_fast": fast, "train_paper": paper,
        "ratios": {
            "pool_vs_naive": pool["pairs_per_s"] / naive["pairs_per_s"],
            "pool_vs_train_fast": pool["pairs_per_s"] / fast["pairs_per_s"],
            "pool_vs_train_paper": pool["pairs_per_s"] / paper["pairs_per_s"],
            "naive_vs_train_fast": naive["pairs_per_s"] / fast["pairs_per_s"],
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    rows = [
        ("sampler, frame pool", pool["pairs_per_s"], pool["pairs_per_s"] / fast["pairs_per_s"], pool["pairs_per_s"] / paper["pairs_per_s"]),
        ("sampler, naive seeks", naive["pairs_per_s"], naive["pairs_per_s"] / fast["pairs_per_s"], naive["pairs_per_s"] / paper["pairs_per_s"]),
        ("train step, fast", fast["pairs_per_s"], 1.0, fast["pairs_per_s"] / paper["pairs_per_s"]),
        ("train step, paper", paper["pairs_per_s"], paper["pairs_per_s"] / fast["pairs_per_s"], 1.0),
    ]
    print(f"{args.size}² H.264, {n_frames} frames, crop {args.crop}, batch {args.batch}, device {device}, {torch.get_num_threads()} threads")
    print(f"{'':24s} {'pairs/s':>9s} {'÷ fast step':>12s} {'÷ paper step':>13s}")
    for name, v, rf, rp in rows:
        print(f"{name:24s} {v:9.2f} {rf:12.2f} {rp:13.2f}")
    print(f"pool / naive = {result['ratios']['pool_vs_naive']:.1f}x   (results: {args.out})")


if __name__ == "__main__":
    main()
