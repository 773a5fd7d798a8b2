"""Still-image inputs: a folder (or glob) of PNG/TIFF/JPEG files, and multi-page / OME-TIFF files.

- :class:`ImageSequenceFrameSource`: one file per frame, in natural order ("frame2" before
  "frame10"). The first file sets the frame shape and dtype; every other file is checked when it is
  read, with an error naming the file that differs.
- :class:`TiffFrameSource`: one multi-page TIFF (ImageJ, OME-TIFF, plain). Reads page by page
  (never the whole stack); leading axes other than channels are flattened into time.
"""

from __future__ import annotations

import glob
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.array_source import check_layout, policy_shape, resolve_dtype, squeeze_channel
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


def read_image(path: Path) -> np.ndarray:
    """Read one PNG/JPEG (OpenCV, unchanged depth, RGB order) or TIFF (tifffile, first page)."""
    try:
        if path.suffix.lower() in _TIFF:
            import tifffile

            return tifffile.imread(path, key=0)
        import cv2

        data = np.fromfile(path, dtype=np.uint8)  # works for any path encoding
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
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
        img = read_image(f)
        if img.shape != self._frame_native or img.dtype != self._native_dtype:
            raise UnsupportedInputError(
                f"{f}: frame {t} is {img.shape} {img.dtype} but {self.files[0].name} is "
                f"{self._frame_native} {self._native_dtype}; all frames must share shape and dtype"
            )
        if img.dtype != self.dtype:
            img = img.astype(self.dtype)
        return squeeze_channel(img)

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
        try:
            self._tif = tifffile.TiffFile(p)
            series = self._tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
        except Exception as exc:
            self.close()
            raise UnreadableInputError(f"{p}: not a readable TIFF ({_short(exc)}); check the file is complete") from None
        try:
            self._setup(series, axes, shape)
        except BaseException:
            self.close()
            raise
        self.fps = float(fps) if fps else None

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
        if self._zarr is not None:
            idx = np.unravel_index(i, self._lead_shape) if self._lead_shape else ()
            with self._lock:
                return np.asarray(self._zarr[tuple(int(j) for j in idx)])
        try:
            with self._lock:  # one file handle: threads (e.g. dask chunks) take turns
                page = self._pages[i]
                if page is None:
                    raise UnreadableInputError(f"{self.path}: page {i} is missing from the TIFF")
                return page.asarray()
        except UnreadableInputError:
            raise
        except Exception as exc:
            raise UnreadableInputError(f"{self.path}: page {i} cannot be read ({_short(exc)}); the file is damaged") from None

    def _read(self, t: int) -> np.ndarray:
        if self._c_pos < 0:
            frame = self._page(t)
        else:
            rest = list(np.unravel_index(t, self._other)) if self._other else []
            chans = []
            for c in range(self._lead_shape[self._c_pos]):
                idx = rest[: self._c_pos] + [c] + rest[self._c_pos :]
                chans.append(self._page(int(np.ravel_multi_index(idx, self._lead_shape))))
            frame = np.stack(chans, axis=-1)
        if frame.dtype != self.dtype:
            frame = frame.astype(self.dtype)
        return squeeze_channel(frame)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(axes=self.axes, pages=self._n_pages, stored_dtype=str(self._native_dtype),
                 size_bytes=os.path.getsize(self.path), ome=bool(self._tif.is_ome))
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
