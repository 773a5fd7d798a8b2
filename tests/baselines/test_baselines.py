"""The classical backgrounds of vidfilter/baselines/ against oracles and synthetic truth."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.errors import ConfigError
from vidfilter.baselines import ExtremeProjection, MedianProjection, OpenCVSubtractor, RunningMedian, make_baseline
from vidfilter.eval.score import estimator_backgrounds, score_recording
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.synth import SyntheticRecording


@pytest.fixture(scope="module")
def rec():
    """40 frames 96², two moving dark animals and one still one (label 3)."""
    return SyntheticRecording(40, 96, 96, n_animals=3, n_still=1, noise_sigma=1.0, speed=3.0, seed=0)


@pytest.fixture(scope="module")
def stack(rec):
    return np.stack([rec[t] for t in range(len(rec))])


def test_median_matches_true_background_but_keeps_still_animals(rec, stack):
    """Off the still animal the median is within 1 grey level of the true background; on it, the
    median stays > 20 levels darker (the animal is kept as background)."""
    est = MedianProjection(n_frames=51)
    est.prepare(ArrayFrameSource(stack))
    bg = est.background(0, stack[0] / 255.0) * 255
    true = rec.frame(0).background
    still = np.isin(rec.labels(0), list(rec.still_labels))
    assert still.sum() > 20
    assert np.abs(bg - true)[~still].mean() < 1.0
    assert (true - bg)[still].mean() > 20
    # oracle: every frame is used (40 <= 51); with an even count the stored median is rounded to
    # the source dtype (it is truncated at present: within 0.5 either way)
    np.testing.assert_allclose(bg, np.median(stack, axis=0), atol=0.5 + 1e-3)


def test_median_scores_moving_animals_not_still_ones(rec, stack):
    """Recall of moving animals is high, of the still one ~0 (the paper's immobile-animal case)."""
    res = score_recording(rec, MedianProjection(), polarity="dark", min_area=20)
    assert res.moving_recall is not None and res.moving_recall > 0.8
    assert res.still_recall is not None and res.still_recall < 0.1
    assert res.n_frames == len(rec)


def test_max_projection_oracle_and_dark_animals(rec, stack):
    """max = np.max over all frames; it removes dark moving animals (background + noise bias of
    ~2 levels) but keeps the still one."""
    est = make_baseline("max")
    est.prepare(ArrayFrameSource(stack))
    bg = est.background(0, stack[0] / 255.0)
    np.testing.assert_allclose(bg * 255, stack.max(axis=0), atol=1e-3)
    true = rec.frame(0).background
    still = np.isin(rec.labels(0), list(rec.still_labels))
    bias = (bg * 255 - true)[~still]
    assert 0.5 < bias.mean() < 4.0
    assert (true - bg * 255)[still].mean() > 20
    mn = make_baseline("min")
    mn.prepare(ArrayFrameSource(stack))
    np.testing.assert_allclose(mn.background(0, stack[0] / 255.0) * 255, stack.min(axis=0), atol=1e-3)


def test_max_projection_sampled_frames():
    frames = np.arange(10, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    est = ExtremeProjection("max", n_frames=3)  # frames 0, 4(.5 -> 4), 9
    est.prepare(ArrayFrameSource(frames))
    assert est.background(0, frames[0] / 255.0).max() * 255 == pytest.approx(9)


@pytest.mark.parametrize("kind", ["mog2", "knn"])
def test_opencv_subtractors_converge_on_static_scene(kind):
    """On a static textured scene with noise, the background converges to the scene within 2 levels."""
    rng = np.random.default_rng(0)
    scene = rng.integers(60, 200, (48, 48)).astype(np.float32)
    frames = np.clip(np.rint(scene + rng.normal(0, 1.0, (30, 48, 48))), 0, 255).astype(np.uint8)
    src = ArrayFrameSource(frames, fps=25)
    bgs = list(estimator_backgrounds(OpenCVSubtractor(kind), src))
    assert len(bgs) == 30
    last = bgs[-1] * 255
    assert bgs[-1].dtype == np.float32 and bgs[-1].shape == (48, 48)
    assert np.abs(last - scene).mean() < 2.0


def test_running_median_window():
    """window=3, every=1: the background of frame t is the median of frames t-2..t."""
    frames = (np.array([0, 10, 200, 30, 40, 50, 60], np.float32) / 255)[:, None, None] * np.ones((1, 2, 2), np.float32)
    est = RunningMedian(window=3, every=1)
    est.prepare(ArrayFrameSource(frames))
    got = [float(est.background(t, frames[t])[0, 0]) * 255 for t in range(len(frames))]
    want = [0, 5, 10, 30, 40, 40, 50]
    assert got == pytest.approx(want, abs=1e-3)


def test_running_median_recomputes_every_n_frames():
    """With every=3 the background is recomputed on frames 0, 3, 6 and reused in between."""
    frames = (np.arange(8, dtype=np.float32) * 10 / 255)[:, None, None] * np.ones((1, 2, 2), np.float32)
    est = RunningMedian(window=2, every=3)
    est.prepare(ArrayFrameSource(frames))
    got = [round(float(est.background(t, frames[t])[0, 0]) * 255, 3) for t in range(8)]
    assert got == [0, 0, 0, 25, 25, 25, 55, 55]


def test_make_baseline_suggests_nearest_name():
    with pytest.raises(ConfigError, match="did you mean 'median'"):
        make_baseline("medain")
    for name in ("median", "max", "min", "running-median", "mog2", "knn"):
        assert make_baseline(name).name == name


def test_score_backgrounds_boxes_and_named_masks():
    """Two frames, one dark 10x20 animal each, true background known: box F1 = 1 with the fixed
    threshold; a mask function that flags nothing gives P = R = 0."""
    from vidfilter.eval.score import score_backgrounds

    bg = np.full((40, 60), 150, np.uint8)
    frames = np.stack([bg, bg])
    frames[0, 5:15, 10:30] = 80
    frames[1, 20:30, 30:50] = 80
    gt = [np.array([[10, 5, 30, 15]]), np.array([[30, 20, 50, 30]])]
    res = score_backgrounds(ArrayFrameSource(frames), [bg / 255.0] * 2, gt, min_area=40)
    assert res.box.f1 == 1.0 and res.box.iou == 1.0
    assert res.in_boxes == 1.0 and res.n_frames == 2
    named = score_backgrounds(
        frames, iter([bg / 255.0] * 2), {0: gt[0], 1: gt[1]}, min_area=40,
        mask_fn={"none": lambda f, b: np.zeros(f.shape, bool)},
        gt_masks=[frames[0] < 100, frames[1] < 100],
    )
    assert named["none"].box.f1 == 0.0 and named["none"].pixel.recall == 0.0


def test_estimator_backgrounds_stateful_subset():
    """A stateful estimator sees every frame up to the last requested; only requested ones come out."""
    frames = (np.arange(6, dtype=np.float32) / 255)[:, None, None] * np.ones((1, 2, 2), np.float32)
    out = list(estimator_backgrounds(RunningMedian(window=1, every=1), ArrayFrameSource(frames), [1, 4]))
    assert [round(float(b[0, 0]) * 255) for b in out] == [1, 4]


def test_running_median_ring_is_exact_for_uint8_and_bounded():
    """The ring buffer keeps uint8 values exactly (v/255 -> 257 v in uint16) and never more than
    ``window`` frames, however many frames went through."""
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (40, 6, 7)).astype(np.uint8)
    est = RunningMedian(window=5, every=1)
    est.prepare(ArrayFrameSource(frames))
    for t in range(40):
        bg = est.background(t, frames[t] / np.float32(255))
        want = np.median(frames[max(0, t - 4) : t + 1].astype(np.float64), axis=0)
        np.testing.assert_allclose(bg * 255, want, atol=1e-3)
    assert est._ring.shape == (5, 6, 7) and est._ring.dtype == np.uint16


class _LazySource:
    """A long recording rendered on demand (nothing stored): frame t is noise seeded by t."""

    def __init__(self, n: int) -> None:
        self.shape = (n, 64, 64)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t: int) -> np.ndarray:
        return np.random.default_rng(int(t)).integers(0, 256, (64, 64)).astype(np.uint8)


@pytest.mark.parametrize("name", ["median", "running-median", "max", "min", "mog2", "knn"])
def test_memory_flat_in_recording_length(name):
    """Peak Python-heap memory (tracemalloc) over 60 and 600 frames of 64² differs by less than one
    frame of float32 (16 kB): no baseline keeps anything per frame. (The 600 frames as float32
    would take 9.8 MB.)"""
    import tracemalloc

    from vidfilter.io.scaling import to_float

    peaks = []
    for n in (60, 600):
        src = ArrayFrameSource(_LazySource(n))
        tracemalloc.start()
        est = make_baseline(name)
        est.prepare(src)
        for t, frame in enumerate(src.iter()):
            est.background(t, to_float(frame))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] - peaks[0] < 64 * 64 * 4, peaks


@pytest.mark.parametrize("name", ["median", "running-median", "max", "min", "mog2", "knn"])
def test_every_baseline_runs_through_the_pipeline(name, tmp_path):
    """`vidfilter run --method NAME` writes the same store layout for every baseline, and the store
    scores with `vidfilter eval` (median and max keep the still animal out of the foreground)."""
    from vidfilter.cli import main
    from vidfilter.eval.evaluate import evaluate
    from vidfilter.io.registry import open as vf_open

    rec = SyntheticRecording(12, 48, 64, n_animals=2, noise_sigma=1.0, speed=3.0, seed=2)
    frames = np.stack([rec[t] for t in range(len(rec))])
    np.save(tmp_path / "rec.npy", frames)
    masks = np.stack([rec.frame(t).mask for t in range(len(rec))]).astype(np.uint8)
    np.save(tmp_path / "masks.npy", masks)
    out = tmp_path / f"{name}.zarr"
    assert main(["-q", "run", str(tmp_path / "rec.npy"), "--method", name, "--out", str(out), "--polarity", "dark"]) == 0
    for group in ("background", "foreground"):
        assert vf_open(out / group).shape == frames.shape
    r = evaluate(out, masks=tmp_path / "masks.npy", min_area=5)
    assert r.n_frames == 12 and 0.0 <= r.pixel.iou <= 1.0
    if name in ("median", "max"):
        assert r.pixel.recall > 0.5


def test_registered_median_equals_the_median_on_a_still_camera(rec, stack):
    from vidfilter.baselines import RegisteredProjection

    src = ArrayFrameSource(stack)
    plain, reg = MedianProjection(n_frames=20), RegisteredProjection("median", n_frames=20)
    plain.prepare(src)
    reg.prepare(src)
    assert reg.registration is None  # nothing moved: no per-frame work
    np.testing.assert_allclose(reg.background(7, stack[7] / 255.0), plain.background(7, stack[7] / 255.0), atol=1e-6)


def test_registered_median_follows_a_camera_bump():
    """A 3 px / -2 px bump at frame 20 of 40: the plain median keeps two plates' edges; the
    registered one matches the true background of frames on both sides of the bump."""
    from vidfilter.baselines import RegisteredProjection

    rec = SyntheticRecording(40, 128, 128, n_animals=3, noise_sigma=1.0, speed=3.0, texture=14.0,
                             shift_at=20, shift_px=(3, -2), seed=4)
    stack = np.stack([rec[t] for t in range(len(rec))])
    src = ArrayFrameSource(stack)
    plain, reg = MedianProjection(), make_baseline("median-registered")
    plain.prepare(src)
    reg.prepare(src)
    assert reg.registration is not None and reg.registration.largest == 3
    inner = (slice(8, -8), slice(8, -8))
    for t in (5, 30):
        true = rec.frame(t).background[inner]
        off = ~(rec.labels(t)[inner] > 0)
        err_reg = np.abs(reg.background(t, stack[t] / 255.0)[inner] * 255 - true)[off].mean()
        err_plain = np.abs(plain.background(t, stack[t] / 255.0)[inner] * 255 - true)[off].mean()
        assert err_reg < 1.5 and err_plain > 2 * err_reg, (t, err_reg, err_plain)
    res_reg = score_recording(rec, make_baseline("median-registered"), polarity="dark", min_area=20)
    res_plain = score_recording(rec, MedianProjection(), polarity="dark", min_area=20)
    assert res_reg.pixel.iou > res_plain.pixel.iou + 0.1
