"""Tests of the time-lag pair sampler, its frame pool and the temporal statistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidfilter.config import Config, SamplingConfig
from vidfilter.errors import InputNotFoundError, TrainingInputError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.sampling import (
    FramePool,
    PairDataset,
    PairSampler,
    Run,
    Segment,
    expand_inputs,
    make_samplers,
    plan_split,
)
from vidfilter.temporal import temporal_statistic


def counter_frames(n: int = 40, h: int = 48, w: int = 56) -> np.ndarray:
    """uint8 frames whose every pixel holds the frame index t."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, h, w)).copy()


def ramp_frames(n: int = 30, h: int = 40, w: int = 48, step: float = 1e-3) -> np.ndarray:
    """float32 frames = a position-encoding ramp (unique per pixel) + t * step."""
    ramp = (np.arange(h)[:, None] * w + np.arange(w)[None, :]) / (h * w) * 0.5
    return (ramp[None] + np.arange(n)[:, None, None] * step).astype(np.float32)


def config(**over: object) -> Config:
    base = {"sampling.crop": 16, "sampling.lag_unit": "frames", "train.val_fraction": 0.0, "train.val_pairs": 0,
            "output.polarity": "absolute"}  # no temporal channel: these tests are about the pairs
    base.update(over)
    return Config().override(base)


def sampler(arr: np.ndarray, seed: int = 0, fps: float | None = None, **over: object) -> PairSampler:
    return make_samplers([ArrayFrameSource(arr, fps=fps)], config(**over), seed=seed).train


def test_same_seed_same_stream_and_different_seed_differs() -> None:
    """The sampler is a deterministic function of its seed."""
    arr = ramp_frames()
    a = sampler(arr, seed=5, **{"sampling.lag": [1, 4]}).batch(40)
    b = sampler(arr, seed=5, **{"sampling.lag": [1, 4]}).batch(40)
    c = sampler(arr, seed=6, **{"sampling.lag": [1, 4]}).batch(40)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("lag", [1, 3, 11])
def test_pairs_are_exactly_lag_apart(lag: int) -> None:
    """Frame t holds value t: target - input is +-lag everywhere (swap flips the sign)."""
    s = sampler(counter_frames(), **{"sampling.lag": lag, "sampling.pool_frames": 24, "sampling.pool_refresh": 7})
    inp, tgt = s.batch(200)
    diff = np.rint((tgt - inp) * 255).astype(int)
    per_pair = diff.reshape(len(diff), -1)
    assert (per_pair == per_pair[:, :1]).all()
    assert set(np.unique(per_pair)) == {-lag, lag}


def test_lag_range_and_no_swap() -> None:
    """With a lag range every pair's lag is inside it, all lags occur, and swap=0 keeps time order."""
    s = sampler(counter_frames(60), **{"sampling.lag": [2, 6], "sampling.swap": 0.0, "sampling.pool_refresh": 5})
    inp, tgt = s.batch(400)
    lags = np.rint((tgt - inp)[:, 0, 0, 0] * 255).astype(int)
    assert set(lags) == {2, 3, 4, 5, 6}


def test_crop_is_at_the_same_place_in_both_frames_and_transforms_match() -> None:
    """On ramp + t frames, target - input is one constant per pair only if crop and flips/rotations agree."""
    arr = ramp_frames()
    s = sampler(arr, **{"sampling.lag": 2})
    orientations = set()
    for _ in range(100):
        inp, tgt, info = s.sample_pair()
        d = tgt[0] - inp[0]
        assert np.allclose(d, d.flat[0], atol=1e-6)
        assert abs(abs(d.flat[0]) - 2e-3) < 1e-6
        # the input crop holds exactly the ramp values of the window at (y, x), transformed
        y, x = info["y"], info["x"]
        window = arr[info["t_input"], y : y + 16, x : x + 16]
        assert np.allclose(np.sort(inp[0].ravel()), np.sort(window.ravel()))
        gy = np.sign(inp[0, 1, 0] - inp[0, 0, 0])
        gx = np.sign(inp[0, 0, 1] - inp[0, 0, 0])
        orientations.add((gy, gx, abs(inp[0, 0, 1] - inp[0, 0, 0]) > 1e-4))
    assert len(orientations) >= 4  # flips and 90-degree rotations really happen


def test_no_augmentation_gives_the_plain_window() -> None:
    arr = ramp_frames()
    s = sampler(arr, **{"sampling.lag": 1, "sampling.flips": False, "sampling.rot90": False, "sampling.swap": 0.0})
    inp, tgt, info = s.sample_pair()
    y, x = info["y"], info["x"]
    assert np.array_equal(inp[0], arr[info["t_input"], y : y + 16, x : x + 16])
    assert np.array_equal(tgt[0], arr[info["t_input"] + 1, y : y + 16, x : x + 16])


def test_lag_in_seconds_uses_fps() -> None:
    """0.3 s at 10 fps is a lag of 3 frames; seconds without a frame rate is a clear error."""
    s = sampler(counter_frames(), fps=10.0, **{"sampling.lag": 0.3, "sampling.lag_unit": "seconds"})
    inp, tgt = s.batch(50)
    assert set(np.abs(np.rint((tgt - inp)[:, 0, 0, 0] * 255)).astype(int)) == {3}
    with pytest.raises(TrainingInputError, match="frame rate is unknown"):
        sampler(counter_frames(), **{"sampling.lag": 0.3, "sampling.lag_unit": "seconds"})


def test_trimming_excludes_frames() -> None:
    s = sampler(counter_frames(40), **{"sampling.lag": 1, "sampling.trim_start": 10, "sampling.trim_end": 12})
    inp, tgt = s.batch(300)
    vals = np.rint(np.concatenate([inp, tgt])[:, 0, 0, 0] * 255).astype(int)
    assert vals.min() >= 10 and vals.max() <= 27


def test_pool_memory_is_bounded_and_refreshed() -> None:
    """A long recording never puts more than pool_frames frames in memory; runs are refreshed."""
    arr = counter_frames(2000, 32, 32)
    s = sampler(arr, **{"sampling.lag": [1, 50], "sampling.pool_frames": 16, "sampling.pool_run": 4, "sampling.pool_refresh": 10})
    seen = set()
    for _ in range(60):
        inp, tgt = s.batch(5)
        assert len(s.pool) <= 16
        seen.update(np.rint(inp[:, 0, 0, 0] * 255).astype(int).tolist())
    per_frame = 32 * 32 + s.pool.get(*next(iter(s.pool.frames)))[1].nbytes
    assert s.pool.nbytes <= 16 * per_frame
    assert len(seen) > 16  # refreshes brought new frames in
    assert s.pool.frames_decoded < 60 * 5 * 2  # far fewer decodes than one per pair frame


def test_pool_respects_byte_budget() -> None:
    src = ArrayFrameSource(counter_frames(100, 64, 64))
    pool = FramePool([src], capacity=64, max_bytes=10 * 64 * 64)
    assert pool.capacity == 10


def test_large_lag_run_decodes_head_and_tail_only() -> None:
    """A run with a lag far beyond the gap threshold decodes 2 x run frames, not the frames between."""
    src = ArrayFrameSource(counter_frames(1000, 16, 16))
    pool = FramePool([src], capacity=32, gap_decode=8)
    pool.add_run(Run(0, 100, 500, 4))
    assert sorted(t for _, t in pool.frames) == [100, 101, 102, 103, 600, 601, 602, 603]
    assert pool.frames_decoded == 8
    pairs = pool.valid_pairs([(500, 500)])
    assert sorted(map(tuple, pairs[:, 1:].tolist())) == [(100, 600), (101, 601), (102, 602), (103, 603)]


def test_state_round_trip_continues_the_stream() -> None:
    arr = ramp_frames(80)
    s = sampler(arr, seed=1, **{"sampling.lag": [1, 5], "sampling.pool_frames": 12, "sampling.pool_refresh": 9})
    s.batch(23)
    state = s.get_state()
    expected = s.batch(40)
    t = sampler(arr, seed=99, **{"sampling.lag": [1, 5], "sampling.pool_frames": 12, "sampling.pool_refresh": 9})
    t.set_state(state)
    got = t.batch(40)
    assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])


def test_mined_crops_contain_change() -> None:
    """With mine_fraction 1 every crop covers pixels that differ between the two frames."""
    n, h, w = 30, 128, 128
    arr = np.full((n, h, w), 200, np.uint8)
    for t in range(n):
        y, x = 20 + 2 * t, 90
        arr[t, y : y + 6, x : x + 6] = 60  # a small dark blob moving down
    common = {"sampling.lag": 2, "sampling.crop": 24}
    mined = sampler(arr, **common, **{"sampling.mine_fraction": 1.0}).batch(100)
    plain = sampler(arr, **common, **{"sampling.mine_fraction": 0.0}).batch(100)

    def share_changed(batch: tuple[np.ndarray, np.ndarray]) -> float:
        d = np.abs(batch[1] - batch[0]).reshape(100, -1).max(axis=1)
        return float((d > 0.04).mean())

    assert share_changed(mined) == 1.0
    assert share_changed(plain) < 0.3


@pytest.mark.parametrize("kind", ["max", "min", "median"])
def test_temporal_statistic_matches_numpy(kind: str) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (100, 12, 14), dtype=np.uint8)
    got = temporal_statistic(ArrayFrameSource(arr), kind, n=10)
    idx = np.unique(np.linspace(0, 99, 10).round().astype(int))
    ref = {"max": np.max, "min": np.min, "median": np.median}[kind](arr[idx].astype(np.float64), axis=0) / 255
    assert got.dtype == np.float32
    assert np.allclose(got, ref, atol=1e-6)


def test_temporal_channel_has_same_crop_and_transform() -> None:
    """The statistic channel is cropped/flipped/rotated with the frames: max of ramp + t is ramp + const."""
    arr = ramp_frames(20)
    s = sampler(arr, **{"sampling.lag": 1, "model.temporal_channel": "max"})
    inp, tgt = s.batch(60)
    assert inp.shape == (60, 2, 16, 16) and tgt.shape == (60, 1, 16, 16)
    d = inp[:, 1] - inp[:, 0]
    assert np.allclose(d, d[:, :1, :1], atol=1e-6)
    assert (d >= -1e-6).all()


def test_validation_split_single_and_several_recordings() -> None:
    sc = SamplingConfig(crop=16, lag=(1, 1), lag_unit="frames")
    one = plan_split([ArrayFrameSource(counter_frames(40))], sc, val_fraction=0.1)
    assert one.train == [Segment(0, 0, 36)] and one.val == [Segment(0, 36, 40)]
    several = plan_split([ArrayFrameSource(counter_frames(20)) for _ in range(4)], sc, val_fraction=0.25)
    assert [s.source for s in several.train] == [0, 1, 2] and [s.source for s in several.val] == [3]


def test_validation_pairs_are_fixed_and_held_out() -> None:
    cfg = config(**{"sampling.lag": 1, "train.val_fraction": 0.2, "train.val_pairs": 8})
    a = make_samplers([ArrayFrameSource(counter_frames(50))], cfg, seed=1)
    b = make_samplers([ArrayFrameSource(counter_frames(50))], cfg, seed=2)
    va, vb = a.val.batch(8), b.val.batch(8)
    assert np.array_equal(va[0], vb[0])
    assert np.rint(va[0] * 255).min() >= 40
    train_vals = np.rint(np.concatenate(a.train.batch(200)) * 255)
    assert train_vals.max() <= 39


def test_dataloader_workers_give_distinct_deterministic_streams() -> None:
    arr = ramp_frames(40)
    cfg = config(**{"sampling.lag": [1, 3], "train.batch_size": 3})

    def take(n: int) -> list[torch.Tensor]:
        # started as training starts them (spawn): a forked worker can inherit a lock held by one of
        # the threads earlier tests left in this process, and wait on it forever
        loader = torch.utils.data.DataLoader(PairDataset([arr], cfg), batch_size=None, num_workers=2,
                                             multiprocessing_context="spawn")
        out = []
        for i, (inp, _tgt) in enumerate(loader):
            out.append(inp)
            if i + 1 == n:
                break
        return out

    first, second = take(6), take(6)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])  # worker 0 and worker 1 differ
    assert first[0].shape == (3, 1, 16, 16)


# -- errors before training ------------------------------------------------------------------
def test_recording_shorter_than_lag_is_an_error() -> None:
    with pytest.raises(TrainingInputError, match=r"<array>.*shorter than lag 5"):
        sampler(counter_frames(8), **{"sampling.lag": 5, "sampling.trim_end": 3})


def test_crop_larger_than_frame_is_an_error() -> None:
    arr = np.zeros((5, 200, 180), np.uint8)
    with pytest.raises(TrainingInputError, match=r"crop 256 > frame 200×180: pass --crop 128 or smaller"):
        make_samplers([ArrayFrameSource(arr)], Config())


def test_nan_in_float_input_is_an_error() -> None:
    arr = ramp_frames(10)
    arr[0, 3, 3] = np.nan
    with pytest.raises(TrainingInputError, match="NaN"):
        sampler(arr, **{"sampling.lag": 1})
    arr = ramp_frames(10)
    arr[6, 3, 3] = np.nan  # found when the pool decodes it
    with pytest.raises(TrainingInputError, match="frame 6"):
        sampler(arr, **{"sampling.lag": 1}).batch(5)


def test_missing_path_names_the_path(tmp_path) -> None:
    good = tmp_path / "a.npy"
    np.save(good, counter_frames(10))
    missing = tmp_path / "missing.npy"
    with pytest.raises(InputNotFoundError, match="missing.npy"):
        make_samplers([str(good), str(missing)], config())


def test_expand_inputs_globs_and_lists(tmp_path) -> None:
    for name in ["b.npy", "a.npy", "c.txt.bak"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# recordings\na.npy\n\nsub/x.mp4\n")
    assert expand_inputs(str(tmp_path / "*.npy")) == [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    assert expand_inputs([str(tmp_path / "list.txt")]) == [str(tmp_path / "a.npy"), str(tmp_path / "sub/x.mp4")]
    with pytest.raises(InputNotFoundError, match="matches no file"):
        expand_inputs(str(tmp_path / "*.mkv"))


def test_h264_video_is_read_in_sequential_runs(tmp_path) -> None:
    """On a compressed video the pool decodes runs, not one seek per pair frame."""
    from vidfilter.synth import make_recording, write_video

    video = write_video(tmp_path / "r.mp4", make_recording(40, 64, 64, n_animals=2, seed=0))
    cfg = config(**{"sampling.lag": [1, 4], "sampling.pool_frames": 16, "sampling.pool_refresh": 50})
    sset = make_samplers([str(video)], cfg)
    inp, tgt = sset.train.batch(100)
    assert inp.shape == (100, 1, 16, 16) and inp.dtype == np.float32
    assert 0 <= inp.min() and inp.max() <= 1
    # initial fill (<= 16 frames) + two refresh runs of <= 8 + 4 frames, versus 200 frames read by seeking
    assert sset.train.pool.frames_decoded <= 16 + 2 * 12
    sset.close()


def square_plate(n: int = 12, h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose plate darkens by one level per frame (200 - t) under a dark 8 px square that
    moves 5 px per frame, and those plates: the clean background of each frame."""
    plates = np.broadcast_to((200 - np.arange(n, dtype=np.uint8))[:, None, None], (n, h, w)).copy()
    frames = plates.copy()
    for t in range(n):
        frames[t, 20:28, 5 + 5 * t : 13 + 5 * t] = 50
    return frames, plates


def test_clean_targets_pair_each_frame_with_its_own_background() -> None:
    """With ``targets`` the target of a pair is the clean background of the *input's* frame (not a
    later frame), and mined crops are centred where the input differs from it: on the animal."""
    frames, plates = square_plate()
    sset = make_samplers([ArrayFrameSource(frames)], config(**{"sampling.mine_fraction": 1.0, "sampling.lag": [1, 5]}),
                         targets=[ArrayFrameSource(plates)])
    for _ in range(40):
        inp, tgt, info = sset.train.sample_pair()
        assert info["t_target"] == info["t_input"]
        level = (200 - info["t_input"]) / 255
        assert np.allclose(tgt, level)  # that frame's plate, flips and all
        assert (inp[0] < 100 / 255).any()  # every mined crop shows the square
        assert np.allclose(inp[0][inp[0] > 100 / 255], level)  # and the input is that plate elsewhere
    sset.close()
    # without targets the same recording gives time-lag pairs
    plain = make_samplers([ArrayFrameSource(frames)], config(**{"sampling.lag": [1, 5]}))
    infos = [plain.train.sample_pair()[2] for _ in range(20)]
    assert all(1 <= abs(i["t_target"] - i["t_input"]) <= 5 for i in infos)


def test_clean_targets_must_match_their_recordings_frame_for_frame() -> None:
    frames, plates = square_plate()
    with pytest.raises(TrainingInputError, match="frame for frame"):
        make_samplers([ArrayFrameSource(frames)], config(), targets=[ArrayFrameSource(plates[:-1])])
    with pytest.raises(TrainingInputError, match="one per recording"):
        make_samplers([ArrayFrameSource(frames)], config(), targets=[ArrayFrameSource(plates), ArrayFrameSource(plates)])
