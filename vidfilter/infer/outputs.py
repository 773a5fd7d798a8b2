"""What is stored for each frame of a run: background, foreground and mask, from a frame and its background.

:class:`FrameOutputs` turns a frame and the estimator's background (a float array on keyframes, a
:class:`~vidfilter.infer.keyframe.Interp` between them) into the arrays or records the sinks
store. Integer recordings take an integer path (OpenCV, saturating):

- the keyframe backgrounds are rounded into the recording's dtype once, and a frame between two
  keyframes gets :func:`vidfilter.io.keyframe_store.blend` of them (the rule a reader of a
  background stored at keyframes applies, so both see the same background);
- the exposure offset (:func:`exposure_offset`) shifts it with saturation; the polarity clamp
  makes the stored per-frame background never darker (dark animals) than the frame;
- the foreground is exactly the difference of the stored frame and that background, except that
  values below ``output.foreground_floor`` grey levels are stored as 0 outside the mask: on real
  recordings most of a foreground frame is sensor noise of a few grey levels, which costs most of
  the bytes and the compression time. ``foreground_floor = 0`` stores every value;
- the mask is ``foreground > mask_threshold`` (or whole objects, ``mask_method: object``),
  computed from the exact foreground.

Float recordings and a float16 foreground take the float path and store every frame exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.infer import keyframe as kf
from vidfilter.io.keyframe_store import KeyRecord, blend, shift, supports_keyframes
from vidfilter.io.scaling import dtype_scale, from_float, to_float
from vidfilter.polarity import clamp_background, mask_level, object_mask, subtract

__all__ = ["FrameOutputs", "background_as", "exposure_offset", "match_exposure", "store_frame"]

#: recordings of these dtypes take the integer path
_INTEGER = (np.dtype(np.uint8), np.dtype(np.uint16))


def background_as(bg: Any, dtype: np.dtype) -> np.ndarray:
    """A background from the estimator (float array or :class:`keyframe.Interp`) in ``dtype``.

    Integer outputs of an interpolated background are blended from the keyframe backgrounds
    rounded into ``dtype`` (:func:`vidfilter.io.keyframe_store.blend`); this is within one level
    of ``from_float(interp.array(), dtype)``.
    """
    dtype = np.dtype(dtype)
    if isinstance(bg, kf.Interp):
        if supports_keyframes(dtype, bg.bg0.shape):
            return blend(from_float(bg.bg0, dtype), from_float(bg.bg1, dtype), bg.weight)
        bg = bg.array()
    return from_float(bg, dtype)


def exposure_offset(frame: np.ndarray, background: np.ndarray) -> float:
    """``median(frame - background)`` on the drift measure's grid (every 4th pixel of each axis, every
    8th at 2048², :func:`vidfilter.infer.keyframe.drift_stride`): an integer for integer frames, so a
    background shifted by it keeps the stored foreground exactly frame minus background.

    Animals cover a few % of a frame, so the median is the plate's offset: an exposure change since
    the keyframe the background came from, or a model's own bias (measured: +-2.5 grey levels after
    5 minutes of CPU training).
    """
    s = kf.drift_stride(background.shape)
    if np.issubdtype(background.dtype, np.integer):
        return int(np.median(frame[::s, ::s].astype(np.int32) - background[::s, ::s]))
    return float(np.float32(np.median(frame[::s, ::s] - background[::s, ::s])))


def match_exposure(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The background shifted by the frame's median offset against it (:func:`exposure_offset`),
    with saturation for integer backgrounds."""
    off = exposure_offset(frame, background)
    if np.issubdtype(background.dtype, np.integer):
        return shift(background, int(off))
    return background + np.float32(off)


class _Keys:
    """The keyframe backgrounds of the frames in flight, rounded into the stored dtype once each."""

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.held: dict[int, np.ndarray] = {}

    def get(self, t: int, bg: np.ndarray) -> np.ndarray:
        q = self.held.get(t)
        if q is None:
            q = self.held[t] = from_float(bg, self.dtype)
        return q

    def forget_before(self, t: int) -> None:
        for k in [k for k in self.held if k < t]:
            del self.held[k]


class FrameOutputs:
    """The arrays stored for one frame (see the module): ``outputs(t, frame, bg)`` returns
    ``{"background": ..., "foreground": ..., ["mask": ...]}``; with ``keyed`` the background is a
    :class:`~vidfilter.io.keyframe_store.KeyRecord` for a sink that stores it at keyframes."""

    def __init__(self, dtype: np.dtype, oc: Any, *, mask: bool = False, match_exposure: bool = False,
                 keyed: bool = False) -> None:
        self.dtype = np.dtype(dtype)
        self.oc = oc
        self.mask = mask
        self.match_exposure = match_exposure
        self.int_path = self.dtype in _INTEGER and oc.foreground_dtype != "float16"
        self.keyed = keyed and self.int_path
        self.mask_level = mask_level(oc.mask_threshold, self.dtype, self.int_path)
        floor = float(getattr(oc, "foreground_floor", 0.0))
        # integer foregrounds keep values >= floor: threshold "> ceil(floor) - 1"
        self.floor = int(np.ceil(floor * dtype_scale(self.dtype) / 255.0)) if self.int_path and floor > 0 else 0
        self._keys = _Keys(self.dtype)

    def _integer_background(self, t: int, bg: Any) -> tuple[np.ndarray, KeyRecord]:
        """The frame's background in the stored dtype before the exposure offset, and its record."""
        keys = self._keys
        if isinstance(bg, kf.Interp) and supports_keyframes(self.dtype, bg.bg0.shape):
            keys.forget_before(bg.t0)
            q0 = keys.get(bg.t0, bg.bg0)
            w = bg.weight if bg.bg1 is not bg.bg0 else 0.0  # one background at both keyframes (a baseline's)
            q1 = keys.get(bg.t1, bg.bg1) if w > 0 else None
            return blend(q0, q1, w), KeyRecord(None, bg.t0, bg.t1 if w > 0 else bg.t0, w, 0)
        if isinstance(bg, kf.Interp):
            bg = bg.array()
        keys.forget_before(t)
        q = keys.get(t, bg)
        return q, KeyRecord(q, t, t, 0.0, 0)

    def __call__(self, t: int, frame: np.ndarray, bg: Any) -> dict[str, Any]:
        oc = self.oc
        if not self.int_path:
            return self._float_outputs(frame, bg)
        b, record = self._integer_background(t, bg)
        if self.match_exposure:
            off = exposure_offset(frame, b)
            b = shift(b, off)
            record = record._replace(offset=off)
        stored_bg = record if self.keyed else (clamp_background(frame, b, oc.polarity) if oc.clamp else b)
        # saturating subtraction: the clamp (max or min with the frame) does not change the foreground
        fg = subtract(frame, b, oc.polarity)
        out: dict[str, Any] = {"background": stored_bg, "foreground": fg}
        if self.mask:
            out["mask"] = self._mask(frame, b, fg)
        if self.floor:
            out["foreground"] = self._floored(fg, out.get("mask"))
        return out

    def _float_outputs(self, frame: np.ndarray, bg: Any) -> dict[str, Any]:
        oc = self.oc
        f, b = to_float(frame), bg.array() if isinstance(bg, kf.Interp) else bg
        b = match_exposure(f, b) if self.match_exposure else b
        b = clamp_background(f, b, oc.polarity) if oc.clamp else b
        fg = subtract(f, b, oc.polarity)
        out: dict[str, Any] = {
            "background": from_float(b, self.dtype),
            "foreground": fg.astype(np.float16) if oc.foreground_dtype == "float16" else from_float(fg, self.dtype),
        }
        if self.mask:
            out["mask"] = self._mask(frame, out["background"], fg)
        return out

    def _mask(self, frame: np.ndarray, background: np.ndarray, fg: np.ndarray) -> np.ndarray:
        oc = self.oc
        if oc.mask_method == "object":  # whole objects for trackers (hysteresis, closing)
            bg = clamp_background(frame, background, oc.polarity) if oc.clamp and self.int_path else background
            return object_mask(frame, bg, polarity=oc.polarity.value, floor_high=oc.mask_threshold).view(np.uint8)
        return (fg > self.mask_level).view(np.uint8)  # signed: follows the polarity

    def _floored(self, fg: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """``fg`` with values below the floor set to 0, except where ``mask`` is on."""
        import cv2

        if fg.ndim == 3 and fg.shape[-1] > 4:
            kept = np.where(fg >= self.floor, fg, 0).astype(fg.dtype)
        else:
            _, kept = cv2.threshold(fg, self.floor - 1, 0, cv2.THRESH_TOZERO)
        if mask is not None and self.oc.mask_method == "object":
            np.copyto(kept, fg, where=mask.view(bool) if fg.ndim == 2 else mask.view(bool)[..., None])
        return kept


def store_frame(pool: Any, sinks: dict[str, Any], t: int, arrays: dict[str, Any]) -> None:
    """Write one frame's arrays to their sinks in parallel (Blosc and file I/O release the GIL)."""
    futures = [pool.submit(sinks[k].write, t, a) for k, a in arrays.items()]
    for fu in futures:
        fu.result()
