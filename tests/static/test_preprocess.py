"""Static-mode conversions: dtype scaling, RGB -> grey, complement, log transform (documented values)."""

from __future__ import annotations

import numpy as np
import pytest

from vidfilter.errors import UnsupportedInputError
from vidfilter.static.config import PreprocessConfig
from vidfilter.static.preprocess import encode, linearise, resolve_gain, to_network


def test_integer_dtypes_scale_by_their_maximum() -> None:
    """uint8 / 255 and uint16 / 65535, so the same brightness gives the same linear value."""
    pre = PreprocessConfig()
    a8 = np.array([[0, 51, 255]], np.uint8)
    a16 = np.array([[0, 13107, 65535]], np.uint16)
    np.testing.assert_allclose(linearise(a8, pre), [[0.0, 0.2, 1.0]], atol=1e-7)
    np.testing.assert_allclose(linearise(a16, pre), [[0.0, 0.2, 1.0]], atol=1e-7)


def test_rgb_to_grey_and_complement() -> None:
    """BT.601 luma of RGB (alpha dropped), one channel on request, then 1 - x with invert."""
    rgb = np.zeros((1, 2, 4), np.uint8)
    rgb[0, 0] = (255, 0, 0, 7)
    rgb[0, 1] = (0, 0, 255, 7)
    np.testing.assert_allclose(linearise(rgb, PreprocessConfig()), [[0.299, 0.114]], atol=1e-6)
    np.testing.assert_allclose(linearise(rgb, PreprocessConfig(grey="blue")), [[0.0, 1.0]], atol=1e-6)
    np.testing.assert_allclose(linearise(rgb, PreprocessConfig(invert=True)), [[0.701, 0.886]], atol=1e-6)


def test_log_transform_and_gain() -> None:
    """log1p(g x) / log1p(g): g = dtype max by default (so counts c of 16 bits give log(1+c)/log(65536))."""
    pre = PreprocessConfig(log=True)
    assert resolve_gain(pre, np.uint16) == 65535.0 and resolve_gain(pre, np.uint8) == 255.0
    assert resolve_gain(pre, np.float32) == 1000.0 and resolve_gain(PreprocessConfig(log=True, log_gain=9), np.uint8) == 9
    img = np.array([[0, 100, 65535]], np.uint16)
    expected = np.log1p(img.astype(np.float64)) / np.log(65536.0)
    np.testing.assert_allclose(to_network(img, pre, 65535.0), expected, rtol=1e-5)
    x = np.array([[0.25]], np.float32)
    assert float(encode(x, PreprocessConfig(), 255.0)[0, 0]) == 0.25  # no log: unchanged


def test_floats_are_clipped_and_bad_inputs_refused() -> None:
    """Floats are [0, 1] (clipped); NaN, int32 and 5-channel images are clear errors."""
    pre = PreprocessConfig()
    np.testing.assert_array_equal(linearise(np.array([[-0.5, 0.5, 2.0]], np.float32), pre), [[0.0, 0.5, 1.0]])
    with pytest.raises(UnsupportedInputError, match="NaN"):
        linearise(np.array([[np.nan]], np.float32), pre)
    with pytest.raises(UnsupportedInputError, match="uint8, uint16"):
        linearise(np.zeros((2, 2), np.int32), pre)
    with pytest.raises(UnsupportedInputError, match="5 channels"):
        linearise(np.zeros((2, 2, 5), np.uint8), pre)
