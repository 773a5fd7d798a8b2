"""The documented conversion between stored frames and the float32 [0, 1] the models see.

- ``uint8``  -> ``x / 255``;  ``uint16`` -> ``x / 65535``;  floats are taken as already in [0, 1]
  (NaN/Inf are rejected with a clear error, values are not rescaled).
- Back: ``round(clip(y, 0, 1) * max)`` in the target integer dtype.
"""

from __future__ import annotations

import numpy as np

from vidfilter.errors import UnsupportedInputError

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def dtype_scale(dtype: np.dtype | type) -> float:
    """The value that maps to 1.0 for this dtype (255, 65535 or 1.0)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise UnsupportedInputError(
        f"frames of dtype {dtype} are not supported; convert to uint8, uint16 or float32 first"
    )


def to_float(frame: np.ndarray, *, check_finite: bool = True) -> np.ndarray:
    """Stored frame -> float32 in [0, 1]."""
    scale = dtype_scale(frame.dtype)
    out = frame.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(1.0 / scale)
    elif check_finite and not np.isfinite(out).all():
        raise UnsupportedInputError("frame holds NaN or Inf values; replace them (e.g. numpy.nan_to_num) first")
    return out


def from_float(frame: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """float in [0, 1] -> stored dtype (clipped and rounded for integers)."""
    dtype = np.dtype(dtype)
    scale = dtype_scale(dtype)
    if scale == 1.0:
        return frame.astype(dtype, copy=False)
    return np.rint(np.clip(frame, 0.0, 1.0) * scale).astype(dtype)
