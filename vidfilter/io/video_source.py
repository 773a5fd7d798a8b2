"""Frame-accurate reading of video files with PyAV: :class:`VideoFrameSource`.

Frames are identified by their presentation timestamp (pts), never by ``t * fps``, so variable
frame rate and B-frames are handled. On first open the packets of the video stream are demuxed
(not decoded) to build an index of every frame's pts and keyframe flag; the index is cached as
JSON in ``$VIDFILTER_CACHE_DIR`` (default ``~/.cache/vidfilter/index``), keyed by the file's
absolute path, size and modification time. Nothing is ever written next to the input.

``src[t]`` seeks to the keyframe at or before frame ``t`` and decodes forward to it; the decoder
stays open, so reading ``t`` then ``t + 1`` continues decoding without a new seek. ``iter()``
seeks once and decodes sequentially, re-seeking only where a step jumps over a keyframe.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnreadableInputError
from vidfilter.io import container_check
from vidfilter.io.source import FrameSource, check_color

#: Bump when the cached index layout changes.
INDEX_VERSION = 1

#: Continue decoding forward (instead of seeking) when the target is at most this many frames ahead.
_FORWARD_LIMIT = 12

#: Pixel formats whose components are all grey (no chroma).
_GRAY_PREFIXES = ("gray", "ya", "y400", "monow", "monob")
#: Pixel formats with a luma plane we can take directly as grey.
_YUV_PREFIXES = ("yuv", "yuvj", "nv", "p0", "p2", "p4", "y2", "yv", "uyv", "yuyv", "uyvy", "ayuv", "xv", "vuy")


def cache_dir() -> Path:
    """Folder of cached frame indexes: ``$VIDFILTER_CACHE_DIR`` or ``~/.cache/vidfilter/index``."""
    env = os.environ.get("VIDFILTER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vidfilter" / "index"


def _cache_file(path: Path, st: os.stat_result) -> Path:
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{INDEX_VERSION}"
    name = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
    return cache_dir() / f"{name}.json"


def _av():
    import av

    return av


class VideoFrameSource(FrameSource):
    """Random-access reader for a video file (anything FFmpeg demuxes and decodes).

    Parameters
    ----------
    path : str or Path
        The video file.
    color : {"gray", "keep"}
        ``"gray"``: grey frames; YUV and grey sources give their luma plane directly, RGB sources
        are converted with BT.601 weights. ``"keep"``: grey sources stay grey, others give RGB.
    use_cache : bool
        Read and write the frame index cache (default True).

    Notes
    -----
    8-bit sources give ``uint8``; sources with more than 8 bits per component (``gray16le``,
    ``yuv420p10le``, ``rgb48le``...) give ``uint16`` scaled to the full 16-bit range by FFmpeg.
    """

    def __init__(self, path: str | os.PathLike[str], color: str = "gray", *, use_cache: bool = True) -> None:
        self.color = check_color(color)
        p = Path(os.path.expanduser(os.fspath(path)))
        self.path = str(p)
        self._use_cache = use_cache
        if not p.exists():
            raise InputNotFoundError(f"{p}: no such file or folder; check the path")
        if p.is_dir():
            raise UnreadableInputError(f"{p}: is a folder, not a video file; pass the video file itself")
        self._abspath = p.resolve()
        self._container: Any = None
        self._gen: Iterator[tuple[int, Any]] | None = None
        self._last = -1
        self._lock = threading.RLock()  # one decoder: threads (e.g. dask chunks) take turns
        av = _av()
        try:
            self._container = av.open(str(self._abspath), mode="r")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise UnreadableInputError(
                f"{p}: not a readable video ({_open_failure(self._abspath, exc)}); check the file is complete, or "
                "convert it with ffmpeg (e.g. `ffmpeg -i in -c:v ffv1 out.mkv`)"
            ) from None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------------
    def _setup(self) -> None:
        p = self.path
        if not self._container.streams.video:
            raise UnreadableInputError(f"{p}: has no video stream; pass a video file (or a folder of images)")
        self._stream = self._container.streams.video[0]
        self._strict = False
        self._configure_stream()
        self._time_base = self._stream.time_base
        self._seekable = True
        self._load_index()
        # the container's own bookkeeping: a file cut short or with a broken structure (cheap,
        # headers only; ``vidfilter run`` also checks Matroska CRCs, see vidfilter.io.guard)
        self.container_damage = container_check.check(self._abspath)
        if self.container_damage is None and self._truncated and not container_check.is_checked(self._abspath):
            # a container without a structural check (MPEG-TS, NUT...): the demuxer stopped early,
            # or found fewer frames than the header declares
            self.container_damage = container_check.ContainerDamage(
                "truncated", self._truncation_reason(), os.path.getsize(self._abspath)
            )
        if self.container_damage is not None and self.container_damage.kind == "truncated":
            self._truncated = True
        if not self._pts:
            raise UnreadableInputError(f"{p}: holds no video frames; the file is empty or truncated, re-export it")
        # every frame a keyframe (MJPEG, FFV1, all-intra H.264...): nothing is predicted, so the
        # decoder may stop at damage it detects rather than conceal it in a frame that looks whole
        self._strict = bool(getattr(self._stream.codec_context.codec, "intra_only", False)) or (
            len(self._keyframes) == len(self._pts)
        )
        self._configure_stream()
        self._pts_to_idx = {int(v): i for i, v in enumerate(self._pts)}
        self._choose_format()
        self._luts: dict[tuple[str, int], np.ndarray] = {}
        self._luma_fast = True
        # decode frame 0: proves the stream decodes and gives the true frame size
        try:
            frame0 = self._frame_at(0)
            first = self._to_array(frame0)
            if self._out_format == "gray8" and frame0.format.name in _LUMA_PLANE_FORMATS:
                # the fast luma path must match swscale exactly; fall back to swscale if not
                slow = frame0.to_ndarray(format="gray")
                self._luma_fast = bool(np.array_equal(first, slow))
                first = slow
        except UnreadableInputError:
            raise UnreadableInputError(
                f"{p}: no frame could be decoded; the file is corrupt or truncated, re-export or re-copy it"
            ) from None
        self._frame_shape = first.shape
        n = len(self._pts)
        h, w = first.shape[:2]
        if first.ndim == 3 and self.color == "keep":
            self.shape = (n, h, w, first.shape[2])
        else:
            self.shape = (n, h, w)
        self.dtype = first.dtype
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None

    def _load_index(self) -> None:
        st = os.stat(self._abspath)
        cache = _cache_file(self._abspath, st)
        data = None
        if self._use_cache:
            try:
                with open(cache, encoding="utf-8") as fh:
                    data = json.load(fh)
            except (OSError, ValueError, RecursionError):  # unreadable, not UTF-8, not JSON, nested too deep
                data = None
            if data is not None and not _index_fits(data, self._abspath, st, self._stream, self._container):
                data = None
        self.index_cached = data is not None
        if data is None:
            data = self._build_index()
            data.update(version=INDEX_VERSION, path=str(self._abspath), size=st.st_size, mtime_ns=st.st_mtime_ns)
            if self._use_cache:
                _write_json_atomic(cache, data)
        self.index_path = str(cache) if self._use_cache else None
        self._pts: list[int] = data["pts"]
        self._keyframes: list[int] = data["keyframes"]
        self._by_order: bool = data["by_order"]
        self._truncated: bool = data.get("truncated", False)
        if not self._keyframes or self._keyframes[0] != 0:
            self._keyframes = [0] + [k for k in self._keyframes if k != 0]

    def _build_index(self) -> dict[str, Any]:
        """Demux (no decoding) every packet of the video stream: pts and keyframe flag per frame."""
        av = _av()
        entries: list[tuple[int, bool]] = []
        missing_pts = False
        truncated = False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                ts = packet.pts
                if ts is None:
                    missing_pts = True
                    ts = packet.dts
                entries.append((ts if ts is not None else -1, bool(packet.is_keyframe)))
        except av.FFmpegError:
            truncated = True  # keep the packets read before the damage
        if missing_pts:
            # no usable timestamps: frames are numbered in decode order, seeking restarts at 0
            pts = list(range(len(entries)))
            keys = [0] if entries else []
            by_order = True
        else:
            order = sorted(range(len(entries)), key=lambda i: entries[i][0])
            pts = []
            keys = []
            seen: set[int] = set()
            for i in order:
                ts, key = entries[i]
                if ts in seen:
                    continue
                seen.add(ts)
                if key:
                    keys.append(len(pts))
                pts.append(ts)
            by_order = False
        declared = int(self._stream.frames or 0)  # sample count from the container header, when known
        if declared > len(entries):
            truncated = True
        self._rewind()
        return {"pts": pts, "keyframes": keys, "by_order": by_order, "truncated": truncated}

    def _choose_format(self) -> None:
        fmt = self._stream.codec_context.format
        name = fmt.name if fmt is not None else "yuv420p"
        bits = max((c.bits for c in fmt.components), default=8) if fmt is not None else 8
        deep = bits > 8
        self.pix_fmt = name
        if name.startswith(_GRAY_PREFIXES):
            self._out_format = "gray16le" if deep else "gray8"
        elif name.startswith(_YUV_PREFIXES) and self.color == "gray":
            self._out_format = "gray16le" if deep else "gray8"
        else:
            self._out_format = "rgb48le" if deep else "rgb24"

    # -- decoding --------------------------------------------------------------------------------
    def _configure_stream(self) -> None:
        """Threaded decoding; for an intra-only stream, an error at damage the decoder detects.

        Decoders conceal damage by default: an MJPEG frame with flipped bytes decodes, without an
        error or a corrupt flag, into a frame with a wrong block. ``err_detect=explode`` makes the
        decoder fail on it instead, which :meth:`_frame_at` reports as damage at that frame.
        Predicted streams (H.264, HEVC...) keep FFmpeg's default: their decoders flag a frame they
        concealed damage in as corrupt (:meth:`_checked`), and a predicted frame may legitimately
        miss its reference (a file that starts inside a group of pictures).
        """
        self._stream.thread_type = "AUTO"
        if self._strict:
            self._stream.codec_context.options = {"err_detect": "explode"}

    def _truncation_reason(self) -> str:
        declared, n = int(self._stream.frames or 0), len(self._pts)
        if declared > n:
            return f"the file is cut short: {n} of the {declared} frames its header declares are there"
        return f"the file is cut short or damaged: demuxing stopped after {n} frames"

    def _reopen(self) -> None:
        """Start again from the first byte (for streams that cannot seek, e.g. raw ``.h264``)."""
        self._gen = None
        self._container.close()
        self._container = _av().open(str(self._abspath), mode="r")
        self._stream = self._container.streams.video[0]
        self._configure_stream()

    def _rewind(self) -> None:
        self._gen = None
        self._last = -1
        try:
            self._container.seek(0)
        except _av().FFmpegError:
            self._reopen()

    def _seek(self, k: int) -> None:
        """Position the demuxer on keyframe ``k`` (a frame index) and start a fresh decode."""
        self._gen = None
        if self._by_order or not self._seekable:
            self._reopen()
        else:
            try:
                self._container.seek(int(self._pts[k]), stream=self._stream, backward=True, any_frame=False)
            except _av().FFmpegError:
                self._seekable = False  # decode from the start instead; frames are still found by pts
                self._reopen()
        self._gen = self._decode()
        self._last = -1

    def _decode(self) -> Iterator[tuple[int, Any]]:
        count = 0
        for frame in self._container.decode(self._stream):
            if self._by_order:
                idx: int | None = count
                count += 1
            else:
                ts = frame.pts
                idx = self._pts_to_idx.get(int(ts)) if ts is not None else None
            if idx is not None:
                yield idx, frame

    def _next(self) -> tuple[int, Any] | None:
        assert self._gen is not None
        try:
            return next(self._gen)
        except StopIteration:
            return None

    def _keyframe_before(self, t: int) -> int:
        i = bisect.bisect_right(self._keyframes, t) - 1
        return self._keyframes[max(i, 0)]

    def _frame_at(self, t: int) -> Any:
        """Decode up to frame ``t`` (seeking when needed) and return the ``av.VideoFrame``.

        Plan: continue the running decode when ``t`` is close ahead; else seek to the keyframe at
        or before ``t``; if that misses ``t`` (imprecise seeking in some containers, open GOPs),
        the keyframe before it; finally decode from the very start, which is always right.
        """
        av = _av()
        k = self._keyframe_before(t)
        plan: list[int | str] = []
        if self._gen is not None and self._last < t and (t - self._last <= _FORWARD_LIMIT or k <= self._last):
            plan.append("continue")
        if self._seekable and not self._by_order:
            j = bisect.bisect_left(self._keyframes, k) - 1
            plan += [k] + ([self._keyframes[j]] if j >= 0 else [])
        plan.append("restart")
        try:
            for step in plan:
                if step == "restart":
                    self._reopen()
                    self._gen = self._decode()
                    self._last = -1
                elif step != "continue":
                    self._seek(int(step))
                while True:
                    got = self._next()
                    if got is None:
                        break
                    idx, frame = got
                    self._last = idx
                    if idx == t:
                        if step == "restart" and any(isinstance(p, int) for p in plan):
                            self._seekable = False  # seeking misses frames in this file: decode from the start
                        return frame
                    if idx > t:
                        break
        except av.FFmpegError as exc:
            self._gen = None
            self._last = -1
            reason = f"frame {t} could not be decoded ({_reason(exc)})"
            raise DamagedInputError(
                f"{self.path}: {reason}; the file is damaged there", frame=t, reason=reason
            ) from None
        self._gen = None
        self._last = -1
        hint = "the file is truncated" if self._truncated else "the file is damaged there"
        raise DamagedInputError(f"{self.path}: frame {t} could not be decoded; {hint}", frame=t,
                                reason=f"frame {t} could not be decoded ({hint})")

    def _checked(self, frame: Any, t: int) -> Any:
        """``frame`` unless the decoder flagged it corrupt (it concealed damaged data in it)."""
        if frame.is_corrupt:
            reason = f"frame {t} is damaged (the decoder reported corrupt data in it)"
            raise DamagedInputError(
                f"{self.path}: {reason}; re-copy the file, or process the frames before it (`vidfilter run --salvage`)",
                frame=t, reason=reason,
            )
        return frame

    def _to_array(self, frame: Any) -> np.ndarray:
        if self._out_format == "gray8" and self._luma_fast and frame.format.name in _LUMA_PLANE_FORMATS:
            return self._luma(frame)
        fmt = "gray" if self._out_format == "gray8" else self._out_format
        return frame.to_ndarray(format=fmt)

    def _luma(self, frame: Any) -> np.ndarray:
        """8-bit grey from the luma plane through a 256-entry table taken from swscale itself.

        Same values as ``frame.to_ndarray(format="gray")`` (limited-range luma is expanded to
        0-255 the same way), several times faster for large frames.
        """
        import cv2

        key = (frame.format.name, int(frame.color_range))
        lut = self._luts.get(key)
        if lut is None:
            lut = self._luts[key] = _swscale_luma_table(*key)
        pl = frame.planes[0]
        y = np.frombuffer(pl, np.uint8).reshape(frame.height, pl.line_size)[:, : frame.width]
        return cv2.LUT(y, lut)

    def _read(self, t: int) -> np.ndarray:
        with self._lock:
            return self._to_array(self._checked(self._frame_at(t), t))

    def _iter(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        for t in range(start, stop, step):
            # _frame_at continues decoding where the previous call stopped, and seeks only when a
            # keyframe nearer than the current position exists (big steps)
            with self._lock:
                frame = self._to_array(self._checked(self._frame_at(t), t))
            yield frame

    # -- facts -----------------------------------------------------------------------------------
    def keyframe_indices(self) -> list[int] | None:
        """The frames a read can start decoding at (ascending, frame 0 first): the keyframes.

        Reaching frame ``t`` decodes from the keyframe at or before it up to ``t``, so the frames
        just after a keyframe are the cheap ones (:func:`vidfilter.io.prefetch.cheap_substitutes`).
        None where reads cannot start there: frames numbered in decode order (no timestamps) or a
        file that cannot seek, where a read decodes from the start of the file.
        """
        if self._by_order or not self._seekable:
            return None
        return list(self._keyframes)

    def first_dependent(self, t: int) -> int:
        """The first frame (presentation order) that may depend on the data of frame ``t``.

        A damaged frame spoils the frames decoded after it that predict from it, and B-frames are
        decoded after the frame they reference but shown before it. So this is the smallest frame
        index among the packets from frame ``t``'s on, in decode order, up to the next keyframe
        (frames after that keyframe start a new group). Used by ``--salvage``: the frames before
        it are untouched by the damage. Demuxes (does not decode) from the start of the file.
        """
        if self._by_order:
            return t
        av = _av()
        lowest, seen = t, False
        try:
            with av.open(str(self._abspath), mode="r") as c:
                for packet in c.demux(c.streams.video[0]):
                    ts = packet.pts if packet.pts is not None else packet.dts
                    idx = self._pts_to_idx.get(int(ts)) if ts is not None else None
                    if idx is None:
                        continue
                    if seen and packet.is_keyframe:
                        break
                    if idx == t:
                        seen = True
                    if seen:
                        lowest = min(lowest, idx)
        except av.FFmpegError:
            pass  # the damage itself may stop demuxing: what was seen stands
        return lowest

    def timestamps(self, absolute: bool = False) -> np.ndarray:
        """Presentation time of every frame in seconds (from the index; NaN when unknown), from the
        first frame, or with ``absolute=True`` on the container's clock."""
        if self._by_order:
            return np.arange(len(self)) / self.fps if self.fps else np.full(len(self), np.nan)
        tb = float(self._time_base) if self._time_base else np.nan
        return (np.asarray(self._pts, dtype=np.float64) - (0 if absolute else self._pts[0])) * tb

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        cc = self._stream.codec_context
        d.update(
            codec=cc.name,
            pixel_format=self.pix_fmt,
            bit_rate=self._stream.bit_rate or self._container.bit_rate or None,
            size_bytes=os.path.getsize(self._abspath),
            keyframes=len(self._keyframes),
            index_cache=self.index_path,
            truncated=self._truncated,
            damage=self.container_damage.reason if self.container_damage is not None else None,
        )
        return d

    def close(self) -> None:
        self._gen = None
        c, self._container = getattr(self, "_container", None), None
        if c is not None:
            c.close()

    def reopen(self) -> VideoFrameSource:
        """An independent decoder on the same file: seeking it never disturbs this one's position."""
        return VideoFrameSource(self.path, self.color, use_cache=self._use_cache)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "color": self.color, "use_cache": self._use_cache}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["color"], use_cache=state["use_cache"])  # type: ignore[misc]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


#: 8-bit planar formats whose first plane is the luma (Y) plane.
_LUMA_PLANE_FORMATS = frozenset(
    "yuv420p yuvj420p yuv422p yuvj422p yuv444p yuvj444p yuv440p yuvj440p yuv411p yuvj411p yuv410p "
    "nv12 nv21 nv16 nv24 nv42 yuva420p yuva422p yuva444p".split()
)


def _swscale_luma_table(pix_fmt: str, color_range: int) -> np.ndarray:
    """The Y -> grey mapping swscale applies for ``pix_fmt`` at ``color_range``, as a uint8 table."""
    av = _av()
    w, h = 256, 2
    frame = av.VideoFrame(w, h, pix_fmt)
    frame.color_range = color_range
    for i, plane in enumerate(frame.planes):
        if i == 0:
            row = np.zeros(plane.line_size, np.uint8)
            row[:w] = np.arange(256, dtype=np.uint8)
            plane.update(np.tile(row, plane.buffer_size // plane.line_size).tobytes())
        else:
            plane.update(bytes([128]) * plane.buffer_size)
    return np.ascontiguousarray(frame.to_ndarray(format="gray")[0, :w])


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())[:120]


def _open_failure(path: Path, exc: BaseException) -> str:
    """Why FFmpeg could not open ``path``: an empty file, the container check's finding, or FFmpeg's words."""
    try:
        if os.path.getsize(path) == 0:
            return "the file is empty: 0 bytes"
    except OSError:
        pass
    damage = container_check.check(path)
    return damage.reason if damage is not None else _reason(exc)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _index_fits(data: Any, abspath: Path, st: os.stat_result, stream: Any, container: Any) -> bool:
    """Whether a cached frame index may be used for this file; anything doubtful is rebuilt.

    The cache folder is not trusted: the index must have the layout :meth:`VideoFrameSource._build_index`
    writes (with the file's path, size and modification time), strictly increasing timestamps,
    keyframes among the frames, and a frame count and last timestamp that agree with the
    container's header (its declared frame count, or its duration times its frame rate). An index
    of a truncated file is never reused, since its length cannot be checked against the header.
    A forged index that keeps every one of these (say, one frame dropped in the middle of a
    variable-rate stream) is only caught by a full demux, which the cache exists to avoid.

    Parameters
    ----------
    data
        The parsed JSON of the cache file.
    abspath, st
        The video's resolved path and its ``os.stat`` result.
    stream, container
        The open PyAV video stream and container.

    Returns
    -------
    bool
        ``True`` if the index describes this file as a fresh demux would.
    """
    if not isinstance(data, dict):
        return False
    if (data.get("version") != INDEX_VERSION or data.get("path") != str(abspath) or data.get("size") != st.st_size
            or data.get("mtime_ns") != st.st_mtime_ns or data.get("truncated") is not False):
        return False
    pts, keys, by_order = data.get("pts"), data.get("keyframes"), data.get("by_order")
    if not (isinstance(pts, list) and pts and isinstance(keys, list) and isinstance(by_order, bool)):
        return False
    if not all(_is_int(v) for v in pts) or not all(_is_int(k) for k in keys):
        return False
    n = len(pts)
    if by_order:
        if pts != list(range(n)):
            return False
    elif any(b <= a for a, b in zip(pts, pts[1:])):
        return False
    if any(not 0 <= k < n for k in keys) or any(b <= a for a, b in zip(keys, keys[1:])):
        return False
    declared = int(stream.frames or 0)
    if declared and n != declared:
        return False
    duration = container.duration  # microseconds, when the container knows it
    if not by_order and duration and n >= 2 and stream.time_base:
        tb = float(stream.time_base)
        step = float(np.median(np.diff(pts))) * tb
        span = (pts[-1] - pts[0]) * tb  # first to last frame; the last frame lasts about one step more
        gap = duration / 1e6 - span
        if not -0.5 * step - 1e-3 <= gap <= 1.75 * step + 1e-3:
            return False
        rate = stream.average_rate or stream.guessed_rate
        if not declared and rate:  # no count in the header: the duration at the frame rate stands in for it
            expected = duration / 1e6 * float(rate)
            if abs(n - expected) > max(1.5, 0.01 * expected):
                return False
    return True


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write the index cache; a cache we cannot write is not an error (we just rebuild next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)  # type: ignore[possibly-undefined]
        except (OSError, NameError):
            pass
