"""In-memory (or memory-mapped) arrays as a :class:`FrameSource`, plus the dtype and layout rules
every reader shares.

Accepted dtypes: ``uint8``, ``uint16``, ``float32``; ``float16`` and ``float64`` are read as
``float32``. Anything else (signed or 32/64-bit integers, bool, complex) raises
:class:`UnsupportedInputError`. Arrays are ``(T, H, W)`` (grey) or ``(T, H, W, C)`` with
``C <= 4`` (channels last).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.errors import UnsupportedInputError
from vidfilter.io.source import FrameSource, check_color, no_frames_error

_KEEP = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_TO_FLOAT32 = (np.dtype(np.float16), np.dtype(np.float64))


def resolve_dtype(dtype: Any, what: str) -> np.dtype:
    """The dtype frames of stored dtype ``dtype`` are returned as; raise for unsupported ones."""
    dtype = np.dtype(dtype)
    if dtype in _KEEP:
        return dtype
    if dtype in _TO_FLOAT32:
        return np.dtype(np.float32)
    raise UnsupportedInputError(
        f"{what}: frames of dtype {dtype} are not supported; convert to uint8, uint16 or float32 first"
    )


def policy_shape(native: tuple[int, ...], color: str) -> tuple[int, ...]:
    """Shape after the colour policy for a native ``(T, H, W)`` or ``(T, H, W, C)`` shape."""
    native = tuple(int(s) for s in native)
    if len(native) == 3:
        return native
    if color == "gray" or native[3] == 1:
        return native[:3]
    return native


def check_layout(shape: tuple[int, ...], what: str) -> None:
    """Raise unless ``shape`` is ``(T, H, W)`` or ``(T, H, W, C)`` with ``C <= 4``, ``T >= 1`` and
    non-empty frames."""
    if len(shape) == 3 or (len(shape) == 4 and 1 <= shape[3] <= 4):
        if 0 in shape[1:3]:
            raise UnsupportedInputError(f"{what}: frames of shape {tuple(shape[1:])} are empty")
        if shape[0] == 0:
            raise no_frames_error(what, shape)
        return
    raise UnsupportedInputError(
        f"{what}: array of shape {tuple(shape)} is not (T, H, W) or (T, H, W, C) with C <= 4; "
        "reshape or transpose it to put time first and channels last"
    )


def squeeze_channel(frame: np.ndarray) -> np.ndarray:
    """``(H, W, 1)`` -> ``(H, W)``; others unchanged."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[..., 0]
    return frame


def source_frame(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A frame as read from storage, as a source returns it: in ``dtype`` (converted only when it
    differs) and ``(H, W, 1)`` squeezed to ``(H, W)``."""
    if frame.dtype != dtype:
        frame = frame.astype(dtype)
    return squeeze_channel(frame)


class ArrayFrameSource(FrameSource):
    """A numpy array (or anything array-like with ``shape``/``dtype``/indexing, e.g. a memmap).

    Parameters
    ----------
    array : array-like
        ``(T, H, W)`` or ``(T, H, W, C)``.
    fps : float, optional
        Frame rate, when known.
    color : {"gray", "keep"}
    """

    def __init__(self, array: Any, fps: float | None = None, color: str = "gray", *, path: str = "<array>") -> None:
        self.color = check_color(color)
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            array = np.asarray(array)
        self.path = path
        shape = tuple(int(s) for s in array.shape)
        check_layout(shape, path)
        self._native_dtype = np.dtype(array.dtype)
        self.dtype = resolve_dtype(self._native_dtype, path)
        self._array = array
        self.shape = policy_shape(shape, self.color)
        self.fps = float(fps) if fps else None

    def _read(self, t: int) -> np.ndarray:
        return source_frame(np.asarray(self._array[t]), self.dtype)

    def to_dask(self, chunks: int | None = None) -> Any:
        """A lazy ``dask.array`` over the array, ``chunks`` frames per chunk (default 1)."""
        import dask.array as da

        return _policy_dask(da.from_array(self._array, chunks=(chunks or 1,) + tuple(self._array.shape[1:])), self)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["stored_dtype"] = str(self._native_dtype)
        return d


def _policy_dask(arr: Any, src: FrameSource) -> Any:
    """Apply dtype conversion and colour policy to a native ``(T, H, W[, C])`` dask array."""
    from vidfilter.io.source import to_gray

    if arr.dtype != src.dtype:
        arr = arr.astype(src.dtype)
    if arr.ndim == 4:
        if arr.shape[3] == 1:
            arr = arr[..., 0]
        elif src.color == "gray":
            arr = arr.rechunk({3: -1}).map_blocks(to_gray, dtype=src.dtype, drop_axis=3)
    return arr
