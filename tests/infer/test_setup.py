"""The setup of a run (polarity detection, the estimator's prepare) reads each frame it needs once,
in one ascending pass, and the outputs are those of separate reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import read_group

import vidfilter.io.prefetch as prefetch
from vidfilter.baselines.base import sample_indices
from vidfilter.config import Config
from vidfilter.infer.pipeline import run
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.models import build_model, save_bundle
from vidfilter.synth import SyntheticRecording
from vidfilter.temporal import statistic_frames

N = 120
TEMPORAL_FRAMES = 20
PER_FRAME = Config().override({"infer.every": 1})  # no keyframe look-ahead: the only random reads are the setup's


class CountingSource(ArrayFrameSource):
    """An array source counting the random reads of each frame (``src[t]``) in order; ``iter`` is not counted."""

    def __init__(self, frames: np.ndarray) -> None:
        super().__init__(frames, fps=10.0)
        self.reads: list[int] = []

    def _read(self, t: int) -> np.ndarray:
        self.reads.append(t)
        return ArrayFrameSource._read(self, t)

    def _iter(self, start: int, stop: int, step: int):
        for t in range(start, stop, step):
            yield ArrayFrameSource._read(self, t)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rec = SyntheticRecording(N, 48, 64, n_animals=2, noise_sigma=1.0, speed=3.0, seed=6)
    return np.stack([rec[t] for t in range(N)])


@pytest.fixture(scope="module")
def temporal_bundle(tmp_path_factory) -> Path:
    """A tiny untrained bundle with a max temporal channel over TEMPORAL_FRAMES frames, polarity left auto."""
    torch.manual_seed(0)
    cfg = Config().override({"model.width": 4, "model.depth": 3, "model.residual": False, "model.temporal_channel": "max"})
    return save_bundle(tmp_path_factory.mktemp("m") / "temporal.vfm", build_model(cfg.model), cfg,
                       normalisation={"temporal_frames": TEMPORAL_FRAMES})


_read = read_group


def _outputs(store: Path) -> dict[str, np.ndarray]:
    return {g: _read(store, g) for g in ("background", "foreground", "mask")}


def _no_prefetch(monkeypatch) -> None:
    """Every setup read goes to the source, as separate passes."""
    real = prefetch.PrefetchedSource
    monkeypatch.setattr(prefetch, "PrefetchedSource", lambda src, indices: real(src, ()))


def test_median_run_reads_each_setup_frame_once(tmp_path, frames):
    polarity = statistic_frames(N, 16)
    median = sample_indices(N, 51)
    src = CountingSource(frames)
    run(src, tmp_path / "o.zarr", method="median", config=PER_FRAME)
    assert src.reads == sorted(set(polarity) | set(median))  # once each, ascending
    assert len(src.reads) < len(polarity) + len(median)  # the two share frames (first and last at least)


def test_model_run_with_temporal_channel_reads_each_setup_frame_once(tmp_path, frames, temporal_bundle):
    src = CountingSource(frames)
    run(src, tmp_path / "o.zarr", model=temporal_bundle, config=PER_FRAME)
    assert src.reads == sorted(set(statistic_frames(N, 16)) | set(statistic_frames(N, TEMPORAL_FRAMES)))


def test_separate_passes_read_shared_frames_again(tmp_path, frames, monkeypatch):
    """Without the prefetch the polarity and the median each read their frames."""
    _no_prefetch(monkeypatch)
    src = CountingSource(frames)
    run(src, tmp_path / "o.zarr", method="median", config=PER_FRAME)
    assert Counter(src.reads) == Counter([*statistic_frames(N, 16), *sample_indices(N, 51)])


@pytest.mark.parametrize("method", ["median", "model"])
def test_outputs_equal_those_of_separate_reads(tmp_path, frames, temporal_bundle, monkeypatch, method):
    cfg = Config().override({"output.mask": True, "output.clamp": method == "model"})  # unclamped: the plain median
    model = temporal_bundle if method == "model" else None
    run(ArrayFrameSource(frames), tmp_path / "one.zarr", method=method, model=model, config=cfg)
    with monkeypatch.context() as m:
        _no_prefetch(m)
        run(ArrayFrameSource(frames), tmp_path / "sep.zarr", method=method, model=model, config=cfg)
    one, sep = _outputs(tmp_path / "one.zarr"), _outputs(tmp_path / "sep.zarr")
    for group in one:
        assert np.array_equal(one[group], sep[group]), group
    if method == "median":
        want = np.median(frames[sample_indices(N, 51)], axis=0)
        assert np.array_equal(one["background"], np.broadcast_to(np.rint(want).astype(np.uint8), frames.shape))


def test_prefetched_source_serves_held_frames_and_releases_them(frames):
    src = CountingSource(frames)
    with prefetch.PrefetchedSource(src, [9, 3, 5]) as setup:
        assert np.array_equal(setup[5], frames[5]) and src.reads == [3, 5, 9]
        assert np.array_equal(setup[3], frames[3]) and np.array_equal(setup[7], frames[7])
        assert src.reads == [3, 5, 9, 7]
        assert [f[0, 0] for f in setup.iter(3, 10, 2)] == [frames[t][0, 0] for t in (3, 5, 7, 9)]
        assert len(setup) == N and setup.dtype == frames.dtype and setup.fps == 10.0
    assert np.array_equal(setup[5], frames[5]) and src.reads[-1] == 5  # released: read again


def test_registered_median_reads_each_setup_frame_once(tmp_path, frames):
    """The camera-following median surveys and stacks the same frames: one read each."""
    src = CountingSource(frames)
    run(src, tmp_path / "o.zarr", method="median-registered", config=PER_FRAME)
    assert src.reads == sorted(set(statistic_frames(N, 16)) | set(statistic_frames(N, 51)))
