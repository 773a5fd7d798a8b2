"""Time-lag pair sampler: (frame t, frame t + lag) crops from one or many recordings.

Two frames of one fixed-camera recording share the background and differ where the animals are;
a network trained to map one to the other learns the background (the paper's section 2). This module turns
recordings into batches ``(input [B, C, h, w], target [B, 1, h, w])`` of float32 in [0, 1]:

- lag in frames or seconds (via the recording's fps), fixed or a range, per recording;
- the same crop in both frames, the same random flips / 90° rotations, input/target swapped
  with probability ``swap``; frames trimmed at both ends;
- frames come from a :class:`~vidfilter.sampling.pool.FramePool` filled by sequential runs, so a
  compressed video is decoded in order instead of seeking for every pair;
- crop mining (against the identity trap): with probability ``mine_fraction`` the crop is
  centred on a pixel where the two frames differ by more than ``mine_threshold``;
- an optional temporal statistic channel (:mod:`vidfilter.temporal.statistic`) appended to the input;
- deterministic given the seed; ``get_state()/set_state()`` for exact resume;
  :class:`PairDataset` runs it in DataLoader workers (seed + worker id, sources reopened per worker);
- clean targets (``targets``): where a recording's true background is known, as for the generated
  corpora of :mod:`vidfilter.train.pretrain`, the target is that background at the input's own
  frame instead of a second frame, and mined crops are centred where the input differs from it.
  Time-lag pairs teach a slow animal's overlap with itself as plate; a clean target never does.

Validation pairs come from held-out frames (the last ``val_fraction`` of each recording) or, when
several recordings are given, from held-out recordings, with a fixed seed.
"""

from __future__ import annotations

import glob
import logging
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfilter.config import Config, SamplingConfig
from vidfilter.errors import InputNotFoundError, TrainingInputError
from vidfilter.io.scaling import dtype_scale, from_float
from vidfilter.io.source import FrameSource
from vidfilter.resolve import resolve
from vidfilter.sampling.pool import FramePool, Run, block_mean, check_finite, lowres_factor, read_gray
from vidfilter.temporal import Registration, statistic_and_registration, temporal_statistic, translate

logger = logging.getLogger(__name__)

#: Seed of the validation pairs: fixed, so every run of a config is scored on the same pairs.
VAL_SEED = 20_240_607
#: Share of mined validation crops (at least): validation needs pixels that change.
VAL_MINE_FRACTION = 0.5
#: Frames sampled for the temporal statistic channel.
TEMPORAL_FRAMES = 32
_GOLDEN = (math.sqrt(5) - 1) / 2

__all__ = ["expand_inputs", "open_inputs", "lag_range_frames", "Segment", "SplitPlan", "plan_split",
    "PairSampler", "SamplerSet", "make_samplers", "PairDataset"]


# -- inputs ------------------------------------------------------------------------------------
def expand_inputs(items: str | Path | Sequence[str | Path]) -> list[str]:
    """Expand paths, glob patterns and ``.txt`` lists of paths into a flat list of input paths.

    A ``.txt`` file lists one path (or glob) per line; blank lines and ``#`` comments are skipped
    and relative paths are taken relative to the list's folder. A glob that matches nothing raises
    :class:`InputNotFoundError`. Plain paths are returned unchecked (the reader reports a missing
    path, naming it); order is kept and duplicates are dropped.
    """
    if isinstance(items, (str, Path)):
        items = [items]
    out: list[str] = []
    for item in items:
        s = str(item)
        if s.lower().endswith(".txt") and Path(s).is_file():
            base = Path(s).parent
            for line in Path(s).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line)
                    out.extend(expand_inputs([str(p if p.is_absolute() else base / p)]))
        elif any(c in s for c in "*?[") and not Path(s).exists():
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                raise InputNotFoundError(f"{s}: the pattern matches no file")
            out.extend(matches)
        else:
            out.append(s)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def open_inputs(inputs: Sequence[str | Path | FrameSource | np.ndarray], *, color: str = "gray") -> list[FrameSource]:
    """Open every input (paths, globs, .txt lists, open sources or arrays) as a FrameSource."""
    sources: list[FrameSource] = []
    pending: list[str | Path] = []

    def flush() -> None:
        if not pending:
            return
        from vidfilter.io import registry

        for p in expand_inputs(pending):
            sources.append(registry.open(p, color=color))
        pending.clear()

    for item in inputs:
        if isinstance(item, FrameSource):
            flush()
            sources.append(item)
        elif isinstance(item, np.ndarray):
            from vidfilter.io.array_source import ArrayFrameSource

            flush()
            sources.append(ArrayFrameSource(item, color=color))
        else:
            pending.append(item)
    flush()
    if not sources:
        raise TrainingInputError("no input recordings given")
    return sources


def lag_range_frames(sampling: SamplingConfig, src: FrameSource) -> tuple[int, int]:
    """The lag range of ``sampling`` in frames for ``src`` (seconds converted with its fps,
    fractions with the recording's length after trimming)."""
    lo, hi = sampling.lag
    if sampling.lag_unit == "seconds":
        if not src.fps:
            raise TrainingInputError(
                f"{src.path}: the lag is in seconds but the frame rate is unknown; give the lag in frames (lag_unit: frames)"
            )
        lo, hi = lo * src.fps, hi * src.fps
    elif sampling.lag_unit == "fraction":
        n = len(src) - sampling.trim_start - sampling.trim_end
        lo, hi = lo * n, hi * n
    lo_f = max(1, int(round(lo)))
    return lo_f, max(lo_f, int(round(hi)))


# -- train / validation split -----------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """Frames ``start <= t < stop`` of recording ``source`` that may be paired."""

    source: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class SplitPlan:
    train: list[Segment]
    val: list[Segment]
    lag_ranges: list[tuple[int, int]]  # per source, in frames


def plan_split(sources: Sequence[FrameSource], sampling: SamplingConfig, *, val_fraction: float = 0.0) -> SplitPlan:
    """Check the inputs against the sampling settings and split them into train/validation frames.

    Raises :class:`TrainingInputError` (one line naming the file) for a recording shorter than
    lag + 1 after trimming, a crop larger than a frame, or a frame rate needed but unknown.
    """
    lag_ranges: list[tuple[int, int]] = []
    usable: list[Segment] = []
    for i, src in enumerate(sources):
        if src.ndim < 3:
            raise TrainingInputError(f"{src.path}: expected a sequence of frames, got shape {src.shape}")
        h, w = src.shape[1], src.shape[2]
        if sampling.crop_size() > min(h, w):
            hint = 2 ** int(math.log2(min(h, w))) if min(h, w) >= 16 else None
            fix = f": pass --crop {hint} or smaller" if hint else ""
            raise TrainingInputError(f"{src.path}: crop {sampling.crop_size()} > frame {h}×{w}{fix}")
        lo, hi = lag_range_frames(sampling, src)
        start, stop = sampling.trim_start, len(src) - sampling.trim_end
        n = stop - start
        if n < lo + 1:
            raise TrainingInputError(
                f"{src.path}: {max(n, 0)} frames after trimming ({len(src)} - trim {sampling.trim_start}+{sampling.trim_end}) "
                f"is shorter than lag {lo} + 1; lower the lag or the trimming"
            )
        lag_ranges.append((lo, hi))
        usable.append(Segment(i, start, stop))

    train, val = list(usable), []
    if val_fraction > 0 and len(sources) >= 2:
        n_val = min(len(sources) - 1, max(1, round(val_fraction * len(sources))))
        train, val = usable[:-n_val], usable[-n_val:]
    elif val_fraction > 0:
        seg = usable[0]
        lo = lag_ranges[0][0]
        n_val = max(lo + 1, math.ceil(val_fraction * len(seg)))
        if len(seg) - n_val >= lo + 1:
            cut = seg.stop - n_val
            train, val = [Segment(seg.source, seg.start, cut)], [Segment(seg.source, cut, seg.stop)]
        else:
            logger.warning("%s: too short to hold out validation frames; training without validation", sources[0].path)
    for seg in train + val:
        lo, hi = lag_ranges[seg.source]
        if hi > len(seg) - 1:
            logger.info("%s: lag range limited to %d frames by the segment length", sources[seg.source].path, len(seg) - 1)
    return SplitPlan(train, val, lag_ranges)


# -- the sampler -------------------------------------------------------------------------------
class PairSampler:
    """Random (t, t + lag) crop pairs from a frame pool. Deterministic given ``seed``.

    Parameters
    ----------
    sources : list of FrameSource
        All recordings (indexed by ``Segment.source``).
    segments : list of Segment
        The frames this sampler may use (one segment per recording at most).
    lag_ranges : list of (int, int)
        Lag range in frames per source.
    sampling : SamplingConfig
        Crop, swap, flips, rotations, pool sizes, mining.
    seed : int
        Seed of the sampler's own ``numpy.random.Generator``.
    temporal : {"none", "max", "min", "median"}
        Append this temporal statistic of the recording as a second input channel.
    statistics : dict, optional
        Precomputed statistics ``{source: float32 (H, W)}`` (computed here when missing).
    augment : bool
        Apply swap, flips and rotations (off for validation pairs).
    mine_fraction : float, optional
        Overrides ``sampling.mine_fraction``.
    max_bytes : int
        Memory budget of the frame pool.
    registrations : dict, optional
        ``{source: Registration}`` for recordings whose camera moved
        (:mod:`vidfilter.temporal.register`): the target is cropped where the input's plate went
        and the statistic (in frame 0's coordinates) where the input's crop lies there.
    targets : dict, optional
        ``{source: FrameSource}``: the recording's clean background, frame for frame (same shape
        and length, in the input frame's coordinates). Pairs of these sources are ``(frame t,
        background t)``: supervised, for generated corpora whose true background is known.
    """

    def __init__(
        self,
        sources: Sequence[FrameSource],
        segments: Sequence[Segment],
        lag_ranges: Sequence[tuple[int, int]],
        sampling: SamplingConfig,
        *,
        seed: int = 0,
        temporal: str = "none",
        statistics: dict[int, np.ndarray] | None = None,
        augment: bool = True,
        mine_fraction: float | None = None,
        max_bytes: int = 2**30,
        registrations: dict[int, Registration] | None = None,
        targets: dict[int, FrameSource] | None = None,
    ):
        if not segments:
            raise TrainingInputError("no frames to sample pairs from")
        self.sources = list(sources)
        self.segments = {seg.source: seg for seg in segments}
        self.order = [seg.source for seg in segments]
        self.lag_ranges = [
            (lo, min(hi, len(self.segments[i]) - 1)) if i in self.segments else (lo, hi)
            for i, (lo, hi) in enumerate(lag_ranges)
        ]
        self.sampling = sampling
        self.crop = sampling.crop_size()
        self.augment = augment
        self.mine_fraction = sampling.mine_fraction if mine_fraction is None else mine_fraction
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.pool = FramePool(self.sources, sampling.pool_frames, max_bytes=max_bytes)
        self.run_length = max(1, min(sampling.pool_run, self.pool.capacity // 2))
        self._offsets = self.rng.random(len(self.sources))  # golden-ratio sequence start per source
        self._counts = [0] * len(self.sources)
        self._run_counter = 0
        self._since_refresh = 0
        self._filled = False
        self.pairs_drawn = 0
        self.registrations = dict(registrations or {})
        self.targets = dict(targets or {})
        # decoded clean backgrounds (frame, lowres) by (source, t), as many as the pool holds frames
        self._target_cache: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # the crop keeps this far from the border (frozen now: the shift caches grow while sampling,
        # and exact resume needs the same draws)
        self._margins = {i: reg.largest for i, reg in self.registrations.items()}
        self.temporal = temporal
        self.statistics: dict[int, np.ndarray] = {}
        if temporal != "none":
            for i in self.order:
                stat = (statistics or {}).get(i)
                if stat is None:
                    stat = temporal_statistic(self.sources[i], temporal, TEMPORAL_FRAMES)  # type: ignore[arg-type]
                # keep it in the source dtype: 1 byte per pixel for 8-bit recordings
                dtype = self.sources[i].dtype
                self.statistics[i] = stat if np.issubdtype(dtype, np.floating) else from_float(stat, dtype)

    @property
    def in_channels(self) -> int:
        return 1 if self.temporal == "none" else 2

    # -- pool management ----------------------------------------------------------------------
    def _new_run(self) -> Run:
        source = self.order[self._run_counter % len(self.order)]
        self._run_counter += 1
        seg = self.segments[source]
        lo, hi = self.lag_ranges[source]
        lag = int(self.rng.integers(lo, hi + 1))
        length = max(1, min(self.run_length, len(seg) - lag))
        span = len(seg) - lag - length  # >= 0
        k = self._counts[source]
        self._counts[source] += 1
        u = (self._offsets[source] + k * _GOLDEN) % 1.0
        start = seg.start + min(span, int(u * (span + 1)))
        return Run(source, start, lag, length)

    def _ensure_pool(self) -> None:
        if self._filled:
            return
        # add runs until the next one does not fit; short recordings may fit whole in the pool,
        # so also stop after a bounded number of runs (runs then overlap, which is harmless)
        for _ in range(self.pool.capacity):
            run = self._new_run()
            if self.pool.runs and not self.pool.fits(run):
                break
            self.pool.add_run(run)
            if len(self.pool) >= min(self.pool.capacity, sum(len(s) for s in self.segments.values())):
                break
        self._filled = True

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue this sampler's stream exactly (no frame data).

        Returns
        -------
        dict
            Plain data only (str, int, float, bool, lists and dicts), so it can be stored as JSON:
            the RNG's ``bit_generator.state``, the decoded runs as ``[source, start, lag, length]``,
            the per-source counters and offsets, and the refresh counters.
        """
        return {
            "rng": self.rng.bit_generator.state,  # PCG64: a dict of str and int
            "runs": [[int(r.source), int(r.start), int(r.lag), int(r.length)] for r in self.pool.runs],
            "counts": [int(c) for c in self._counts],
            "offsets": [float(x) for x in self._offsets],
            "run_counter": int(self._run_counter),
            "since_refresh": int(self._since_refresh),
            "filled": bool(self._filled),
            "pairs_drawn": int(self.pairs_drawn),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`; the pool is rebuilt by decoding the same runs again.

        Raises
        ------
        ValueError, TypeError, KeyError
            ``state`` is not one this sampler's :meth:`get_state` can have written (another
            number of sources, a run outside a recording, a foreign RNG...).
        """
        n = len(self.sources)
        counts = [int(c) for c in state["counts"]]
        offsets = np.array(state["offsets"], dtype=np.float64)
        if len(counts) != n or offsets.shape != (n,):
            raise ValueError(f"sampler state is for {len(counts)} recordings, not {n}")
        runs = []
        for item in state["runs"]:
            s, start, lag, length = (int(v) for v in item)
            if not 0 <= s < n or start < 0 or lag < 0 or length < 1 or start + lag + length > len(self.sources[s]):
                raise ValueError(f"sampler state holds a run {[s, start, lag, length]} outside the recordings")
            runs.append(Run(s, start, lag, length))
        self.rng.bit_generator.state = state["rng"]
        self._counts = counts
        self._offsets = offsets
        self._run_counter = int(state["run_counter"])
        self._since_refresh = int(state["since_refresh"])
        self.pairs_drawn = int(state["pairs_drawn"])
        self.pool = FramePool(self.pool.sources, self.sampling.pool_frames, max_bytes=self.pool.capacity * self.pool.frame_bytes)
        for run in runs:
            self.pool.add_run(run)
        self._filled = bool(state["filled"])

    # -- pairs ---------------------------------------------------------------------------------
    def _crop_origin(
        self, src_i: int, a: np.ndarray, b: np.ndarray, lr_a: np.ndarray, lr_b: np.ndarray, offset: tuple[int, int] = (0, 0),
    ) -> tuple[int, int]:
        """Where the input's crop starts. ``offset``: where ``b``'s plate lies relative to ``a``'s
        (registration); mining then compares the two aligned, and the crop keeps clear of the border
        by the largest known shift so that the shifted target crop stays inside the frame."""
        h, w = a.shape
        c = self.crop
        m = self._margins.get(src_i, 0)
        if h - c < 2 * m or w - c < 2 * m:
            m = 0
        if self.mine_fraction > 0 and self.rng.random() < self.mine_fraction:
            thr = self.sampling.mine_threshold * dtype_scale(a.dtype)
            if offset != (0, 0):
                f = lowres_factor((h, w))
                lr_b = translate(lr_b, -round(offset[0] / f), -round(offset[1] / f))
            diff = np.abs(lr_a - lr_b) > thr
            cand = np.flatnonzero(diff)
            if cand.size:
                f = lowres_factor((h, w))
                k = int(cand[self.rng.integers(cand.size)])
                cy = (k // diff.shape[1]) * f + int(self.rng.integers(f))
                cx = (k % diff.shape[1]) * f + int(self.rng.integers(f))
                return min(max(cy - c // 2, m), h - c - m), min(max(cx - c // 2, m), w - c - m)
        return m + int(self.rng.integers(h - c - 2 * m + 1)), m + int(self.rng.integers(w - c - 2 * m + 1))

    def sample_pair(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """One pair: ``input (C, h, w)``, ``target (1, h, w)`` float32 and where it came from."""
        self._ensure_pool()
        pairs = self.pool.valid_pairs(self.lag_ranges)
        s, ta, tb = (int(x) for x in pairs[self.rng.integers(len(pairs))])
        if self.augment and self.rng.random() < self.sampling.swap:
            ta, tb = tb, ta
        a, lr_a = self.pool.get(s, ta)
        reg = self.registrations.get(s)
        sa = sb = (0, 0)
        if s in self.targets:  # the clean background of the input's own frame, in its coordinates
            tb = ta
            b, lr_b = self._target(s, ta, a.dtype)
            if reg is not None:
                sa = sb = reg.shift(a, ta)
        else:
            b, lr_b = self.pool.get(s, tb)
            if reg is not None:
                sa, sb = reg.shift(a, ta), reg.shift(b, tb)
        offset = (sb[0] - sa[0], sb[1] - sa[1])
        y0, x0 = self._crop_origin(s, a, b, lr_a, lr_b, offset)
        c = self.crop
        h, w = a.shape

        def window(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
            y, x = min(max(y0 + dy, 0), h - c), min(max(x0 + dx, 0), w - c)
            return img[y : y + c, x : x + c]

        planes = [a[y0 : y0 + c, x0 : x0 + c], window(b, *offset)]
        if self.temporal != "none":
            stat = window(self.statistics[s], -sa[0], -sa[1])
            p = self.sampling.stat_dropout if self.augment else 0.0
            if p and self.temporal in ("max", "min") and self.rng.random() < p:
                # put the input's animals into the statistic, as a never-moving animal would be: the
                # target (animals elsewhere) then teaches removing animals the statistic still shows
                stat = np.minimum(stat, planes[0]) if self.temporal == "max" else np.maximum(stat, planes[0])
            planes.append(stat)
        scale = np.float32(1.0 / dtype_scale(a.dtype))
        stack = np.stack([p.astype(np.float32) for p in planes])
        if scale != 1:
            stack *= scale
        if self.augment:
            if self.sampling.flips:
                if self.rng.random() < 0.5:
                    stack = stack[:, :, ::-1]
                if self.rng.random() < 0.5:
                    stack = stack[:, ::-1, :]
            if self.sampling.rot90:
                stack = np.rot90(stack, int(self.rng.integers(4)), axes=(1, 2))
        stack = np.ascontiguousarray(stack)
        inp = stack[[0] + ([2] if self.temporal != "none" else [])]
        tgt = stack[1:2]
        self.pairs_drawn += 1
        self._since_refresh += 1
        if self._since_refresh >= self.sampling.pool_refresh:
            self._since_refresh = 0
            self.pool.replace_oldest(self._new_run())
        return inp, tgt, {"source": s, "t_input": ta, "t_target": tb, "y": y0, "x": x0}

    def _target(self, s: int, t: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """``(frame, lowres)`` of the clean background of frame ``t`` of source ``s``: decoded once
        while it is among the last ``pool.capacity`` used (a pair's input comes from the pool)."""
        key = (s, t)
        hit = self._target_cache.get(key)
        if hit is None:
            b = read_gray(self.targets[s], t).astype(dtype, copy=False)
            hit = (b, block_mean(b, lowres_factor(b.shape)))
            self._target_cache[key] = hit
            if len(self._target_cache) > self.pool.capacity:
                self._target_cache.popitem(last=False)
        else:
            self._target_cache.move_to_end(key)
        return hit

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs stacked: input ``(n, C, h, w)``, target ``(n, 1, h, w)``, float32 in [0, 1]."""
        ins, tgts = zip(*(self.sample_pair()[:2] for _ in range(n)))
        return np.stack(ins), np.stack(tgts)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.batch(1)

    def close(self) -> None:
        """Release the frame pool (the sources are closed by whoever opened them)."""
        self.pool.frames.clear()
        self._target_cache.clear()


# -- building from a Config ----------------------------------------------------------------------
@dataclass
class SamplerSet:
    """A training sampler, an optional validation sampler, and the sources they read."""

    train: PairSampler
    val: PairSampler | None
    sources: list[FrameSource]
    plan: SplitPlan
    statistics: dict[int, np.ndarray] = field(default_factory=dict)
    registrations: dict[int, Registration] = field(default_factory=dict)  # recordings whose camera moved
    config: Config | None = None  # the config the samplers use: polarity and temporal channel resolved
    targets: dict[int, FrameSource] = field(default_factory=dict)  # clean backgrounds (supervised pairs)

    def close(self) -> None:
        for src in [*self.sources, *self.targets.values()]:
            src.close()


def open_targets(targets: Sequence[Any], sources: Sequence[FrameSource]) -> dict[int, FrameSource]:
    """Open the clean backgrounds, one per recording in ``sources`` order, and check that each has
    its recording's frame count and frame size."""
    opened = open_inputs(targets, color="gray")
    try:
        if len(opened) != len(sources):
            raise TrainingInputError(
                f"{len(opened)} clean backgrounds for {len(sources)} recordings; give one per recording, in the same order"
            )
        for src, tgt in zip(sources, opened):
            if len(tgt) != len(src) or tuple(tgt.shape[1:3]) != tuple(src.shape[1:3]):
                raise TrainingInputError(
                    f"{tgt.path}: {len(tgt)} frames of {tgt.shape[1]}x{tgt.shape[2]}, but its recording {src.path} has "
                    f"{len(src)} of {src.shape[1]}x{src.shape[2]}; a clean background must match its recording frame for frame"
                )
    except BaseException:
        for tgt in opened:
            tgt.close()
        raise
    return dict(enumerate(opened))


def make_samplers(
    inputs: Sequence[Any],
    config: Config,
    *,
    seed: int | None = None,
    validation: bool = True,
    statistics: dict[int, np.ndarray] | None = None,
    color: str | None = None,
    targets: Sequence[Any] | None = None,
) -> SamplerSet:
    """Open ``inputs``, check them (errors before any training) and build the samplers.

    ``targets``: the clean background of each recording (paths or sources, one per recording in
    the same order), for generated corpora: the pairs are then ``(frame t, background t)``.

    The training sampler is seeded with ``seed`` (default ``config.train.seed``); the validation
    sampler, on held-out frames or recordings, with the fixed :data:`VAL_SEED`, no augmentation
    and at least :data:`VAL_MINE_FRACTION` mined crops.
    """
    sources = open_inputs(inputs, color=color or config.output.color)
    clean: dict[int, FrameSource] = {}
    try:
        if targets is not None:
            clean = open_targets(targets, sources)
        config = resolve(config, sources)  # polarity detected, temporal channel settled
        val_fraction = config.train.val_fraction if (validation and config.train.val_pairs > 0) else 0.0
        plan = plan_split(sources, config.sampling, val_fraction=val_fraction)
        # NaN/Inf in float input: check the first usable frame of every recording now
        for seg in plan.train + plan.val:
            check_finite(read_gray(sources[seg.source], seg.start), sources[seg.source].path, seg.start)
        temporal = config.model.temporal_channel
        stats = dict(statistics or {})
        regs: dict[int, Registration] = {}
        for i in sorted({seg.source for seg in plan.train + plan.val}):
            kind = temporal if i not in stats else "none"  # a given statistic: survey only
            stat, reg = statistic_and_registration(
                sources[i], kind, TEMPORAL_FRAMES, config.sampling.registration, config.sampling.registration_max_shift,
                what="pairs and statistic registered to frame 0",
            )
            if stat is not None:
                stats[i] = stat
            if reg is not None:
                regs[i] = reg
        train = PairSampler(
            sources, plan.train, plan.lag_ranges, config.sampling,
            seed=config.train.seed if seed is None else seed, temporal=temporal, statistics=stats, registrations=regs,
            targets=clean,
        )
        val = None
        if plan.val:
            val = PairSampler(
                sources, plan.val, plan.lag_ranges, config.sampling, seed=VAL_SEED, temporal=temporal,
                statistics=stats, augment=False, mine_fraction=max(config.sampling.mine_fraction, VAL_MINE_FRACTION),
                registrations=regs, targets=clean,
            )
    except BaseException:
        for src in [*sources, *clean.values()]:
            src.close()
        raise
    return SamplerSet(train, val, sources, plan, stats, regs, config, clean)


class PairDataset(torch.utils.data.IterableDataset):
    """Endless batches ``(input [B, C, h, w], target [B, 1, h, w])`` as torch tensors.

    Use with ``DataLoader(dataset, batch_size=None, num_workers=k)``. Each worker reopens the
    sources and seeds its sampler with ``seed + worker_id``, so k workers give k distinct,
    deterministic streams (the DataLoader takes batches from them in turn).
    """

    def __init__(
        self,
        inputs: Sequence[Any],
        config: Config,
        *,
        batch_size: int | None = None,
        seed: int | None = None,
        statistics: dict[int, np.ndarray] | None = None,
        targets: Sequence[Any] | None = None,
    ):
        super().__init__()
        self.inputs = [str(x) if isinstance(x, Path) else x for x in inputs]
        self.config = config
        self.batch_size = batch_size or config.train.batch_size
        self.seed = config.train.seed if seed is None else seed
        self.statistics = statistics
        self.targets = None if targets is None else [str(x) if isinstance(x, Path) else x for x in targets]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        # validation=True so the training frames are the same as in-process (held-out frames excluded)
        sset = make_samplers(self.inputs, self.config, seed=self.seed + wid, validation=True, statistics=self.statistics,
                             targets=self.targets)
        try:
            while True:
                inp, tgt = sset.train.batch(self.batch_size)
                yield torch.from_numpy(inp), torch.from_numpy(tgt)
        finally:
            sset.close()
