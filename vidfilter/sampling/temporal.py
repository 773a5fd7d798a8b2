"""A robust temporal statistic of a recording, used as an optional second input channel.

Giving the network the per-pixel max (dark animals on a light plate), min (bright animals) or
median of frames spread over the recording lets it learn a *correction* of that statistic rather
than the whole plate texture (DESIGN §6, "cheap training on CPU"). The same function is used at
training and at inference time, so both see the same channel.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vidfilter.errors import TrainingInputError
from vidfilter.io.convert import to_float
from vidfilter.io.source import FrameSource, to_gray

StatisticKind = Literal["max", "min", "median"]


def statistic_frames(n_frames: int, n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Indices of ``n`` frames spread evenly over ``[start, stop)`` (all of them if fewer)."""
    stop = n_frames if stop is None else stop
    if stop - start <= n:
        return np.arange(start, stop)
    return np.unique(np.linspace(start, stop - 1, n).round().astype(np.int64))


def temporal_statistic(src: FrameSource, kind: StatisticKind = "max", n: int = 32) -> np.ndarray:
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
    """
    if kind not in ("max", "min", "median"):
        raise ValueError(f"unknown temporal statistic {kind!r}; use max, min or median")
    idx = statistic_frames(len(src), n)
    if idx.size == 0:
        raise TrainingInputError(f"{src.path}: recording has no frames")
    contiguous = idx.size == len(src)
    frames = src.iter(0, len(src)) if contiguous else (src[int(t)] for t in idx)
    acc: np.ndarray | None = None
    stack: list[np.ndarray] = []
    for t, frame in zip(idx, frames):
        frame = to_gray(np.asarray(frame))
        if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
            raise TrainingInputError(f"{src.path}: frame {int(t)} holds NaN or Inf values; replace them before training")
        if kind == "median":
            stack.append(frame)
        elif acc is None:
            acc = frame.copy()
        elif kind == "max":
            np.maximum(acc, frame, out=acc)
        else:
            np.minimum(acc, frame, out=acc)
    if kind == "median":
        med = np.median(np.stack(stack), axis=0)
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(stack[0].dtype, 1.0)
        return (med / scale).astype(np.float32)
    assert acc is not None
    return to_float(acc)
