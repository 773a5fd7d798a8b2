"""Streaming pipeline: decode -> estimate background -> write, as separate stages with bounded queues.

``run(input, out, model=..., config=...)`` writes one OME-Zarr store ``OUT.zarr`` with image groups
``background`` and ``foreground`` (and ``mask`` on request) plus run metadata. Stages talk through
``queue.Queue(maxsize=config.infer.queue_size)`` so the slowest stage sets the pace and memory stays
bounded; a worker's exception is forwarded to the caller. The store is written under
``OUT.zarr.partial`` and renamed when complete; re-running the same command after a crash resumes
after the last frame durably written (from the last keyframe, so the result is identical).
Other formats (FFV1, PNG/TIFF, HDF5, preview MP4) are exported from the finished store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.config import Config, Polarity
from vidfilter.errors import ConfigError, VidfilterError
from vidfilter.eval.baselines import BackgroundEstimator, make_baseline
from vidfilter.infer import keyframe as kf
from vidfilter.io.convert import from_float, to_float
from vidfilter.io.source import FrameSource

log = logging.getLogger(__name__)

_STOP = object()


# ---------------------------------------------------------------------------------------------
# the model as a background estimator


class ModelBackground(BackgroundEstimator):
    """Background from a trained bundle through the tiled engine (optionally with a temporal channel)."""

    name = "model"

    def __init__(self, bundle: Any, config: Config) -> None:
        super().__init__()
        from vidfilter.infer.engine import TiledEngine

        self.bundle = bundle
        ic = config.infer
        self.engine = TiledEngine(
            bundle.model, tile=ic.tile, overlap=ic.overlap, batch_size=ic.batch_size,
            device=ic.device, precision=ic.precision, compile=ic.compile,
        )
        self.temporal = bundle.config.model.temporal_channel
        self._stat: np.ndarray | None = None

    def prepare(self, src: FrameSource) -> None:
        if self.temporal != "none":
            from vidfilter.sampling.temporal import temporal_statistic

            n = int(self.bundle.normalisation.get("temporal_frames", 32))  # as in training
            self._stat = temporal_statistic(src, kind=self.temporal, n=n)

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        x = frame[None] if frame.ndim == 2 else np.moveaxis(frame, -1, 0)
        if self._stat is not None:
            x = np.concatenate([x, self._stat[None] if self._stat.ndim == 2 else np.moveaxis(self._stat, -1, 0)])
        y = self.engine(np.ascontiguousarray(x, dtype=np.float32))
        if y.ndim == 3:
            y = y[0] if y.shape[0] == 1 else np.moveaxis(y, 0, -1)
        return y


def make_estimator(method: str, model: str | Path | Any | None, config: Config) -> BackgroundEstimator:
    """The background estimator for ``--method`` (``model`` needs a bundle path or a loaded bundle)."""
    if method == "model":
        if model is None:
            raise ConfigError("--method model needs --model BUNDLE (train one with `vidfilter train`), or pick a baseline with --method median")
        if isinstance(model, (str, Path)):
            from vidfilter.models.bundle import load_model

            model = load_model(model)
        return ModelBackground(model, config)
    return make_baseline(method)


# ---------------------------------------------------------------------------------------------
# foreground


def clamp_background(frame: np.ndarray, background: np.ndarray, polarity: Polarity) -> np.ndarray:
    """Dark animals only darken the plate, so the background is never darker than the frame
    (``max(background, frame)``); bright animals only brighten it (``min``). Absolute: unchanged."""
    if polarity == Polarity.dark:
        return np.maximum(background, frame)
    if polarity == Polarity.bright:
        return np.minimum(background, frame)
    return background


def foreground(frame: np.ndarray, background: np.ndarray, polarity: Polarity) -> np.ndarray:
    """Signed or absolute difference in float [-1, 1] following the polarity."""
    if polarity == Polarity.bright:
        return frame - background
    if polarity == Polarity.dark:
        return background - frame
    return np.abs(frame - background)


# ---------------------------------------------------------------------------------------------
# stages


class _Stage(threading.Thread):
    """A daemon thread running ``fn`` and recording its exception for the caller."""

    def __init__(self, fn: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fn()
        except BaseException as e:  # forwarded to the caller
            self.error = e


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event, stages: Sequence[_Stage]) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            for s in stages:
                if s.error is not None:
                    raise s.error
            if stop.is_set():
                return _STOP


def _estimate(
    frames: Iterator[tuple[int, np.ndarray]], est: BackgroundEstimator, n_frames: int, every: int,
    adaptive: bool, bound: float, keyframes: list[int],
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (t, frame, background) in order; keyframe mode buffers at most ``every`` frames."""
    if every == 1 or est.stateful:
        for t, frame in frames:
            yield t, frame, est.background(t, to_float(frame))
        return
    prev: tuple[int, np.ndarray] | None = None  # last keyframe (t, background)
    key_drift = 0.0  # residual level at the last keyframe (noise and model misfit, not drift)
    pending: list[tuple[int, np.ndarray]] = []

    def keyframe(t: int, frame: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        nonlocal prev, pending, key_drift
        bg = est.background(t, to_float(frame))
        keyframes.append(t)
        if prev is not None:
            for tp, fp in pending:
                yield tp, fp, kf.interpolate(prev[1], prev[0], bg, t, tp)
        pending = []
        prev = (t, bg)
        if adaptive:
            key_drift = kf.drift(to_float(frame[::4, ::4]), bg[::4, ::4], stride=1)
        yield t, frame, bg

    for t, frame in frames:
        if prev is None or kf.is_fixed_keyframe(t, every, n_frames):
            yield from keyframe(t, frame)
            continue
        if adaptive and kf.drift(to_float(frame[::4, ::4]), prev[1][::4, ::4], stride=1) - key_drift > bound:
            # a jump (camera bump, lamp): end the previous segment on the frame before it, so no
            # interpolation crosses the jump, then start a new one here
            if pending:
                tp, fp = pending.pop()
                yield from keyframe(tp, fp)
            yield from keyframe(t, frame)
            continue
        pending.append((t, frame))
    for tp, fp in pending:  # only when the last frame could not be a keyframe (never with the fixed grid)
        yield tp, fp, prev[1]


def _file_fingerprint(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        return {"path": str(path)}
    st = p.stat()
    info: dict[str, Any] = {"path": str(p.resolve()), "size": st.st_size, "mtime": st.st_mtime}
    if p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        info["sha256"] = h.hexdigest()
    return info


def run(
    input: str | Path | FrameSource,
    out: str | Path,
    *,
    model: str | Path | Any | None = None,
    method: str = "model",
    config: Config | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write background and foreground of one recording to ``out`` (an OME-Zarr store).

    Returns a summary dict (input, output, frames, seconds, fps, status).
    """
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.sink import check_output_path
    from vidfilter.io.zarr_sink import OmeZarrWriter

    config = config or Config()
    oc, ic = config.output, config.infer
    out = Path(out)
    if out.suffix != ".zarr":
        out = out.with_name(out.name + ".zarr")
    src = input if isinstance(input, FrameSource) else vf_open(input, color=oc.color)
    in_path = src.path
    check_output_path(out, inputs=[in_path], overwrite=oc.overwrite)
    est = make_estimator(method, model, config)
    if ic.threads:
        import torch

        torch.set_num_threads(ic.threads)

    n = len(src)
    fg_dtype = np.dtype(np.float16) if oc.foreground_dtype == "float16" else src.dtype
    meta = {
        "vidfilter_version": __import__("vidfilter").__version__,
        "input": _file_fingerprint(str(in_path)) if not isinstance(input, FrameSource) else {"path": str(in_path)},
        "input_shape": list(src.shape),
        "input_dtype": str(src.dtype),
        "method": method,
        "config": config.to_dict(),
    }
    if method == "model":
        b = est.bundle  # type: ignore[attr-defined]
        meta["model"] = {"path": str(getattr(b, "path", "")), "sha256": getattr(b, "sha256", None), "version": getattr(b, "version", None)}

    t_start = time.perf_counter()
    writer = OmeZarrWriter(out, overwrite=oc.overwrite, resume=True, attrs=meta)
    try:
        frame_shape = tuple(src.frame_shape)
        sinks = {
            "background": writer.image("background", frame_shape, src.dtype, fps=src.fps, n_frames=n),
            "foreground": writer.image("foreground", frame_shape, fg_dtype, fps=src.fps, n_frames=n),
        }
        if oc.mask:
            sinks["mask"] = writer.image("mask", frame_shape, np.uint8, fps=src.fps, n_frames=n)
        done = min(s.frames_written for s in sinks.values())
        start = _resume_point(writer, done, ic.every)
        if start:
            log.info("resuming %s at frame %d of %d", out, start, n)
        est.prepare(src)
        if est.stateful and start:  # replay so the estimator's state matches an uninterrupted run
            for t, frame in zip(range(start), src.iter(0, start)):
                est.background(t, to_float(frame))
        keyframes: list[int] = []
        _stream(src, est, sinks, start, n, config, keyframes, writer, progress)
        writer.finalise()
    except BaseException:
        writer.abort()
        raise
    finally:
        src.close() if not isinstance(input, FrameSource) else None
    seconds = time.perf_counter() - t_start
    written = n - start
    summary = {
        "input": str(in_path), "output": str(out), "status": "done", "frames": n,
        "frames_this_run": written, "seconds": round(seconds, 3),
        "fps": round(written / seconds, 3) if seconds > 0 else None,
    }
    exports = [f for f in oc.formats if f != "zarr"]
    if exports:
        from vidfilter.convert import export_outputs

        export_outputs(out, src_path=in_path, formats=exports, color=oc.color, overwrite=oc.overwrite)
    return summary


def _resume_point(writer: Any, done: int, every: int) -> int:
    """Restart at the last keyframe at or before ``done`` so interpolated frames are identical."""
    if done <= 0:
        return 0
    keyframes = _load_keyframes(writer)
    if every == 1:
        return done
    if keyframes:
        ks = [k for k in keyframes if k <= done]
        return max(ks) if ks else 0
    return (done // every) * every


_KEYFRAMES = ".vidfilter_keyframes.json"


def _load_keyframes(writer: Any) -> list[int] | None:
    p = Path(writer.partial) / _KEYFRAMES
    try:
        return [int(k) for k in json.loads(p.read_text())]
    except (OSError, ValueError):
        return None


def _save_keyframes(writer: Any, keyframes: list[int]) -> None:
    from vidfilter.io.sink import atomic_write_bytes

    atomic_write_bytes(Path(writer.partial) / _KEYFRAMES, json.dumps(keyframes).encode())


def _clear_keyframes(writer: Any) -> None:
    (Path(writer.partial) / _KEYFRAMES).unlink(missing_ok=True)


def _stream(
    src: FrameSource, est: BackgroundEstimator, sinks: dict[str, Any], start: int, n: int,
    config: Config, keyframes: list[int], writer: Any, progress: bool,
) -> None:
    oc, ic = config.output, config.infer
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=ic.queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=ic.queue_size)
    fg_float16 = oc.foreground_dtype == "float16"
    # "> N grey levels on the 8-bit scale"; the epsilon keeps exact N (e.g. 10/255 in float32) out.
    mask_thr = (oc.mask_threshold + 1e-3) / 255.0

    def decode() -> None:
        for t, frame in zip(range(start, n), src.iter(start, n)):
            if not _put(q_in, (t, frame), stop):
                return
        _put(q_in, _STOP, stop)

    def frames_in() -> Iterator[tuple[int, np.ndarray]]:
        while True:
            item = _get(q_in, stop, stages)
            if item is _STOP:
                return
            yield item

    # Fault-injection hook for the kill/resume tests: seconds to sleep per written frame.
    throttle = float(os.environ.get("VIDFILTER_TEST_SLOW_WRITE", "0") or 0)

    def write() -> None:
        since_flush = 0
        while True:
            item = _get(q_out, stop, [])
            if item is _STOP:
                return
            t, frame, bg = item
            f = to_float(frame)
            bg = clamp_background(f, bg, oc.polarity) if oc.clamp else bg
            fg = foreground(f, bg, oc.polarity)
            sinks["background"].write(t, from_float(bg, src.dtype))
            sinks["foreground"].write(t, fg.astype(np.float16) if fg_float16 else from_float(fg, src.dtype))
            if "mask" in sinks:
                sinks["mask"].write(t, (fg > mask_thr).astype(np.uint8))  # signed: follows the polarity
            since_flush += 1
            if keyframes and since_flush >= 16:
                _save_keyframes(writer, keyframes[:])
                since_flush = 0
            bar.update(1)
            if throttle:
                time.sleep(throttle)

    from tqdm.auto import tqdm

    bar = tqdm(total=n, initial=start, unit="frame", disable=not progress, desc=Path(str(src.path)).name[:30])
    stages: list[_Stage] = []
    reader = _Stage(decode, "vidfilter-decode")
    writer_t = _Stage(write, "vidfilter-write")
    stages = [reader, writer_t]
    reader.start()
    writer_t.start()
    try:
        for item in _estimate(frames_in(), est, n, ic.every, ic.adaptive, ic.adaptive_bound, keyframes):
            if writer_t.error is not None:
                raise writer_t.error
            if not _put(q_out, item, stop):
                break
        _put(q_out, _STOP, stop)
        while writer_t.is_alive():
            writer_t.join(timeout=0.1)
        for s in stages:
            if s.error is not None:
                raise s.error
        _clear_keyframes(writer)
    finally:
        stop.set()
        reader.join(timeout=5)
        writer_t.join(timeout=5)
        bar.close()


def output_path_for(input: str, out_dir: str | Path) -> Path:
    """``out_dir/<input stem>.zarr`` (folders and ``.zarr`` inputs keep their name)."""
    p = Path(str(input).rstrip("/"))
    stem = p.name[: -len(".zarr")] if p.name.endswith(".zarr") else p.stem if p.suffix else p.name
    return Path(out_dir) / f"{stem}.zarr"


def run_many(
    inputs: Sequence[str],
    *,
    model: str | Path | Any | None = None,
    method: str = "model",
    out: str | Path | None = None,
    out_dir: str | Path | None = None,
    config: Config | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Process several inputs one after another; one bad input is reported and the others still finish."""
    config = config or Config()
    if out is None and out_dir is None:
        raise ConfigError("say where to write: --out OUT.zarr for one input, or --out-dir DIR")
    if method == "model":
        if model is None:
            raise ConfigError("--method model needs --model BUNDLE (train one with `vidfilter train`), or pick a baseline with --method median")
        if isinstance(model, (str, Path)):
            from vidfilter.models.bundle import load_model

            model = load_model(model)  # once for all inputs
    else:
        make_baseline(method)  # a typo fails before any input is touched
    results = []
    for inp in inputs:
        target = Path(out) if out is not None else output_path_for(inp, out_dir)  # type: ignore[arg-type]
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
        try:
            results.append(run(inp, target, model=model, method=method, config=config, progress=progress))
        except VidfilterError as e:
            log.info("%s failed: %s", inp, e)
            results.append({"input": str(inp), "output": None, "status": "failed", "error": " ".join(str(e).split())})
    return results
