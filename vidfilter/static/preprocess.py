"""Static mode: the conversions between a stored image, the *linear* image and what the network sees.

One definition used by crop extraction, pair synthesis and inference, so the three agree:

1. **linear** (:func:`linearise`): integers are divided by their dtype's maximum (``uint8 / 255``,
   ``uint16 / 65535``), floats are taken as ``[0, 1]`` and clipped to it; RGB(A) becomes grey
   (``preprocess.grey``: BT.601 luma, channel mean, or one channel; alpha is dropped); with
   ``preprocess.invert`` the complement ``1 - x`` (dark objects on a light slide become bright on
   dark, as the additive model needs). Crops, backgrounds and synthetic pairs live here:
   intensities add up in linear units.
2. **network** (:func:`encode`): with ``preprocess.log`` the network sees
   ``log1p(g x) / log1p(g)`` (still ``[0, 1]``), ``g`` = ``preprocess.log_gain`` or the input
   dtype's maximum (so a 16-bit image becomes ``log(1 + counts) / log(65536)``); otherwise ``x``.
   Synthetic pairs are composed in linear units, clipped to ``[0, 1]``, then encoded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.static.config import PreprocessConfig
from vidfilter.errors import UnsupportedInputError
from vidfilter.io.source import LUMA

__all__ = ["encode", "linearise", "resolve_gain", "to_network"]

_LUMA = LUMA.astype(np.float32)  # float32 images stay float32
_CHANNEL = {"red": 0, "green": 1, "blue": 2}


def _scale(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype.kind == "f":
        return 1.0
    raise UnsupportedInputError(
        f"images of dtype {dtype} are not supported in static mode; convert them to uint8, uint16 or float32 in [0, 1]"
    )


def resolve_gain(pre: PreprocessConfig, dtype: Any) -> float:
    """The log transform's ``g``: ``pre.log_gain``, else the dtype's maximum (1000 for floats)."""
    if pre.log_gain is not None:
        return float(pre.log_gain)
    scale = _scale(np.dtype(dtype))
    return 1000.0 if scale == 1.0 else scale


def linearise(image: Any, pre: PreprocessConfig) -> np.ndarray:
    """Stored image ``(H, W)`` or ``(H, W, C)`` -> float32 linear grey ``(H, W)`` in ``[0, 1]``."""
    arr = np.asarray(image)
    scale = _scale(arr.dtype)
    if arr.ndim == 3:
        c = arr.shape[-1]
        if c in (1, 2):  # grey (+ alpha)
            arr = arr[..., 0]
        elif c in (3, 4):
            rgb = arr[..., :3].astype(np.float32)
            if pre.grey == "luma":
                arr = rgb @ _LUMA
            elif pre.grey == "mean":
                arr = rgb.mean(axis=-1)
            else:
                arr = rgb[..., _CHANNEL[pre.grey]]
        else:
            raise UnsupportedInputError(f"an image with {c} channels is not supported; give grey, RGB or RGBA images")
    elif arr.ndim != 2:
        raise UnsupportedInputError(f"expected a 2-D grey or (H, W, C) colour image, got shape {arr.shape}")
    x = arr.astype(np.float32, copy=True)
    if scale != 1.0:
        x *= np.float32(1.0 / scale)
    elif not np.isfinite(x).all():
        raise UnsupportedInputError("the image holds NaN or Inf values; replace them (e.g. numpy.nan_to_num) first")
    np.clip(x, 0.0, 1.0, out=x)
    if pre.invert:
        np.subtract(np.float32(1.0), x, out=x)
    return x


def encode(x: np.ndarray, pre: PreprocessConfig, gain: float) -> np.ndarray:
    """Linear ``[0, 1]`` -> what the network sees (the log transform when ``pre.log``)."""
    if not pre.log:
        return np.asarray(x, dtype=np.float32)
    g = np.float32(gain)
    y = np.log1p(np.clip(x, 0.0, None, dtype=np.float32) * g)
    y *= np.float32(1.0 / np.log1p(gain))
    return y.astype(np.float32, copy=False)


def to_network(image: Any, pre: PreprocessConfig, gain: float) -> np.ndarray:
    """``encode(linearise(image))``."""
    return encode(linearise(image, pre), pre, gain)
