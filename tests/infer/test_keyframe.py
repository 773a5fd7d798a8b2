"""Keyframe mode: the schedule, the interpolation, the drift measure, and the adaptive policy of
``pipeline._estimate`` (with stub estimators, so the tests are exact and fast)."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.infer import keyframe as kf
from vidfilter.infer.pipeline import _estimate
from vidfilter.io.convert import to_float


class Stub:
    """Background = the frame itself (a perfect estimator of an object-free recording); counts calls."""

    stateful = False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        self.calls.append(t)
        return frame.copy()


def _run(frames: np.ndarray, every: int, adaptive: bool = False, bound: float = 0.02, est=None):
    est = est or Stub()
    keys: list[int] = []
    out = list(_estimate(iter(enumerate(frames)), est, len(frames), every, adaptive, bound, keys))
    return out, keys, est


# -- interpolate -----------------------------------------------------------------------------


def test_interpolate_ends_are_the_keyframes_exactly():
    rng = np.random.default_rng(0)
    b0, b1 = rng.random((2, 7, 9), dtype=np.float32)
    assert kf.interpolate(b0, 10, b1, 20, 10) is b0
    assert kf.interpolate(b0, 10, b1, 20, 20) is b1
    assert kf.interpolate(b0, 10, b1, 10, 10) is b0  # degenerate interval


def test_interpolate_midpoint_and_linearity():
    b0 = np.full((4, 5), 0.25, np.float32)
    b1 = np.full((4, 5), 0.75, np.float32)
    mid = kf.interpolate(b0, 0, b1, 10, 5)
    assert mid.dtype == np.float32
    np.testing.assert_array_equal(mid, np.full((4, 5), 0.5, np.float32))  # exact in binary
    rng = np.random.default_rng(1)
    c0, c1 = rng.random((2, 3, 6, 6), dtype=np.float32)  # multi-channel too
    for t in range(100, 126):
        w = (t - 100) / 25
        np.testing.assert_allclose(kf.interpolate(c0, 100, c1, 125, t), (1 - w) * c0 + w * c1, atol=1e-6)
    # a quarter of the way: monotone between the ends
    q = kf.interpolate(b0, 0, b1, 8, 2)
    np.testing.assert_allclose(q, 0.375, atol=1e-7)


# -- fixed grid --------------------------------------------------------------------------------


@pytest.mark.parametrize("n, every", [(101, 25), (103, 25), (10, 25), (1, 5), (250, 250), (251, 250)])
def test_fixed_grid_has_every_kth_and_the_last_frame(n, every):
    keys = [t for t in range(n) if kf.is_fixed_keyframe(t, every, n)]
    expected = sorted(set(range(0, n, every)) | {n - 1})
    assert keys == expected
    assert keys[0] == 0 and keys[-1] == n - 1


def test_estimate_fixed_grid_calls_the_model_on_keyframes_only_and_interpolates():
    n, every = 53, 10
    levels = np.linspace(50, 200, n).astype(np.uint8)  # a slow ramp: interpolation is close to exact
    frames = np.repeat(levels, 6 * 6).reshape(n, 6, 6)
    out, keys, est = _run(frames, every)
    assert keys == [0, 10, 20, 30, 40, 50, 52] == est.calls
    assert [t for t, _, _ in out] == list(range(n))  # in order, each once
    for t, frame, bg in out:
        assert frame is frames[t] or np.array_equal(frame, frames[t])
        t0 = max(k for k in keys if k <= t)
        t1 = min(k for k in keys if k >= t)
        np.testing.assert_allclose(bg, kf.interpolate(to_float(frames[t0]), t0, to_float(frames[t1]), t1, t), atol=1e-7)
        if t in keys:
            np.testing.assert_array_equal(bg, to_float(frames[t]))


def test_estimate_buffers_at_most_every_frames():
    """Memory bound of keyframe mode: frames read ahead of the output never exceed K."""
    n, every = 120, 25
    frames = np.zeros((n, 4, 4), np.uint8)
    read = [0]

    def source():
        for t in range(n):
            read[0] = t + 1
            yield t, frames[t]

    est, keys, ahead = Stub(), [], 0
    for i, _ in enumerate(_estimate(source(), est, n, every, False, 0.02, keys)):
        ahead = max(ahead, read[0] - i)
    assert ahead <= every + 1


def test_per_frame_and_stateful_estimators_skip_keyframes():
    frames = np.zeros((12, 4, 4), np.uint8)
    _, keys, est = _run(frames, 1)
    assert est.calls == list(range(12))

    class Stateful(Stub):
        stateful = True

    _, keys, est = _run(frames, 5, est=Stateful())
    assert est.calls == list(range(12))


# -- drift ----------------------------------------------------------------------------------


def test_drift_is_robust_to_a_small_bright_object():
    rng = np.random.default_rng(2)
    bg = rng.uniform(0.3, 0.6, (128, 128)).astype(np.float32)
    frame = bg.copy()
    frame[40:60, 40:70] = 1.0  # an animal: ~4 % of the pixels, far above the plate
    assert kf.drift(frame, bg) == 0.0
    frame2 = frame + np.float32(0.05)  # plus a global exposure change
    frame2[40:60, 40:70] = 1.0
    assert kf.drift(frame2, bg) == pytest.approx(0.05, abs=1e-6)
    # noise: the median absolute residual of N(0, s) is ~0.674 s
    noisy = bg + rng.normal(0, 0.01, bg.shape).astype(np.float32)
    assert kf.drift(noisy, bg) == pytest.approx(0.00674, rel=0.15)


# -- adaptive ------------------------------------------------------------------------------------


def _step(n: int = 100, at: int = 50, before: int = 128, after: int = 180) -> np.ndarray:
    levels = np.where(np.arange(n) < at, before, after).astype(np.uint8)
    frames = np.repeat(levels, 16 * 16).reshape(n, 16, 16).copy()
    frames[:, 2:4, 2:6] = 255  # a small bright object the drift measure must ignore
    return frames


def test_adaptive_adds_a_keyframe_at_an_illumination_step():
    frames = _step()
    out, keys, est = _run(frames, every=100, adaptive=True, bound=0.02)
    # the frame before the jump closes the old segment, the jump opens a new one
    assert keys == [0, 49, 50, 99] == sorted(est.calls)
    bg = {t: b for t, _, b in out}
    for t in range(0, 50):  # before the step: no blending with the new level either
        np.testing.assert_allclose(bg[t][8, 8], bg[0][8, 8], atol=1e-6)
    # after the step the background is the new level exactly (no blending across the step)
    for t in range(50, 100):
        np.testing.assert_allclose(bg[t][8, 8], 180 / 255, atol=1e-6)


def test_without_adaptive_the_step_is_blended():
    frames = _step()
    out, keys, _ = _run(frames, every=100, adaptive=False)
    assert keys == [0, 99]
    bg = {t: b for t, _, b in out}
    # linear interpolation across the step: an error above the 10-grey-level mask threshold
    assert abs(bg[60][8, 8] - 180 / 255) * 255 > 10
    assert abs(bg[75][8, 8] - 180 / 255) * 255 > 10


def test_adaptive_does_not_fire_on_slow_drift_below_the_bound():
    n = 100
    levels = np.round(np.linspace(128, 130, n)).astype(np.uint8)  # 2 grey levels over the recording
    frames = np.repeat(levels, 8 * 8).reshape(n, 8, 8)
    _, keys, _ = _run(frames, every=100, adaptive=True, bound=0.02)
    assert keys == [0, 99]
