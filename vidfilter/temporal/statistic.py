"""A robust temporal statistic of a recording, used as an optional second input channel.

Giving the network the per-pixel max (dark animals on a light plate), min (bright animals) or
median of frames spread over the recording lets it learn a *correction* of that statistic rather
than the whole plate texture (cheap training on a CPU). The same function is used at
training and at inference time, so both see the same channel; :func:`statistic_and_registration`
also decides, for both and for the registered baselines, whether the statistic follows the camera
(:mod:`vidfilter.temporal.register`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np

from vidfilter.errors import TrainingInputError
from vidfilter.io.prefetch import served_index
from vidfilter.io.scaling import to_float
from vidfilter.io.source import FrameSource, to_gray
from vidfilter.temporal.register import CONFIRM, Registration, survey

log = logging.getLogger(__name__)

StatisticKind = Literal["max", "min", "median"]


def statistic_frames(n_frames: int, n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Indices of ``n`` frames spread evenly over ``[start, stop)`` (all of them if fewer)."""
    stop = n_frames if stop is None else stop
    if stop - start <= n:
        return np.arange(start, stop)
    return np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))


def _kth_smallest(stack: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th smallest (0-based) along axis 0 of unsigned integers, built bit by bit from the
    top: the largest value with at most ``k`` elements below it."""
    res = np.zeros(stack.shape[1:], stack.dtype)
    for b in range(stack.dtype.itemsize * 8 - 1, -1, -1):
        cand = res | stack.dtype.type(1 << b)
        below = (stack < cand).sum(axis=0, dtype=np.uint32)
        res = np.where(below <= k, cand, res)
    return res


#: rows of a frame whose median is taken at once (the comparisons of 51 frames stay in cache)
_MEDIAN_ROWS = 64


def temporal_median(stack: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel median over axis 0 of an array, or over a list of frames of one shape and dtype
    (float64; the mean of the two middle values for an even count), equal to
    ``np.median(stack, axis=0)``. Unsigned integers take a bitwise selection, a few row blocks at a
    time, in threads: 0.4 s for 51 frames of 2048² on 2 cores, where ``np.median`` takes 2.9 s. A
    list is never stacked whole: each row block gathers its rows from the frames (no 200 MB copy)."""
    first = stack[0] if len(stack) else np.asarray(stack)
    if first.dtype not in (np.uint8, np.uint16) or first.ndim < 1:
        return np.median(np.asarray(stack), axis=0)
    from concurrent.futures import ThreadPoolExecutor

    t = len(stack)
    out = np.empty(first.shape, np.float64)

    def rows(r: int) -> None:
        block = stack[:, r : r + _MEDIAN_ROWS] if isinstance(stack, np.ndarray) else np.stack(
            [f[r : r + _MEDIAN_ROWS] for f in stack])
        hi = _kth_smallest(block, t // 2)
        out[r : r + _MEDIAN_ROWS] = hi if t % 2 else (_kth_smallest(block, t // 2 - 1).astype(np.float64) + hi) / 2

    # numpy releases the GIL in the comparisons and sums: row blocks on every core (0.8 -> 0.4 s on 2)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(rows, range(0, first.shape[0], _MEDIAN_ROWS)))
    return out


def temporal_statistic(
    src: FrameSource, kind: StatisticKind = "max", n: int = 32, *, registration: Registration | None = None
) -> np.ndarray:
    """Per-pixel ``kind`` over ``n`` frames spread across ``src``, as float32 ``(H, W)`` in [0, 1].

    Streaming: max/min keep one running frame; median keeps the ``n`` frames in the source dtype
    (``n × H × W`` bytes for uint8). Colour frames are converted to grey (BT.601).

    Parameters
    ----------
    src : FrameSource
        The recording.
    kind : {"max", "min", "median"}
        The statistic.
    n : int
        Number of frames sampled (evenly spaced, first and last included).
    registration : Registration, optional
        Measure each sampled frame's camera shift and accumulate in frame 0's coordinates
        (:mod:`vidfilter.temporal.register`); the shifts stay in the registration's cache.
    """
    return temporal_statistics(src, (kind,), n, registration=registration)[kind]


def temporal_statistics(
    src: FrameSource, kinds: Sequence[str], n: int = 32, *, registration: Registration | None = None
) -> dict[str, np.ndarray]:
    """Several of :func:`temporal_statistic`'s statistics of the same ``n`` frames, read once:
    ``{kind: float32 (H, W) in [0, 1]}``."""
    for kind in kinds:
        if kind not in ("max", "min", "median"):
            raise ValueError(f"unknown temporal statistic {kind!r}; use max, min or median")
    idx = statistic_frames(len(src), n)
    if idx.size == 0:
        raise TrainingInputError(f"{src.path}: recording has no frames")
    contiguous = idx.size == len(src)
    frames = src.iter(0, len(src)) if contiguous else (src[int(t)] for t in idx)
    acc: dict[str, np.ndarray] = {}
    stack: list[np.ndarray] = []
    for t, frame in zip(idx, frames):
        frame = to_gray(np.asarray(frame))
        if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
            raise TrainingInputError(f"{src.path}: frame {int(t)} holds NaN or Inf values; replace them before training")
        if registration is not None:
            frame = registration.to_reference(frame, served_index(src, int(t)))
        if "median" in kinds:
            stack.append(frame)
        for kind in ("max", "min"):
            if kind not in kinds:
                continue
            if kind not in acc:
                acc[kind] = frame.copy()
            else:
                (np.maximum if kind == "max" else np.minimum)(acc[kind], frame, out=acc[kind])
    out = {k: to_float(a) for k, a in acc.items()}
    if "median" in kinds:
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(stack[0].dtype, 1.0)
        out["median"] = (temporal_median(stack) / scale).astype(np.float32)
    return out


def statistic_and_registration(
    src: FrameSource, kind: str, n: int, mode: str, max_shift: int, *, what: str = "registered to frame 0",
) -> tuple[np.ndarray | None, Registration | None]:
    """The temporal statistic of ``src`` (``kind`` "none": no statistic) and the registration to
    apply: None when ``mode`` is "off", or "auto" and the camera did not move (:attr:`Registration.moved`:
    a shift in :data:`CONFIRM` consecutive surveyed frames). The statistic's ``n`` frames are the
    survey (one read each; isolated shifts cost a second, unregistered pass for the statistic);
    without a statistic the same frames are surveyed.
    Shared by training (:func:`vidfilter.sampling.pairs.make_samplers`) and inference
    (:class:`vidfilter.infer.pipeline.ModelBackground`) so both decide alike; ``what`` ends the log line."""
    stat = None
    if kind != "none":
        reg = Registration.for_source(src, max_shift=max_shift) if mode != "off" else None
        stat = temporal_statistic(src, kind, n, registration=reg)  # type: ignore[arg-type]
    else:
        reg = survey(src, statistic_frames(len(src), n), max_shift=max_shift) if mode != "off" else None
    if reg is None:
        return stat, None
    if mode != "on" and not reg.moved:
        lone = {t: d for t, d in dict(reg.cache).items() if d != (0, 0)}
        if lone:  # isolated shifts: a still camera, so the statistic is taken again unregistered
            log.info("%s: shift(s) %s of surveyed frame(s) %s not seen in %d consecutive surveyed frames: camera treated as still",
                     src.path, sorted(set(lone.values())), sorted(lone), CONFIRM)
            if kind != "none":
                stat = temporal_statistic(src, kind, n)  # type: ignore[arg-type]
        return stat, None
    log.info("%s: the camera moved (largest shift %d px over %d surveyed frames): %s", src.path, reg.largest, len(reg.cache), what)
    return stat, reg
