"""Video outputs: lossless FFV1 (.mkv) and side-by-side H.264 previews (.mp4), plus a PNG panel.

- :class:`FFV1Sink` stores frames bit-exactly: uint8 grey as ``gray``, uint16 grey as ``gray16le``,
  uint8 RGB as ``bgr0`` and uint16 RGB as ``gbrp16le`` (all lossless in FFV1, verified by tests).
- :class:`PreviewComposer` writes a small H.264 MP4 (``libx264``, ``yuv420p``, CRF 23; ``mpeg4``
  where the PyAV build lacks libx264) with labelled panels side by side, each contrast-stretched
  with a range fixed from the first frames so the preview does not flicker.
- :func:`write_preview_png` writes the same panel layout for a single time point.

Every file is written under ``PATH.partial`` and renamed onto ``PATH`` when closed. Videos carry
the container metadata ``comment = "vidfilter <version>"`` and the PNG a text chunk
``Software = "vidfilter <version>"``, so :mod:`vidfilter.io.ownership` recognises them (previews
are fragmented MP4 with the metadata up front, so a killed ``.partial`` carries it too).

Writes go through :class:`GuardedFile`: a full disk, a file-size limit or a read-only file system
ends the write with one :class:`~vidfilter.errors.VidfilterError` (:func:`output_error`) and the
partial file is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from vidfilter.errors import (DiskFullError, FileTooLargeError, OutputExistsError, OutputNotWritableError,
    UnsupportedInputError, VidfilterError)
from vidfilter.io.ownership import png_with_text
from vidfilter.io.sink import FrameSink, OutputWriter, commit_path, discard_partial, partial_path

__all__ = ["FFV1Sink", "GuardedFile", "PreviewComposer", "compose_panels", "output_error", "panel_contrast",
    "raise_output_error", "signature", "write_preview_png"]

logger = logging.getLogger(__name__)

#: Percentiles used for auto contrast.
CONTRAST_PERCENTILES = (1.0, 99.0)
#: Frames buffered by :class:`PreviewComposer` to fix the contrast range.
CALIBRATION_FRAMES = 8
#: Pixels between two panels.
PANEL_GAP = 4
#: H.264 constant rate factor of previews.
PREVIEW_CRF = 23
#: MP4 muxer flags of previews: fragments with the header (and its metadata) written first, so a
#: killed partial preview still opens and shows it was written by vidfilter.
PREVIEW_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


def signature() -> str:
    """``"vidfilter <version>"``: the mark left in the metadata of the videos and PNGs written."""
    from vidfilter import __version__

    return f"vidfilter {__version__}"


# ---------------------------------------------------------------------------------------------
# Write errors
# ---------------------------------------------------------------------------------------------
def _file_size_limit() -> int | None:
    """The soft ``RLIMIT_FSIZE`` of this process in bytes, ``None`` when unlimited."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (OSError, ValueError):  # pragma: no cover - not on this platform
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def output_error(exc: BaseException, path: str | os.PathLike[str]) -> BaseException:
    """The error to raise for ``exc``, raised while writing the output ``path``.

    ``ENOSPC``/``EDQUOT`` become :class:`~vidfilter.errors.DiskFullError`, ``EFBIG``
    :class:`~vidfilter.errors.FileTooLargeError`, ``EROFS``/``EACCES``/``EPERM``
    :class:`~vidfilter.errors.OutputNotWritableError`, each a one-line message that names
    ``path`` and says what to do, with ``errno`` kept. Anything else (a
    :class:`~vidfilter.errors.VidfilterError` included) is returned unchanged.
    """
    if isinstance(exc, VidfilterError) or not isinstance(exc, OSError):
        return exc
    why = " ".join(str(exc.strerror or exc).split())
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        err: OSError = DiskFullError(
            f"{path}: the disk is full ({why}); free space or choose another --out, then rerun the same command"
        )
    elif exc.errno == errno.EFBIG:
        limit = _file_size_limit()
        where = (f"ulimit -f is {limit // 1024} KiB" if limit is not None
                 else f"{why}; FAT32 stops at 4 GiB")
        err = FileTooLargeError(
            f"{path}: the file is too large for this file system or for `ulimit -f` ({where}); choose another "
            "--out on a file system without that limit, raise `ulimit -f`, or choose a format that splits into "
            "small files (zarr, png or tiff)"
        )
    elif exc.errno == errno.EROFS:
        err = OutputNotWritableError(f"{path}: cannot be written, the file system is read-only; choose another --out")
    elif exc.errno in (errno.EACCES, errno.EPERM):
        err = OutputNotWritableError(f"{path}: cannot be written ({why}); choose another --out")
    else:
        return exc
    err.errno = exc.errno  # str(err) stays the message
    return err


def raise_output_error(exc: BaseException, path: str | os.PathLike[str]) -> NoReturn:
    """Raise :func:`output_error` of ``exc`` (chained to it), or ``exc`` itself when it stays."""
    err = output_error(exc, path)
    if err is exc:
        raise exc
    raise err from exc


class GuardedFile:
    """A binary file that libraries writing through Python file objects (h5py, PyAV) can never
    see fail.

    HDF5 left in an error state by a failed write crashes the interpreter when its objects are
    freed, and FFmpeg's fragmented MP4 muxer drops a write error silently. So the first
    ``OSError`` of a write, truncate, flush or sync is kept in :attr:`error`; that write and every
    later one are held in memory instead (reads see them), the library finishes and closes
    normally, and the owner calls :meth:`check` after each step, which raises the error as
    :func:`output_error` translates it. What is held is at most the writes of one step plus what
    the library writes when it closes (HDF5: its chunk cache, 1 MiB per dataset by default).

    Parameters
    ----------
    path : path-like
        File created (truncated) for reading and writing.
    name : path-like, optional
        The output named in error messages (the final path of a ``.partial`` file).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.name = Path(name) if name is not None else self.path
        self.raw = open(self.path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self.error: OSError | None = None
        self._held: list[tuple[int, bytes]] = []
        self._pos = 0

    # -- the file-object protocol ---------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _fail(self, exc: OSError, pos: int) -> None:
        self.error = exc
        self._pos = pos
        logger.debug("writing %s failed (%s); later writes are held in memory", self.path, exc)

    def _end(self) -> int:
        end = os.fstat(self.raw.fileno()).st_size
        for off, data in self._held:
            end = max(end, off + len(data))
        return end

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self.error is None:
            return self.raw.seek(offset, whence)
        base = 0 if whence == os.SEEK_SET else self._pos if whence == os.SEEK_CUR else self._end()
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self.raw.tell() if self.error is None else self._pos

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if self.error is None:
            start = self.raw.tell()
            try:
                done = 0
                while done < n:
                    w = self.raw.write(view[done:])
                    if not w:
                        raise OSError(errno.EIO, "the write made no progress")
                    done += w
                return n
            except OSError as e:
                self._fail(e, start)
        self._held.append((self._pos, bytes(view)))
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        if self.error is None:
            data = self.raw.read(size)
            if size is not None and 0 <= size and len(data) < size:  # past the end reads as zeros
                data += bytes(size - len(data))
            return data
        if size is None or size < 0:
            size = max(0, self._end() - self._pos)
        self.raw.seek(self._pos)
        buf = bytearray(self.raw.read(size) or b"")
        buf.extend(bytes(size - len(buf)))
        for off, data in self._held:
            lo, hi = max(off, self._pos), min(off + len(data), self._pos + size)
            if lo < hi:
                buf[lo - self._pos : hi - self._pos] = data[lo - off : hi - off]
        self._pos += size
        return bytes(buf)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.raw.truncate(size)
            except OSError as e:
                self._fail(e, self.raw.tell())
        return self._pos if size is None else size

    def flush(self) -> None:
        if self.error is None:
            try:
                self.raw.flush()
            except OSError as e:
                self._fail(e, self.raw.tell())

    # -- the owner's side -----------------------------------------------------------------------
    def sync(self) -> None:
        """``fsync`` what was written (a failure is kept like a failed write)."""
        if self.error is None:
            try:
                os.fsync(self.raw.fileno())
            except OSError as e:
                self._fail(e, self.raw.tell())

    def check(self) -> None:
        """Raise the first failure (translated by :func:`output_error`), if any."""
        if self.error is not None:
            err = output_error(self.error, self.name)
            if err is self.error:
                raise err
            raise err from self.error

    def close(self) -> None:
        """Close the file (a failure of the close, as NFS reports a full disk, is kept)."""
        if self.raw.closed:
            return
        try:
            self.raw.close()
        except OSError as e:
            if self.error is None:
                self.error = e

    def discard(self) -> None:
        """Close and delete the file; never raises."""
        with contextlib.suppress(OSError):
            self.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def _rate(fps: float | Fraction) -> Fraction:
    if fps is None or float(fps) <= 0:
        raise UnsupportedInputError(f"fps must be a positive number, got {fps!r}")
    return fps if isinstance(fps, Fraction) else Fraction(float(fps)).limit_denominator(1001000)


def _check_new_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing ``path`` (unless ``overwrite``), create its folder, clear a leftover
    ``PATH.partial`` of vidfilter's."""
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it or choose another --out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        discard_partial(partial_path(path))
    except VidfilterError:  # e.g. a leftover that vidfilter did not write: its own one-line message
        raise
    except OSError as e:
        err = output_error(e, path)
        if err is e:
            raise OutputNotWritableError(f"cannot create folder {path.parent} ({e.strerror}); choose another --out") from e
        raise err from e


def _open_guarded(path: Path, partial: Path) -> GuardedFile:
    try:
        return GuardedFile(partial, name=path)
    except OSError as e:
        raise_output_error(e, path)


def _open_video(
    path: Path, overwrite: bool, fmt: str, codec: str, rate: Fraction, size: tuple[int, ...], pix_fmt: str, *,
    muxer_options: dict[str, str] | None = None, stream_options: dict[str, str] | None = None,
    bit_rate: int | None = None,
) -> tuple[GuardedFile, Any, Any]:
    """``(file, container, stream)`` of the new video ``path``, written to ``PATH.partial``: a
    ``fmt`` container carrying vidfilter's comment, holding one ``codec`` stream of ``size``
    ``(H, W)``. A failure leaves nothing behind."""
    import av

    _check_new_output(path, overwrite)
    io = _open_guarded(path, partial_path(path))
    try:
        container = av.open(io, mode="w", format=fmt, options=muxer_options)
    except BaseException:
        io.discard()
        raise
    try:
        container.metadata["comment"] = signature()
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size[1], size[0]
        stream.pix_fmt = pix_fmt
        if stream_options is not None:
            stream.options = stream_options
        if bit_rate is not None:
            stream.bit_rate = bit_rate
    except BaseException:
        _close_container(container, io)
        raise
    return io, container, stream


def _close_container(container: Any, io: GuardedFile | None) -> None:
    """Close a PyAV container after a failure, without raising."""
    with contextlib.suppress(Exception):
        container.close()
    if io is not None:
        io.discard()


def _encode_frame(stream: Any, container: Any, io: GuardedFile, vf: Any, pts: int, rate: Any) -> None:
    """Encode the PyAV frame ``vf`` at ``pts`` (time base ``1 / rate``), mux its packets and raise
    the error of any failed write."""
    vf.pts = pts
    vf.time_base = 1 / rate
    for packet in stream.encode(vf):
        container.mux(packet)
    io.check()


def _finish_container(stream: Any, container: Any, io: GuardedFile) -> None:
    """Flush the encoder, close the container, fsync and close the file; raise the error of any
    failed write."""
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    io.sync()
    io.close()
    io.check()


# ---------------------------------------------------------------------------------------------
# FFV1
# ---------------------------------------------------------------------------------------------
#: (dtype, channels) -> (ndarray format for PyAV, FFV1 pixel format)
_FFV1_FORMATS: dict[tuple[str, int], tuple[str, str]] = {
    ("uint8", 1): ("gray", "gray"),
    ("uint16", 1): ("gray16le", "gray16le"),
    ("uint8", 3): ("rgb24", "bgr0"),
    ("uint16", 3): ("rgb48le", "gbrp16le"),
}


class FFV1Sink(FrameSink):
    """Lossless FFV1 video in Matroska (``.mkv``), bit-exact for uint8/uint16 grey and RGB frames.

    Parameters
    ----------
    path : path-like
        Output ``.mkv`` file; written as ``path.partial`` and renamed by :meth:`close`.
    frame_shape : tuple of int
        ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB).
    dtype : dtype-like
        ``uint8`` or ``uint16``.
    fps : float
        Frame rate stored in the container.
    overwrite : bool
        Replace an existing ``path`` at close.

    Notes
    -----
    Read back with PyAV: ``frame.to_ndarray(format="gray")`` / ``"gray16le"`` / ``"rgb24"`` /
    ``"rgb48le"``. Not resumable: an aborted write deletes its partial file.
    """

    def __init__(
        self, path: str | os.PathLike[str], frame_shape: tuple[int, ...], dtype: Any, fps: float = 25, *,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.partial = partial_path(self.path)
        self.overwrite = overwrite
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        channels = self.frame_shape[2] if len(self.frame_shape) == 3 else 1
        key = (str(self.dtype), channels)
        if len(self.frame_shape) not in (2, 3) or key not in _FFV1_FORMATS:
            raise UnsupportedInputError(
                f"FFV1 output takes uint8/uint16 frames of shape (H, W) or (H, W, 3), got {self.dtype} "
                f"{self.frame_shape}; write OME-Zarr (--format zarr) for float or other data"
            )
        self._in_fmt, pix_fmt = _FFV1_FORMATS[key]
        self.rate = _rate(fps)
        self._io, self._container, self._stream = _open_video(
            self.path, overwrite, "matroska", "ffv1", self.rate, self.frame_shape[:2], pix_fmt,
            stream_options={"level": "3", "slicecrc": "1"},
        )
        self._pix_fmt = pix_fmt
        self._frames_written = 0
        self._finished = False

    def _append(self, frame: np.ndarray) -> None:
        import av

        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self._in_fmt)
        if self._in_fmt != self._pix_fmt:
            vf = vf.reformat(format=self._pix_fmt)
        _encode_frame(self._stream, self._container, self._io, vf, self._frames_written, self.rate)

    def _finalise(self) -> None:
        _finish_container(self._stream, self._container, self._io)
        try:
            commit_path(self.partial, self.path, overwrite=self.overwrite)
        except OSError as e:
            raise_output_error(e, self.path)

    def _abort(self) -> None:
        _close_container(self._container, self._io)


# ---------------------------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------------------------
def _is_symmetric_label(label: str) -> bool:
    return "foreground" in label.lower()


def panel_contrast(samples: Sequence[np.ndarray], *, symmetric: bool = False) -> tuple[float, float]:
    """Display range ``(lo, hi)`` from the 1st-99th percentiles of ``samples``.

    With ``symmetric`` the range is ``(-m, m)``, ``m`` the larger magnitude, so zero is mid-grey
    (used for foreground panels that hold signed differences). Non-finite values are ignored.
    """
    vals = np.concatenate([np.asarray(s, dtype=np.float32).ravel() for s in samples])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(vals, CONTRAST_PERCENTILES))
    if symmetric:
        # foreground: most pixels are ~0, so percentiles would blow compression noise up to full
        # contrast; use the tail (99.9th) and at least 10 % of the data's full scale
        dtype = np.asarray(samples[0]).dtype
        floor = 0.1 * (np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0)
        m = max(float(np.percentile(np.abs(vals), 99.9)), floor)
        lo, hi = (0.0, m) if vals.min() >= 0 else (-m, m)
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def _to_rgb8(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    x = np.asarray(frame, dtype=np.float32)
    x = np.nan_to_num(x, nan=lo, posinf=hi, neginf=lo)
    x = np.clip((x - lo) * (255.0 / (hi - lo)), 0.0, 255.0)
    x = np.rint(x).astype(np.uint8)
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    elif x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] > 3:
        x = x[..., :3]
    return x


def _layout(frame_shape: tuple[int, ...], n: int, max_width: int) -> tuple[int, int, int, int]:
    """Panel (h, w) after scaling, and the even canvas (H, W)."""
    h, w = int(frame_shape[0]), int(frame_shape[1])
    gaps = PANEL_GAP * (n - 1)
    scale = min(1.0, (max_width - gaps) / float(n * w)) if max_width else 1.0
    pw = max(2, int(w * scale))
    while pw > 2 and max_width and n * pw + gaps + ((n * pw + gaps) % 2) > max_width:
        pw -= 1
    ph = max(2, int(round(h * pw / w)))
    cw = n * pw + gaps
    return ph, pw, ph + (ph % 2), cw + (cw % 2)


def _draw_label(img: np.ndarray, text: str) -> None:
    import cv2

    h = img.shape[0]
    scale = float(np.clip(h / 400.0, 0.35, 1.5))
    thick = max(1, int(round(scale * 2)))
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = (max(2, int(4 * scale)), min(h - 2, th + int(6 * scale)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def compose_panels(
    frames: Sequence[np.ndarray],
    labels: Sequence[str],
    ranges: Sequence[tuple[float, float]],
    *,
    max_width: int = 1920,
) -> np.ndarray:
    """Side-by-side RGB uint8 image of ``frames`` (contrast ``ranges``), labelled, even-sized."""
    import cv2

    ph, pw, ch, cw = _layout(frames[0].shape, len(frames), max_width)
    canvas = np.full((ch, cw, 3), 32, dtype=np.uint8)
    for i, (frame, label, (lo, hi)) in enumerate(zip(frames, labels, ranges)):
        if tuple(frame.shape[:2]) != tuple(frames[0].shape[:2]):
            raise UnsupportedInputError(
                f"panel {label!r} has size {frame.shape[:2]}, the first panel {frames[0].shape[:2]}; panels must match"
            )
        rgb = _to_rgb8(frame, lo, hi)
        if rgb.shape[:2] != (ph, pw):
            interp = cv2.INTER_AREA if pw < rgb.shape[1] else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, (pw, ph), interpolation=interp)
        rgb = np.ascontiguousarray(rgb)
        _draw_label(rgb, label)
        x0 = i * (pw + PANEL_GAP)
        canvas[:ph, x0 : x0 + pw] = rgb
    return canvas


def write_preview_png(
    path: str | os.PathLike[str],
    panels: Mapping[str, np.ndarray],
    *,
    symmetric: Sequence[str] | None = None,
    max_width: int = 1920,
    overwrite: bool = True,
) -> Path:
    """Write one PNG with the labelled ``panels`` side by side (each auto-contrasted), atomically.

    ``symmetric`` names the panels shown symmetric around zero (default: labels containing
    "foreground"). The file is written as ``PATH.partial`` and renamed; it carries a ``tEXt``
    chunk ``Software = "vidfilter <version>"``. An existing ``path`` is replaced only with
    ``overwrite`` (and only one vidfilter wrote).
    """
    import cv2

    if not panels:
        raise ValueError("write_preview_png needs at least one panel")
    labels = list(panels)
    frames = [np.asarray(panels[k]) for k in labels]
    sym = set(symmetric) if symmetric is not None else {k for k in labels if _is_symmetric_label(k)}
    ranges = [panel_contrast([f], symmetric=k in sym) for k, f in zip(labels, frames)]
    rgb = compose_panels(frames, labels, ranges, max_width=max_width)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 failure
        raise OutputNotWritableError(f"could not encode PNG for {path}")
    data = png_with_text(buf.tobytes(), "Software", signature())
    path = Path(path).expanduser().absolute()
    _check_new_output(path, overwrite)
    io = _open_guarded(path, partial_path(path))
    try:
        io.write(data)
        io.sync()
        io.close()
        io.check()
        commit_path(io.path, path, overwrite=overwrite)
    except BaseException as e:
        io.discard()
        raise_output_error(e, path)
    return path


class PreviewComposer(OutputWriter):
    """Write an H.264 MP4 with labelled, auto-contrasted panels side by side.

    Parameters
    ----------
    path : path-like
        Output ``.mp4``; written as ``path.partial`` and renamed by :meth:`close`.
    panels : list of str
        Panel labels, left to right (e.g. ``["input", "background", "foreground"]``).
    frame_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)`` of every panel frame.
    fps : float
        Frame rate.
    max_width : int
        The composed video is downscaled to at most this width.
    symmetric : list of str, optional
        Panels displayed symmetric around zero; default: labels containing "foreground".
    calibration_frames : int
        Number of first frames whose 1-99th percentiles fix each panel's range.
    overwrite : bool
        Replace an existing ``path`` at close.
    """

    def __init__(
        self, path: str | os.PathLike[str], panels: Sequence[str], frame_shape: tuple[int, ...], fps: float,
        max_width: int = 1920, *, symmetric: Sequence[str] | None = None,
        calibration_frames: int = CALIBRATION_FRAMES, overwrite: bool = False,
    ) -> None:
        import av

        if not panels:
            raise ValueError("PreviewComposer needs at least one panel label")
        self.path = Path(path).expanduser().absolute()
        self.partial = partial_path(self.path)
        self.panels = list(panels)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.rate = _rate(fps)
        self.max_width = int(max_width)
        self.overwrite = overwrite
        self.symmetric = set(symmetric) if symmetric is not None else {p for p in self.panels if _is_symmetric_label(p)}
        self.calibration_frames = max(1, int(calibration_frames))
        self._buffer: list[tuple[np.ndarray, ...]] = []
        self._ranges: list[tuple[float, float]] | None = None
        self.frames_written = 0
        self._finished = False
        _, _, self.height, self.width = _layout(self.frame_shape, len(self.panels), self.max_width)
        self.codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        if self.codec == "libx264":
            tuning: dict[str, Any] = {"stream_options": {"crf": str(PREVIEW_CRF), "preset": "veryfast"}}
        else:
            logger.info("libx264 is not in this PyAV build; writing the preview with mpeg4")
            tuning = {"bit_rate": max(500_000, self.width * self.height * 4)}
        self._io, self._container, self._stream = _open_video(
            self.path, overwrite, "mp4", self.codec, self.rate, (self.height, self.width), "yuv420p",
            muxer_options={"movflags": PREVIEW_MOVFLAGS}, **tuning,
        )

    def append(self, *panel_frames: np.ndarray) -> None:
        """Add one time point: one frame per panel, in the order of ``panels``."""
        if self._finished:
            raise ValueError("PreviewComposer is closed")
        if len(panel_frames) != len(self.panels):
            raise ValueError(f"append() needs {len(self.panels)} frames ({', '.join(self.panels)}), got {len(panel_frames)}")
        frames = tuple(np.asarray(f) for f in panel_frames)
        for label, f in zip(self.panels, frames):
            if tuple(f.shape[:2]) != tuple(self.frame_shape[:2]):
                raise UnsupportedInputError(
                    f"panel {label!r} frame has size {f.shape[:2]}, expected {self.frame_shape[:2]}"
                )
        if self._ranges is None:
            self._buffer.append(tuple(f.copy() for f in frames))
            if len(self._buffer) >= self.calibration_frames:
                self._flush_buffer()
        else:
            self._encode(frames)

    def _flush_buffer(self) -> None:
        if self._ranges is None:
            if not self._buffer:
                return
            self._ranges = [
                panel_contrast([b[i] for b in self._buffer], symmetric=label in self.symmetric)
                for i, label in enumerate(self.panels)
            ]
        buffered, self._buffer = self._buffer, []
        for frames in buffered:
            self._encode(frames)

    def _encode(self, frames: Sequence[np.ndarray]) -> None:
        import av

        assert self._ranges is not None
        rgb = compose_panels(frames, self.panels, self._ranges, max_width=self.max_width)
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        _encode_frame(self._stream, self._container, self._io, vf, self.frames_written, self.rate)
        self.frames_written += 1

    def close(self) -> None:
        """Encode what is buffered, finish the file and rename it onto ``path``."""
        if self._finished:
            return
        try:
            self._flush_buffer()
            _finish_container(self._stream, self._container, self._io)
            self._finished = True
            commit_path(self.partial, self.path, overwrite=self.overwrite)
        except BaseException as e:
            self._finished = True
            _close_container(self._container, self._io)
            raise_output_error(e, self.path)

    commit = close

    def abort(self) -> None:
        """Stop and delete the partial file."""
        if self._finished:
            return
        self._finished = True
        self._buffer = []
        _close_container(self._container, self._io)
