"""The setup reads of a run in one pass: :class:`PrefetchedSource`. The polarity detection and the
estimator's ``prepare`` read frames spread over the recording, and read one by one each such pass
over a compressed video decodes most of it (a read decodes forward from the keyframe before it);
read together, in ascending order, they cost one forward pass.

On a video with predicted frames even one ascending pass decodes most of the recording: a wanted
frame in the middle of a group of pictures (GOP) costs decoding the GOP up to it. So there each
wanted frame is served by a frame that is cheap to reach (:func:`cheap_substitutes`): the wanted
frames are snapped to the start of their GOP, and the setup decodes about as many frames as it
wants, at the price of a sample clustered at GOP starts, each frame at most one GOP from where it
was asked for.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vidfilter.io.source import FrameSource


#: frames of at least this many pixels are read by two decoders in threads, each taking every other
#: GOP (a decoder spends most of a short run after a seek filling its own thread pipeline); smaller
#: ones by one, where opening a second decoder costs about what it saves
TWO_DECODERS_FROM_PX = 1024 * 1024


def cheap_substitutes(wanted: Iterable[int], keyframes: Sequence[int], n_frames: int) -> dict[int, int]:
    """For each wanted frame, the frame served in its place: the wanted frames snapped to the start of their GOP.

    A GOP (the frames from a keyframe up to the next one) holding ``m`` wanted frames is served by
    its first ``m`` frames, in order: the ``j``-th wanted frame of the GOP by keyframe ``+ j``. They
    are decoded in one run after one seek to the keyframe, where a wanted frame in the middle of
    the GOP would cost decoding the GOP up to it. The cost: the sample is clustered at GOP starts,
    each frame at most one GOP before its asked position (a wanted frame that is already among
    its GOP's first ``m`` is served by itself or an earlier frame of that prefix). The order of the
    wanted frames is kept and no two share a substitute.

    Parameters
    ----------
    wanted : iterable of int
        The frames asked for.
    keyframes : sequence of int
        The frame indices of the keyframes (any order); those outside ``[0, n_frames)`` are ignored.
    n_frames : int
        The recording's length: the last GOP ends there.

    Returns
    -------
    dict of int to int
        Wanted frame -> served frame. The identity where every frame is a keyframe (nothing is
        predicted), and for wanted frames before the first keyframe or outside the recording.
    """
    ts = sorted({int(t) for t in wanted})
    keys = sorted({int(k) for k in keyframes if 0 <= int(k) < n_frames})
    out = {t: t for t in ts}
    if len(keys) >= n_frames:
        return out
    by_gop: dict[int, list[int]] = {}
    for t in ts:
        i = bisect.bisect_right(keys, t) - 1
        if i >= 0 and t < n_frames:
            by_gop.setdefault(i, []).append(t)
    for i, members in by_gop.items():
        for j, t in enumerate(members):
            out[t] = keys[i] + j  # inside the GOP, which holds its m wanted frames
    return out


def _runs(frames: Iterable[int]) -> list[tuple[int, int]]:
    """``frames`` as ascending runs of consecutive frames, ``(start, stop)`` each."""
    runs: list[tuple[int, int]] = []
    for s in sorted(frames):
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], s + 1)
        else:
            runs.append((s, s + 1))
    return runs


def _substitutes(src: FrameSource, wanted: frozenset[int]) -> dict[int, int] | None:
    """The substitutes of ``wanted`` in ``src`` (:func:`cheap_substitutes`), or None where ``src``
    has no keyframes to start reads at, or a single GOP (snapping to it would lose the spread)."""
    keyframes = getattr(src, "keyframe_indices", None)
    keys = keyframes() if callable(keyframes) else None
    if keys is None or any(not 0 <= t < len(src) for t in wanted):
        return None
    keys = [k for k in keys if 0 <= k < len(src)]
    if len(keys) < 2 or len(keys) >= len(src):
        return None
    return cheap_substitutes(wanted, keys, len(src))


class PrefetchedSource(FrameSource):
    """``src`` with the frames ``indices`` read once, in ascending order, when any of them is first asked for.

    ``self[t]`` of a held frame, and ``iter`` over held frames only, are copies from memory; every
    other read and attribute (``len``, ``damage``, digests, ``reopen``, reader facts) is ``src``'s.
    Memory: the held frames, a run's setup frames (at most about 100 whatever the recording's
    length: 16 for the polarity, 51 for the median, the temporal statistic's). ``close()`` (the end
    of a ``with`` block) releases them and leaves ``src`` open: its owner closes it.

    Where ``src`` is a video with predicted frames and several GOPs (it offers ``keyframe_indices()``),
    the wanted frames are snapped to the start of their GOP (:func:`cheap_substitutes`):
    ``self[t]`` of a wanted ``t`` gives the pixels of its substitute ``self.substitutes[t]``, a
    frame at most one GOP before ``t``. A wanted frame in the middle of a GOP would cost decoding
    the GOP up to it; the substitutes of each GOP are decoded in one run after one seek to its
    keyframe (``src.iter``; on large frames two decoders in threads, :data:`TWO_DECODERS_FROM_PX`),
    about one decoded frame per wanted frame. The sample is clustered at
    GOP starts. ``iter`` serves memory only over frames served by themselves; elsewhere it reads ``src``.
    Other sources (arrays, Zarr, images, all-intra videos) are served the wanted frames themselves.
    """

    def __init__(self, src: FrameSource, indices: Iterable[int]) -> None:
        self.inner, self.path, self.shape, self.dtype, self.fps = src, src.path, tuple(src.shape), src.dtype, src.fps
        self.color = "keep"  # src applied the colour policy
        self._wanted = frozenset(int(t) for t in indices)
        subs = _substitutes(src, self._wanted) if self._wanted else None
        self._snapped = subs is not None
        #: wanted frame -> the frame whose pixels are served for it
        self.substitutes: dict[int, int] = subs if subs is not None else {t: t for t in self._wanted}
        self._held: dict[int, np.ndarray] | None = None

    def _load(self) -> dict[int, np.ndarray]:
        if not self._snapped:
            return {s: self.inner[s] for s in sorted(self._wanted)}
        wanted_of = {s: t for t, s in self.substitutes.items()}
        runs = _runs(wanted_of)

        def read(src: FrameSource, lane: list[tuple[int, int]]) -> dict[int, np.ndarray]:
            return {wanted_of[s]: frame for start, stop in lane for s, frame in zip(range(start, stop), src.iter(start, stop))}

        if len(runs) < 2 or (os.cpu_count() or 1) < 2 or int(np.prod(self.shape[1:3])) < TWO_DECODERS_FROM_PX:
            return read(self.inner, runs)
        second = self.inner.reopen()  # an independent decoder: the GOPs are read by two at once
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="vidfilter-setup-read") as pool:
                other = pool.submit(read, second, runs[1::2])
                held = read(self.inner, runs[0::2])
                held.update(other.result())
        finally:
            if second is not self.inner:
                second.close()
        return held

    def _read(self, t: int) -> np.ndarray:
        if t not in self._wanted:
            return self.inner[t]
        if self._held is None:
            self._held = self._load()
        return self._held[t].copy()

    def _iter(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        ts = range(start, stop, step)
        if self._wanted.issuperset(ts) and all(self.substitutes[t] == t for t in ts):
            return (self._read(t) for t in ts)
        return self.inner.iter(start, stop, step)

    def served_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame index, pixels)`` of every frame read so far: the frames served, by their own
        index (a substitute's, where a wanted frame was snapped to its GOP's start)."""
        for t, frame in (self._held or {}).items():
            yield self.substitutes.get(t, t), frame

    def reopen(self) -> FrameSource:
        return self.inner.reopen()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        """Release the held frames (later reads go to ``src``); ``src`` stays open."""
        self._wanted, self._held, self.substitutes = frozenset(), None, {}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def served_index(src: FrameSource, t: int) -> int:
    """The recording's frame whose pixels ``src[t]`` holds: ``t`` itself, or its substitute where
    ``src`` is a :class:`PrefetchedSource` that snapped it to its GOP's start. Code that keys
    anything by frame index (a registration's shifts) keys the pixels it saw by this."""
    subs = getattr(src, "substitutes", None)
    return int(subs.get(int(t), t)) if isinstance(subs, dict) else int(t)
