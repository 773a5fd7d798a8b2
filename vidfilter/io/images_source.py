"""Still-image inputs: a folder (or glob) of PNG/TIFF/JPEG files, and multi-page / OME-TIFF files.

- :class:`ImageSequenceFrameSource`: one file per frame, in natural order ("frame2" before
  "frame10"). The first file sets the frame shape and dtype; every other file is checked when it is
  read, with an error naming the file that differs.
- :class:`TiffFrameSource`: one multi-page TIFF (ImageJ, OME-TIFF, plain). Reads page by page
  (never the whole stack); leading axes other than channels are flattened into time.

Damage is reported, never concealed: a PNG's chunk CRCs are checked and a PNG or JPEG cut short
is refused before OpenCV decodes it (OpenCV says only "no image" for such a file, and libpng
prints its complaint about damaged data straight to stderr), and a multi-page TIFF whose pages
need more bytes than the file holds, or whose page chain tifffile cannot follow, carries
``container_damage`` for the run's input guard. An image that cannot be read raises
:class:`~vidfilter.errors.DamagedInputError` naming the file and its frame, so ``vidfilter run
--salvage`` can process the frames before it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.array_source import check_layout, policy_shape, resolve_dtype, source_frame
from vidfilter.io.container_check import ContainerDamage
from vidfilter.io.source import FrameSource, check_color

#: File suffixes read as single images.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_TIFF = (".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers numerically: ``frame2`` < ``frame10``."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_images(folder_or_glob: str | os.PathLike[str]) -> list[Path]:
    """Image files of a folder or matching a glob pattern, in natural order."""
    spec = os.path.expanduser(os.fspath(folder_or_glob))
    if _GLOB_CHARS.search(spec) and not os.path.exists(spec):
        files = [Path(f) for f in glob.glob(spec)]
    else:
        p = Path(spec)
        if p.is_dir():
            files = [f for f in p.iterdir() if f.is_file()]
        else:
            files = [p]
    files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")]
    return sorted(files, key=lambda f: natural_key(f.name))


class _TifffileErrors(logging.Filter):
    """Holds back tifffile's error records while the current thread reads inside :func:`_tifffile_errors`.

    tifffile logs what it finds wrong with a file (a page offset past the end, a broken page
    chain) instead of raising; left alone, those records reach stderr next to the one-line error.
    """

    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        errors = getattr(self.local, "errors", None)
        if errors is not None and record.levelno >= logging.ERROR:
            errors.append(" ".join(record.getMessage().split())[:120])
            return False
        return True


_TIFF_LOG = _TifffileErrors()
logging.getLogger("tifffile").addFilter(_TIFF_LOG)


@contextlib.contextmanager
def _tifffile_errors() -> Iterator[list[str]]:
    """Collect (and keep off stderr) the errors tifffile logs in this thread inside the block."""
    outer = getattr(_TIFF_LOG.local, "errors", None)
    _TIFF_LOG.local.errors = errors = []
    try:
        yield errors
    finally:
        _TIFF_LOG.local.errors = outer


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_damage(data: memoryview) -> str | None:
    """What is wrong with the chunks of a PNG file's bytes (cut short, CRC mismatch), or ``None``."""
    n, pos = len(data), len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > n:
            return f"the file is cut short: {n} bytes, it ends before its IEND chunk"
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = bytes(data[pos + 4 : pos + 8]).decode("latin-1")
        end = pos + 12 + length
        if end > n:
            return f"the file is cut short: {n} of the {end} bytes its {kind} chunk needs"
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"CRC mismatch in its {kind} chunk at byte {pos}: its data is damaged"
        if kind == "IEND":
            return None
        pos = end


def _jpeg_damage(data: memoryview) -> str | None:
    """``"cut short"`` when a JPEG file's last scan has no end-of-image marker after it, else ``None``.

    Entropy-coded data never holds a marker (an ``FF`` byte in it is followed by ``00`` or a
    restart code), so an intact file has ``FF D9`` after its last start-of-scan ``FF DA``.
    """
    raw = bytes(data)
    sos = raw.rfind(b"\xff\xda")
    if sos < 0 or raw.find(b"\xff\xd9", sos) < 0:
        return f"the file is cut short: {len(raw)} bytes, no end-of-image marker after its last scan"
    return None


def read_image(path: Path) -> np.ndarray:
    """Read one PNG/JPEG (OpenCV, unchanged depth, RGB order) or TIFF (tifffile, first page).

    Raises
    ------
    UnreadableInputError
        The file is not an image, or is damaged (cut short, a PNG chunk CRC mismatch, a TIFF
        tifffile reports errors in).
    """
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            with _tifffile_errors() as errors:
                img = tifffile.imread(path, key=0)
            if errors:
                raise UnreadableInputError(f"{path}: the TIFF is damaged ({errors[0]}); re-copy the file from its source")
            return img
        import cv2

        data = np.fromfile(path, dtype=np.uint8)  # works for any path encoding
        if not data.size:
            raise UnreadableInputError(f"{path}: the file is empty (0 bytes); re-export the frame")
        raw = memoryview(data)
        damage = _png_damage(raw) if raw[:8] == _PNG_SIGNATURE else _jpeg_damage(raw) if raw[:2] == b"\xff\xd8" else None
        if damage is not None:
            raise UnreadableInputError(f"{path}: {damage}; re-copy the file from its source")
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except UnreadableInputError:
        raise
    except Exception as exc:  # tifffile/OpenCV raise many types for bad files
        raise UnreadableInputError(f"{path}: cannot be read as an image ({_short(exc)}); check the file") from None
    if img is None:
        raise UnreadableInputError(f"{path}: cannot be read as an image; check the file is a valid PNG/JPEG")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = img[..., ::-1]
        elif img.shape[2] == 4:
            img = img[..., [2, 1, 0, 3]]
        img = np.ascontiguousarray(img)
    return img


class ImageSequenceFrameSource(FrameSource):
    """A folder of image files (or a glob pattern), one frame per file, in natural order."""

    def __init__(self, folder_or_glob: str | os.PathLike[str], color: str = "gray", *, fps: float | None = None) -> None:
        self.color = check_color(color)
        spec = os.path.expanduser(os.fspath(folder_or_glob))
        self.path = spec
        if not _GLOB_CHARS.search(spec) and not os.path.exists(spec):
            raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
        self.files = list_images(spec)
        if not self.files:
            raise UnreadableInputError(
                f"{spec}: holds no image files ({', '.join(IMAGE_SUFFIXES)}); point at the folder with the frames"
            )
        first = read_image(self.files[0])
        native = (len(self.files),) + first.shape
        check_layout(native, str(self.files[0]))
        self._frame_native = first.shape
        self._native_dtype = first.dtype
        self.dtype = resolve_dtype(first.dtype, str(self.files[0]))
        self.shape = policy_shape(native, self.color)
        self.fps = float(fps) if fps else None

    def _read(self, t: int) -> np.ndarray:
        f = self.files[t]
        try:
            img = read_image(f)
        except UnreadableInputError as e:
            raise DamagedInputError(str(e), frame=t, reason=f"frame {t} ({f.name}) cannot be read") from None
        if img.shape != self._frame_native or img.dtype != self._native_dtype:
            raise UnsupportedInputError(
                f"{f}: frame {t} is {img.shape} {img.dtype} but {self.files[0].name} is "
                f"{self._frame_native} {self._native_dtype}; all frames must share shape and dtype"
            )
        return source_frame(img, self.dtype)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            files=len(self.files),
            first_file=str(self.files[0]),
            last_file=str(self.files[-1]),
            stored_dtype=str(self._native_dtype),
            size_bytes=sum(f.stat().st_size for f in self.files),
        )
        return d


class TiffFrameSource(FrameSource):
    """A multi-page TIFF or OME-TIFF, read one page (or one page per channel) at a time.

    The first series is used. Its last axes are ``Y X`` (``S`` samples after them for RGB pages);
    a ``C`` axis among the leading axes becomes the channel axis, and all other leading axes
    (``T``, ``Z``, ``I``, ``Q``...) are flattened, in order, into time.

    ``container_damage`` (a :class:`~vidfilter.io.container_check.ContainerDamage` or ``None``)
    says whether the file is cut short (its last page's data, or the contiguous data of the series,
    ends past the end of the file) or its page chain is broken; the input guard of ``vidfilter
    run`` refuses such a file, or with ``--salvage`` processes the frames that still read.
    """

    def __init__(self, path: str | os.PathLike[str], color: str = "gray", *, fps: float | None = None) -> None:
        import tifffile

        self.color = check_color(color)
        p = Path(os.path.expanduser(os.fspath(path)))
        self.path = str(p)
        if not p.exists():
            raise InputNotFoundError(f"{p}: no such file or folder; check the path")
        self._tif: Any = None
        self._lock = threading.Lock()
        with _tifffile_errors() as errors:
            try:
                if p.stat().st_size == 0:
                    raise ValueError("the file is empty: 0 bytes")
                self._tif = tifffile.TiffFile(p)
                series = self._tif.series[0]
                axes, shape = series.axes, tuple(series.shape)
            except Exception as exc:
                self.close()
                raise UnreadableInputError(f"{p}: not a readable TIFF ({_short(exc)}); check the file is complete") from None
            try:
                self._setup(series, axes, shape)
                self.container_damage = self._damage(series, errors)
            except BaseException:
                self.close()
                raise
        self.fps = float(fps) if fps else None

    def _damage(self, series: Any, errors: list[str]) -> ContainerDamage | None:
        """What is wrong with the file as a whole: data past its end, or errors tifffile logged."""
        size = os.path.getsize(self.path)
        need = 0
        if getattr(series, "dataoffset", None) is not None:  # contiguous, uncompressed data
            need = int(series.dataoffset) + int(series.nbytes)
        elif len(self._pages):
            last = self._pages[len(self._pages) - 1]
            # (the pages of a multi-file OME-TIFF series may live in other files)
            if last is not None and getattr(last, "parent", self._tif) is self._tif and last.dataoffsets:
                need = max(int(o) + int(c) for o, c in zip(last.dataoffsets, last.databytecounts))
        if need > size:
            return ContainerDamage("truncated", f"the file is cut short: {size} of the {need} bytes its pages need", size)
        if errors:
            return ContainerDamage("corrupt", f"the TIFF structure is damaged ({errors[0]})", 0)
        return None

    def _setup(self, series: Any, axes: str, shape: tuple[int, ...]) -> None:
        n_spatial = 3 if axes.endswith("S") else 2
        lead_axes, lead_shape = axes[:-n_spatial], shape[:-n_spatial]
        page_shape = shape[-n_spatial:]
        self._lead_shape = lead_shape
        self._c_pos = lead_axes.find("C")
        if self._c_pos >= 0 and n_spatial == 3:
            raise UnsupportedInputError(f"{self.path}: TIFF with both a channel axis and RGB pages is not supported")
        if self._c_pos >= 0:
            n_c = lead_shape[self._c_pos]
            other = lead_shape[: self._c_pos] + lead_shape[self._c_pos + 1 :]
            frame_native = tuple(page_shape) + (n_c,)
        else:
            other = lead_shape
            frame_native = tuple(page_shape)
        self._other = other
        n = int(np.prod(other)) if other else 1
        self._n_pages = int(np.prod(lead_shape)) if lead_shape else 1
        native = (n,) + frame_native
        check_layout(native, self.path)
        self._native_dtype = np.dtype(series.dtype)
        self.dtype = resolve_dtype(self._native_dtype, self.path)
        self.shape = policy_shape(native, self.color)
        self._pages = series.pages
        self._zarr: Any = None
        if len(self._pages) != self._n_pages or any(p is None for p in self._pages[:1]):
            # data not laid out one image per page (e.g. ImageJ hyperstacks > 4 GB): go through zarr
            import zarr

            self._zarr = zarr.open(series.aszarr(), mode="r")
        self.axes = axes

    def _page(self, i: int) -> np.ndarray:
        """Page ``i`` of the series; :class:`DamagedInputError` (``reason`` only) when it cannot be read."""
        with self._lock, _tifffile_errors() as errors:  # one file handle: threads (e.g. dask chunks) take turns
            try:
                if self._zarr is not None:
                    idx = np.unravel_index(i, self._lead_shape) if self._lead_shape else ()
                    page = np.asarray(self._zarr[tuple(int(j) for j in idx)])
                else:
                    tp = self._pages[i]
                    page = None if tp is None else tp.asarray()
            except Exception as exc:
                raise DamagedInputError(self.path, reason=_short(exc)) from None
        if page is None:
            raise DamagedInputError(self.path, reason=f"page {i} is missing from the TIFF")
        if errors:
            raise DamagedInputError(self.path, reason=errors[0])
        return page

    def _read(self, t: int) -> np.ndarray:
        try:
            if self._c_pos < 0:
                frame = self._page(t)
            else:
                rest = list(np.unravel_index(t, self._other)) if self._other else []
                chans = []
                for c in range(self._lead_shape[self._c_pos]):
                    idx = rest[: self._c_pos] + [c] + rest[self._c_pos :]
                    chans.append(self._page(int(np.ravel_multi_index(idx, self._lead_shape))))
                frame = np.stack(chans, axis=-1)
        except DamagedInputError as e:
            raise DamagedInputError.unreadable_frame(
                self.path, t, str(e.reason), "the file is damaged, re-copy it from its source"
            ) from None
        return source_frame(frame, self.dtype)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(axes=self.axes, pages=self._n_pages, stored_dtype=str(self._native_dtype),
                 size_bytes=os.path.getsize(self.path), ome=bool(self._tif.is_ome),
                 damage=self.container_damage.reason if self.container_damage is not None else None)
        return d

    def close(self) -> None:
        tif, self._tif = getattr(self, "_tif", None), None
        if tif is not None:
            tif.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "color": self.color, "fps": self.fps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["color"], fps=state["fps"])  # type: ignore[misc]


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__
