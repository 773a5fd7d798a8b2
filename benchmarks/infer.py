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
  ``--study-model`` names a bundle (or ``train``).

Usage::

    python benchmarks/infer.py [--quick] [--sections speed memory keyframe]
                               [--out benchmarks/results/infer.json] [--workdir /tmp/vidfilter-bench-infer]

Generated videos and the trained study model are cached in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from _common import md_head

ROOT = Path(__file__).resolve().parents[1]

# targets of issue 5
T_OVERLAP = 0.85
T_TILING = 0.15
T_KEYFRAME = 0.5
T_MEMORY = 0.10


# ---------------------------------------------------------------------------------------------
# helpers


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_video(workdir: Path, size: int, n: int, *, seed: int = 1, **kw: Any) -> Path:
    """An H.264 synthetic recording (cached by name)."""
    from vidfilter.synth import SyntheticRecording, write_video

    tag = "_".join(f"{k}{v}" for k, v in sorted(kw.items())).replace(" ", "").replace(",", "x").replace("(", "").replace(")", "")
    path = workdir / f"rec_{size}_{n}_s{seed}{'_' + tag if tag else ''}.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        rec = SyntheticRecording(n, size, size, seed=seed, **kw)
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


def write_time(frames: list[np.ndarray], workdir: Path, *, checksums: bool = True) -> float:
    """Seconds per frame of the pipeline's write stage alone: an interpolated background made in the
    output dtype, clamp, foreground, and the two Zarr groups stored in parallel (as in ``vidfilter run``)."""
    from concurrent.futures import ThreadPoolExecutor

    from vidfilter.config import Config
    from vidfilter.infer.keyframe import Interp
    from vidfilter.infer.pipeline import FrameOutputs, store_frame
    from vidfilter.io.scaling import to_float
    from vidfilter.io.zarr_sink import OmeZarrWriter

    bg0, bg1 = to_float(frames[0]), to_float(frames[-1])
    outputs = FrameOutputs(frames[0].dtype, Config().output)
    with tempfile.TemporaryDirectory(dir=workdir) as d, ThreadPoolExecutor(2) as pool:
        w = OmeZarrWriter(Path(d) / "w.zarr", overwrite=True, checksums=checksums)
        shape = frames[0].shape
        n = len(frames)
        sinks = {k: w.image(k, shape, np.uint8, n_frames=n) for k in ("background", "foreground")}
        t0 = time.perf_counter()
        for t, f in enumerate(frames):
            store_frame(pool, sinks, t, outputs(f, Interp(bg0, 0, bg1, n, t)))
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (~15-20 min on 2 cores)")
    ap.add_argument("--sections", nargs="+", default=["speed", "memory", "keyframe", "checksums"], choices=["speed", "memory", "keyframe", "checksums"])
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

    def save() -> None:  # after every section, so a long run leaves what it measured
        res["seconds"] = time.perf_counter() - t0
        try:
            res["machine"]["loadavg_at_end"] = os.getloadavg()
        except OSError:
            pass
        out.write_text(json.dumps(res, indent=2, default=float))

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
    print(table(res))
    print(f"\n({res['seconds']:.0f} s; JSON: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
