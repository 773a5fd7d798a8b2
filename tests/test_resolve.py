"""vidfilter.resolve: every "auto" setting settled in one place, against hand-written expectations."""

from __future__ import annotations

import numpy as np
import torch

from vidfilter.config import Config, Polarity
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.resolve import UNBOUNDED_STEPS, resolve

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_device_defaults_paper_on_gpu_fast_on_cpu() -> None:
    """preset auto / crop None: paper network and 256 px crops on CUDA, width 16 and 128 px on a
    CPU; explicit values are kept."""
    gpu = resolve(Config(), device=CUDA)
    assert gpu.model.preset.value == "paper" and gpu.model.resolved_width() == 48 and gpu.sampling.crop == 256
    cpu = resolve(Config(), device=CPU)
    assert cpu.model.preset.value == "fast" and cpu.model.resolved_width() == 16 and cpu.sampling.crop == 128
    mine = resolve(Config().override({"model.preset": "paper", "sampling.crop": 192}), device=CPU)
    assert mine.model.preset.value == "paper" and mine.sampling.crop == 192
    assert Config().output.polarity == Polarity.auto


def test_polarity_detected_from_sources_then_temporal_channel_follows() -> None:
    """Dark animals on a bright plate: polarity dark, temporal channel max; bright animals: min."""
    rng = np.random.default_rng(0)
    for value, plate, polarity, channel in ((20, 200, "dark", "max"), (230, 40, "bright", "min")):
        frames = np.full((40, 64, 64), plate, np.uint8)
        for t in range(40):  # a small animal crossing the plate
            x = 4 + t
            frames[t, 28:34, x:x + 6] = value
        frames = np.clip(frames + rng.normal(0, 2, frames.shape), 0, 255).astype(np.uint8)
        cfg = resolve(Config(), [ArrayFrameSource(frames)], device=CPU)
        assert cfg.output.polarity.value == polarity
        assert cfg.model.temporal_channel == channel


def test_unknown_polarity_leaves_the_temporal_channel_auto_and_static_gets_none() -> None:
    assert resolve(Config(), device=CPU).model.temporal_channel == "auto"
    static = resolve(Config().override({"sampling.mode": "static"}), device=CPU)
    assert static.model.temporal_channel == "none"
    given = resolve(Config().override({"output.polarity": "absolute"}))
    assert given.model.temporal_channel == "none"


def test_minutes_alone_run_until_the_time_is_up_but_given_steps_are_kept() -> None:
    assert resolve(Config().override({"train.minutes": 2})).train.steps == UNBOUNDED_STEPS
    assert resolve(Config().override({"train.minutes": 2, "train.steps": 50})).train.steps == 50
    # a step count given earlier (a config file) is remembered through later overrides
    base = Config.from_dict({"train": {"steps": 70}})
    assert resolve(base.override({"train.minutes": 1})).train.steps == 70
    assert resolve(Config()).train.steps == Config().train.steps


def test_resolving_twice_changes_nothing() -> None:
    once = resolve(Config().override({"output.polarity": "bright", "train.minutes": 1}), device=CPU)
    assert resolve(once, device=CPU).to_dict() == once.to_dict()
