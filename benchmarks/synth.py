"""Does the static-mode pair synthesiser keep up with training? Synthetic pairs/s vs training-step pairs/s.

Crop banks are extracted from generated look-alikes (BBBC026-like co-culture and BBBC042-like
histology, 512² images), then pairs are synthesised with each application's parameters
(configs/bbbc026_hepatocytes.yaml and configs/bbbc042.yaml, 256² patches):
- ``in-process``: :class:`~vidfilter.static.synthesis.PairSynthesizer` in this process (one thread);
- ``workers=k``: a DataLoader with k worker processes (:class:`~vidfilter.static.dataset.SynthDataset`);
and the training step (forward + backward + Adam, batch 8, 256²) is timed for the ``fast`` and
``paper`` presets on this machine's CPU (or GPU when present). Ratios > 1 mean pairs are made
faster than the model consumes them.

    python benchmarks/synth.py [--quick] [--workers 0 1 2]

Writes ``benchmarks/results/synth.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vidfilter.config import Config
from vidfilter.static.extract import extract_crops
from vidfilter.static.dataset import SynthDataset
from vidfilter.synth.lookalike import make_coculture, make_histology, write_coculture, write_histology
from vidfilter.static.bank import load_banks
from vidfilter.static.synthesis import PairSynthesizer



def _time_train_step() -> Any:
    """The training-step timer of ``benchmarks/train.py`` (loaded by path: benchmarks is not a package)."""
    spec = importlib.util.spec_from_file_location("_bench_train", Path(__file__).with_name("train.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.time_train_step


def make_bank(kind: str, root: Path, cfg: Config) -> Path:
    if kind == "bbbc026":
        data = write_coculture(make_coculture(4, 512, hepatocytes=(30, 40), fibroblasts=(30, 40), seed=0), root / kind)
        ann = root / kind / "points"
    else:
        data = write_histology(make_histology(4, 512, astrocytes=(12, 18), streaks=(12, 18), smudges=(3, 6), seed=0), root / kind)
        ann = root / kind / "positions"
    bank = root / f"{kind}_bank"
    extract_crops(data.files["images"], bank, cfg, annotations=ann)
    return bank


def time_in_process(synth: PairSynthesizer, n: int) -> dict[str, float]:
    synth.pair(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(n):
        synth.pair(i + 1)
    dt = time.perf_counter() - t0
    return {"pairs_per_s": n / dt, "ms_per_pair": 1e3 * dt / n, "pairs": n}


def time_loader(synth: PairSynthesizer, workers: int, batch: int, n_batches: int) -> dict[str, float]:
    ds = SynthDataset(synth, batch, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
    it = iter(loader)
    next(it)  # start-up (fork, first batch) is not counted
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    dt = time.perf_counter() - t0
    del it
    return {"pairs_per_s": n_batches * batch / dt, "workers": workers, "batches": n_batches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer pairs and steps")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_pairs = 100 if args.quick else 400
    n_batches = 10 if args.quick else 40
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, preset in (("bbbc026", "bbbc026_hepatocytes"), ("bbbc042", "bbbc042")):
            cfg = Config.from_yaml(Path(__file__).resolve().parents[1] / "vidfilter" / "configs" / f"{preset}.yaml")
            cfg = cfg.override({"static.extract.square_size": [32, 96], "static.extract.min_area": 30})
            bank = make_bank(kind, Path(tmp), cfg)
            synth = PairSynthesizer(load_banks([bank]), cfg.static.synth, cfg.sampling.crop)
            entry: dict[str, object] = {"patch": cfg.sampling.crop, "synth": cfg.static.synth.model_dump(mode="json"),
                                        "in_process": time_in_process(synth, n_pairs)}
            for k in args.workers:
                entry[f"workers={k}"] = time_loader(synth, k, args.batch, n_batches)
            results[kind] = entry
    steps = 2 if args.quick else 6
    time_train_step = _time_train_step()
    fast = time_train_step("fast", 256, args.batch, steps, device)
    paper = time_train_step("paper", 256, args.batch, max(1, steps // 2) if device.type == "cpu" else steps, device)
    out = {
        "machine": {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "host": platform.node()},
        "batch": args.batch, "train_fast": fast, "train_paper": paper, "synth": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"256² pairs, batch {args.batch}, device {device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
    print(f"{'':28s} {'pairs/s':>9s} {'÷ fast step':>12s} {'÷ paper step':>13s}")
    rows = [("train step, fast", fast["pairs_per_s"]), ("train step, paper", paper["pairs_per_s"])]
    for kind, entry in results.items():
        rows.append((f"{kind} synth, in-process", entry["in_process"]["pairs_per_s"]))  # type: ignore[index]
        for k in args.workers:
            rows.append((f"{kind} synth, workers={k}", entry[f"workers={k}"]["pairs_per_s"]))  # type: ignore[index]
    for name, v in rows:
        print(f"{name:28s} {v:9.1f} {v / fast['pairs_per_s']:12.2f} {v / paper['pairs_per_s']:13.2f}")
    print(f"(results: {args.out})")


if __name__ == "__main__":
    main()
