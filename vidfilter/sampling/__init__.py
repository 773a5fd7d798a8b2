"""vidfilter.sampling: time-lag frame pairs from recordings, through a decoded frame pool."""

from vidfilter.sampling.pairs import (PairDataset, PairSampler, SamplerSet, Segment, expand_inputs,
    lag_range_frames, make_samplers, open_inputs, plan_split)
from vidfilter.sampling.pool import FramePool, Run

__all__ = ["PairDataset", "PairSampler", "SamplerSet", "Segment", "FramePool", "Run", "expand_inputs",
    "lag_range_frames", "make_samplers", "open_inputs", "plan_split"]
