"""GPU benchmark: the paper and fast networks, tiling, GPU decoding and the pipeline at 2048^2.

One prepared script for a single GPU call (under 8 minutes, bounded by ``--budget``); ``--quick``
runs the same code at 256^2 with few frames, on a CPU too, so it is known to work before a GPU is
lent. Everything CUDA-specific is skipped (and recorded as skipped) without a CUDA device.

- ``model``: the bare network (preset ``paper``, width 48, and ``fast``, width 16; random residual
  weights, which do not change the speed) on one ``(1, 1, S, S)`` frame already on the device, ms
  and fps per frame (median of ``repeats`` after a warm-up, CUDA synchronised): fp32, fp32 +
  channels_last, bf16 autocast, bf16 + channels_last (what ``TiledEngine`` does on CUDA), the same
  with ``cudnn.benchmark`` (CUDA only), and ``torch.compile`` with the engine's settings for the
  device (bf16 + channels_last on CUDA, fp32 on CPU) in a child process with a time limit (the
  first call, i.e. the compile, is recorded apart). Target: paper net >= 60 fps at 2048^2 in bf16.
- ``tiling``: ``TiledEngine`` (device and precision ``auto``) on a host float32 frame: the frame
  whole against the engine's default tile, tile 1024 and the Config default tile.
- ``decode``: a generated 2048^2 H.264 recording (yuv420p, crf 18, made with
  ``vidfilter.synth.write_video``) decoded by PyAV (``VideoFrameSource.iter``, grey, host) against
  torchcodec (``VideoDecoder``, CUDA and CPU, RGB) and PyNvVideoCodec (NVDEC, NV12 on the GPU)
  where they import.
- ``pipeline``: ``vidfilter.run`` on that recording with a paper and a fast bundle, per frame
  (``infer.every = 1``, ``infer.adaptive = False``) and in keyframe mode (the Config defaults):
  fps (the pipeline's own and with its setup) and the ratio to the PyAV decode fps measured in the
  same run. Target: keyframe mode >= 0.9x decode.

Usage::

    python benchmarks/gpu.py [--quick] [--sections model tiling decode pipeline compile]
                             [--out benchmarks/results/gpu.json] [--workdir /tmp/vidfilter-bench-gpu]

Results are merged into ``--out`` after every section (``gpu_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from _common import md_head, text_table
from infer import log, machine, revision

ROOT = Path(__file__).resolve().parents[1]

T_PAPER_FPS = 60.0
T_KEYFRAME = 0.9

#: per mode: frame side, frames of the recording, warm-up calls and timed repeats (network),
#: repeats of the engine and of the decoders, torchcodec batch, the nets compiled, the per-net
#: compile limit and the whole run's time budget (seconds; the compile step gets what is left)
PLANS: dict[bool, dict[str, Any]] = {
    False: dict(size=2048, frames=500, warmup=3, repeats=10, engine_repeats=3, decode_repeats=3, batch=16,
                compile_nets=("paper", "fast"), compile_limit=150, budget=450),
    True: dict(size=256, frames=24, warmup=1, repeats=3, engine_repeats=1, decode_repeats=2, batch=8,
               compile_nets=("fast",), compile_limit=90, budget=180),
}

NETS = {
    "paper": {"model.preset": "paper", "model.residual": True, "model.temporal_channel": "none"},
    "fast": {"model.preset": "fast", "model.residual": True, "model.temporal_channel": "none"},
}

#: name: (bf16 autocast, channels_last, cudnn.benchmark)
VARIANTS = {
    "fp32": (False, False, False),
    "fp32+channels_last": (False, True, False),
    "bf16": (True, False, False),
    "bf16+channels_last": (True, True, False),
    "bf16+channels_last+cudnn.benchmark": (True, True, True),
}

SECTIONS = ("model", "tiling", "decode", "pipeline", "compile")


# ---------------------------------------------------------------------------------------------
# helpers


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def device() -> Any:
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if has_cuda() else torch.device("cpu")


def sync() -> None:
    if has_cuda():
        import torch

        torch.cuda.synchronize()


def free_memory() -> None:
    if has_cuda():
        import torch

        torch.cuda.empty_cache()


def timed(fn: Callable[[], Any], warmup: int, repeats: int) -> dict[str, Any]:
    """Median seconds of ``fn`` (synchronised) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"ms": 1000 * med, "fps": 1 / med, "ms_each": [round(1000 * t, 3) for t in times]}


def attempt(fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
    """``fn(*args, **kw)``, or ``{"error": ...}`` when it raises."""
    try:
        return fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - one variant failing must not stop the run
        log(f"    failed: {type(e).__name__}: {e}")
        return {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:600]}
    finally:
        free_memory()


def net(name: str, seed: int = 0) -> Any:
    import torch

    from vidfilter.config import Config
    from vidfilter.models import build_model

    torch.manual_seed(seed)
    return build_model(Config().override(NETS[name]).model).eval()


def bundle(workdir: Path, name: str) -> Path:
    from vidfilter.config import Config
    from vidfilter.models import save_bundle

    path = workdir / f"{name}_random_residual.vfm"
    if not path.exists():
        save_bundle(path, net(name), Config().override(NETS[name]))
    return path


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if has_cuda() else None}
    if has_cuda():
        props = torch.cuda.get_device_properties(0)
        info.update(name=torch.cuda.get_device_name(0), memory_gib=props.total_memory / 2**30,
                    capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    else:
        info["name"] = machine()["cpu"]
    return info


class Clip:
    """A cheap synthetic recording (``len``, ``[t] -> uint8 (H, W)``, ``fps``) for ``write_video``:
    a smooth plate with fixed grain, slow illumination drift, sensor noise and a few moving dark
    ellipses. About ten times cheaper per frame than ``SyntheticRecording`` at 2048^2."""

    fps = 25.0

    def __init__(self, n: int, size: int, seed: int = 1) -> None:
        import cv2

        rng = np.random.default_rng(seed)
        coarse = rng.normal(0, 1, (size // 128 + 3, size // 128 + 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        self.plate = (150 + 12 * smooth / (np.abs(smooth).max() + 1e-6) + rng.normal(0, 3, (size, size))).astype(np.float32)
        self.noise = rng.normal(0, 1.5, (8, size, size)).astype(np.float32)
        self.shifts = rng.integers(0, size, (n, 2))
        self.animals = [(rng.uniform(0.1, 0.9, 2) * size, rng.uniform(-1, 1, 2) * size / 200, rng.uniform(0, 180)) for _ in range(6)]
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t: int) -> np.ndarray:
        import cv2

        noise = np.roll(self.noise[t % len(self.noise)], tuple(self.shifts[t]), axis=(0, 1))
        frame = np.clip(self.plate * (1 + 0.03 * t / self.n) + noise, 0, 255).astype(np.uint8)
        axes = (max(2, self.size // 60), max(1, self.size // 200))
        for p, v, angle in self.animals:
            x, y = (p + v * t) % self.size
            cv2.ellipse(frame, (int(x), int(y)), axes, angle + t, 0, 360, 60, -1)
        return frame


def make_clip(workdir: Path, size: int, n: int) -> Path:
    """The H.264 recording of ``Clip(n, size)`` (cached by name)."""
    from vidfilter.synth import write_video

    path = workdir / f"clip_{size}_{n}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        write_video(path, Clip(n, size), codec="libx264")
        log(f"  generated {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    return path


# ---------------------------------------------------------------------------------------------
# 1. the network alone


def forward(model: Any, x: Any, bf16: bool) -> Callable[[], Any]:
    import torch

    def call() -> Any:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            return model(x)

    return call


def bench_variant(model: Any, variant: str, p: dict[str, Any]) -> dict[str, Any]:
    import torch

    bf16, cl, bench = VARIANTS[variant]
    dev = device()
    if bench and dev.type != "cuda":
        return {"skipped": "CUDA only"}
    fmt = torch.channels_last if cl else torch.contiguous_format
    model.to(dev, memory_format=fmt)
    x = torch.rand(1, 1, p["size"], p["size"], device=dev).contiguous(memory_format=fmt)
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bench
    try:
        return timed(forward(model, x, bf16), p["warmup"], p["repeats"])
    finally:
        torch.backends.cudnn.benchmark = before


def bench_model(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in NETS:
        model = net(name)
        r = out[name] = {"parameters": sum(t.numel() for t in model.parameters()), "width": model.width}
        for variant in VARIANTS:
            log(f"model {name} {variant}")
            r[variant] = attempt(bench_variant, model, variant, p)
        del model
        free_memory()
    return out


def compile_child(name: str, p: dict[str, Any]) -> dict[str, Any]:
    """In the child process: ``torch.compile`` of ``name`` with the engine's settings for the device."""
    import torch

    dev = device()
    on_cuda = dev.type == "cuda"
    fmt = torch.channels_last if on_cuda else torch.contiguous_format
    model = net(name).to(dev, memory_format=fmt)
    x = torch.rand(1, 1, p["size"], p["size"], device=dev).contiguous(memory_format=fmt)
    call = forward(torch.compile(model), x, bf16=on_cuda)
    t0 = time.perf_counter()
    call()
    sync()
    first = time.perf_counter() - t0
    r = timed(call, p["warmup"], p["repeats"])
    r.update(first_call_s=first, settings="bf16+channels_last" if on_cuda else "fp32")
    return r


def compile_in_child(name: str, quick: bool, limit: float) -> dict[str, Any]:
    """``compile_child`` in a fresh process, stopped (with its compile workers) after ``limit`` seconds."""
    if limit < 20:
        return {"skipped": f"no time left in the budget ({limit:.0f} s)"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-child", name, *(["--quick"] if quick else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"skipped": f"torch.compile did not finish within {limit:.0f} s (child process stopped)"}
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " ".join(stderr.strip().splitlines()[-3:])
        return {"error": f"child exited with {proc.returncode}: {tail}"[:600]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# 2. tiled against whole frame


def tile_plan(size: int) -> dict[int, str]:
    """tile side -> label: the whole frame, the engine's default tile, 1024 and the Config default."""
    from vidfilter.config import Config
    from vidfilter.infer.engine import TiledEngine

    plan: dict[int, str] = {}
    whole = max(size, Config().infer.tile)
    for label, tile in (("whole", whole), ("engine default", inspect.signature(TiledEngine).parameters["tile"].default),
                        ("", 1024), ("config default", Config().infer.tile)):
        text = f"whole (tile {tile})" if label == "whole" else f"{label} {tile}".strip()
        plan[tile] = f"{plan[tile]}, {text}" if tile in plan else text
    return plan


def engine_run(model: Any, tile: int, frame: np.ndarray, p: dict[str, Any]) -> dict[str, Any]:
    from vidfilter.config import Config
    from vidfilter.infer.engine import TiledEngine
    from vidfilter.infer.tiling import tile_grid

    eng = TiledEngine(model, tile=tile, device="auto", precision="auto", batch_size=Config().infer.batch_size)
    side = frame.shape[-1]
    b = eng.border if side > eng.border else 0
    tiles = len(tile_grid(side + 2 * b, side + 2 * b, eng.tile + 2 * b, eng.margin, eng.multiple))
    r = timed(lambda: eng(frame), 1, p["engine_repeats"])
    r.update(tiles=tiles, tile_used=eng.tile, device=str(eng.device), autocast=str(eng.autocast),
             channels_last=eng.channels_last, batch_size=eng.batch_size)
    return r


def bench_tiling(p: dict[str, Any]) -> dict[str, Any]:
    frame = np.random.default_rng(0).random((p["size"], p["size"]), dtype=np.float32)
    plan = tile_plan(p["size"])
    out: dict[str, Any] = {}
    for name in NETS:
        model = net(name)
        r = out[name] = {}
        for tile, label in plan.items():
            log(f"tiling {name} {label}")
            r[label] = attempt(engine_run, model, tile, frame, p)
        whole = r[next(iter(plan.values()))].get("ms")
        for v in r.values():
            if whole and "ms" in v:
                v["vs_whole"] = v["ms"] / whole
        del model
        free_memory()
    return out


# ---------------------------------------------------------------------------------------------
# 3. decoding


def pyav_decode(path: Path, p: dict[str, Any]) -> dict[str, Any]:
    import vidfilter

    t0 = time.perf_counter()
    with vidfilter.open(str(path)) as src:
        opened = time.perf_counter() - t0
        n = len(src)

        def run() -> None:
            k = sum(1 for _ in src.iter(0, n))
            assert k == n, f"decoded {k} of {n} frames"

        r = timed(run, 0, p["decode_repeats"])
    return {"frames": n, "fps": n * r["fps"], "ms_per_frame": r["ms"] / n, "open_s": opened,
            "seconds_each": [t / 1000 for t in r["ms_each"]], "output": "grey uint8, host (numpy)"}


def torchcodec_decode(path: Path, dev: str, p: dict[str, Any]) -> dict[str, Any]:
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as e:  # noqa: BLE001 - any import failure means: not usable here
        return {"skipped": f"not installed ({type(e).__name__}: {e})"[:300]}
    if dev == "cuda" and not has_cuda():
        return {"skipped": "no CUDA device"}
    t0 = time.perf_counter()
    dec = VideoDecoder(str(path), device=dev)
    opened = time.perf_counter() - t0
    n = dec.metadata.num_frames or len(dec)

    def run() -> None:
        for s in range(0, n, p["batch"]):
            dec.get_frames_in_range(s, min(n, s + p["batch"]))

    r = timed(run, 1, p["decode_repeats"])
    return {"frames": n, "fps": n * r["fps"], "ms_per_frame": r["ms"] / n, "open_s": opened,
            "seconds_each": [t / 1000 for t in r["ms_each"]], "output": f"RGB uint8 on {dev}, batches of {p['batch']}"}


def nvc_decode(path: Path, p: dict[str, Any]) -> dict[str, Any]:
    try:
        import PyNvVideoCodec as nvc
    except Exception as e:  # noqa: BLE001 - any import failure means: not usable here
        return {"skipped": f"not installed ({type(e).__name__}: {e})"[:300]}
    if not has_cuda():
        return {"skipped": "no CUDA device"}
    counts: list[int] = []

    def run() -> None:
        demux = nvc.CreateDemuxer(filename=str(path))
        dec = nvc.CreateDecoder(gpuid=0, codec=demux.GetNvCodecId(), cudacontext=0, cudastream=0, usedevicememory=True)
        k = 0
        for packet in demux:
            k += sum(1 for _ in dec.Decode(packet))
        counts.append(k)

    r = timed(run, 1, p["decode_repeats"])
    n = counts[-1]
    return {"frames": n, "fps": n * r["fps"], "ms_per_frame": r["ms"] / max(n, 1), "version": getattr(nvc, "__version__", None),
            "seconds_each": [t / 1000 for t in r["ms_each"]], "output": "NV12 on the GPU (device memory)"}


def bench_decode(path: Path, p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"video": path.name, "bytes": path.stat().st_size}
    for label, fn, args in (("pyav", pyav_decode, ()), ("torchcodec_cuda", torchcodec_decode, ("cuda",)),
                            ("torchcodec_cpu", torchcodec_decode, ("cpu",)), ("pynvvideocodec", nvc_decode, ())):
        log(f"decode {label}")
        out[label] = attempt(fn, path, *args, p)
    base = out["pyav"].get("fps")
    for k in ("torchcodec_cuda", "torchcodec_cpu", "pynvvideocodec"):
        if base and "fps" in out[k]:
            out[k]["vs_pyav"] = out[k]["fps"] / base
    return out


# ---------------------------------------------------------------------------------------------
# 4. end to end


def pipeline_run(path: Path, workdir: Path, model: Path, over: dict[str, Any]) -> dict[str, Any]:
    import vidfilter
    from vidfilter.config import Config

    cfg = Config().override({"output.overwrite": True, **over})
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        t0 = time.perf_counter()
        res = vidfilter.run(str(path), Path(d) / "o.zarr", model=str(model), config=cfg)
        wall = time.perf_counter() - t0
    if not res.ok:
        raise RuntimeError(f"run {res.status}: {res.error}")
    frames = res.frames_this_run or 0
    return {"fps": frames / res.seconds, "seconds": res.seconds, "wall_s": wall, "wall_fps": frames / wall,
            "frames": frames, "keyframes": res.keyframes, "every": cfg.infer.every, "adaptive": cfg.infer.adaptive,
            "device": cfg.infer.device, "precision": cfg.infer.precision, "tile": cfg.infer.tile}


def bench_pipeline(path: Path, workdir: Path, decode_fps: float | None) -> dict[str, Any]:
    modes = {"per_frame": {"infer.every": 1, "infer.adaptive": False}, "keyframe": {}}
    out: dict[str, Any] = {"decode_fps": decode_fps}
    for name in NETS:
        b = bundle(workdir, name)
        for mode, over in modes.items():
            log(f"pipeline {name} {mode}")
            r = out[f"{name}_{mode}"] = attempt(pipeline_run, path, workdir, b, over)
            if decode_fps and "fps" in r:
                r["vs_decode"] = r["fps"] / decode_fps
                r["wall_vs_decode"] = r["wall_fps"] / decode_fps
    return out


# ---------------------------------------------------------------------------------------------
# report


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _why(r: dict[str, Any]) -> str:
    return r.get("skipped") or r.get("error") or ""


def _flag(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def model_table(res: dict[str, Any]) -> str:
    size = res["size"]
    rows = [(n, v, r[v]) for n, r in res["model"].items() for v in [*VARIANTS, "compile"] if v in r]
    head = md_head(f"| net ({size}², batch 1, on the device) | variant | ms/frame | fps | paper bf16 vs {T_PAPER_FPS:.0f} fps | note |")

    def row(x: tuple[str, str, dict[str, Any]]) -> str:
        name, variant, r = x
        label = f"compile ({r['settings']})" if variant == "compile" and "settings" in r else variant
        target = ""
        if name == "paper" and "fps" in r and (variant.startswith("bf16") or r.get("settings", "").startswith("bf16")):
            meaningful = size == 2048 and res["machine"]["device"]["cuda"] is not None
            target = f"{r['fps'] / T_PAPER_FPS:.2f}x ({_flag(r['fps'] >= T_PAPER_FPS) if meaningful else 'n/a: not CUDA at 2048²'})"
        note = f"first call {r['first_call_s']:.1f} s" if "first_call_s" in r else _why(r)
        return f"| {name} | {label} | {_f(r.get('ms'))} | {_f(r.get('fps'))} | {target} | {note} |"

    return text_table(head, rows, row)


def tiling_table(res: dict[str, Any]) -> str:
    rows = [(n, t, r) for n, tiles in res["tiling"].items() for t, r in tiles.items()]
    head = md_head(f"| net (TiledEngine, {res['size']}² host frame) | tile | tiles/frame | ms/frame | fps | vs whole | note |")
    return text_table(head, rows, lambda x: f"| {x[0]} | {x[1]} | {x[2].get('tiles', '-')} | {_f(x[2].get('ms'))} | "
                      f"{_f(x[2].get('fps'))} | {_f(x[2].get('vs_whole'))} | "
                      + (_why(x[2]) or f"{x[2]['device']}, autocast {x[2]['autocast']}, batch {x[2]['batch_size']}") + " |")


def decode_table(res: dict[str, Any]) -> str:
    d = res["decode"]
    rows = [(k, d[k]) for k in ("pyav", "torchcodec_cuda", "torchcodec_cpu", "pynvvideocodec")]
    head = md_head(f"| decoder ({d['video']}, {d['bytes'] / 2**20:.0f} MiB) | frames | fps | ms/frame | vs PyAV | output / note |")
    return text_table(head, rows, lambda x: f"| {x[0]} | {x[1].get('frames', '-')} | {_f(x[1].get('fps'), '{:.1f}')} | "
                      f"{_f(x[1].get('ms_per_frame'))} | {_f(x[1].get('vs_pyav'))} | {_why(x[1]) or x[1].get('output', '')} |")


def pipeline_table(res: dict[str, Any]) -> str:
    pl = res["pipeline"]
    rows = [(k, v) for k, v in pl.items() if isinstance(v, dict)]
    head = md_head(f"| run (vidfilter.run, PyAV decode {_f(pl['decode_fps'], '{:.1f}')} fps) | frames | keyframes | fps | "
                   f"fps incl. setup | vs decode | keyframe target >= {T_KEYFRAME}x | note |")

    def row(x: tuple[str, dict[str, Any]]) -> str:
        k, r = x
        target = ""
        if k.endswith("keyframe") and "vs_decode" in r:
            target = f"{r['vs_decode']:.2f}x " + ("(n/a: --quick)" if res["quick"] else f"({_flag(r['vs_decode'] >= T_KEYFRAME)})")
        return (f"| {k} | {r.get('frames', '-')} | {r.get('keyframes') if r.get('keyframes') is not None else '-'} | "
                f"{_f(r.get('fps'), '{:.1f}')} | {_f(r.get('wall_fps'), '{:.1f}')} | {_f(r.get('vs_decode'))} | {target} | {_why(r)} |")

    return text_table(head, rows, row)


def report(res: dict[str, Any]) -> str:
    m, rev = res["machine"], res["revision"]
    parts = [f"{res['date']}: {m['device']['name']} (torch {m['torch']}, CUDA {m['device']['cuda']}), host {m['cpu']}, "
             f"{m['cores']} cores; commit {rev['commit'][:10]}" + (" (vidfilter/ has uncommitted changes)" if rev["vidfilter_uncommitted"] else "")
             + (" (vidfilter CHANGED during the run)" if res.get("revision_at_end", rev) != rev else "")]
    for key, fn in (("model", model_table), ("tiling", tiling_table), ("decode", decode_table), ("pipeline", pipeline_table)):
        if key in res:
            parts.append(fn(res))
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------


def save(out: Path, res: dict[str, Any]) -> None:
    """Merge ``res`` into the JSON at ``out`` (sections not run now keep their earlier results)."""
    try:
        merged = json.loads(out.read_text())
    except (OSError, ValueError):
        merged = {}
    merged.update(res)
    out.write_text(json.dumps(merged, indent=1, default=float))


def run_sections(args: argparse.Namespace, p: dict[str, Any], res: dict[str, Any], out: Path, t0: float) -> None:
    workdir = Path(args.workdir)
    path = make_clip(workdir, p["size"], p["frames"]) if {"decode", "pipeline"} & set(args.sections) else None
    if "model" in args.sections:
        res["model"] = bench_model(p)
        save(out, res)
    if "tiling" in args.sections:
        res["tiling"] = bench_tiling(p)
        save(out, res)
    if "decode" in args.sections or "pipeline" in args.sections:
        assert path is not None
        res["decode"] = bench_decode(path, p)
        save(out, res)
    if "pipeline" in args.sections:
        assert path is not None
        res["pipeline"] = bench_pipeline(path, workdir, res["decode"]["pyav"].get("fps"))
        save(out, res)
    if "compile" in args.sections:
        res.setdefault("model", {})
        for name in NETS:
            limit = min(p["compile_limit"], args.budget - (time.perf_counter() - t0) - 15)
            log(f"model {name} torch.compile (limit {limit:.0f} s)")
            res["model"].setdefault(name, {})["compile"] = (
                compile_in_child(name, args.quick, limit) if name in p["compile_nets"]
                else {"skipped": "--quick compiles only the fast net (same code path, half the time)"})
            save(out, res)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256² and few frames (a few minutes on 2 CPU cores)")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--out", help="default benchmarks/results/gpu.json (gpu_quick.json with --quick)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "vidfilter-bench-gpu"))
    ap.add_argument("--budget", type=float, help="seconds for the whole run; the compile step gets what is left")
    ap.add_argument("--compile-child", metavar="NET", choices=list(NETS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    p = PLANS[args.quick]
    if args.compile_child:
        print(json.dumps(attempt(compile_child, args.compile_child, p), default=float))
        return 0
    t0 = time.perf_counter()
    args.budget = args.budget or p["budget"]
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    out = Path(args.out or ROOT / "benchmarks" / "results" / ("gpu_quick.json" if args.quick else "gpu.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick, "size": p["size"],
        "frames": p["frames"], "plan": p, "machine": {**machine(), "device": device_info()}, "revision": revision(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "targets": {"paper_bf16_fps_2048": T_PAPER_FPS, "keyframe_over_decode": T_KEYFRAME},
    }
    run_sections(args, p, res, out, t0)
    res["revision_at_end"] = revision()
    res["seconds"] = time.perf_counter() - t0
    save(out, res)
    print(report(res))
    print(f"\n({res['seconds']:.0f} s; JSON: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
