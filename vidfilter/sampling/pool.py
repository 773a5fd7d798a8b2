"""A bounded pool of decoded frames, filled by sequential runs (cheap on compressed video).

Random single-frame seeks in an H.264 file cost one GOP decode each. The pool instead decodes
*runs*: for a run anchored at frame ``s`` with run lag ``L`` it keeps the ``r`` frames
``s .. s+r-1`` (the head) and the ``r`` frames ``s+L .. s+L+r-1`` (the tail), so every head frame
has a partner exactly ``L`` frames later. When ``L`` is small the two parts overlap and the run is
one contiguous block of ``r + L`` frames (lag 1: ``r + 1`` frames); when the gap between head and
tail is longer than ``gap_decode`` frames the tail is decoded by a second ``iter`` call (one
seek) instead of decoding and discarding the frames in between.

Frames are stored in their source dtype (uint8/uint16/float32), with a cached low-resolution
block mean used to find where a pair differs (crop mining). Memory is bounded by
``capacity × frame bytes`` (capacity = ``pool_frames``, lowered to fit ``max_bytes``).
Runs are replaced one at a time, oldest first. The pool draws no random numbers itself; the
caller passes run positions, so a pool is rebuilt exactly from its list of runs (resume).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from vidfilter.errors import TrainingInputError
from vidfilter.io.source import FrameSource, to_gray

logger = logging.getLogger(__name__)

#: Long side of the low-resolution difference map used for crop mining (pixels, at most).
LOWRES_SIDE = 512


@dataclass(frozen=True)
class Run:
    """One decoded run: recording ``source``, anchor ``start``, lag ``lag``, ``length`` head frames."""

    source: int
    start: int
    lag: int
    length: int

    def frames(self) -> list[int]:
        """Frame indices kept by this run, sorted and unique."""
        head = range(self.start, self.start + self.length)
        tail = range(self.start + self.lag, self.start + self.lag + self.length)
        return sorted(set(head) | set(tail))


def lowres_factor(shape: tuple[int, int]) -> int:
    """Block size of the low-resolution map for frames of ``shape`` (H, W)."""
    return max(1, -(-max(shape) // LOWRES_SIDE))


def block_mean(frame: np.ndarray, f: int) -> np.ndarray:
    """``f × f`` block mean of a 2-D frame as float32 (edges that do not fill a block are dropped)."""
    if f == 1:
        return frame.astype(np.float32)
    h, w = (frame.shape[0] // f) * f, (frame.shape[1] // f) * f
    return frame[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float32)


def check_finite(frame: np.ndarray, path: str, t: int) -> None:
    """Raise :class:`TrainingInputError` if a float frame holds NaN or Inf."""
    if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
        raise TrainingInputError(
            f"{path}: frame {t} holds NaN or Inf values; replace them (e.g. numpy.nan_to_num) before training"
        )


def read_gray(src: FrameSource, t: int) -> np.ndarray:
    """Frame ``t`` as a 2-D array (colour converted by BT.601 luma if the source keeps colour)."""
    return to_gray(np.asarray(src[t]))


class FramePool:
    """Decoded frames of several recordings, bounded in count and bytes.

    Parameters
    ----------
    sources : list of FrameSource
        The recordings (grey, or colour converted to grey on entry).
    capacity : int
        Most frames held at once (``SamplingConfig.pool_frames``).
    max_bytes : int
        Memory budget for the frames; ``capacity`` is lowered to respect it.
    gap_decode : int
        A run whose head and tail are more than this many frames apart is decoded with two
        sequential reads instead of one.
    """

    def __init__(self, sources: list[FrameSource], capacity: int, *, max_bytes: int = 2**30, gap_decode: int = 32):
        self.sources = sources
        frame_bytes = max(int(np.prod(s.shape[1:3])) * np.dtype(s.dtype).itemsize for s in sources)
        self.frame_bytes = frame_bytes
        by_budget = max(2, int(max_bytes // frame_bytes))
        if by_budget < capacity:
            logger.info("frame pool lowered from %d to %d frames to stay within %d MiB", capacity, by_budget, max_bytes >> 20)
        self.capacity = max(2, min(int(capacity), by_budget))
        self.gap_decode = int(gap_decode)
        self.runs: deque[Run] = deque()
        # (source, t) -> (frame, lowres); shared by runs that overlap
        self.frames: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._refcount: dict[tuple[int, int], int] = {}
        self.frames_decoded = 0
        self._pairs_cache: np.ndarray | None = None

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    @property
    def nbytes(self) -> int:
        """Bytes held by frames and low-resolution maps."""
        return sum(f.nbytes + lr.nbytes for f, lr in self.frames.values())

    def run_size(self, run: Run) -> int:
        return len(run.frames())

    def fits(self, run: Run) -> bool:
        """Whether ``run`` can be added without evicting anything."""
        new = [k for k in run.frames() if (run.source, k) not in self.frames]
        return len(self.frames) + len(new) <= self.capacity

    def add_run(self, run: Run) -> None:
        """Decode ``run`` and add it, evicting the oldest runs until it fits."""
        while self.runs and not self.fits(run):
            self._evict(self.runs.popleft())
        if self.run_size(run) > self.capacity:
            raise ValueError(f"run of {self.run_size(run)} frames exceeds the pool capacity {self.capacity}")
        self._decode(run)
        self.runs.append(run)
        self._pairs_cache = None

    def replace_oldest(self, run: Run) -> None:
        """Drop the oldest run and add ``run`` (more old runs go if ``run`` is larger)."""
        if self.runs:
            self._evict(self.runs.popleft())
        self.add_run(run)

    def _evict(self, run: Run) -> None:
        for t in run.frames():
            key = (run.source, t)
            self._refcount[key] -= 1
            if self._refcount[key] == 0:
                del self._refcount[key]
                del self.frames[key]
        self._pairs_cache = None

    def _store(self, key: tuple[int, int], frame: np.ndarray) -> None:
        src = self.sources[key[0]]
        frame = to_gray(np.asarray(frame))
        check_finite(frame, src.path, key[1])
        frame = np.ascontiguousarray(frame)
        self.frames[key] = (frame, block_mean(frame, lowres_factor(frame.shape)))
        self.frames_decoded += 1

    def _decode(self, run: Run) -> None:
        src = self.sources[run.source]
        wanted = run.frames()
        for t in wanted:
            self._refcount[(run.source, t)] = self._refcount.get((run.source, t), 0) + 1
        missing = [t for t in wanted if (run.source, t) not in self.frames]
        if not missing:
            return
        # split the missing frames into segments separated by gaps longer than gap_decode
        segments: list[list[int]] = [[missing[0]]]
        for t in missing[1:]:
            if t - segments[-1][-1] > self.gap_decode:
                segments.append([t])
            else:
                segments[-1].append(t)
        for seg in segments:
            keep = set(seg)
            for t, frame in zip(range(seg[0], seg[-1] + 1), src.iter(seg[0], seg[-1] + 1)):
                if t in keep:
                    self._store((run.source, t), frame)

    # -- pairs ------------------------------------------------------------------------------
    def valid_pairs(self, lag_ranges: list[tuple[int, int]]) -> np.ndarray:
        """All ``(source, t_a, t_b)`` in the pool with ``lo <= t_b - t_a <= hi`` (per-source range)."""
        if self._pairs_cache is not None:
            return self._pairs_cache
        by_source: dict[int, list[int]] = {}
        for s, t in self.frames:
            by_source.setdefault(s, []).append(t)
        rows = []
        for s in sorted(by_source):
            ts = np.array(sorted(by_source[s]), dtype=np.int64)
            lo, hi = lag_ranges[s]
            d = ts[None, :] - ts[:, None]
            ia, ib = np.nonzero((d >= lo) & (d <= hi))
            rows.append(np.stack([np.full(ia.size, s), ts[ia], ts[ib]], axis=1))
        pairs = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
        self._pairs_cache = pairs
        return pairs

    def get(self, source: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(frame, lowres)`` of frame ``t`` of ``source`` (must be in the pool)."""
        return self.frames[(source, t)]
