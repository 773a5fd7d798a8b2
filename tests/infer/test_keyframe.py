"""Keyframe mode: the grid, the interpolation, the drift measure, the streaming schedule and its
adaptive policy (``keyframe.schedule`` with stub estimators, so the tests are exact and fast), and
the integer writer path against the float computation."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.infer import keyframe as kf
from vidfilter.config import Polarity
from vidfilter.infer.outputs import background_as
from vidfilter.infer.pipeline import _per_frame
from vidfilter.polarity import subtract as _foreground_int, subtract as foreground
from vidfilter.io.scaling import from_float, to_float


class Stub:
    """Background = the frame itself (a perfect estimator of an object-free recording); counts calls."""

    stateful = False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def background(self, t: int, frame: np.ndarray) -> np.ndarray:
        self.calls.append(t)
        return frame.copy()


def _grid_backgrounds(frames, est, start, every):
    """What the pipeline's look-ahead thread yields: the grid keyframes' backgrounds, in order."""
    for g in kf.grid(start, every, len(frames)):
        yield g, est.background(g, to_float(frames[g]))


def _run(frames: np.ndarray, every: int, adaptive: bool = False, bound: float = 0.02, est=None, start: int = 0):
    est = est or Stub()
    keys: list[int] = []
    if every == 1:
        items = _per_frame(((t, frames[t]) for t in range(start, len(frames))), est)
    else:
        items = kf.schedule(((t, frames[t]) for t in range(start, len(frames))), est.background,
                            _grid_backgrounds(frames, est, start, every), len(frames), every,
                            adaptive=adaptive, bound=bound, keyframes=keys, to_float=to_float)
    out = [(t, f, b.array() if isinstance(b, kf.Interp) else b) for t, f, b in items]
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


@pytest.mark.parametrize("start, n, every", [(0, 101, 25), (30, 101, 25), (0, 10, 25), (7, 8, 5), (0, 1, 5)])
def test_grid_from_a_start_frame(start, n, every):
    assert kf.grid(start, every, n) == [t for t in range(start, n) if kf.is_fixed_keyframe(t, every, n)]


def test_schedule_fixed_grid_calls_the_model_on_keyframes_only_and_interpolates():
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


@pytest.mark.parametrize("adaptive", [False, True])
def test_schedule_buffers_no_frame(adaptive):
    """Memory of keyframe mode does not grow with K: each frame leaves before the next is read
    (the keyframes come from the look-ahead), however long the interval."""
    n, every = 120, 100
    frames = np.zeros((n, 4, 4), np.uint8)
    read = [0]

    def source():
        for t in range(n):
            read[0] = t + 1
            yield t, frames[t]

    est, keys, ahead = Stub(), [], 0
    items = kf.schedule(source(), est.background, _grid_backgrounds(frames, est, 0, every), n, every,
                        adaptive=adaptive, keyframes=keys, to_float=to_float)
    for i, _ in enumerate(items):
        ahead = max(ahead, read[0] - i)
    assert ahead == 1
    assert keys == [0, 100, 119]


def test_per_frame_and_stateful_estimators_skip_keyframes():
    frames = np.zeros((12, 4, 4), np.uint8)
    _, keys, est = _run(frames, 1)
    assert est.calls == list(range(12))

    class Stateful(Stub):
        stateful = True

    est = Stateful()
    assert [t for t, _, _ in _per_frame(iter(enumerate(frames)), est)] == est.calls == list(range(12))


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
    bound = 0.02
    out, keys, est = _run(frames, every=100, adaptive=True, bound=bound)
    # the grid's far keyframe (99) is past the step: blending towards it drifts until one frame
    # exceeds the bound and becomes a keyframe; that keyframe and 99 disagree, so its background
    # is held (no blending across the step) until the step itself opens a new keyframe
    assert keys[0] == 0 and keys[-1] == 99 and 50 in keys
    assert len(keys) == 4 and sorted(est.calls) == keys
    bg = {t: b for t, _, b in out}
    for t in range(0, 50):  # before the step: within the bound of the true level (plus the
        # baseline's level, set on frame 1, which already blends 1/99 of the step: 0.5 grey levels)
        assert abs(bg[t][8, 8] - 128 / 255) <= bound + 1 / 255
    for t in range(keys[1], 50):  # held: exactly the level of the keyframe before the step
        np.testing.assert_allclose(bg[t][8, 8], 128 / 255, atol=1e-6)
    # after the step the background is the new level exactly (no blending across the step)
    for t in range(50, 100):
        np.testing.assert_allclose(bg[t][8, 8], 180 / 255, atol=1e-6)


def test_adaptive_resume_at_a_grid_keyframe_is_identical():
    """The state at a grid keyframe depends on nothing earlier: a run started there (a resume)
    gives the same backgrounds and keyframes, adaptive ones included, as the uninterrupted run."""
    frames = np.concatenate([_step(), _step()])  # steps at 50 and 150, grid 0, 100, 199
    full, keys, _ = _run(frames, every=100, adaptive=True)
    assert len([k for k in keys if k > 100]) >= 3  # extra keyframes after the resume point
    part, keys2, _ = _run(frames, every=100, adaptive=True, start=100)
    assert keys2 == [k for k in keys if k >= 100]
    for (t, _, a), (t2, _, b) in zip(full[100:], part):
        assert t == t2
        np.testing.assert_array_equal(a, b)


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


# -- the writer's integer path ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(33, 47), (20, 30, 3)])
def test_integer_background_and_foreground_equal_the_float_computation(dtype, shape):
    rng = np.random.default_rng(5)
    scale = np.iinfo(dtype).max
    b0, b1 = rng.random((2, *shape), dtype=np.float32)
    frame = rng.integers(0, scale + 1, shape).astype(dtype)
    for t in (3, 5, 9):
        spec = kf.Interp(b0, 2, b1, 10, t)
        want = from_float(spec.array(), dtype)
        got = background_as(spec, dtype)
        assert got.dtype == dtype and got.shape == want.shape
        assert np.abs(got.astype(np.int64) - want).max() <= 1  # the keyframes are rounded first
        # exactly the blend of the keyframe backgrounds rounded into the dtype (numpy, round half even)
        q0, q1 = from_float(b0, dtype).astype(np.float64), from_float(b1, dtype).astype(np.float64)
        blended = np.rint((1 - spec.weight) * q0 + spec.weight * q1)
        assert np.mean(got == blended) > 0.999 and np.abs(got - blended).max() <= 1
        for pol in Polarity:
            fg = _foreground_int(frame, got, pol)
            ref = from_float(foreground(to_float(frame), to_float(got), pol), dtype)
            np.testing.assert_array_equal(fg, ref)


def test_adaptive_with_an_identity_like_model_on_a_noisy_recording_does_not_fire_every_frame():
    """An estimator that returns the frame itself (a model in the identity trap, or a fresh residual
    net) has zero residual on its keyframe but the noise of two frames on every other one; the
    baseline's noise floor keeps that from making every frame a keyframe."""
    rng = np.random.default_rng(3)
    frames = np.clip(128 + rng.normal(0, 3, (100, 64, 64)), 0, 255).astype(np.uint8)
    _, keys, _ = _run(frames, every=100, adaptive=True, bound=0.005)
    assert keys == [0, 99]
    # a real change is still caught
    frames[60:] = np.clip(frames[60:].astype(int) + 12, 0, 255)
    _, keys, _ = _run(frames, every=100, adaptive=True, bound=0.005)
    assert 60 in keys and len(keys) <= 5


def test_drift_grid_keeps_enough_samples_and_stays_cheap_on_large_frames():
    """Every 4th pixel up to 1024² (65,536+ samples there), sparser beyond so the grid stays near
    65,536 pixels: every 8th at 2048²; the drift of a plain offset is the same on either grid."""
    assert [kf.drift_stride((s, s)) for s in (64, 480, 1024, 2048, 4096)] == [4, 4, 4, 8, 16]
    rng = np.random.default_rng(4)
    bg = rng.random((2048, 2048), dtype=np.float32) * 0.5
    frame = np.clip(bg + 0.01 + rng.normal(0, 0.002, bg.shape).astype(np.float32), 0, 1)
    small = kf._small(frame)
    assert small.shape == (256, 256)
    assert abs(float(np.median(np.abs(small - kf._small(bg)))) - 0.01) < 0.001


def test_without_a_tail_keyframe_the_last_frames_keep_the_last_grid_background_until_they_drift():
    """``tail=False`` (what a run uses with the adaptive check): no keyframe at the last frame; the
    frames after the last multiple of K keep its background, and a change there still makes a
    keyframe. The look-ahead is asked for the grid without the last frame."""
    rng = np.random.default_rng(6)
    frames = np.clip(128 + rng.normal(0, 2, (95, 32, 32)), 0, 255).astype(np.uint8)

    def run(frames):
        est, keys = Stub(), []
        grid = ((g, est.background(g, to_float(frames[g]))) for g in kf.grid(0, 40, len(frames), tail=False))
        items = kf.schedule(((t, frames[t]) for t in range(len(frames))), est.background, grid, len(frames), 40,
                            adaptive=True, bound=0.01, keyframes=keys, to_float=to_float, tail=False)
        return [(t, b) for t, _, b in items], keys, est

    out, keys, est = run(frames)
    assert kf.grid(0, 40, 95, tail=False) == [0, 40, 80] and keys == [0, 40, 80] and 94 not in est.calls
    held = [b for t, b in out if t > 80]
    assert all(isinstance(b, kf.Interp) and b.t0 == b.t1 == 80 for b in held)
    frames[90:] = np.clip(frames[90:].astype(int) + 20, 0, 255)  # the light changes in the tail
    _, keys, _ = run(frames)
    assert keys[:3] == [0, 40, 80] and 90 in keys
