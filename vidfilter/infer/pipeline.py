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

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.errors import ConfigError, VidfilterError
from vidfilter.baselines import BackgroundEstimator, make_baseline
from vidfilter.infer import keyframe as kf
from vidfilter.infer.result import RunResult
from vidfilter.infer.outputs import FrameOutputs, store_frame
from vidfilter.io.integrity import file_sha256
from vidfilter.io.keyframe_store import STORAGE
from vidfilter.io.scaling import to_float
from vidfilter.io.source import FrameSource

log = logging.getLogger(__name__)

_STOP = object()


# ---------------------------------------------------------------------------------------------
# the model as a background estimator


class ModelBackground(BackgroundEstimator):
    """Background from a trained bundle through the tiled engine (optionally with a temporal channel).

    With ``config.infer.invert`` the network sees ``1 - frame`` (and the statistic of the inverted
    frames: ``1 - min`` for a ``max`` channel) and its background is inverted back, so a model of
    dark animals serves bright ones."""

    name = "model"

    def __init__(self, bundle: Any, config: Config) -> None:
        super().__init__()
        from vidfilter.infer.engine import TiledEngine

        self.bundle = bundle
        self.engine = TiledEngine.from_config(bundle.model, config.infer)
        self.invert = bool(config.infer.invert)
        self.temporal = bundle.config.model.temporal_channel
        self.temporal_frames = int(bundle.normalisation.get("temporal_frames", 32))  # as in training
        self._stat: np.ndarray | None = None
        self.registration: Any = None  # a Registration when the camera moved (the statistic follows it)
        self.refine = config.infer.refine != "off"
        self.bound = config.infer.refine == "full"
        self._refinement: Any = None  # a vidfilter.temporal.refine.Refinement once prepared
        from vidfilter.resolve import run_polarity

        self.polarity = run_polarity(config, bundle)

    def settle(self, config: Config) -> None:
        self.polarity = config.output.polarity.value

    def setup_frames(self, n_frames: int) -> np.ndarray:
        """The temporal statistic's frames (the registration surveys the same); none without that channel."""
        from vidfilter.temporal import statistic_frames

        return statistic_frames(n_frames, self.temporal_frames) if self.temporal != "none" or self.refine else np.arange(0)

    def _statistic_kind(self) -> str:
        """The statistic of the frames as stored (the inverted frames' ``max`` is the ``min`` of these)."""
        return {"max": "min", "min": "max"}.get(self.temporal, self.temporal) if self.invert else self.temporal

    def prepare(self, src: FrameSource) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from vidfilter.temporal import statistic_and_registration, temporal_statistics
        from vidfilter.temporal.refine import Refinement

        self.registration, self._refinement, raw = None, None, None
        sc = self.bundle.config.sampling
        # grey projections say nothing about each colour channel: colour runs are not refined
        refine = self.refine and not (len(src.shape) == 4 and src.shape[-1] > 1)
        kind = self._statistic_kind() if self.temporal != "none" else "none"
        # the refinement's projections beyond the network's own statistic, taken from the same frames
        # in a thread while the camera survey runs (numpy releases the GIL in both): they are dropped
        # if the camera moved
        need = [k for k in ("median", "min", "max") if k != kind] if refine else []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidfilter-setup") as pool:
            projections = pool.submit(temporal_statistics, src, need, self.temporal_frames) if need else None
            if self.temporal != "none" or refine:  # the registration decides for the statistic and the refinement
                raw, self.registration = statistic_and_registration(
                    src, kind, self.temporal_frames, sc.registration, sc.registration_max_shift,
                    what="the temporal channel follows each network frame",
                )
            stats = projections.result() if projections is not None else {}
        if raw is not None:
            self._stat = 1.0 - raw if self.invert else raw
            stats[kind] = raw
        if refine and self.registration is None:
            self._refinement = Refinement(stats["median"], stats["min"], stats["max"])
        elif refine:
            log.info("%s: the camera moved: the background is not refined by the recording's projections", src.path)

    def setup_params(self) -> dict[str, Any] | None:
        """The temporal statistic's settings (any bundle with the same ones shares it); none without that
        channel nor refinement."""
        if self.temporal == "none" and not self.refine:
            return None
        sc = self.bundle.config.sampling
        return {"estimator": "model-statistic", "kind": self._statistic_kind() if self.temporal != "none" else "none",
                "frames": self.temporal_frames, "registration": str(sc.registration),
                "max_shift": sc.registration_max_shift, "invert": self.invert, "refine": self.refine}

    def setup_state(self) -> dict[str, np.ndarray] | None:
        if self.registration is not None:
            return None  # shifts are not kept: a moving camera is set up again
        state: dict[str, np.ndarray] = {}
        if self._stat is not None:
            state["statistic"] = self._stat
        if self._refinement is not None:
            r = self._refinement
            state.update({"median": r.median, "low": r.low, "high": r.high})
        if not state or any(a.dtype != np.float32 for a in state.values()):
            return None
        return state

    def restore_setup(self, state: dict[str, np.ndarray]) -> None:
        from vidfilter.temporal.refine import Refinement

        self._stat, self.registration = state.get("statistic"), None
        self._refinement = Refinement(state["median"], state["low"], state["high"]) if "median" in state else None

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        x = frame[None] if frame.ndim == 2 else np.moveaxis(frame, -1, 0)
        if self.invert:
            x = 1.0 - x
        if self._stat is not None:
            stat = self._stat
            if self.registration is not None:
                from vidfilter.temporal import translate

                stat = translate(stat, *self.registration.shift(frame, t))
            x = np.concatenate([x, stat[None] if stat.ndim == 2 else np.moveaxis(stat, -1, 0)])
        y = self.engine(np.ascontiguousarray(x, dtype=np.float32))
        if y.ndim == 3:
            y = y[0] if y.shape[0] == 1 else np.moveaxis(y, 0, -1)
        y = 1.0 - y if self.invert else y
        return self._refinement(y, self.polarity, frame, bound=self.bound) if self._refinement is not None else y


def make_estimator(method: str, model: str | Path | Any | None, config: Config) -> BackgroundEstimator:
    """The background estimator for ``--method`` (``model`` needs a bundle path or a loaded bundle)."""
    return ModelBackground(_bundle(model), config) if method == "model" else make_baseline(method)


def _bundle(model: str | Path | Any | None) -> Any:
    """The bundle of ``--method model``: loaded from its path, or as given."""
    if model is None:
        raise ConfigError("--method model needs --model BUNDLE (train one with `vidfilter train`), or pick a baseline with --method median")
    if isinstance(model, (str, Path)):
        from vidfilter.models.bundle import load_model

        return load_model(model)
    return model


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


def _put(q: queue.Queue, item: Any, stop: threading.Event, stages: Sequence[_Stage] = ()) -> bool:
    """Put ``item`` unless ``stop`` is set; a failed consumer stage raises its error (a dead writer
    never empties its queue, so waiting for room would hang forever, e.g. on a full disk)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            for s in stages:
                if s.error is not None:
                    raise s.error
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


def _per_frame(
    frames: Iterator[tuple[int, np.ndarray]], est: BackgroundEstimator
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Every frame through the estimator (``--every 1`` and the stateful baselines)."""
    for t, frame in frames:
        yield t, frame, est.background(t, to_float(frame))


def _file_fingerprint(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        return {"path": str(path)}
    st = p.stat()
    info: dict[str, Any] = {"path": str(p.resolve()), "size": st.st_size, "mtime": st.st_mtime}
    if p.is_file():
        info["sha256"] = file_sha256(p)
    return info


def run(
    input: str | Path | FrameSource,
    out: str | Path,
    *,
    model: str | Path | Any | None = None,
    method: str = "model",
    config: Config | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> RunResult:
    """Write background and foreground of one recording to ``out`` (an OME-Zarr store).

    ``progress``: ``True`` shows a progress bar; a callable is called as ``progress(frames done,
    frames in all)`` after each frame is stored, and an exception it raises stops the run like any
    other error: the frames durably written stay in ``OUT.zarr.partial`` and the same call resumes.

    Returns
    -------
    RunResult
        input, output, status, frames, frames_this_run, keyframes, seconds, fps, registration.
    """
    from vidfilter.io.guard import guard_input
    from vidfilter.io.registry import open as vf_open

    config = config or Config()
    oc = config.output
    out = Path(out)
    if out.suffix != ".zarr":
        out = out.with_name(out.name + ".zarr")
    own = not isinstance(input, FrameSource)  # opened here, so closed here
    src = vf_open(input, color=oc.color) if own else input
    in_path = src.path
    exports = [f for f in oc.formats if f != "zarr"]
    finished = _finished_output(out, in_path, oc.overwrite)  # a finished store: maybe only exports are left
    if not finished:
        _check_export_paths(out, exports, oc, in_path)
    # damaged input: refused, or (--salvage) cut to the frames before the damage; frames checked and hashed
    src = guard_input(src, salvage=config.infer.salvage, missing_chunks=config.infer.missing_chunks)
    est = make_estimator(method, model, config)
    meta = _run_meta(input, in_path, src, method, est, config)
    if finished:
        try:
            return _missing_exports_only(out, meta, exports, oc, in_path, len(src))
        finally:
            src.close() if own else None
    from vidfilter.infer.setup_cache import SetupCache

    cache = SetupCache.for_input(meta["input"], src.shape, src.dtype, oc.color, enabled=config.infer.setup_cache)
    config, setup, restored = _settle_setup(src, est, config, cache)
    est.settle(config)
    meta["config"] = config.to_dict()
    if config.infer.threads:
        import torch

        torch.set_num_threads(config.infer.threads)
    t_start = time.perf_counter()
    n, start, keyframes = _write_store(out, meta, src, est, config, progress, close=own, setup=setup,
                                       cache=cache, restored=restored)
    result = _result(in_path, out, n, n - start, keyframes, time.perf_counter() - t_start, est, src)
    if exports:
        from vidfilter.io.export import export_outputs

        export_outputs(out, src_path=in_path, formats=exports, color=oc.color, overwrite=oc.overwrite)
    return result


def _settle_setup(src: FrameSource, est: BackgroundEstimator, config: Config, cache: Any) -> tuple[Config, Any, bool]:
    """The run's polarity (the model's, else detected) and the estimator's setup, taken from the setup
    cache where it holds them; what is left is read from ``src`` in one pass (the frames of the
    returned source, which ``prepare`` is given when the estimator was not restored).

    Returns the resolved config, the setup source and whether the estimator was restored."""
    from vidfilter.io.prefetch import PrefetchedSource
    from vidfilter.resolve import polarity_frames, resolve

    bundle = getattr(est, "bundle", None)
    n = len(src)
    detect = polarity_frames(config, n, bundle)
    kept = cache.polarity() if len(detect) and cache is not None else None
    params = est.setup_params() if cache is not None else None
    state = cache.state(params) if params is not None else None
    if state is not None:
        est.restore_setup(state)
        log.info("setup of %s taken from the setup cache %s (%s)", est.name, cache.root, params)
    # whatever is left is read as if nothing were kept: on a video the frames served for a wanted
    # one depend on the whole wanted set (GOP snapping), so a partial set would change the sample
    own = est.setup_frames(n)
    left = (len(detect) and kept is None) or (state is None and len(own))
    setup = PrefetchedSource(src, np.union1d(detect, own) if left else detect[:0])
    if kept is not None:
        log.info("polarity: %s (detected from this input's frames by an earlier run, kept in %s; set --polarity "
                 "to override)", kept, cache.root)
        config = config.override({"output.polarity": kept})
    config = resolve(config, setup, bundle=bundle, run=True)
    if len(detect) and kept is None and cache is not None:
        cache.save_polarity(config.output.polarity.value)
    return config, setup, state is not None


def _run_meta(
    input: Any, in_path: Any, src: FrameSource, method: str, est: BackgroundEstimator, config: Config
) -> dict[str, Any]:
    """The run metadata stored with the output (and compared when a run resumes or is repeated)."""
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
    return meta


def _write_store(
    out: Path, meta: dict[str, Any], src: FrameSource, est: BackgroundEstimator, config: Config,
    progress: bool | Callable[[int, int], None], close: bool,
    setup: FrameSource, cache: Any = None, restored: bool = False,
) -> tuple[int, int, list[int]]:
    """Stream ``src`` into a new or resumed store ``out`` (closing ``src`` when ``close``); the
    estimator is prepared from ``setup``, ``src`` with its setup frames held (released after), and
    its prepared state kept in ``cache`` (a :class:`~vidfilter.infer.setup_cache.SetupCache`, or
    ``None``); ``restored``: the estimator's state was taken from the cache and it is not prepared.

    Returns the frame count, the first frame computed by this call and the keyframes.
    """
    from vidfilter.io.guard import run_error
    from vidfilter.io.integrity import resume_compatible
    from vidfilter.io.sink import partial_path
    from vidfilter.io.zarr_sink import OmeZarrWriter

    oc, n = config.output, len(src)
    try:
        writer = OmeZarrWriter(out, overwrite=oc.overwrite, resume=resume_compatible(out, meta, src), attrs=meta)
    except OSError as e:  # e.g. a disk full before the first byte: the writer left nothing behind
        src.close() if close else None
        raise run_error(e, SimpleNamespace(path=out, partial=partial_path(out), resumed=True)) from None
    try:
        sinks = _open_sinks(writer, src, oc, n, keyed=_keyed(config, est, src))
        done = min(s.frames_written for s in sinks.values())
        start = _resume_point(done, n, config.infer.every if not est.stateful else 1)
        if start:
            log.info("resuming %s at frame %d of %d", out, start, n)
        src.record_digests(writer.partial)
        src.note_digests(setup.served_frames())  # read before the store existed: a resume checks them too
        with setup:
            if not restored:
                est.prepare(setup)
                params, state = est.setup_params(), est.setup_state()
                if cache is not None and params is not None and state is not None:
                    cache.save_state(params, state)
        if est.stateful and start:  # replay so the estimator's state matches an uninterrupted run
            for t, frame in zip(range(start), src.iter(0, start)):
                est.background(t, to_float(frame))
        keyframes: list[int] = []
        _stream(src, est, sinks, start, n, config, keyframes, progress)
        writer.attrs["input"].update(src.integrity())  # frames read, their content hash, damage
        writer.finalise()
    except BaseException as e:
        writer.abort()
        raise run_error(e, writer)  # a full disk says so; a partial output of bad input is removed
    finally:
        src.close() if close else None
    return n, start, keyframes


def _keyed(config: Config, est: BackgroundEstimator, src: FrameSource) -> bool:
    """Whether the background is stored at its keyframes (:mod:`vidfilter.io.keyframe_store`):
    keyframe mode, an integer recording, and ``output.background: keyframes``."""
    from vidfilter.io.keyframe_store import supports_keyframes

    oc, ic = config.output, config.infer
    return (oc.background == "keyframes" and ic.every > 1 and not est.stateful and oc.foreground_dtype != "float16"
            and supports_keyframes(src.dtype, tuple(src.frame_shape)))


def _open_sinks(writer: Any, src: FrameSource, oc: Any, n: int, keyed: bool = False) -> dict[str, Any]:
    """The image groups of one run: background (at keyframes when ``keyed``), foreground and, on request, mask."""
    from vidfilter.io.keyframe_sink import KeyframeImageSink

    frame_shape = tuple(src.frame_shape)
    fg_dtype = np.dtype(np.float16) if oc.foreground_dtype == "float16" else src.dtype
    sinks = {
        "background": writer.image("background", frame_shape, src.dtype, fps=src.fps, n_frames=n,
                                   sink_class=KeyframeImageSink if keyed else None),
        "foreground": writer.image("foreground", frame_shape, fg_dtype, fps=src.fps, n_frames=n),
    }
    if oc.mask:
        sinks["mask"] = writer.image("mask", frame_shape, np.uint8, fps=src.fps, n_frames=n)
    return sinks


def _result(
    in_path: Any, out: Path, n: int, written: int, keyframes: list[int], seconds: float, est: BackgroundEstimator, src: FrameSource
) -> RunResult:
    """The outcome of a computed run, warning when the adaptive check kept adding keyframes."""
    if keyframes and written >= 50 and len(keyframes) > 0.2 * written:
        log.warning(
            "%s: %d of %d frames became keyframes (the adaptive check kept firing): the background "
            "changes fast or the model fits poorly; raise --adaptive-bound, or use --every 1",
            in_path, len(keyframes), written,
        )
    reg = getattr(est, "registration", None)
    result = RunResult(
        input=str(in_path), output=str(out), status="done", frames=n, frames_this_run=written,
        keyframes=len(keyframes) if keyframes else None, seconds=round(seconds, 3),
        fps=round(written / seconds, 3) if seconds > 0 else None, registration=reg.summary() if reg is not None else None,
    )
    if src.damage:
        result.status, result.error = "salvaged", f"{src.damage}; {n} of {src.frames_declared} frames processed"
    return result


def _finished_output(out: Path, in_path: Any, overwrite: bool) -> bool:
    """Check ``out`` before any work; True when it is a finished vidfilter store that is kept
    (no ``overwrite``): the same run asked again has at most exports left to write."""
    from vidfilter.errors import OutputExistsError
    from vidfilter.io.sink import check_output_path
    from vidfilter.io.zarr_info import read_ome_zarr_info

    try:
        check_output_path(out, inputs=[in_path], overwrite=overwrite)
        return False
    except OutputExistsError:
        try:
            complete = out.is_dir() and read_ome_zarr_info(out)["complete"]
        except VidfilterError:
            complete = False
        if not complete:
            raise
        return True


def _check_export_paths(out: Path, exports: list[str], oc: Any, in_path: Any) -> None:
    """Every file an export will write may be written (refused before any work otherwise)."""
    if not exports:
        return
    from vidfilter.io.export import export_paths
    from vidfilter.io.sink import check_output_path

    groups = {"background": None, "foreground": np.dtype(np.float16) if oc.foreground_dtype == "float16" else None}
    if oc.mask:
        groups["mask"] = None
    for fmt in exports:
        for p in export_paths(out, fmt, groups):
            check_output_path(p, inputs=[in_path], overwrite=oc.overwrite)


def _missing_exports_only(out: Path, meta: dict[str, Any], exports: list[str], oc: Any, in_path: Any, n: int) -> RunResult:
    """``out`` is finished: if this same run made it, write only the exports that are missing
    (a rerun after a failed or killed export); otherwise it exists, and is kept."""
    from vidfilter.io.export import export_outputs, pending_exports
    from vidfilter.errors import OutputExistsError
    from vidfilter.io.integrity import made_by_same_run

    if not made_by_same_run(out, meta):
        raise OutputExistsError(
            f"{out} exists, made from another input, method, model or settings; pass --overwrite to replace it "
            "or choose another --out"
        )
    pending = pending_exports(out, exports)
    t0 = time.perf_counter()
    if pending:
        log.info("%s is finished (same input, method and settings): writing only the missing exports %s", out, pending)
        export_outputs(out, src_path=str(in_path), formats=pending, color=oc.color, overwrite=False)
    else:
        log.info("%s is finished (same input, method and settings): nothing to do; --overwrite recomputes it", out)
    return RunResult(
        input=str(in_path), output=str(out), status="exported" if pending else "skipped", frames=n, frames_this_run=0,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _resume_point(done: int, n: int, every: int) -> int:
    """Where a resumed run starts: after the durable prefix per frame; in keyframe mode at the last
    grid keyframe at or before it, whose state depends on nothing earlier, so that the resumed
    output is identical to an uninterrupted run."""
    if done <= 0 or done >= n or every == 1:
        return max(0, min(done, n))
    return (done // every) * every


def _stream(
    src: FrameSource, est: BackgroundEstimator, sinks: dict[str, Any], start: int, n: int,
    config: Config, keyframes: list[int], progress: bool | Callable[[int, int], None],
) -> None:
    """Decode, look-ahead (keyframes), estimate and write threads around the caller's thread."""
    from tqdm.auto import tqdm

    oc, ic = config.output, config.infer
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=ic.queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=ic.queue_size)
    match = oc.match_exposure == "on" or (oc.match_exposure == "auto" and est.name == "model")
    keyed = sinks["background"].storage == STORAGE
    outputs = FrameOutputs(src.dtype, oc, mask="mask" in sinks, match_exposure=match, keyed=keyed)
    bar = (_Report(progress, n, start) if callable(progress)
           else tqdm(total=n, initial=start, unit="frame", disable=not progress, desc=Path(str(src.path)).name[:30]))
    writer = _Stage(lambda: _write(q_out, stop, sinks, outputs, bar), "vidfilter-write")
    stages = [_Stage(lambda: _decode(src, start, n, q_in, stop), "vidfilter-decode"), writer]
    if ic.every > 1 and not est.stateful:  # keyframe mode
        q_key: queue.Queue = queue.Queue(maxsize=2)  # keyframe backgrounds computed ahead
        tail = not ic.adaptive  # with the adaptive check, the frames after the last K-th keep its background
        stages.append(_Stage(lambda: _lookahead(src, est, kf.grid(start, ic.every, n, tail), q_key, stop), "vidfilter-keyframes"))
        items = kf.schedule(
            _drain(q_in, stop, stages), est.background, _drain(q_key, stop, stages), n, ic.every, adaptive=ic.adaptive,
            bound=ic.adaptive_bound, keyframes=keyframes, to_float=to_float, tail=tail,
        )
    else:
        items = _per_frame(_drain(q_in, stop, stages), est)
    try:
        _pump(items, stages, writer, q_out, stop)
    finally:
        bar.close()


class _Report:
    """A progress bar's ``update`` / ``close`` calling ``fn(frames done, frames in all)`` instead of drawing."""

    def __init__(self, fn: Callable[[int, int], None], total: int, initial: int) -> None:
        self.fn, self.total, self.done = fn, total, initial

    def update(self, k: int = 1) -> None:
        self.done += k
        self.fn(self.done, self.total)

    def close(self) -> None:
        pass


def _decode(src: FrameSource, start: int, n: int, q: queue.Queue, stop: threading.Event) -> None:
    for t, frame in zip(range(start, n), src.iter(start, n)):
        if not _put(q, (t, frame), stop):
            return
    _put(q, _STOP, stop)


def _lookahead(src: FrameSource, est: BackgroundEstimator, keys: list[int], q: queue.Queue, stop: threading.Event) -> None:
    """The fixed-grid keyframes, read by a second handle and estimated ahead of the stream."""
    ahead = src.reopen()
    try:
        for g in keys:
            if not _put(q, (g, est.background(g, to_float(ahead[g]))), stop):
                return
    finally:
        if ahead is not src:
            ahead.close()


def _drain(q: queue.Queue, stop: threading.Event, stages: Sequence[_Stage]) -> Iterator[Any]:
    while True:
        item = _get(q, stop, stages)
        if item is _STOP:
            return
        yield item


def _write(q: queue.Queue, stop: threading.Event, sinks: dict[str, Any], outputs: FrameOutputs, bar: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(sinks), thread_name_prefix="vidfilter-store") as pool:
        while True:
            item = _get(q, stop, [])
            if item is _STOP:
                return
            t, frame, bg = item
            store_frame(pool, sinks, t, outputs(t, frame, bg))
            bar.update(1)


def _pump(items: Iterator[Any], stages: list[_Stage], writer: _Stage, q_out: queue.Queue, stop: threading.Event) -> None:
    """Start the stages, hand the estimated frames to the writer and raise the first stage error."""
    for s in stages:
        s.start()
    try:
        for item in items:
            if writer.error is not None:
                raise writer.error
            if not _put(q_out, item, stop, stages):
                break
        _put(q_out, _STOP, stop, stages)
        while writer.is_alive():
            writer.join(timeout=0.1)
        for s in stages:
            if s.error is not None:
                raise s.error
    finally:
        stop.set()
        for s in stages:
            s.join(timeout=5)


def output_path_for(input: str, out_dir: str | Path) -> Path:
    """``out_dir/<input stem>.zarr`` (folders and ``.zarr`` inputs keep their name)."""
    p = Path(str(input).rstrip("/"))
    stem = p.name[: -len(".zarr")] if p.name.endswith(".zarr") else p.stem if p.suffix else p.name
    return Path(out_dir) / f"{stem}.zarr"


def output_paths_for(inputs: Sequence[Any], out_dir: str | Path) -> list[Path]:
    """One distinct output per input under ``out_dir``: ``<stem>.zarr``, and where two inputs share
    a stem (``a/clip.mp4``, ``b/clip.mp4``) the names of their folders join it (``a_clip.zarr``,
    ``b_clip.zarr``), then a number; the same inputs always get the same names, so a rerun resumes."""
    paths = [Path(str(i).rstrip("/")).resolve() for i in inputs]
    names = [output_path_for(str(p), out_dir).name for p in paths]
    for depth in (1, 2, 3):
        clash = {n for n in names if names.count(n) > 1}
        if not clash:
            break
        for i, p in enumerate(paths):
            if names[i] in clash:
                parents = [q.name for q in list(p.parents)[:depth] if q.name][::-1]
                names[i] = "_".join([*parents, output_path_for(str(p), out_dir).name])
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        if names.count(n) > 1:
            names[i] = f"{n[: -len('.zarr')]}-{seen[n]}.zarr"
    return [Path(out_dir) / n for n in names]


def run_many(
    inputs: Sequence[str],
    *,
    model: str | Path | Any | None = None,
    method: str = "model",
    out: str | Path | None = None,
    out_dir: str | Path | None = None,
    config: Config | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> list[RunResult]:
    """Process several inputs one after another; one bad input is reported and the others still finish."""
    config = config or Config()
    if out is None and out_dir is None:
        raise ConfigError("say where to write: --out OUT.zarr for one input, or --out-dir DIR")
    if method == "model":
        model = _bundle(model)  # loaded once for all inputs
    else:
        if model is not None:
            raise ConfigError(f"--model is used only with --method model, not with the baseline {method!r}; drop one of them")
        make_baseline(method)  # a typo fails before any input is touched
    return run_each(
        inputs, out, out_dir, lambda inp, target: run(inp, target, model=model, method=method, config=config, progress=progress)
    )


def run_each(
    inputs: Sequence[Any], out: str | Path | None, out_dir: str | Path | None, one: Callable[[Any, Path], RunResult],
    logger: logging.Logger = log,
) -> list[RunResult]:
    """``one(input, output)`` for each input in turn, into ``out`` or one output each under
    ``out_dir`` (:func:`output_paths_for`); a :class:`VidfilterError` of one input is logged to
    ``logger`` and reported as its result (status ``failed``) and the others still run."""
    results = []
    targets = [Path(out)] * len(inputs) if out is not None else output_paths_for(inputs, out_dir)  # type: ignore[arg-type]
    for inp, target in zip(inputs, targets):
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
        try:
            results.append(one(inp, target))
        except VidfilterError as e:
            logger.info("%s failed: %s", inp, e)
            results.append(RunResult.failure(inp, e))
    return results
