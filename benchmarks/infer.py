"""Inference benchmark: decode, model, pipeline throughput, memory, and the keyframe error study.

Everything is measured in one run on generated H.264 recordings (``vidfilter.synth``) so the
ratios are taken under the same machine load:

- ``decode_fps``: ``VideoFrameSource.iter`` (grey) alone;
- ``model``: ``TiledEngine`` alone on pre-decoded float frames, fast preset (width 16) with random
  weights (weights do not change the speed): whole frame, the default tile (1024) and tile 512,
  in Mpx/s; ``tiling_overhead`` = time(tile) / time(whole) - 1;
- ``pipeline``: ``vidfilter.infer.pipeline.run`` (decode -> estimate -> OME-Zarr write) per frame
  (K = 1) and in keyframe mode (K = 25, 100, 250, adaptive), plus a *free model* run (an identity
  network: the pipeline's own ceiling, i.e. decode + float conversion + interpolation + write);
  ``pipeline / min(decode, model)`` for per-frame mode (target >= 0.85) and
  ``keyframe / decode`` at 2048^2 (target >= 0.5);
- ``stages``: time per frame of decode, compute and write, each timed alone, as shares;
- ``memory``: peak RSS (``ru_maxrss`` of a fresh child process per run) of ``vidfilter run`` on
  200 vs 2000 frames (target: growth < 10 %);
- ``keyframe_study``: background error of keyframe mode vs per-frame estimation (K = 1, 5, 25,
  100, 250, adaptive) on recordings with illumination drift and with a camera shift: mean
  |bg_K - bg_1| (grey levels), error to the true background, and the foreground-mask pixel F1
  against the per-frame masks. The per-frame estimator is the oracle (true background) unless
  ``--study-model`` names a bundle (or ``train``);
- ``costs`` (only with ``--sections costs``): where each millisecond of ``vidfilter run`` goes.
  Per frame at 2048^2 and 640x480, each stage timed alone (median over the frames, wall and the
  process's CPU time): decode, the input frame digest, the network (per network frame and
  amortised at the default ``infer.every``), the keyframe schedule, interpolation, the exact calls
  of ``FrameOutputs`` (exposure matching, clamp, subtract), both masks, the codec encode and chunk
  checksum of each group (and the bytes stored), storing and writing through a real
  ``OmeZarrWriter`` with checksums on and off; then end-to-end ``pipeline.run`` (median baseline,
  fast model in keyframe mode; repeated, the least disturbed kept) with their setup steps, frames
  decoded, the sum of the stage costs against the measured streaming cost and the ratio to
  decode fps. Per recording at 2048^2 (300 and 1500 frames): the frame index build,
  the input hash, polarity detection, the median's and a temporal model's ``prepare``, each alone,
  and the setup of a median and a temporal-model run as ``pipeline.run`` reads it, with the
  frames each decodes. And the decoder's rate on the real recordings of ``../shared/data``.
  It carries its own machine description and date.
- ``threads`` (only with ``--sections threads``): the fast model's keyframe run at 2048² (1500
  frames) with torch's intra-op threads left at the core count against one thread (``infer.threads
  1``: the network on one core beside the decoder), interleaved, the setup cached so that only the
  streaming differs; wall fps and its ratio to decode fps, CPU seconds.
- ``precision`` (only with ``--sections precision``): the same run in float32 against the default
  precision (``auto``: bf16 on a CPU that computes it natively), interleaved the same way.
  ``benchmarks/precision.py`` measures what bf16 changes in the shipped bundles' backgrounds.
- ``per_thread`` (only with ``--sections per_thread``): the median and the fast model's keyframe runs
  at 2048² (1500 frames), setup kept, and the CPU seconds of each of their threads (``/proc/self/task``).
- ``forward`` (only with ``--sections forward``): the same run with the U-Net's forward as it is
  against the forward as it was written before (:func:`forward_as_before`: the input skip
  concatenated in float32 under bf16 autocast, out-of-place activations), interleaved the same way.

Usage::

    python benchmarks/infer.py [--quick] [--sections speed memory keyframe checksums costs]
                               [--out benchmarks/results/infer.json] [--workdir /tmp/vidfilter-bench-infer]

Results are merged into ``--out``: the sections not run keep their earlier results. Generated
videos and the trained study model are cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
from _common import machine, md_head, text_table

ROOT = Path(__file__).resolve().parents[1]

# targets of issue 5
T_OVERLAP = 0.85
T_TILING = 0.15
T_KEYFRAME = 0.5
T_MEMORY = 0.10


# ---------------------------------------------------------------------------------------------
# helpers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_video(workdir: Path, size: int, n: int, *, seed: int = 1, width: int | None = None, **kw: Any) -> Path:
    """An H.264 synthetic recording, ``size`` pixels high and ``width`` (default ``size``) wide (cached by name)."""
    from vidfilter.synth import SyntheticRecording, write_video

    tag = "_".join(f"{k}{v}" for k, v in sorted(kw.items())).replace(" ", "").replace(",", "x").replace("(", "").replace(")", "")
    dims = f"{size}" if width is None else f"{size}x{width}"
    path = workdir / f"rec_{dims}_{n}_s{seed}{'_' + tag if tag else ''}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        rec = SyntheticRecording(n, size, width or size, seed=seed, **kw)
        write_video(path, rec, codec="libx264")
        log(f"  generated {path.name} in {time.perf_counter() - t0:.1f} s")
    return path


# Random weights, but residual (zero-initialised last layer: output = input), so the adaptive
# policy sees a small residual as with a trained model; a non-residual random net's "background"
# is far from every frame and --adaptive then makes every frame a keyframe (measured: a K=250
# adaptive run at 2048^2 became per-frame). The compute cost is the same.
_FAST = {"model.preset": "fast", "model.residual": True, "model.temporal_channel": "none"}


def fast_model(seed: int = 0) -> Any:
    import torch

    from vidfilter.config import Config
    from vidfilter.models import build_model

    torch.manual_seed(seed)
    return build_model(Config().override(_FAST).model)


def fast_bundle(workdir: Path) -> Path:
    from vidfilter.config import Config
    from vidfilter.models import save_bundle

    path = workdir / "fast_random_residual.vfm"
    if not path.exists():
        save_bundle(path, fast_model(), Config().override(_FAST))
    return path


class _Identity:
    """A free 'network' (returns its input): the pipeline's own ceiling."""

    margin = 0
    multiple = 1
    in_channels = 1

    def __call__(self, x: Any) -> Any:
        return x


def free_bundle() -> Any:
    from vidfilter.config import Config

    cfg = Config().override({"model.temporal_channel": "none"})
    return SimpleNamespace(model=_Identity(), config=cfg, normalisation={}, path="identity", sha256=None, version=None)


def decode(path: Path, n: int | None = None) -> tuple[float, list[np.ndarray] | None]:
    """Decode-only frames per second (sequential ``iter``)."""
    import vidfilter

    with vidfilter.open(str(path)) as src:
        n = len(src) if n is None else min(n, len(src))
        t0 = time.perf_counter()
        k = 0
        for _ in src.iter(0, n):
            k += 1
        dt = time.perf_counter() - t0
    return k / dt, None


def frames_of(path: Path, n: int) -> list[np.ndarray]:
    import vidfilter

    with vidfilter.open(str(path)) as src:
        return list(src.iter(0, min(n, len(src))))


def model_time(model: Any, frames: list[np.ndarray], tile: int) -> float:
    """Seconds per frame of TiledEngine alone (a warm-up on a 256^2 crop not counted)."""
    from vidfilter.infer.engine import TiledEngine
    from vidfilter.io.scaling import to_float

    eng = TiledEngine(model, tile=tile, device="cpu", batch_size=4)
    xs = [to_float(f)[None] for f in frames]
    eng(np.ascontiguousarray(xs[0][:, :256, :256]))  # warm-up (weights, allocator)
    t0 = time.perf_counter()
    for x in xs:
        eng(x)
    return (time.perf_counter() - t0) / len(xs)


def write_time(frames: list[np.ndarray], workdir: Path, *, checksums: bool = True, mask: bool = False) -> float:
    """Seconds per frame of the pipeline's write stage alone: an interpolated background made in the
    output dtype, clamp, foreground, and the two Zarr groups (three with ``mask``: the threshold
    mask) stored in parallel (as in ``vidfilter run``)."""
    from concurrent.futures import ThreadPoolExecutor

    from vidfilter.config import Config
    from vidfilter.infer.keyframe import Interp
    from vidfilter.infer.outputs import FrameOutputs, store_frame
    from vidfilter.io.scaling import to_float
    from vidfilter.io.zarr_sink import OmeZarrWriter

    bg0, bg1 = to_float(frames[0]), to_float(frames[-1])
    outputs = FrameOutputs(frames[0].dtype, Config().output, mask=mask)
    groups = ("background", "foreground", "mask") if mask else ("background", "foreground")
    with tempfile.TemporaryDirectory(dir=workdir) as d, ThreadPoolExecutor(len(groups)) as pool:
        w = OmeZarrWriter(Path(d) / "w.zarr", overwrite=True, checksums=checksums)
        shape = frames[0].shape
        n = len(frames)
        sinks = {k: w.image(k, shape, np.uint8, n_frames=n) for k in groups}
        t0 = time.perf_counter()
        for t, f in enumerate(frames):
            store_frame(pool, sinks, t, outputs(t, f, Interp(bg0, 0, bg1, n, t)))
        dt = time.perf_counter() - t0
        w.finalise()
    return dt / n


def pipeline_fps(path: Path, workdir: Path, model: Any, *, every: int | None = None, adaptive: bool | None = None,
                 tile: int | None = None) -> dict[str, Any]:
    """``vidfilter run`` frames per second; ``every`` / ``adaptive`` None = the Config defaults."""
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import run
    from vidfilter.io.registry import open as vf_open

    over: dict[str, Any] = {"infer.device": "cpu", "output.overwrite": True}
    if every is not None:
        over["infer.every"] = every
    if adaptive is not None:
        over["infer.adaptive"] = adaptive
    if tile:
        over["infer.tile"] = tile
    cfg = Config().override(over)
    src = vf_open(str(path))
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        try:
            s = run(src, Path(d) / "o.zarr", model=model, method="model", config=cfg)
        finally:
            src.close()
    return {"fps": s.frames_this_run / s.seconds, "frames": s.frames_this_run, "seconds": s.seconds,
            "keyframes": s.keyframes}


# ---------------------------------------------------------------------------------------------
# speed


def bench_speed(workdir: Path, quick: bool) -> dict[str, Any]:
    from vidfilter.config import Config

    model = fast_model()
    free = free_bundle()
    from vidfilter.models import load_model

    bundle = load_model(fast_bundle(workdir))
    # n: frames of the recording (keyframe runs use all of it); n_model: frames timed for the model;
    # per_frame: frames of the per-frame pipeline run (0 = skipped); ks: keyframe runs measured.
    # At 2048^2 the fast net takes several seconds per frame here, so per-frame runs there are few.
    # Keyframe runs: "K<k>" fixed grid, "K<k>_adaptive" with the adaptive check, "default" = the
    # Config defaults (K = 500 with the adaptive check). K = 25 runs on a shorter recording (n_short).
    plan = (
        {512: dict(n=120, n_short=120, n_model=3, per_frame=12, ks=[25], adaptive=False, tiles=[]),
         2048: dict(n=1001, n_short=251, n_model=1, per_frame=0, ks=[25, 100, 250, 1000], adaptive=True, tiles=[1024])}
        if quick else
        {512: dict(n=1001, n_short=300, n_model=6, per_frame=40, ks=[25, 100, 250, 1000], adaptive=True, tiles=[]),
         1024: dict(n=1001, n_short=300, n_model=3, per_frame=10, ks=[25, 100, 250, 1000], adaptive=True, tiles=[512]),
         2048: dict(n=1001, n_short=251, n_model=2, per_frame=3, ks=[25, 100, 250, 1000], adaptive=True, tiles=[1024, 512])}
    )
    out: dict[str, Any] = {}
    for size, p in plan.items():
        log(f"speed {size}^2")
        path = make_video(workdir, size, p["n"], illumination_drift=0.02)
        r: dict[str, Any] = {"frames": p["n"]}
        r["decode_fps"] = decode(path)[0]
        frames = frames_of(path, 30)
        mp = size * size / 1e6
        whole = model_time(model, frames[: p["n_model"]], tile=max(size, 1024) + 1024)
        r["model_whole_s_per_frame"] = whole
        r["model_whole_mpx_s"] = mp / whole
        r["model_fps"] = 1 / whole
        r["tiling"] = {}
        for tile in p["tiles"]:
            nt = 1 if tile == 512 and size >= 2048 else p["n_model"]
            tt = model_time(model, frames[:nt], tile=tile)
            r["tiling"][str(tile)] = {"s_per_frame": tt, "mpx_s": mp / tt, "overhead": tt / whole - 1}
        # frames up to the default tile run whole
        default_tile = Config().infer.tile
        default_t = whole if size <= default_tile else r["tiling"][str(default_tile)]["s_per_frame"]
        r["model_default_tile_fps"] = 1 / default_t
        r["write_s_per_frame"] = write_time(frames[:30], workdir)
        dec_s = 1 / r["decode_fps"]
        tot = dec_s + default_t + r["write_s_per_frame"]
        r["stage_share_per_frame_mode"] = {"decode": dec_s / tot, "compute": default_t / tot, "write": r["write_s_per_frame"] / tot}
        # pipeline runs (default tile 1024)
        r["pipeline"] = {}
        if p["per_frame"]:
            pf_path = path if p["per_frame"] >= p["n"] else make_video(workdir, size, p["per_frame"], illumination_drift=0.02)
            pf = r["pipeline"]["per_frame"] = pipeline_fps(pf_path, workdir, bundle, every=1, adaptive=False)
            pf["ratio_to_min_decode_model"] = pf["fps"] / min(r["decode_fps"], 1 / default_t)
        r["pipeline"]["free_model_K1"] = pipeline_fps(path, workdir, free, every=1, adaptive=False)
        short = path if p["n_short"] >= p["n"] else make_video(workdir, size, p["n_short"], illumination_drift=0.02)
        for k in p["ks"]:
            r["pipeline"][f"K{k}"] = pipeline_fps(short if k < 100 else path, workdir, bundle, every=k, adaptive=False)
        if p["adaptive"]:
            r["pipeline"]["K250_adaptive"] = pipeline_fps(path, workdir, bundle, every=250, adaptive=True)
            r["pipeline"]["default"] = pipeline_fps(path, workdir, bundle)
        for key, v in r["pipeline"].items():
            v["ratio_to_decode"] = v["fps"] / r["decode_fps"]
        out[str(size)] = r
        log(json.dumps({k: v for k, v in r.items() if k != "pipeline"}, default=float)[:400])
    return out


# ---------------------------------------------------------------------------------------------
# chunk checksums


def bench_checksums(workdir: Path, quick: bool) -> dict[str, Any]:
    """What the per-chunk checksums cost: the write stage with and without them (interleaved
    repeats, median), and ``verify`` full / ``--quick`` per frame of a finished run store."""
    from vidfilter.io.integrity import verify

    out: dict[str, Any] = {}
    for size in (512, 2048):
        log(f"checksums {size}^2")
        path = make_video(workdir, size, 60 if quick else 120, illumination_drift=0.02)
        frames = frames_of(path, 30)
        on, off = [], []
        for _ in range(3 if quick else 5):
            off.append(write_time(frames, workdir, checksums=False))
            on.append(write_time(frames, workdir, checksums=True))
        r: dict[str, Any] = {"write_ms_per_frame_without": 1000 * float(np.median(off)),
                             "write_ms_per_frame_with": 1000 * float(np.median(on))}
        r["overhead"] = r["write_ms_per_frame_with"] / r["write_ms_per_frame_without"] - 1
        with tempfile.TemporaryDirectory(dir=workdir) as d:
            from vidfilter.config import Config
            from vidfilter.infer.pipeline import run

            store = Path(d) / "o.zarr"
            n = run(str(path), store, method="max", config=Config().override({"infer.every": 1})).frames
            for quick_ in (False, True):
                t0 = time.perf_counter()
                rep = verify(store, quick=quick_)
                assert rep.complete, rep.problems
                r["verify_quick_ms_per_frame" if quick_ else "verify_ms_per_frame"] = 1000 * (time.perf_counter() - t0) / n
        out[str(size)] = r
        log(json.dumps(r))
    return out


# ---------------------------------------------------------------------------------------------
# memory


def peak_rss(args: list[str]) -> dict[str, float | None]:
    """Peak RSS in MB of ``vidfilter <args>`` in a fresh process: whole process (``ru_maxrss``, includes
    importing torch) and during the run only (VmHWM after a reset once the imports are done)."""
    from vidfilter._peak_rss import peak_rss_run

    d = peak_rss_run(args, cwd=ROOT)
    if d["rc"] != 0:
        raise RuntimeError(f"vidfilter {' '.join(args)} failed (rc {d['rc']})")
    return {"process_peak_mb": d["process_kb"] / 1024, "run_peak_mb": d["run_kb"] / 1024 if d["run_kb"] else None}


def bench_memory(workdir: Path, quick: bool) -> dict[str, Any]:
    size = 256 if quick else 512
    every = 25
    bundle = fast_bundle(workdir)
    res: dict[str, Any] = {"size": size, "every": every, "unit": "MB"}
    for n in (200, 2000):
        log(f"memory {size}^2 x {n}")
        path = make_video(workdir, size, n, seed=7)
        with tempfile.TemporaryDirectory(dir=workdir) as d:
            t0 = time.perf_counter()
            mb = peak_rss(["-q", "run", str(path), "--model", str(bundle), "--out", f"{d}/o.zarr", "--every", str(every), "--device", "cpu"])
            res[str(n)] = {**mb, "seconds": time.perf_counter() - t0}
    key = "run_peak_mb" if res["200"]["run_peak_mb"] else "process_peak_mb"
    res["peak_rss_mb_200"] = res["200"][key]
    res["peak_rss_mb_2000"] = res["2000"][key]
    res["measure"] = key
    res["growth"] = res["2000"][key] / res["200"][key] - 1
    res["growth_process"] = res["2000"]["process_peak_mb"] / res["200"]["process_peak_mb"] - 1
    return res


# ---------------------------------------------------------------------------------------------
# keyframe study


def study_model(workdir: Path, quick: bool) -> Path:
    """A fast-preset model trained for ~75 s on a 256^2 synthetic recording with drift (cached)."""
    from vidfilter.config import Config
    from vidfilter.synth import SyntheticRecording, write_video
    from vidfilter.train.loop import train

    out = workdir / "study_fast.vfm"
    if out.exists():
        return out
    vid = workdir / "study_train.mkv"
    if not vid.exists():
        write_video(vid, SyntheticRecording(400, 256, 256, seed=11, illumination_drift=0.05), codec="ffv1")
    cfg = Config().override({
        "model.preset": "fast", "sampling.crop": 128, "train.steps": 10**9, "train.minutes": 0.75 if quick else 1.25,
        "train.batch_size": 8, "train.val_pairs": 8, "train.device": "cpu", "output.polarity": "dark",
    })
    t0 = time.perf_counter()
    train([str(vid)], out, cfg, progress=False)
    log(f"  trained the study model in {time.perf_counter() - t0:.0f} s")
    return out


class _Cached:
    """A stub estimator returning precomputed per-frame backgrounds (= what the model returns at t)."""

    stateful = False

    def __init__(self, bgs: np.ndarray) -> None:
        self.bgs = bgs
        self.calls = 0

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.bgs[t]


def keyframe_errors(rec: Any, bgs: np.ndarray, frames: np.ndarray, *, every: int, adaptive: bool, bound: float) -> dict[str, Any]:
    from vidfilter.polarity import threshold_mask
    from vidfilter.eval.metrics import PixelScore
    from vidfilter.infer import keyframe as kf
    from vidfilter.io.scaling import to_float

    n = len(frames)
    est = _Cached(bgs)
    keys: list[int] = []
    err1, errtrue = [], []
    f1_vs_1, f1_vs_gt = PixelScore(), PixelScore()
    grid = ((g, est.background(g, frames[g])) for g in kf.grid(0, every, n))
    items = kf.schedule(iter(enumerate(frames)), est.background, grid, n, every, adaptive=adaptive, bound=bound,
                        keyframes=keys, to_float=to_float)
    for t, frame, bg in items:
        bg = bg.array() if isinstance(bg, kf.Interp) else bg
        e = float(np.mean(np.abs(bg - bgs[t]))) * 255
        err1.append(e)
        gt = rec.frame(t)
        errtrue.append(float(np.mean(np.abs(bg * 255 - gt.background))))
        m = threshold_mask(frame, bg)
        f1_vs_1.update(m, threshold_mask(frame, bgs[t]))
        f1_vs_gt.update(m, gt.mask)
    return {
        "keyframes": len(keys), "model_calls_share": len(keys) / n,
        "mean_abs_vs_per_frame_grey": float(np.mean(err1)), "max_frame_mean_abs_vs_per_frame_grey": float(np.max(err1)),
        "mean_abs_vs_true_grey": float(np.mean(errtrue)),
        "mask_f1_vs_per_frame": f1_vs_1.result().f1, "mask_f1_vs_truth": f1_vs_gt.result().f1,
    }


class _Oracle:
    """An ideal per-frame estimator: the synthetic recording's true background at ``t``."""

    stateful = False

    def __init__(self, rec: Any) -> None:
        self.rec = rec

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        return (self.rec.frame(t).background / 255).astype(np.float32)


def bench_keyframe(workdir: Path, quick: bool, model: str | None = None) -> dict[str, Any]:
    """Keyframe error vs per-frame inference.

    The per-frame estimator is by default the *oracle* (the true background of the synthetic
    recording), which isolates the error keyframe mode adds to a good per-frame model. With
    ``model`` ("train" or a bundle path) a trained network is used instead (``train``: ~75 s of
    training here, which under load fell into the identity trap, see docs/performance.md).
    """
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.scaling import to_float
    from vidfilter.models import load_model
    from vidfilter.synth import SyntheticRecording

    size, n = (128, 300) if quick else (256, 500)
    res: dict[str, Any] = {"size": size, "frames": n, "cases": {}}
    if model:
        mpath = study_model(workdir, quick) if model == "train" else Path(model)
        bundle = load_model(mpath)
        est: Any = ModelBackground(bundle, Config().override({"infer.device": "cpu"}))
        res["estimator"] = {"kind": "model", "path": str(mpath), "sha256": bundle.sha256}
    else:
        est = None
        res["estimator"] = {"kind": "oracle (true background)"}
    cases = {
        "drift_0.05": dict(illumination_drift=0.05),
        "drift_0.02": dict(illumination_drift=0.02),
        "shift_4x3px+drift_0.02": dict(illumination_drift=0.02, shift_at=n // 2 + 13, shift_px=(4.0, 3.0)),
    }
    ks = [1, 5, 25, 100, 250]
    variants = [(k, False, 0.02) for k in ks] + [(250, True, 0.02), (250, True, 0.01), (250, True, 0.005), (100, True, 0.01), (100, True, 0.005)]
    for name, kw in cases.items():
        log(f"keyframe study: {name}")
        rec = SyntheticRecording(n, size, size, seed=5, **kw)
        frames = np.stack([rec[t] for t in range(n)])
        t0 = time.perf_counter()
        e = est or _Oracle(rec)
        bgs = np.stack([e.background(t, to_float(f)) for t, f in enumerate(frames)]).astype(np.float32)
        log(f"  per-frame backgrounds: {time.perf_counter() - t0:.0f} s")
        case: dict[str, Any] = {}
        for k, ad, b in variants:
            label = f"K{k}" + (f"_adaptive{b}" if ad else "")
            case[label] = keyframe_errors(rec, bgs, frames, every=k, adaptive=ad, bound=b)
            if k == 1:
                case[label]["keyframes"] = n
                case[label]["model_calls_share"] = 1.0
        res["cases"][name] = case
    return res


# ---------------------------------------------------------------------------------------------
# costs: where each millisecond of `vidfilter run` goes


class Cost(NamedTuple):
    """Milliseconds of one stage: wall clock, and CPU of the whole process (every thread: decoder,
    Blosc, OpenCV and torch threads count; None where not measured), each the median over the
    calls timed."""

    wall: float
    cpu: float | None


def _median_ms(fn: Any, calls: Any) -> Cost:
    """Median wall and CPU milliseconds of ``fn(*args)`` over ``calls``."""
    wall, cpu = [], []
    for args in calls:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return Cost(1000 * float(np.median(wall)), 1000 * float(np.median(cpu)))


@contextmanager
def spy(targets: list[tuple[Any, str, str]], count: dict[str, int] | None = None) -> Iterator[dict[str, float]]:
    """Replace each ``owner.attr`` (a module function or a class's method) by a wrapper adding the
    seconds of its calls to ``spent[label]``, the CPU seconds of the whole process meanwhile (all
    its threads) to ``spent[label + "_cpu"]`` and, with ``count`` (:func:`counting_decodes`), the
    frames decoded meanwhile to ``spent[label + "_decoded"]`` (the last two belong to the call only
    while no other thread works: the setup steps of a run); the originals are put back on exit."""
    spent = {k: 0.0 for _, _, label in targets for k in (label, f"{label}_cpu", f"{label}_decoded")}
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
    for (owner, attr, label), (_, _, orig) in zip(targets, saved):
        def wrapped(*a: Any, _orig: Any = orig, _label: str = label, **k: Any) -> Any:
            t0, c0, d0 = time.perf_counter(), time.process_time(), count["decoded"] if count else 0
            try:
                return _orig(*a, **k)
            finally:
                spent[_label] += time.perf_counter() - t0
                spent[f"{_label}_cpu"] += time.process_time() - c0
                spent[f"{_label}_decoded"] += count["decoded"] - d0 if count else 0

        setattr(owner, attr, wrapped)
    try:
        yield spent
    finally:
        for owner, attr, orig in saved:
            setattr(owner, attr, orig)


@contextmanager
def counting_decodes() -> Iterator[dict[str, int]]:
    """Count, in this process, the frames PyAV decodes (``VideoFrameSource._decode`` yields) and the
    random-access reads (``src[t]``) of every video source, whatever thread reads."""
    from vidfilter.io.video_source import VideoFrameSource

    count = {"decoded": 0, "reads": 0}
    lock = threading.Lock()
    decode, read = VideoFrameSource._decode, VideoFrameSource._read

    def counted_decode(self: Any) -> Iterator[Any]:
        for item in decode(self):
            with lock:
                count["decoded"] += 1
            yield item

    def counted_read(self: Any, t: int) -> np.ndarray:
        with lock:
            count["reads"] += 1
        return read(self, t)

    VideoFrameSource._decode, VideoFrameSource._read = counted_decode, counted_read  # type: ignore[method-assign]
    try:
        yield count
    finally:
        VideoFrameSource._decode, VideoFrameSource._read = decode, read  # type: ignore[method-assign]


def decode_costs(path: Path, n: int | None = None, max_seconds: float | None = None) -> dict[str, Any]:
    """Sequential grey decode (``vidfilter.open(path).iter()``): ms per frame (median and mean) and
    fps, over the first ``n`` frames (all), stopping after ``max_seconds`` if given."""
    import vidfilter

    with vidfilter.open(str(path)) as src:
        n = len(src) if n is None else min(n, len(src))
        times: list[float] = []
        start = t0 = time.perf_counter()
        c0 = time.process_time()
        for _ in src.iter(0, n):
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
            if max_seconds is not None and t1 - start > max_seconds:
                break
        cpu = time.process_time() - c0
    total = t0 - start
    return {"frames": len(times), "ms_median": 1000 * float(np.median(times)), "ms_mean": 1000 * total / len(times),
            "cpu_ms_mean": 1000 * cpu / len(times), "fps": len(times) / total}


class ChunkCodec:
    """The Zarr codec pipeline of :func:`vidfilter.io.zarr_sink.array_options` for a chunk of
    ``frames`` frames (frames up to ``SPATIAL_SPLIT_ABOVE`` a side are one chunk each): encode,
    nothing stored."""

    def __init__(self, frame_shape: tuple[int, ...], dtype: Any, frames: int = 1) -> None:
        import asyncio

        import zarr
        from zarr.core.buffer import default_buffer_prototype

        from vidfilter.io.zarr_sink import SPATIAL_SPLIT_ABOVE, array_options

        assert max(frame_shape) <= SPATIAL_SPLIT_ABOVE, "one chunk per run of frames only up to SPATIAL_SPLIT_ABOVE"
        shape = (frames, *frame_shape)
        options = array_options(frames) if frames > 1 else array_options()  # a revision of one frame a chunk: no argument
        a = zarr.create_array(zarr.storage.MemoryStore(), shape=shape, chunks=shape, dtype=dtype, **options)
        self.array = a._async_array
        self.proto = default_buffer_prototype()
        self.spec = self.array.metadata.get_chunk_spec((0,) * len(shape), self.array.config, self.proto)
        self.loop = asyncio.new_event_loop()

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """The bytes of the chunk file of ``frames`` (a run, stacked on the first axis)."""
        nd = self.proto.nd_buffer.from_numpy_array(np.ascontiguousarray(frames))
        (buf,) = self.loop.run_until_complete(self.array.codec_pipeline.encode([(nd, self.spec)]))
        return buf.as_numpy_array()

    def close(self) -> None:
        self.loop.close()


def chunk_costs(arrays: list[dict[str, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Per group: codec encode of the chunks a store writes (runs of ``frames_per_chunk`` frames)
    and the chunk checksum the store computes on each (``chunk_digest``), wall and CPU ms per
    frame (medians over the chunks, over the frames of a chunk), and the bytes stored per frame."""
    from vidfilter.io.integrity import chunk_digest

    try:
        from vidfilter.io.zarr_sink import frames_per_chunk
    except ImportError:  # a revision that stores one frame a chunk
        def frames_per_chunk(frame_bytes: int, n_frames: int) -> int:
            return 1

    out: dict[str, dict[str, float]] = {}
    for g, first in arrays[0].items():
        k = frames_per_chunk(first.nbytes, len(arrays))
        runs = [np.stack([a[g] for a in arrays[i : i + k]]) for i in range(0, len(arrays) - k + 1, k)]
        codec = ChunkCodec(first.shape, first.dtype, k)
        chunks = [codec.encode(r) for r in runs]
        enc = _median_ms(codec.encode, [(r,) for r in runs])
        dig = _median_ms(chunk_digest, [(c.data,) for c in chunks])
        codec.close()
        size = float(np.median([c.nbytes for c in chunks])) / k
        out[g] = {"frames_per_chunk": k, "encode_ms": enc.wall / k, "encode_cpu_ms": enc.cpu / k,
                  "checksum_ms": dig.wall / k, "checksum_cpu_ms": dig.cpu / k,
                  "bytes_per_frame": size, "raw_bytes_per_frame": float(first.nbytes), "ratio": float(first.nbytes / size)}
    return out


def store_time(arrays: list[dict[str, np.ndarray]], workdir: Path, *, checksums: bool = True) -> Cost:
    """Wall and CPU ms per frame of storing precomputed outputs only: ``store_frame`` into a real
    ``OmeZarrWriter`` (codec, chunk checksums, files, the fsync every 16 frames), one thread per group."""
    from concurrent.futures import ThreadPoolExecutor

    from vidfilter.infer.outputs import store_frame
    from vidfilter.io.zarr_sink import OmeZarrWriter

    n = len(arrays)
    with tempfile.TemporaryDirectory(dir=workdir) as d, ThreadPoolExecutor(len(arrays[0])) as pool:
        w = OmeZarrWriter(Path(d) / "w.zarr", overwrite=True, checksums=checksums)
        sinks = {k: w.image(k, a.shape, a.dtype, n_frames=n) for k, a in arrays[0].items()}
        t0, c0 = time.perf_counter(), time.process_time()
        for t, a in enumerate(arrays):
            store_frame(pool, sinks, t, a)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        w.finalise()
    return Cost(1000 * dt / n, 1000 * cpu / n)


def network_costs(frames: list[np.ndarray], n: int) -> Cost:
    """ms per network frame: the fast preset (random weights) through ``TiledEngine`` with the
    default ``infer`` settings on CPU, as ``ModelBackground.background`` calls it (a 256² warm-up
    not counted)."""
    from vidfilter.config import Config
    from vidfilter.infer.engine import TiledEngine
    from vidfilter.io.scaling import to_float

    eng = TiledEngine.from_config(fast_model(), Config().override({"infer.device": "cpu"}).infer)
    xs = [np.ascontiguousarray(to_float(f)[None], dtype=np.float32) for f in frames[:n]]
    eng(np.ascontiguousarray(xs[0][:, :256, :256]))
    return _median_ms(eng, [(x,) for x in xs])


def schedule_costs(frames: list[np.ndarray], every: int, bound: float) -> tuple[dict[str, Cost], dict[str, int]]:
    """Per frame of the keyframe schedule (``kf.schedule``) with and without the adaptive drift
    check (``schedule_fixed``, ``schedule_adaptive``), and the keyframes each made; the grid
    keyframes' backgrounds are the frames themselves, as are the extra keyframes' (the
    identity-like random residual net), so no network time is in it."""
    from vidfilter.infer import keyframe as kf
    from vidfilter.io.scaling import to_float

    n = len(frames)
    costs: dict[str, Cost] = {}
    made: dict[str, int] = {}
    for adaptive in (False, True):
        name = "schedule_adaptive" if adaptive else "schedule_fixed"
        keys: list[int] = []
        grid = iter([(g, to_float(frames[g])) for g in kf.grid(0, every, n)])
        items = kf.schedule(iter(enumerate(frames)), lambda t, f: f, grid, n, every, adaptive=adaptive, bound=bound,
                            keyframes=keys, to_float=to_float)
        costs[name] = _median_ms(lambda: next(items), [()] * n)
        made[name] = len(keys)
    return costs, made


def compute_costs(frames: list[np.ndarray], polarity: str, every: int, n_heavy: int) -> tuple[dict[str, Cost], list[dict[str, np.ndarray]]]:
    """Wall and CPU ms per frame (median) of each call ``FrameOutputs`` makes on a uint8 frame between two
    keyframes ``every`` apart (their float32 backgrounds: the first and last frame), of the input
    frame digest, of both masks (``object_mask`` on the first ``n_heavy`` frames), and the arrays a
    model run stores (background, foreground, threshold mask) for the codec and write timings."""
    from vidfilter.config import Config
    from vidfilter.infer import keyframe as kf
    from vidfilter.infer.outputs import FrameOutputs, background_as, match_exposure
    from vidfilter.io.integrity import frame_digest
    from vidfilter.io.scaling import to_float
    from vidfilter.polarity import clamp_background, mask_level, object_mask, subtract

    dtype, n = frames[0].dtype, len(frames)
    bg0, bg1 = to_float(frames[0]), to_float(frames[-1])
    interps = [kf.Interp(bg0, 0, bg1, every, 1 + t * (every - 2) // max(n - 1, 1)) for t in range(n)]
    oc = Config().override({"output.polarity": polarity}).output
    pol = oc.polarity
    b8 = [background_as(i, dtype) for i in interps]
    matched = [match_exposure(f, b) for f, b in zip(frames, b8)]
    clamped = [clamp_background(f, b, pol) for f, b in zip(frames, matched)]
    fgs = [subtract(f, b, pol) for f, b in zip(frames, clamped)]
    level = mask_level(oc.mask_threshold, dtype, True)
    r = {
        "frame_digest": _median_ms(frame_digest, [(f,) for f in frames]),
        "to_float": _median_ms(to_float, [(f,) for f in frames]),
        "interp_array": _median_ms(kf.Interp.array, [(i,) for i in interps]),
        "interp_to_dtype": _median_ms(background_as, [(i, dtype) for i in interps]),
        "match_exposure": _median_ms(match_exposure, zip(frames, b8)),
        "clamp_background": _median_ms(clamp_background, [(f, b, pol) for f, b in zip(frames, matched)]),
        "subtract": _median_ms(subtract, [(f, b, pol) for f, b in zip(frames, clamped)]),
        "subtract_float": _median_ms(lambda f, i: subtract(to_float(f), i.array(), pol), zip(frames, interps)),
        "outputs_model": _median_ms(FrameOutputs(dtype, oc, match_exposure=True), zip(range(n), frames, interps)),
        "outputs_baseline": _median_ms(FrameOutputs(dtype, oc, match_exposure=False), zip(range(n), frames, interps)),
        "mask_threshold": _median_ms(lambda fg: (fg > level).view(np.uint8), [(fg,) for fg in fgs]),
        "mask_object": _median_ms(lambda f, b: object_mask(f, b, polarity=pol.value, floor_high=oc.mask_threshold),
                                  list(zip(frames, clamped))[:n_heavy]),
    }
    arrays = [{"background": b, "foreground": fg, "mask": (fg > level).view(np.uint8)} for b, fg in zip(clamped, fgs)]
    return r, arrays


def pipeline_costs(path: Path, workdir: Path, *, method: str, model: Any = None, setup_cache: bool = False,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``vidfilter.infer.pipeline.run`` with the default settings (device cpu; the setup cache
    off unless ``setup_cache``, so that every run sets up from the frames): wall and CPU
    time, the setup steps inside it (input hash, polarity detection, the estimator's ``prepare``;
    seconds and frames decoded), the streaming stage (``pipeline._stream``: decode, estimate and
    write threads; wall and CPU seconds), frames decoded in all and keyframes. CPU time is that of
    the whole process (every thread): it grows little when other jobs share the cores, wall time
    does."""
    from vidfilter import polarity
    from vidfilter.baselines import MedianProjection
    from vidfilter.config import Config
    from vidfilter.infer import pipeline
    from vidfilter.io import registry

    cfg = Config().override({"infer.device": "cpu", "output.overwrite": True, "infer.setup_cache": setup_cache, **(overrides or {})})
    targets = [(pipeline, "file_sha256", "input_hash"), (polarity, "polarity_evidence", "polarity"),
               (registry, "open", "open"), (MedianProjection, "prepare", "prepare"),
               (pipeline.ModelBackground, "prepare", "prepare"), (pipeline, "_stream", "stream")]
    with tempfile.TemporaryDirectory(dir=workdir) as d, counting_decodes() as count, spy(targets, count) as spent:
        t0, c0 = time.perf_counter(), time.process_time()
        s = pipeline.run(str(path), Path(d) / "o.zarr", model=model, method=method, config=cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stored = group_bytes(Path(d) / "o.zarr")
    n = s.frames
    stream, stream_cpu = spent.pop("stream"), spent.pop("stream_cpu")
    return {"frames": n, "wall_s": wall, "cpu_s": cpu, "run_seconds": s.seconds,
            **{k if k.endswith("_decoded") else f"{k}_s": v for k, v in spent.items()},
            "streaming_s": stream, "streaming_ms_per_frame": 1000 * stream / n, "streaming_fps": n / stream,
            "streaming_cpu_ms_per_frame": 1000 * stream_cpu / n, "streaming_cores_busy": stream_cpu / stream,
            "wall_ms_per_frame": 1000 * wall / n, "keyframes": s.keyframes, "frames_decoded": count["decoded"],
            "random_reads": count["reads"], "bytes_per_frame": {k: v / n for k, v in stored.items()}}


def group_bytes(store: Path) -> dict[str, int]:
    """Bytes on disk of each image group of an output store, and of the whole store (``total``)."""
    sizes = {g.name: sum(f.stat().st_size for f in g.rglob("*") if f.is_file()) for g in store.iterdir() if g.is_dir()}
    return {**sizes, "total": sum(f.stat().st_size for f in store.rglob("*") if f.is_file())}


def best_run(repeats: int, *args: Any, **kw: Any) -> dict[str, Any]:
    """:func:`pipeline_costs` ``repeats`` times: the run with the shortest streaming time (the least
    disturbed by other jobs on the machine), with every run's streaming ms/frame and wall time."""
    runs = [pipeline_costs(*args, **kw) for _ in range(repeats)]
    for r in runs:
        log(f"  {kw.get('method')} run: {json.dumps(r, default=float)}")
    best = min(runs, key=lambda r: r["streaming_s"])
    return {**best, "repeats_streaming_ms_per_frame": [r["streaming_ms_per_frame"] for r in runs],
            "repeats_wall_s": [r["wall_s"] for r in runs]}


def temporal_bundle(workdir: Path) -> Path:
    """A fast-preset bundle (random weights) with the temporal channel ``max`` (dark animals) and
    registration ``auto``: its ``prepare`` takes the temporal statistic and the registration survey."""
    import torch

    from vidfilter.config import Config
    from vidfilter.models import build_model, save_bundle

    path = workdir / "fast_random_temporal_max.vfm"
    if not path.exists():
        cfg = Config().override({**_FAST, "model.temporal_channel": "max", "output.polarity": "dark"})
        torch.manual_seed(0)
        save_bundle(path, build_model(cfg.model), cfg)
    return path


def _setup_step(fn: Any) -> dict[str, Any]:
    with counting_decodes() as count:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
    return {"s": dt, "decoded": count["decoded"], "random_reads": count["reads"]}


def keyframes_of(path: Path) -> int:
    """The keyframe count of a video (``describe()``)."""
    import vidfilter

    with vidfilter.open(str(path)) as src:
        return int(src.describe()["keyframes"])


def _open_close(path: Path, *, cached: bool) -> None:
    """Open ``path`` and close it, checking whether its frame index came from the cache."""
    import vidfilter

    src = vidfilter.open(str(path))
    src.close()
    if src.index_cached != cached:
        raise RuntimeError(f"{path}: index_cached is {src.index_cached}, expected {cached}")


def run_setup(src: Any, est: Any, bundle: Any) -> None:
    """The setup of ``pipeline.run`` with the default config: the polarity frames (none where the
    bundle gives the polarity) and the estimator's setup frames read in one pass
    (``PrefetchedSource``), the polarity resolved, the estimator prepared."""
    from vidfilter.config import Config
    from vidfilter.io.prefetch import PrefetchedSource
    from vidfilter.resolve import polarity_frames, resolve

    cfg = Config()
    setup = PrefetchedSource(src, np.union1d(polarity_frames(cfg, len(src), bundle), est.setup_frames(len(src))))
    resolve(cfg, setup, bundle=bundle, run=True)
    with setup:
        est.prepare(setup)


def setup_costs(path: Path, bundle: Any) -> dict[str, Any]:
    """Seconds and frames decoded of each per-recording step before the first output frame, each
    on a freshly opened source: the frame index (first open, empty index cache), a cached open, the
    input file hash, polarity detection, the median's ``prepare``, a temporal model's ``prepare`` (each
    alone, reading frame by frame; their sums for a median and for a temporal model run:
    ``total_median_s``, ``total_model_s``), and the setup of a median run and of
    that model's run as ``pipeline.run`` does it (:func:`run_setup`)."""
    import vidfilter
    from vidfilter.baselines import make_baseline
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import ModelBackground
    from vidfilter.io.integrity import file_sha256
    from vidfilter.polarity import polarity_evidence

    r: dict[str, Any] = {}
    old = os.environ.get("VIDFILTER_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["VIDFILTER_CACHE_DIR"] = cache  # vidfilter.io.video_source.cache_dir(): no index there yet
        try:
            r["index_build"] = _setup_step(lambda: _open_close(path, cached=False))
            r["open_cached_index"] = _setup_step(lambda: _open_close(path, cached=True))
        finally:
            os.environ.pop("VIDFILTER_CACHE_DIR") if old is None else os.environ.update(VIDFILTER_CACHE_DIR=old)
    r["input_hash"] = _setup_step(lambda: file_sha256(path))
    est = ModelBackground(bundle, Config().override({"infer.device": "cpu"}))
    steps = {"polarity": polarity_evidence, "median_prepare": lambda s: make_baseline("median").prepare(s),
             "model_prepare": est.prepare, "run_setup_median": lambda s: run_setup(s, make_baseline("median"), None),
             "run_setup_model": lambda s: run_setup(s, est, bundle)}
    for name, fn in steps.items():
        with vidfilter.open(str(path)) as src:
            r[name] = _setup_step(lambda: fn(src))
    r["model_prepare"]["registration"] = est.registration.summary() if est.registration is not None else None
    r["total_median_s"] = sum(r[k]["s"] for k in ("index_build", "input_hash", "polarity", "median_prepare"))
    r["total_model_s"] = sum(r[k]["s"] for k in ("index_build", "input_hash", "model_prepare"))
    return r


#: real recordings of ../shared/data (decoder rate on real content)
REAL_VIDEOS = {"flies_sleap": "flies_sleap/clip.mp4", "mouse_tracktor": "mouse_tracktor/mouse_video.mp4"}


def real_decode(max_seconds: float) -> dict[str, Any]:
    """Decode fps of the real recordings in ``../shared/data`` (skipped where missing)."""
    import vidfilter

    out: dict[str, Any] = {}
    for name, rel in REAL_VIDEOS.items():
        p = ROOT.parent / "shared" / "data" / rel
        if not p.exists():
            out[name] = {"path": str(p), "skipped": "file missing"}
            continue
        with vidfilter.open(str(p)) as src:
            d = src.describe()
        n, h, w = d["shape"][:3]
        r = decode_costs(p, max_seconds=max_seconds)
        out[name] = {"path": f"../shared/data/{rel}", "resolution": f"{w}x{h}", "frames": n, "keyframes": d["keyframes"],
                     "codec": d["codec"], "pixel_format": d["pixel_format"], **{f"decode_{k}": v for k, v in r.items()}}
        log(f"  {name}: {json.dumps(out[name])}")
    return out


def stage_sums(r: dict[str, Any]) -> dict[str, Any]:
    """The stage costs a run's frame passes through, summed, wall and CPU (decode as its mean,
    1 / fps; the network amortised over the run's own keyframes), against the run's measured
    streaming cost."""
    st, cpu, dec = r["stages_ms"], r["stages_cpu_ms"], r["decode"]
    keys = ("frame_digest", "schedule_adaptive", "store_bg_fg_checksums")
    common = dec["ms_mean"] + sum(st[k] for k in keys)
    common_cpu = dec["cpu_ms_mean"] + sum(cpu[k] for k in keys)
    out: dict[str, Any] = {}
    for key, outputs in (("median", "outputs_baseline"), ("model_keyframe", "outputs_model")):
        p = r["pipeline"][key]
        share = (p["keyframes"] or 0) / p["frames"] if key == "model_keyframe" else 0.0
        net, net_cpu = st["network_per_network_frame"] * share, cpu["network_per_network_frame"] * share
        total, total_cpu = common + st[outputs] + net, common_cpu + cpu[outputs] + net_cpu
        out[key] = {"sum_ms": total, "network_ms": net, "measured_ms": p["streaming_ms_per_frame"],
                    "measured_over_sum": p["streaming_ms_per_frame"] / total, "cpu_sum_ms": total_cpu,
                    "network_cpu_ms": net_cpu, "measured_cpu_ms": p["streaming_cpu_ms_per_frame"],
                    "measured_cpu_over_sum": p["streaming_cpu_ms_per_frame"] / total_cpu,
                    "decode_over_streaming_fps": dec["fps"] / p["streaming_fps"],
                    "decode_over_wall_fps": dec["fps"] * p["wall_ms_per_frame"] / 1000}
    return out


def store_write_costs(frames: list[np.ndarray], arrays: list[dict[str, np.ndarray]], workdir: Path,
                      repeats: int) -> tuple[dict[str, Cost], dict[str, list[Any]]]:
    """Storing precomputed outputs (:func:`store_time`) and the write stage with its compute
    (:func:`write_time`; wall only) with checksums on and off, ``repeats`` interleaved runs each (so
    a burst of load hits both sides; medians), and once with the mask group."""
    two = [{k: a[k] for k in ("background", "foreground")} for a in arrays]
    reps: dict[str, list[Any]] = {f"{w}_bg_fg_{c}": [] for w in ("store", "write") for c in ("checksums", "no_checksums")}
    for _ in range(repeats):
        for on in (False, True):
            c = "checksums" if on else "no_checksums"
            reps[f"store_bg_fg_{c}"].append(store_time(two, workdir, checksums=on))
            reps[f"write_bg_fg_{c}"].append(Cost(1000 * write_time(frames, workdir, checksums=on), None))
    out = {k: Cost(float(np.median([c.wall for c in v])), None if v[0].cpu is None else float(np.median([c.cpu for c in v])))
           for k, v in reps.items()}
    out["store_bg_fg_mask_checksums"] = store_time(arrays, workdir)
    out["write_bg_fg_mask_checksums"] = Cost(1000 * write_time(frames, workdir, mask=True), None)
    return out, reps


def per_frame_costs(workdir: Path, height: int, width: int | None, p: dict[str, Any]) -> dict[str, Any]:
    """The per-frame cost table of one generated recording: every stage timed alone (wall and CPU
    ms), then the end-to-end runs (median baseline, fast model in keyframe mode; ``p["run_repeats"]``
    runs each, the least disturbed kept) and the stage sums against them."""
    from vidfilter.config import Config
    from vidfilter.models import load_model
    from vidfilter.synth.recording import RecordingParams

    ic = Config().infer
    path = make_video(workdir, height, p["n"], width=width, illumination_drift=0.02)
    frames = frames_of(path, p["n_stage"])
    r: dict[str, Any] = {"video": path.name, "frames": p["n"], "shape": list(frames[0].shape), "stage_frames": len(frames),
                         "every": ic.every, "adaptive_bound": ic.adaptive_bound, "polarity": RecordingParams().polarity,
                         "keyframes_in_file": keyframes_of(path), "network_frames": p["n_net"],
                         "object_mask_frames": min(p["n_heavy"], len(frames))}
    r["decode"] = max((decode_costs(path) for _ in range(2)), key=lambda d: d["fps"])  # the less disturbed of two passes
    costs = {"network_per_network_frame": network_costs(frames, p["n_net"])}
    sched, r["schedule_keyframes"] = schedule_costs(frames, ic.every, ic.adaptive_bound)
    comp, arrays = compute_costs(frames, r["polarity"], ic.every, p["n_heavy"])
    r["chunks"] = chunk_costs(arrays)
    writes, r["store_write_repeats"] = store_write_costs(frames, arrays, workdir, p["repeats"])
    costs.update(sched, **comp, **writes)
    r["stages_ms"] = {k: c.wall for k, c in costs.items()}
    r["stages_cpu_ms"] = {k: c.cpu for k, c in costs.items()}
    r["stages_ms"]["network_amortised_default_every"] = r["stages_ms"]["network_per_network_frame"] / ic.every
    r["stages_cpu_ms"]["network_amortised_default_every"] = r["stages_cpu_ms"]["network_per_network_frame"] / ic.every
    log(f"  stages: {json.dumps(r['stages_ms'], default=float)}")
    r["pipeline"] = {"median": best_run(p["run_repeats"][0], path, workdir, method="median")}
    bundle = load_model(fast_bundle(workdir))
    r["pipeline"]["model_keyframe"] = best_run(p["run_repeats"][1], path, workdir, method="model", model=bundle)
    r["sum_vs_measured"] = stage_sums(r)
    return r


def revision() -> dict[str, str]:
    """The commit of the vidfilter that is imported (a worktree on ``PYTHONPATH`` measures an
    earlier revision) and its uncommitted changes under vidfilter/ (``git status --porcelain``)."""
    import subprocess

    import vidfilter

    where = Path(vidfilter.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "vidfilter_uncommitted": git("status", "--porcelain", "--", "vidfilter")}


def bench_costs(workdir: Path, quick: bool) -> dict[str, Any]:
    """Where the time of ``vidfilter run`` goes: per-frame stage costs at 2048² and 640x480, the
    per-recording setup at 2048² (300 and 1500 frames), and the decoder's rate on real recordings."""
    from vidfilter.models import load_model

    big = 512 if quick else 2048
    sizes = [(big, None, 60 if quick else 300, 12 if quick else 30, 1 if quick else 2, 3 if quick else 5),
             (240 if quick else 480, 320 if quick else 640, 60 if quick else 300, 30 if quick else 100, 2, 10 if quick else 30)]
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                           "command": "python " + " ".join(["benchmarks/infer.py", *sys.argv[1:]]),
                           "revision_at_start": revision(), "per_frame": {}}
    t0 = time.perf_counter()
    for h, w, n, n_stage, n_net, n_heavy in sizes:
        label = f"{w or h}x{h}"
        log(f"costs: per-frame stages at {label}")
        plan = dict(n=n, n_stage=n_stage, n_net=n_net, n_heavy=n_heavy, repeats=3, run_repeats=(3, 2 if h >= 2048 else 3))
        res["per_frame"][label] = per_frame_costs(workdir, h, w, plan)
    bundle = load_model(temporal_bundle(workdir))
    res["setup"] = {}
    for n in (60, 150) if quick else (300, 1500):
        log(f"costs: setup at {big}² x {n}")
        video = make_video(workdir, big, n, illumination_drift=0.02)
        res["setup"][str(n)] = setup_costs(video, bundle)
        res["setup"][str(n)]["video"] = f"{big}x{big}, {n} frames ({keyframes_of(video)} keyframes)"
        log(f"  {json.dumps(res['setup'][str(n)], default=float)}")
    log("costs: decoder rate on real recordings")
    res["real_decode"] = real_decode(5.0 if quick else 60.0)
    res["seconds"] = time.perf_counter() - t0
    res["machine"]["loadavg_at_end"] = os.getloadavg()
    res["revision_at_end"] = revision()  # vidfilter/ may be edited by others while this runs
    if res["revision_at_end"] != res["revision_at_start"]:
        log(f"WARNING: vidfilter changed during the run: {res['revision_at_start']} -> {res['revision_at_end']}")
    return res


# ---------------------------------------------------------------------------------------------
# the decode-speed goal

#: goal at 2048² on 2 cores, ratios to decode fps measured in the same run; output size on the mouse video
T_END_TO_END, T_STREAMING, T_SETUP_S, T_SIZE = 0.5, 0.8, 3.0, 20.0
MOUSE = ROOT.parent / "shared" / "data" / "mouse_tracktor" / "mouse_video.mp4"


def interleaved_runs(workdir: Path, quick: bool, variants: dict[str, dict[str, Any]], repeats: int = 2,
                     patches: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fast model's keyframe run at 2048² (1500 frames; ``--quick`` 512², 150) once per
    variant (config overrides; ``patches[variant]``, a context manager factory, around its run),
    ``repeats`` rounds interleaved, setup kept by a private setup cache (the first round,
    unrecorded, fills it): wall, CPU seconds and fps over decode of each."""
    import contextlib

    import torch

    from vidfilter.config import Config
    from vidfilter.infer import pipeline

    size, n = (512, 150) if quick else (2048, 1500)
    path, bundle = make_video(workdir, size, n), str(fast_bundle(workdir))
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                           "video": f"{size}x{size}, {n} frames, H.264", "revision": revision()}
    res["decode_fps"] = max(decode_costs(path)["fps"] for _ in range(2))
    default = torch.get_num_threads()
    runs: list[dict[str, Any]] = []
    with private_setup_cache(workdir):
        try:
            for rep in range(repeats + 1):
                for label, overrides in variants.items():
                    torch.set_num_threads(default)
                    cfg = Config().override({"infer.device": "cpu", "output.overwrite": True, **overrides})
                    patch = (patches or {}).get(label, contextlib.nullcontext)
                    with tempfile.TemporaryDirectory(dir=workdir) as d, patch():
                        t0, c0 = time.perf_counter(), time.process_time()
                        r = pipeline.run(str(path), Path(d) / "o.zarr", model=bundle, method="model", config=cfg)
                        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                    if rep:
                        row = {"variant": label, "overrides": overrides, "wall_s": wall, "cpu_s": cpu, "fps": n / wall,
                               "over_decode": n / wall / res["decode_fps"], "keyframes": r.keyframes}
                        runs.append(row)
                        log(f"  {json.dumps(row)}")
        finally:
            torch.set_num_threads(default)
    res["runs"] = runs
    return res


def forward_as_before(net, x):  # type: ignore[no-untyped-def]
    """The U-Net's forward with the input skip concatenated as it comes (float32 under autocast)."""
    import torch
    import torch.nn.functional as F

    from vidfilter.models.unet import pad_to_multiple

    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, net.multiple)
    skips, y = [xp], F.max_pool2d(net.enc0(xp), 2)
    for stage in net.enc:
        skips.append(y)
        y = F.max_pool2d(stage(y), 2)
    y = net.bottleneck(y)
    for stage in net.dec:
        y = stage(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
    y = net.out(y)[..., :h, :w]
    if net.gate:
        c = net.out_channels
        plate = x[:, c : 2 * c] + y[:, :c]
        return plate + torch.sigmoid(y[:, c:]) * (x[:, :c] - plate)
    return y + x[:, : net.out_channels] if net.residual else y


@contextmanager
def out_of_place(net):  # type: ignore[no-untyped-def]
    """The network's activations out of place for the duration."""
    from torch import nn

    acts = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    for m in acts:
        m.inplace = False
    try:
        yield
    finally:
        for m in acts:
            m.inplace = True


@contextmanager
def unet_as_before() -> Iterator[None]:
    """Every U-Net built inside the block runs :func:`forward_as_before` with out-of-place activations."""
    from vidfilter.models.unet import UNet

    current = UNet.forward

    def forward(self: Any, x: Any) -> Any:
        with out_of_place(self):
            return forward_as_before(self, x)

    UNet.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        UNet.forward = current  # type: ignore[method-assign]


def bench_threads(workdir: Path, quick: bool) -> dict[str, Any]:
    """The ``threads`` section (see the module): torch threads at the default against one."""
    import torch

    return interleaved_runs(workdir, quick, {f"{torch.get_num_threads()} torch threads (default)": {"infer.threads": None},
                                             "1 torch thread": {"infer.threads": 1}})


def bench_precision(workdir: Path, quick: bool) -> dict[str, Any]:
    """The ``precision`` section (see the module): float32 against the default (``auto``: bf16 on
    a CPU that computes it natively)."""
    from vidfilter.infer.device import cpu_has_native_bf16

    res = interleaved_runs(workdir, quick, {"fp32": {"infer.precision": "fp32"}, "auto (default)": {"infer.precision": "auto"}})
    res["cpu_has_native_bf16"] = cpu_has_native_bf16()
    return res


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) and OS name of every thread of this process (``/proc/self/task``)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def per_thread_cpu(path: Path, workdir: Path, *, method: str, model: Any = None) -> dict[str, Any]:
    """:func:`pipeline_costs` with the setup kept (a first, unrecorded run fills the cache), and the
    CPU seconds of each thread over the recorded run, grouped by name: Python threads by their
    ``threading`` name (store workers together), others by their OS name (PyAV's decoder threads
    are ``av:...``; torch's worker is unnamed, ``python``). Threads that end during the run are
    read by a sampling thread every 50 ms (its own CPU is left out)."""
    import collections

    last: dict[int, tuple[str, float]] = {}
    names: dict[int, str] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for th in threading.enumerate():
                if th.native_id:
                    names[th.native_id] = th.name
            last.update(_thread_cpu())
            time.sleep(0.05)

    with private_setup_cache(workdir):
        pipeline_costs(path, workdir, method=method, model=model, setup_cache=True)
        base = {tid: c for tid, (_, c) in _thread_cpu().items()}
        sampler = threading.Thread(target=sample, name="cpu-sampler", daemon=True)
        sampler.start()
        try:
            r = pipeline_costs(path, workdir, method=method, model=model, setup_cache=True)
        finally:
            stop.set()
            sampler.join()
    groups: collections.Counter = collections.Counter()
    for tid, (comm, c) in last.items():
        name = names.get(tid, comm)
        if name == "cpu-sampler":
            continue
        name = "vidfilter-store" if name.startswith("vidfilter-store") else name
        groups[name] += c - base.get(tid, 0.0)
    n = r["frames"]
    return {"run": r, "threads_cpu_s": dict(groups.most_common()),
            "threads_cpu_ms_per_frame": {k: 1000 * v / n for k, v in groups.most_common()}}


def bench_per_thread(workdir: Path, quick: bool) -> dict[str, Any]:
    """The ``per_thread`` section (see the module): the median and the fast model's runs at 2048²
    (1500 frames; ``--quick`` 512², 150), setup kept, CPU seconds of each thread."""
    size, n = (512, 150) if quick else (2048, 1500)
    path = make_video(workdir, size, n)
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                           "video": f"{size}x{size}, {n} frames, H.264", "revision": revision(), "runs": {}}
    for name, kw in (("model_keyframe", {"method": "model", "model": str(fast_bundle(workdir))}), ("median", {"method": "median"})):
        log(f"per_thread: {name}")
        res["runs"][name] = per_thread_cpu(path, workdir, **kw)
        log(f"  {json.dumps(res['runs'][name]['threads_cpu_ms_per_frame'])}")
    return res


def per_thread_table(r: dict[str, Any]) -> str:
    rows = []
    for name, run in r["runs"].items():
        fps = run["run"]["streaming_fps"]
        rows += [[name, k, f"{v:.2f}"] for k, v in run["threads_cpu_ms_per_frame"].items()]
        rows.append([name, "streaming fps", f"{fps:.1f}"])
    return f"{r['video']}, {r['machine']['cpu']}\n" + text_table(md_head("| run | thread | CPU ms a frame |"), rows,
                                                                  lambda x: "| " + " | ".join(x) + " |")


def bench_forward(workdir: Path, quick: bool) -> dict[str, Any]:
    """The ``forward`` section (see the module): the U-Net's forward as it is against
    :func:`forward_as_before` (float32 input skip, out-of-place activations), default settings."""
    return interleaved_runs(workdir, quick, {"as before": {}, "as it is": {}}, patches={"as before": unet_as_before})


@contextmanager
def private_setup_cache(workdir: Path) -> Iterator[None]:
    """Runs inside the block keep their setup in an empty folder of ``workdir``, removed after."""
    with tempfile.TemporaryDirectory(dir=workdir) as cache_dir:
        os.environ["VIDFILTER_SETUP_CACHE_DIR"] = cache_dir
        try:
            yield
        finally:
            os.environ.pop("VIDFILTER_SETUP_CACHE_DIR", None)


def variants_table(r: dict[str, Any]) -> str:
    rows = [[str(x["variant"]), f"{x['fps']:.1f}", f"{x['over_decode']:.2f}x", f"{x['cpu_s']:.1f}"] for x in r["runs"]]
    head = f"{r['video']}, {r['machine']['cpu']}, {r['machine']['cores']} cores; decode {r['decode_fps']:.1f} fps"
    return head + "\n" + text_table(md_head("| variant | fps | over decode | CPU s |"), rows,
                                     lambda x: "| " + " | ".join(x) + " |")


def with_ratios(r: dict[str, Any], decode_fps: float) -> dict[str, Any]:
    """A :func:`pipeline_costs` record with its end-to-end fps, its ratios to decode fps and its setup seconds."""
    r["end_to_end_fps"] = r["frames"] / r["wall_s"]
    r["end_to_end_over_decode"] = r["end_to_end_fps"] / decode_fps
    r["streaming_over_decode"] = r["streaming_fps"] / decode_fps
    r["setup_s"] = r["wall_s"] - r["streaming_s"]
    return r


def bench_target(workdir: Path, quick: bool) -> dict[str, Any]:
    """The decode-speed goal: a generated 2048² H.264 recording of 1500 frames (``--quick``: 512²,
    150), decode fps (the better of two passes), then ``pipeline.run`` with the defaults, median
    baseline and fast model in keyframe mode (:func:`pipeline_costs`): end to end with every setup
    step, the streaming stage alone, setup seconds and stored bytes per frame of each group; and
    the output size of the real mouse video (:func:`mouse_size`)."""
    size, n = (512, 150) if quick else (2048, 1500)
    path = make_video(workdir, size, n)
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                           "revision_at_start": revision(), "video": f"{size}x{size}, {n} frames, H.264 ({keyframes_of(path)} keyframes)",
                           "input_bytes_per_frame": path.stat().st_size / n}
    log(f"target: decode {path.name}")
    res["decode"] = max((decode_costs(path) for _ in range(2)), key=lambda d: d["fps"])
    res["runs"] = {}
    methods = (("median", {"method": "median"}), ("model_keyframe", {"method": "model", "model": str(fast_bundle(workdir))}))
    for name, kw in methods:
        log(f"target: {name} run")
        r = res["runs"][name] = with_ratios(pipeline_costs(path, workdir, **kw), res["decode"]["fps"])
        log(f"  {json.dumps(r, default=float)}")
    # a second run on the same file with the setup cache on (the first fills it): no setup frames read
    with private_setup_cache(workdir):
        for name, kw in methods:
            log(f"target: {name} run, setup cached")
            pipeline_costs(path, workdir, setup_cache=True, **kw)
            r = res["runs"][f"{name}_setup_cached"] = with_ratios(pipeline_costs(path, workdir, setup_cache=True, **kw),
                                                                  res["decode"]["fps"])
            log(f"  {json.dumps(r, default=float)}")
    res["setup_readers"] = setup_readers(path, 2 if quick else 5)
    res["stages"] = target_stages(path, 12 if quick else 30)
    res["mouse"] = mouse_size(workdir, quick)
    res["revision_at_end"] = revision()
    return res


def setup_readers(path: Path, repeats: int) -> dict[str, Any]:
    """The median run's setup alone (open and guard the input, hash it, read the setup frames for
    the polarity detection and the median, resolve, ``prepare``), with the setup frames read by one
    decoder and by two in threads (``io.prefetch.TWO_DECODERS_FROM_PX``), ``repeats`` times each,
    interleaved: seconds of every repeat and the medians."""
    import statistics

    from vidfilter.config import Config
    from vidfilter.infer.pipeline import _file_fingerprint, make_estimator
    from vidfilter.io import prefetch
    from vidfilter.io.guard import guard_input
    from vidfilter.io.registry import open as vf_open
    from vidfilter.resolve import polarity_frames, resolve

    cfg, default = Config().override({"infer.device": "cpu"}), prefetch.TWO_DECODERS_FROM_PX
    seconds: dict[str, list[float]] = {"one_decoder": [], "two_decoders": []}
    try:
        for _ in range(repeats):
            for name in seconds:
                prefetch.TWO_DECODERS_FROM_PX = default if name == "two_decoders" else 1 << 62
                t0 = time.perf_counter()
                src = guard_input(vf_open(str(path)))
                _file_fingerprint(str(path))
                est = make_estimator("median", None, cfg)
                setup = prefetch.PrefetchedSource(src, np.union1d(polarity_frames(cfg, len(src), None), est.setup_frames(len(src))))
                resolve(cfg, setup, bundle=None, run=True)
                with setup:
                    est.prepare(setup)
                seconds[name].append(time.perf_counter() - t0)
                src.close()
    finally:
        prefetch.TWO_DECODERS_FROM_PX = default
    return {"repeats": seconds, **{f"{k}_median_s": statistics.median(v) for k, v in seconds.items()}}


def target_stages(path: Path, n: int) -> dict[str, Any]:
    """Where each millisecond of a frame goes, each stage timed alone on ``n`` decoded frames
    (wall and process CPU ms, medians): the frame digest, the keyframe schedule with the adaptive
    check, ``FrameOutputs`` as a run calls it (baseline and model paths: background in the stored
    dtype, exposure match, clamp, foreground, the floor; a background stored at keyframes), the
    threshold mask, and the Blosc encode and chunk checksum of the stored foreground and mask."""
    from vidfilter.config import Config
    from vidfilter.infer import keyframe as kf
    from vidfilter.infer.outputs import FrameOutputs
    from vidfilter.io.integrity import frame_digest
    from vidfilter.io.scaling import to_float

    frames = frames_of(path, n)
    ic, oc = Config().infer, Config().override({"output.polarity": "bright", "output.mask": True}).output
    bg0, bg1 = to_float(frames[0]), to_float(frames[-1])
    interps = [kf.Interp(bg0, 0, bg1, ic.every, 1 + t * (ic.every - 2) // max(n - 1, 1)) for t in range(n)]
    sched, made = schedule_costs(frames, ic.every, ic.adaptive_bound)
    costs = {"frame_digest": _median_ms(frame_digest, [(f,) for f in frames]), "schedule_adaptive": sched["schedule_adaptive"]}
    for name, match in (("outputs_baseline", False), ("outputs_model", True)):
        outputs = FrameOutputs(frames[0].dtype, oc, mask=True, match_exposure=match, keyed=True)
        costs[name] = _median_ms(outputs, zip(range(1, n + 1), frames, interps))
    stored = [FrameOutputs(frames[0].dtype, oc, mask=True, keyed=True)(t + 1, f, i) for t, (f, i) in enumerate(zip(frames, interps))]
    chunks = chunk_costs([{k: a[k] for k in ("foreground", "mask")} for a in stored])
    return {"frames": n, "ms": {k: c.wall for k, c in costs.items()}, "cpu_ms": {k: c.cpu for k, c in costs.items()},
            "chunks": chunks, "schedule_keyframes": made}


def mouse_size(workdir: Path, quick: bool) -> dict[str, Any]:
    """``vidfilter.run`` of the real mouse video (10,000 frames, 640x480 H.264, whole also with
    ``--quick``) with the shipped ``open-arena`` model: with the defaults and with
    ``--lossless``, seconds and stored bytes of each group over the input file's bytes; and what
    the default foreground loses against the exact one: pixels inside the mask
    (``foreground > mask_threshold``) that differ (expected 0), and outside it the share of pixels
    changed and the largest and mean change (grey levels), over every ``step``-th frame."""
    import vidfilter
    from vidfilter.config import Config

    if not MOUSE.exists():
        return {"skipped": f"{MOUSE} missing"}
    out: dict[str, Any] = {"input_bytes": MOUSE.stat().st_size}
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        for name, over in (("default", {}), ("lossless", {"output.background": "full", "output.foreground_floor": 0})):
            try:
                cfg = Config().override({"infer.device": "cpu", **over})
            except Exception as e:  # a revision without these settings stores every frame exactly anyway
                out[name] = {"skipped": str(e).splitlines()[0]}
                continue
            t0 = time.perf_counter()
            r = vidfilter.run(str(MOUSE), Path(d) / f"{name}.zarr", model="open-arena", config=cfg)
            sizes = group_bytes(Path(d) / f"{name}.zarr")
            out[name] = {"seconds": time.perf_counter() - t0, "status": r.status, "keyframes": r.keyframes, "bytes": sizes,
                         "over_input": sizes["total"] / out["input_bytes"],
                         "bytes_per_frame": {k: v / r.frames for k, v in sizes.items()}}
            log(f"  mouse {name}: {json.dumps(out[name], default=float)}")
        if "bytes" in out.get("lossless", {}):
            out["foreground_loss"] = foreground_loss(Path(d) / "default.zarr", Path(d) / "lossless.zarr", step=10 if quick else 2)
    return out


def foreground_loss(default: Path, exact: Path, step: int) -> dict[str, Any]:
    """What the stored foreground of ``default`` loses against ``exact`` (see :func:`mouse_size`)."""
    import vidfilter
    from vidfilter.config import Config

    level = Config().output.mask_threshold
    a, b = vidfilter.open(str(default / "foreground")), vidfilter.open(str(exact / "foreground"))
    inside_diff = changed = pixels = 0
    worst, total = 0, 0.0
    for t in range(0, len(a), step):
        fa, fb = a[t].astype(np.int16), b[t].astype(np.int16)
        mask = fb > level
        d = np.abs(fa - fb)
        inside_diff += int(np.count_nonzero(d[mask]))
        outside = d[~mask]
        changed += int(np.count_nonzero(outside))
        pixels += outside.size
        worst, total = max(worst, int(outside.max(initial=0))), total + float(outside.sum())
    return {"frames_compared": len(range(0, len(a), step)), "mask_threshold": level,
            "inside_mask_pixels_differing": inside_diff, "outside_share_changed": changed / max(pixels, 1),
            "outside_max_error": worst, "outside_mean_error": total / max(pixels, 1)}


def target_table(r: dict[str, Any]) -> str:
    """The goal's table: each figure, its target and whether it is met."""
    dec = r["decode"]["fps"]
    rows = [["decode only (PyAV)", f"{dec:.1f} fps", "", "", ""]]
    for name, p in r["runs"].items():
        rows += [[f"{name}: end to end (setup included)", f"{p['end_to_end_fps']:.1f} fps", f"{p['end_to_end_over_decode']:.2f}x",
                  f">= {T_END_TO_END}x", _flag(p["end_to_end_over_decode"] >= T_END_TO_END)],
                 [f"{name}: streaming after setup", f"{p['streaming_fps']:.1f} fps", f"{p['streaming_over_decode']:.2f}x",
                  f">= {T_STREAMING}x", _flag(p["streaming_over_decode"] >= T_STREAMING)],
                 [f"{name}: setup", f"{p['setup_s']:.2f} s ({p['frames_decoded']} decodes in all)", "", f"<= {T_SETUP_S} s",
                  _flag(p["setup_s"] <= T_SETUP_S)],
                 [f"{name}: stored kB/frame", ", ".join(f"{k} {v / 1e3:.1f}" for k, v in p["bytes_per_frame"].items()),
                  f"{p['bytes_per_frame']['total'] / r['input_bytes_per_frame']:.1f}x input", "", ""]]
    m = r.get("mouse") or {}
    for name in ("default", "lossless"):
        if "bytes" in m.get(name, {}):
            x = m[name]
            rows.append([f"mouse video, {name}: output / input", ", ".join(f"{k} {v / 1e3:.2f}" for k, v in x["bytes_per_frame"].items())
                         + " kB/frame", f"{x['over_input']:.1f}x", f"<= {T_SIZE}x" if name == "default" else "",
                         _flag(x["over_input"] <= T_SIZE) if name == "default" else ""])
    if "foreground_loss" in m:
        fl = m["foreground_loss"]
        rows.append(["mouse: default foreground vs exact", f"inside mask: {fl['inside_mask_pixels_differing']} px differ; outside: "
                     f"{100 * fl['outside_share_changed']:.1f} % changed, max {fl['outside_max_error']}, mean {fl['outside_mean_error']:.2f} levels",
                     "", "", ""])
    if "setup_readers" in r:
        sr = r["setup_readers"]
        rows.append(["median setup alone, one decoder / two in threads", f"{sr['one_decoder_median_s']:.2f} / "
                     f"{sr['two_decoders_median_s']:.2f} s (medians of {len(sr['repeats']['one_decoder'])})",
                     f"{sr['two_decoders_median_s'] / sr['one_decoder_median_s']:.2f}x", f"<= {T_SETUP_S} s",
                     _flag(sr["two_decoders_median_s"] <= T_SETUP_S)])
    head = f"{r['video']}, {r['machine']['cpu']}, {r['machine']['cores']} cores, {r['date']}"
    table_head = md_head("| figure | value | ratio | target | |")
    out = head + "\n" + text_table(table_head, rows, lambda x: "| " + " | ".join(x) + " |")
    if "stages" in r:
        st, dec = r["stages"], r["decode"]
        lines = [("decode (1 / decode fps)", dec["ms_mean"], dec["cpu_ms_mean"])]
        lines += [(k, st["ms"][k], st["cpu_ms"][k]) for k in st["ms"]]
        for g, c in st["chunks"].items():
            lines += [(f"{g}: encode ({c['bytes_per_frame'] / 1e3:.1f} kB stored)", c["encode_ms"], c["encode_cpu_ms"]),
                      (f"{g}: chunk checksum", c["checksum_ms"], c["checksum_cpu_ms"])]
        out += "\n\n" + text_table(md_head("| stage, per frame | ms | CPU ms |"), lines, lambda x: f"| {x[0]} | {x[1]:.2f} | {x[2]:.2f} |")
    return out


# ---------------------------------------------------------------------------------------------
# report


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _flag(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def table(res: dict[str, Any]) -> str:
    lines: list[str] = []
    m = res["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, torch {m['torch']}")
    sp = res.get("speed")
    if sp:
        lines += ["", *md_head("| size | decode fps | model Mpx/s (whole) | model fps (default tile) | per-frame fps | per-frame / min(dec, model) | free-model fps | K25 fps | K100 fps | K250 fps | K1000 fps | K250+adaptive fps | default (K500+adaptive) fps | default / decode |")]
        for size, r in sp.items():
            p = r["pipeline"]
            pf = p.get("per_frame")
            best = p["default"]["fps"] / r["decode_fps"] if "default" in p else None
            lines.append(
                f"| {size}² | {r['decode_fps']:.1f} | {r['model_whole_mpx_s']:.2f} | {r['model_default_tile_fps']:.3f} | "
                + (f"{pf['fps']:.3f} | {pf['ratio_to_min_decode_model']:.2f} ({_flag(pf['ratio_to_min_decode_model'] >= T_OVERLAP)}) | " if pf else "- | - | ")
                + 
                f"{p['free_model_K1']['fps']:.1f} | " + " | ".join(_f(p[k]["fps"] if k in p else None) for k in ("K25", "K100", "K250", "K1000", "K250_adaptive", "default"))
                + f" | {_f(best)} ({_flag(best is not None and best >= T_KEYFRAME) if size == '2048' else 'n/a'}) |"
            )
        lines += ["", *md_head("| size | tile | s/frame | Mpx/s | overhead vs whole | target ≤ 15 % |")]
        for size, r in sp.items():
            lines.append(f"| {size}² | whole | {r['model_whole_s_per_frame']:.2f} | {r['model_whole_mpx_s']:.2f} | - | - |")
            for tile, t in r["tiling"].items():
                lines.append(f"| {size}² | {tile} | {t['s_per_frame']:.2f} | {t['mpx_s']:.2f} | {100 * t['overhead']:+.0f} % | {_flag(t['overhead'] <= T_TILING)} |")
        lines += ["", *md_head("| size | decode ms/frame | compute ms/frame (default tile) | write ms/frame | shares decode/compute/write (per-frame mode) | keyframes run K25/K100/K250/K1000/K250+adaptive/default |")]
        for size, r in sp.items():
            s = r["stage_share_per_frame_mode"]
            p = r["pipeline"]
            lines.append(
                f"| {size}² | {1000 / r['decode_fps']:.1f} | {1000 / r['model_default_tile_fps']:.0f} | {1000 * r['write_s_per_frame']:.1f} | "
                f"{100 * s['decode']:.1f} / {100 * s['compute']:.1f} / {100 * s['write']:.1f} % | "
                + " / ".join(str(p[k]["keyframes"]) if k in p else "-" for k in ("K25", "K100", "K250", "K1000", "K250_adaptive", "default")) + " |"
            )
    cs = res.get("checksums")
    if cs:
        lines += ["", *md_head("| size | write ms/frame, no checksums | with checksums | cost | verify ms/frame (full) | verify --quick ms/frame |")]
        for size, r in cs.items():
            lines.append(f"| {size}² | {r['write_ms_per_frame_without']:.1f} | {r['write_ms_per_frame_with']:.1f} | "
                         f"{100 * r['overhead']:+.1f} % | {r['verify_ms_per_frame']:.1f} | {r['verify_quick_ms_per_frame']:.1f} |")
    mem = res.get("memory")
    if mem:
        lines.append("")
        lines.append(f"memory (`vidfilter run --every {mem['every']}`, {mem['size']}², fast model): "
                     f"peak RSS during the run: 200 frames {mem['peak_rss_mb_200']:.1f} MB, 2000 frames {mem['peak_rss_mb_2000']:.1f} MB, "
                     f"growth {100 * mem['growth']:+.1f} % ({_flag(mem['growth'] < T_MEMORY)}, target < 10 %); whole process incl. imports: "
                     f"{mem['200']['process_peak_mb']:.1f} -> {mem['2000']['process_peak_mb']:.1f} MB ({100 * mem['growth_process']:+.1f} %)")
    ks = res.get("keyframe_study")
    if ks:
        for name, case in ks["cases"].items():
            lines.append("")
            lines.append(f"keyframe study, {name} ({ks['size']}², {ks['frames']} frames, per-frame estimator: {ks['estimator']['kind']})")
            lines += md_head("| policy | keyframes | mean abs bg_K - bg_1 (grey) | worst frame (grey) | abs to true bg (grey) | mask F1 vs per-frame | mask F1 vs truth |")
            for label, e in case.items():
                lines.append(f"| {label} | {e['keyframes']} | {e['mean_abs_vs_per_frame_grey']:.3f} | {e['max_frame_mean_abs_vs_per_frame_grey']:.2f} | "
                             f"{e['mean_abs_vs_true_grey']:.2f} | {e['mask_f1_vs_per_frame']:.4f} | {e['mask_f1_vs_truth']:.3f} |")
    return "\n".join(lines)


#: rows of the per-frame cost table: label, value (ms per frame) from one size's result
def _stage(key: str) -> Any:
    return lambda r: (r["stages_ms"][key], r["stages_cpu_ms"][key])


def _chunk(group: str, what: str) -> Any:
    return lambda r: (r["chunks"][group][f"{what}_ms"], r["chunks"][group][f"{what}_cpu_ms"])


#: rows of the per-frame cost table: label, (wall ms, CPU ms or None) per frame from one size's result
_COST_ROWS: list[tuple[str, Any]] = [
    ("decode, median frame (PyAV `iter()`, grey)", lambda r: (r["decode"]["ms_median"], None)),
    ("decode, mean (1 / decode fps)", lambda r: (r["decode"]["ms_mean"], r["decode"]["cpu_ms_mean"])),
    ("input frame digest (`frame_digest`, every frame read)", _stage("frame_digest")),
    ("network, per network frame (fast preset, `TiledEngine`, default tile)", _stage("network_per_network_frame")),
    ("network amortised per frame at the default K (`infer.every`)", _stage("network_amortised_default_every")),
    ("keyframe schedule, fixed grid (`kf.schedule`)", _stage("schedule_fixed")),
    ("keyframe schedule with the adaptive drift check (default)", _stage("schedule_adaptive")),
    ("interpolation, `Interp.array()` (float32)", _stage("interp_array")),
    ("interpolation into uint8, `background_as` (what the writer does)", _stage("interp_to_dtype")),
    ("`match_exposure` (model runs)", _stage("match_exposure")),
    ("`clamp_background`", _stage("clamp_background")),
    ("`subtract`, uint8 (OpenCV)", _stage("subtract")),
    ("`subtract`, float path (`to_float(frame)`, float32 background)", _stage("subtract_float")),
    ("`FrameOutputs` total, model (interp + exposure + clamp + subtract)", _stage("outputs_model")),
    ("`FrameOutputs` total, baseline (interp + clamp + subtract)", _stage("outputs_baseline")),
    ("mask: threshold (`foreground > 10`)", _stage("mask_threshold")),
    ("mask: `object_mask`", _stage("mask_object")),
    ("compression: background chunk (codec pipeline encode)", _chunk("background", "encode")),
    ("compression: foreground chunk", _chunk("foreground", "encode")),
    ("compression: mask chunk", _chunk("mask", "encode")),
    ("checksum: background chunk (`chunk_digest`)", _chunk("background", "checksum")),
    ("checksum: foreground chunk", _chunk("foreground", "checksum")),
    ("store bg + fg (`OmeZarrWriter`, precomputed arrays), checksums on", _stage("store_bg_fg_checksums")),
    ("store bg + fg, checksums off", _stage("store_bg_fg_no_checksums")),
    ("store bg + fg + mask, checksums on", _stage("store_bg_fg_mask_checksums")),
    ("write (`write_time`: outputs + store) bg + fg, checksums on", _stage("write_bg_fg_checksums")),
    ("write bg + fg, checksums off", _stage("write_bg_fg_no_checksums")),
    ("write bg + fg + mask, checksums on", _stage("write_bg_fg_mask_checksums")),
]


def _wall_cpu(v: tuple[float, float | None]) -> str:
    return f"{_f(v[0])} ({_f(v[1], '{:.1f}')})"


def costs_tables(c: dict[str, Any]) -> str:
    """The tables of the ``costs`` section (Markdown)."""
    pf, labels = c["per_frame"], list(c["per_frame"])
    m = c["machine"]
    parts = [f"costs: {c['date']}, {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
             f"load {_f(m['loadavg_at_start'][0])} -> {_f(m['loadavg_at_end'][0])}; `{c['command']}`; "
             f"commit {c['revision_at_start']['commit'][:10]}"
             + ("" if c["revision_at_end"] == c["revision_at_start"] else " (vidfilter CHANGED during the run)")]
    head = md_head("| stage: ms per frame (CPU ms), median of the frames | " + " | ".join(
        f"{k} ({pf[k]['stage_frames']} of {pf[k]['frames']} frames, {pf[k]['keyframes_in_file']} keyframes)" for k in labels) + " |")
    parts.append(text_table(head, _COST_ROWS, lambda row: f"| {row[0]} | " + " | ".join(_wall_cpu(row[1](pf[k])) for k in labels) + " |"))
    head = md_head("| size | group | raw bytes/frame | stored bytes/frame | ratio |")
    rows = [(k, g, v) for k in labels for g, v in pf[k]["chunks"].items()]
    parts.append(text_table(head, rows, lambda x: f"| {x[0]} | {x[1]} | {x[2]['raw_bytes_per_frame']:.0f} | {x[2]['bytes_per_frame']:.0f} | {x[2]['ratio']:.2f} |"))
    parts += run_tables(pf)
    parts.append(setup_table(c))
    head = md_head("| recording | resolution | frames | keyframes | frames timed | decode fps | ms/frame (mean) | ms/frame (median) "
                   "| CPU ms/frame |")
    parts.append(text_table(head, c["real_decode"].items(), lambda x: f"| {x[0]} | skipped: {x[1]['skipped']} | | | | | | | |" if "skipped" in x[1] else
                            f"| {x[0]} | {x[1]['resolution']} | {x[1]['frames']} | {x[1]['keyframes']} | {x[1]['decode_frames']} | "
                            f"{x[1]['decode_fps']:.0f} | {x[1]['decode_ms_mean']:.2f} | {x[1]['decode_ms_median']:.2f} | "
                            f"{x[1]['decode_cpu_ms_mean']:.2f} |"))
    return "\n\n".join(parts)


def run_tables(pf: dict[str, Any]) -> list[str]:
    """The end-to-end runs of the per-frame section: their setup and speed, and their streaming
    cost against the sum of the stage costs."""
    rows = [(k, name) for k in pf for name in pf[k]["pipeline"]]
    head = md_head("| size | run | frames | keyframes | frames decoded | wall s | input hash s | polarity s (decoded) "
                   "| prepare s (decoded) | streaming s | decode fps | streaming fps | decode / streaming | decode / wall |")

    def speed(x: tuple[str, str]) -> str:
        r = pf[x[0]]
        p, s = r["pipeline"][x[1]], r["sum_vs_measured"][x[1]]
        return (f"| {x[0]} | {x[1]} | {p['frames']} | {p['keyframes'] if p['keyframes'] is not None else '-'} | {p['frames_decoded']} | "
                f"{p['wall_s']:.1f} | {p['input_hash_s']:.2f} | {p['polarity_s']:.2f} ({p['polarity_decoded']:.0f}) | "
                f"{p['prepare_s']:.2f} ({p['prepare_decoded']:.0f}) | {p['streaming_s']:.1f} | {r['decode']['fps']:.1f} | "
                f"{p['streaming_fps']:.1f} | {s['decode_over_streaming_fps']:.1f}x | {s['decode_over_wall_fps']:.1f}x |")

    def stages(x: tuple[str, str]) -> str:
        p, s = pf[x[0]]["pipeline"][x[1]], pf[x[0]]["sum_vs_measured"][x[1]]
        each = ", ".join(f"{v:.0f}" for v in p["repeats_streaming_ms_per_frame"])
        return (f"| {x[0]} | {x[1]} | {p['streaming_ms_per_frame']:.1f} ({each}) | {s['sum_ms']:.1f} | {s['network_ms']:.1f} | "
                f"{s['measured_over_sum']:.2f} | {p['streaming_cpu_ms_per_frame']:.1f} ({p['streaming_cores_busy']:.2f}) | "
                f"{s['cpu_sum_ms']:.1f} | {s['network_cpu_ms']:.1f} | {s['measured_cpu_over_sum']:.2f} |")

    head2 = md_head("| size | run | streaming ms/frame (each run) | sum of the stages ms/frame | of which network | measured / sum "
                    "| streaming CPU ms/frame (cores busy) | CPU sum of the stages | of which network | measured CPU / sum |")
    return [text_table(head, rows, speed), text_table(head2, rows, stages)]


_SETUP_ROWS = [
    ("frame index, first open (empty index cache; demux + decode frame 0)", "index_build"),
    ("open with the index cached", "open_cached_index"),
    ("input file hash (`file_sha256`)", "input_hash"),
    ("polarity detection (`polarity_evidence`)", "polarity"),
    ("median `prepare` (`MedianProjection`)", "median_prepare"),
    ("model `prepare` (temporal max + registration survey)", "model_prepare"),
    ("median run's setup as `run` does it (one pass: polarity + median)", "run_setup_median"),
    ("temporal model run's setup as `run` does it (polarity from the bundle)", "run_setup_model"),
]


def setup_table(c: dict[str, Any]) -> str:
    su = c["setup"]
    head = md_head("| step (seconds; frames decoded / random reads) | " + " | ".join(su[n]["video"] for n in su) + " |")
    body = text_table(head, _SETUP_ROWS, lambda row: f"| {row[0]} | " + " | ".join(
        f"{su[n][row[1]]['s']:.2f} ({su[n][row[1]]['decoded']} / {su[n][row[1]]['random_reads']})" for n in su) + " |")
    return (body + "\n| sum, median run, steps one by one (index + hash + polarity + median `prepare`) | "
            + " | ".join(f"{su[n]['total_median_s']:.2f}" for n in su) + " |"
            + "\n| sum, temporal model run, steps one by one (index + hash + model `prepare`) | "
            + " | ".join(f"{su[n]['total_model_s']:.2f}" for n in su) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (~15-20 min on 2 cores)")
    ap.add_argument("--sections", nargs="+", default=["speed", "memory", "keyframe", "checksums"],
                    choices=["speed", "memory", "keyframe", "checksums", "costs", "target", "threads", "precision", "forward", "per_thread"])
    ap.add_argument("--study-model", help="keyframe study with a network: a bundle path, or 'train' (~75 s); default: the oracle")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "infer.json"))
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "vidfilter-bench-infer"))
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine(), "quick": args.quick, "targets": {
        "pipeline_over_min_decode_model": T_OVERLAP, "tiling_overhead_max": T_TILING,
        "keyframe_2048_over_decode": T_KEYFRAME, "memory_growth_max": T_MEMORY}}
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    own = ("costs", "target", "threads", "precision", "forward", "per_thread")  # these carry their own machine and date
    legacy = [s for s in args.sections if s not in own]

    def save() -> None:  # after every section, so a long run leaves what it measured
        res["seconds"] = time.perf_counter() - t0
        try:
            res["machine"]["loadavg_at_end"] = os.getloadavg()
        except OSError:
            pass
        try:  # merged into the results already there: sections not run now are kept
            merged = json.loads(out.read_text())
        except (OSError, ValueError):
            merged = {}
        merged.update(res if legacy else {k: res[k] for k in own if k in res})
        out.write_text(json.dumps(merged, indent=1, default=float))

    if "keyframe" in args.sections:
        res["keyframe_study"] = bench_keyframe(workdir, args.quick, args.study_model)
        save()
    if "speed" in args.sections:
        res["speed"] = bench_speed(workdir, args.quick)
        save()
    if "checksums" in args.sections:
        res["checksums"] = bench_checksums(workdir, args.quick)
        save()
    if "memory" in args.sections:
        res["memory"] = bench_memory(workdir, args.quick)
        save()
    if "costs" in args.sections:
        res["costs"] = bench_costs(workdir, args.quick)
    if "target" in args.sections:
        res["target"] = bench_target(workdir, args.quick)
    if "threads" in args.sections:
        res["threads"] = bench_threads(workdir, args.quick)
    if "precision" in args.sections:
        res["precision"] = bench_precision(workdir, args.quick)
    if "forward" in args.sections:
        res["forward"] = bench_forward(workdir, args.quick)
    if "per_thread" in args.sections:
        res["per_thread"] = bench_per_thread(workdir, args.quick)
    save()
    if legacy:
        print(table(res))
    if "costs" in res:
        print(costs_tables(res["costs"]))
    if "target" in res:
        print(target_table(res["target"]))
    for key in ("threads", "precision", "forward"):
        if key in res:
            print(variants_table(res[key]))
    if "per_thread" in res:
        print(per_thread_table(res["per_thread"]))
    print(f"\n({res['seconds']:.0f} s; JSON: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
