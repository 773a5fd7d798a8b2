"""A background stored at its keyframes: the keyframe backgrounds, one table row per frame, one rule.

In keyframe mode the background of a frame between two keyframes is a deterministic blend of
their backgrounds plus the frame's exposure offset, so storing it per frame repeats what the
keyframes already hold. An image group stored this way holds::

    background/             attrs: vidfilter{storage: "keyframes", rule, complete, frames_written, n_frames, fps}
    background/keyframes    (T, [C,] H, W), one frame per chunk; only the keyframes' chunks exist
    background/frames       (T, 4) float64: key0, key1, weight, offset of every frame

and frame ``t`` is :func:`blend` ``(keyframes[key0], keyframes[key1], weight, offset)``: the two
keyframe backgrounds (already in the stored integer dtype) blended by ``cv2.addWeighted`` with
weights ``1 - weight`` and ``weight``, rounded and saturated, then shifted by the integer
``offset`` with saturation. The writer computes every frame's background, and from it the
foreground, with the same function, so a reader (:class:`KeyframeBackgroundSource`, opened by
``vidfilter.open("OUT.zarr/background")``) returns exactly the background the foreground was
computed from; :class:`vidfilter.io.keyframe_sink.KeyframeImageSink` writes such a group. The
polarity clamp (``output.clamp``) is a per-frame edit of the background against the frame; it
does not change the foreground of an integer recording (subtraction saturates at 0 either way)
and is not applied to a background stored at keyframes.

Only integer recordings with at most 4 channels are stored this way; the rest, per-frame
estimation (``--every 1``, the stateful baselines) and ``--background full`` store every frame.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnreadableInputError
from vidfilter.io.source import FrameSource, check_color

__all__ = ["KEYFRAMES", "RULE", "STORAGE", "TABLE", "KeyRecord", "KeyframeBackgroundSource", "blend",
    "is_keyframe_group", "shift", "supports_keyframes"]

#: ``vidfilter.storage`` of a group stored at keyframes.
STORAGE = "keyframes"
#: The arrays of such a group.
KEYFRAMES, TABLE = "keyframes", "frames"
#: Rows per chunk of the per-frame table.
TABLE_CHUNK = 4096
#: How a frame is rebuilt, as recorded in the group's attributes.
RULE = ("frame t = saturate(round(addWeighted(keyframes[key0], 1 - weight, keyframes[key1], weight)) + offset), "
        "key0, key1, weight, offset = frames[t]")


class KeyRecord(NamedTuple):
    """What the background of one frame stores: its own keyframe background (stored dtype) when the
    frame is a keyframe, else ``None``; the two keyframes it blends, the weight and the offset."""

    key: np.ndarray | None
    t0: int
    t1: int
    weight: float
    offset: int


def supports_keyframes(dtype: Any, frame_shape: tuple[int, ...]) -> bool:
    """Whether frames of ``dtype`` and ``frame_shape`` can be stored at keyframes (integer, <= 4 channels)."""
    return np.dtype(dtype) in (np.dtype(np.uint8), np.dtype(np.uint16)) and (len(frame_shape) == 2 or frame_shape[-1] <= 4)


def shift(background: np.ndarray, offset: int) -> np.ndarray:
    """``background + offset`` saturated to its integer dtype (``background`` itself for 0)."""
    import cv2

    off = int(offset)
    if off == 0:
        return background
    if _tiny(background) or (background.ndim == 3 and background.shape[-1] > 4):  # beyond OpenCV's scalars
        info = np.iinfo(background.dtype)
        return np.clip(background.astype(np.int64) + off, info.min, info.max).astype(background.dtype)
    scalar = (float(abs(off)),) * 4
    return cv2.add(background, scalar) if off > 0 else cv2.subtract(background, scalar)


def _tiny(a: np.ndarray) -> bool:
    """OpenCV reads an array of at most 4 values as a scalar: such frames take numpy's path."""
    return a.size <= 4


def blend(b0: np.ndarray, b1: np.ndarray | None, weight: float, offset: int = 0) -> np.ndarray:
    """The background of a frame from its keyframes' (integer) backgrounds: see the module rule."""
    import cv2

    w = float(weight)
    if w <= 0.0 or b1 is None:
        b = b0
    elif w >= 1.0:
        b = b1
    elif _tiny(b0):
        info = np.iinfo(b0.dtype)
        b = np.clip(np.rint((1.0 - w) * b0.astype(np.float64) + w * b1), info.min, info.max).astype(b0.dtype)
    else:
        b = cv2.addWeighted(b0, 1.0 - w, b1, w, 0.0)
    return shift(b, offset)


def _group_attrs(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("attributes") if isinstance(meta, dict) else None


def is_keyframe_group(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an image group stored at keyframes (read from its ``zarr.json`` only)."""
    attrs = _group_attrs(Path(path))
    vf = (attrs or {}).get("vidfilter")
    return isinstance(vf, dict) and vf.get("storage") == STORAGE


class KeyframeBackgroundSource(FrameSource):
    """A background group stored at keyframes, read lazily as ``(T, H, W[, C])`` frames.

    Each frame is rebuilt from the two keyframes its table row names (:func:`blend`); the table
    is read a chunk of rows at a time and the last few keyframes are kept, so sequential reading
    decodes each keyframe once. ``to_dask`` gives a lazy Dask array of the per-frame background.
    """

    def __init__(self, path: str | os.PathLike[str], color: str = "gray", *, fps: float | None = None,
                 missing_chunks: str = "error") -> None:
        import zarr

        self.color = check_color(color)
        spec = os.path.expanduser(os.fspath(path)).rstrip("/")
        self.path = spec
        if not Path(spec).exists():
            raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
        try:
            group = zarr.open_group(spec, mode="r")
            self._keys, self._table = group[KEYFRAMES], group[TABLE]
        except Exception as exc:
            raise UnreadableInputError(
                f"{spec}: a background stored at keyframes that cannot be read ({' '.join(str(exc).split())[:100]}); "
                "restore the store from a copy or rerun with --overwrite"
            ) from None
        vf = dict(group.attrs).get("vidfilter") or {}
        self._channel_first = self._keys.ndim == 4
        t, *rest = (int(s) for s in self._keys.shape)
        frame = (rest[1], rest[2], rest[0]) if self._channel_first else tuple(rest)
        self.dtype = np.dtype(self._keys.dtype)
        self._native_shape = (t, *frame)
        self.shape = self._native_shape if color == "keep" or len(frame) == 2 else (t, *frame[:2])
        self.fps = float(fps) if fps else vf.get("fps")
        self.missing_chunks = missing_chunks
        self._rows: tuple[int, np.ndarray] | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def row(self, t: int) -> tuple[int, int, float, int]:
        """``(key0, key1, weight, offset)`` of frame ``t``."""
        c = t // TABLE_CHUNK
        if self._rows is None or self._rows[0] != c:
            self._rows = (c, np.asarray(self._table[c * TABLE_CHUNK : (c + 1) * TABLE_CHUNK]))
        k0, k1, w, off = self._rows[1][t - c * TABLE_CHUNK]
        return int(k0), int(k1), float(w), int(off)

    def keyframes(self) -> np.ndarray:
        """The frame indices of the stored keyframes, ascending."""
        rows = np.asarray(self._table[:])
        return np.unique(rows[:, :2].astype(np.int64))

    def _key(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        key = f"{KEYFRAMES}/" + self._keys.metadata.encode_chunk_key((k,) + (0,) * (self._keys.ndim - 1))
        if self.missing_chunks == "error" and not os.path.exists(os.path.join(self.path, key)):
            reason = f"keyframe {k} is missing from the store (chunk file {key} not found)"
            raise DamagedInputError(f"{self.path}: {reason}; restore the store from a copy or rerun with --overwrite",
                                    frame=k, reason=reason)
        data = np.asarray(self._keys[k])
        data = np.ascontiguousarray(np.moveaxis(data, 0, -1)) if self._channel_first else data
        self._cache[k] = data
        while len(self._cache) > 3:
            self._cache.popitem(last=False)
        return data

    def _read(self, t: int) -> np.ndarray:
        k0, k1, w, off = self.row(t)
        return blend(self._key(k0), self._key(k1) if w > 0 else None, w, off)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(storage=STORAGE, keyframes=int(len(self.keyframes())), stored_dtype=str(self.dtype))
        return d
