"""Foreground masks: grey-level thresholds on any dtype, Otsu, noise-level thresholds, cleanup."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.errors import ConfigError
from vidfilter.eval.masks import noise_mask, noise_threshold, otsu_mask
from vidfilter.polarity import clean_mask, foreground, residual_noise, threshold_mask
from vidfilter.io.scaling import to_float


def _pair(dtype=np.uint8):
    bg = np.full((4, 4), 100, np.uint8)
    frame = bg.copy()
    frame[0, 0] = 89  # 11 darker
    frame[0, 1] = 90  # exactly 10 darker: not foreground (> 10)
    frame[1, 0] = 115  # 15 brighter
    return frame, bg


def test_threshold_polarity():
    """absolute = both signs, dark = background - frame, bright = frame - background."""
    frame, bg = _pair()
    absolute = threshold_mask(frame, bg, 10)
    assert np.argwhere(absolute).tolist() == [[0, 0], [1, 0]]
    assert np.argwhere(threshold_mask(frame, bg, 10, "dark")).tolist() == [[0, 0]]
    assert np.argwhere(threshold_mask(frame, bg, 10, "bright")).tolist() == [[1, 0]]
    with pytest.raises(ConfigError, match="did you mean 'dark'"):
        threshold_mask(frame, bg, 10, "drak")


def test_threshold_exact_after_float_roundoff():
    """A float32 [0, 1] background of a uint8 image gives the same mask as the integers (a
    difference of exactly 10 stays out whatever the round-off)."""
    rng = np.random.default_rng(0)
    bg = rng.integers(20, 235, (64, 64)).astype(np.uint8)
    frame = (bg.astype(int) + rng.choice([-11, -10, 10, 11, 0], bg.shape)).astype(np.uint8)
    want = np.abs(frame.astype(int) - bg.astype(int)) > 10
    np.testing.assert_array_equal(threshold_mask(frame, to_float(bg)), want)
    np.testing.assert_array_equal(threshold_mask(to_float(frame), to_float(bg)), want)


def test_threshold_uint16_uses_8bit_scale():
    """uint16 frames: 10 grey levels means 10/255 of the full range (2570 uint16 units)."""
    bg = np.full((2, 2), 30000, np.uint16)
    frame = bg.copy()
    frame[0, 0] = 30000 - 2700  # 10.5 levels
    frame[0, 1] = 30000 - 2500  # 9.7 levels
    m = threshold_mask(frame, bg, 10, "dark")
    assert m.tolist() == [[True, False], [False, False]]
    d = foreground(frame, bg, "dark")
    assert d[0, 0] == pytest.approx(2700 / 65535 * 255, rel=1e-5)


def test_foreground_shape_mismatch_and_colour():
    with pytest.raises(ConfigError, match="shape"):
        foreground(np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8))
    bg = np.zeros((2, 2, 3), np.uint8)
    frame = bg.copy()
    frame[0, 0, 2] = 50  # one channel changed
    assert threshold_mask(frame, bg).tolist() == [[True, False], [False, False]]


def test_otsu_mask_two_levels_and_constant():
    img = np.zeros((10, 10), np.float32)
    img[2:5, 2:5] = 1.0
    m = otsu_mask(img)
    assert m.sum() == 9 and m[3, 3]
    assert otsu_mask(img, dark=True).sum() == 91
    assert not otsu_mask(np.ones((5, 5))).any()
    assert otsu_mask(img, sigma=1.0)[3, 3]


def test_residual_noise_robust_to_animals_and_quantisation():
    """sigma of Gaussian noise is recovered with 5 % of the pixels covered by dark 'animals',
    also for integer (quantised) residuals with sigma below one grey level."""
    rng = np.random.default_rng(1)
    bg = np.full((200, 200), 150.0)
    for sigma in (0.6, 2.0, 5.0):
        frame = np.rint(bg + 3 + rng.normal(0, sigma, bg.shape))
        frame[:20, :100] = 60  # 5 % animals
        n = residual_noise(frame.astype(np.uint8), bg.astype(np.uint8))
        assert n.offset == pytest.approx(3, abs=0.5)
        assert n.sigma == pytest.approx(np.sqrt(sigma**2 + 1 / 12), rel=0.15)


def test_noise_threshold_floor_and_scale():
    bg = np.full((100, 100), 100, np.uint8)
    rng = np.random.default_rng(2)
    frame = np.clip(np.rint(100 + rng.normal(0, 3, bg.shape)), 0, 255).astype(np.uint8)
    t = noise_threshold(frame, bg, k=4, floor=2)
    assert t == pytest.approx(12, rel=0.15)
    assert noise_threshold(bg, bg, k=4, floor=2.5) == 2.5


def test_noise_mask_removes_offset_and_finds_animal():
    """A frame 20 levels brighter overall (exposure) with one dark animal: the fixed threshold
    flags the whole frame, the noise mask only the animal."""
    rng = np.random.default_rng(3)
    bg = np.full((100, 100), 120.0)
    frame = bg + 20 + rng.normal(0, 1.5, bg.shape)
    frame[40:50, 30:70] -= 60
    frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    assert threshold_mask(frame, bg.astype(np.uint8)).mean() > 0.9
    m = noise_mask(frame, bg.astype(np.uint8), k=5, floor=4, min_area=20)
    truth = np.zeros(bg.shape, bool)
    truth[40:50, 30:70] = True
    np.testing.assert_array_equal(m, truth)
    # one-sided: a bright animal is ignored with polarity "dark"
    frame2 = frame.copy()
    frame2[5:10, 5:10] = 250
    assert not noise_mask(frame2, bg.astype(np.uint8), polarity="dark", min_area=20)[5:10, 5:10].any()
    assert noise_mask(frame2, bg.astype(np.uint8), polarity="absolute", min_area=20)[5:10, 5:10].all()


def test_clean_mask_min_area_and_closing():
    m = np.zeros((20, 20), bool)
    m[2:6, 2:6] = True  # 16 px
    m[10, 10] = True  # 1 px
    m[15:18, 2:6] = True
    m[15:18, 7:10] = True  # two halves split by a 1-px gap
    out = clean_mask(m, min_area=5)
    assert not out[10, 10] and out[3, 3]
    closed = clean_mask(m, closing=1)
    assert closed[16, 6]  # gap closed
    assert closed[2, 2]  # no erosion at corners of the square / border
    border = np.zeros((5, 5), bool)
    border[0, :] = True
    np.testing.assert_array_equal(clean_mask(border, closing=2), border)


def test_otsu_foreground_mask_hand_computed():
    """Foreground levels 0 (50 % of pixels), 2 (25 %) and 10 (25 %). Otsu's between-class variance:
    split {0} | {2, 10}: .5 * .5 * (6 - 0)^2 = 9; split {0, 2} | {10}: .75 * .25 * (10 - 2/3)^2 = 16.3,
    so only the 10s are foreground. A floor above 10 empties the mask; polarity is respected."""
    bg = np.full((4, 4), 100, np.uint8)
    frame = bg.copy()
    frame[0, :] = 98  # 2 darker
    frame[1, :] = 90  # 10 darker
    from vidfilter.eval.masks import otsu_foreground_mask

    m = otsu_foreground_mask(frame, bg, "dark", sigma=0)
    assert np.argwhere(m)[:, 0].tolist() == [1, 1, 1, 1]
    assert not otsu_foreground_mask(frame, bg, "dark", sigma=0, floor=10).any()
    assert not otsu_foreground_mask(frame, bg, "bright", sigma=0).any()  # nothing brighter: constant 0
    assert not otsu_foreground_mask(bg, bg).any()  # constant foreground: empty
    assert otsu_foreground_mask(frame, bg, "absolute", sigma=0.5)[1, 2]  # smoothed, still found


def _faint_worm(seed: int = 0):
    """A plate with noise sigma 1 and one horizontal worm: dark ends (-30), a faint middle (-6)."""
    rng = np.random.default_rng(seed)
    bg = np.full((64, 96), 150.0, np.float32)
    frame = bg + rng.normal(0, 1.0, bg.shape).astype(np.float32)
    frame[30:34, 10:30] -= 30  # head
    frame[30:34, 30:60] -= 6  # faint body: below 10 grey levels, far above the noise
    frame[30:34, 60:80] -= 30  # tail
    return np.clip(frame, 0, 255).round().astype(np.uint8), bg.astype(np.uint8)


def test_object_mask_keeps_a_faint_body_whole():
    """The fixed rule breaks the worm in two; hysteresis from the noise level keeps one object
    spanning head to tail, and nothing else on the plate."""
    from scipy import ndimage

    from vidfilter.polarity import object_mask

    frame, bg = _faint_worm()
    fixed = threshold_mask(frame, bg, 10, "dark")
    assert ndimage.label(fixed, structure=np.ones((3, 3)))[1] == 2
    m = object_mask(frame, bg, polarity="dark", dilate=0, closing=0)
    lab, n = ndimage.label(m, structure=np.ones((3, 3)))
    assert n == 1
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max()) == (10, 79) and (ys.min(), ys.max()) == (30, 33)
    # the dilation grows the object by its radius on every side
    d = object_mask(frame, bg, polarity="dark", dilate=2, closing=0)
    ys, xs = np.nonzero(d)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (8, 81, 28, 35)


def test_object_mask_noise_only_and_bad_thresholds():
    from vidfilter.polarity import object_mask

    rng = np.random.default_rng(1)
    bg = np.full((64, 64), 120, np.uint8)
    frame = np.clip(120 + rng.normal(0, 1.0, bg.shape), 0, 255).round().astype(np.uint8)
    assert not object_mask(frame, bg, polarity="dark").any()
    # a bright blob is not a dark object, but it is an absolute one
    frame[10:20, 10:20] = 160
    assert not object_mask(frame, bg, polarity="dark").any()
    assert object_mask(frame, bg, polarity="absolute", dilate=0, closing=0)[10:20, 10:20].all()
    with pytest.raises(ConfigError, match="low threshold"):
        object_mask(frame, bg, k_low=20, k_high=1, floor_high=2)


def test_object_mask_drops_specks_by_their_seed_area():
    """A dark speck of dust (16 px far above the seed threshold) grows past the protocol's 40 px
    once closed and dilated; an object needs min_seed pixels above the seed threshold, so the
    speck goes and a worm-sized body (4 x 60 px) stays, whole."""
    from scipy import ndimage

    from vidfilter.polarity import MIN_SEED, object_mask

    rng = np.random.default_rng(2)
    bg = np.full((80, 100), 180, np.uint8)
    frame = np.clip(180 + rng.normal(0, 1.0, bg.shape), 0, 255).round().astype(np.uint8)
    frame[10:14, 10:14] = 120  # the speck
    frame[50:54, 20:80] = 130  # the body
    loose = object_mask(frame, bg, polarity="dark", min_seed=0)
    lab, n = ndimage.label(loose, structure=np.ones((3, 3)))
    assert n == 2 and (lab == lab[11, 11]).sum() >= 40
    strict = object_mask(frame, bg, polarity="dark")
    lab, n = ndimage.label(strict, structure=np.ones((3, 3)))
    assert MIN_SEED > 16 and n == 1 and not strict[11, 11] and strict[50:54, 20:80].all()
