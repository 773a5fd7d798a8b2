"""``vidfilter.open``: one entry point that picks the reader for a path or an array.

Dispatch, in order:

1. a :class:`FrameSource` is returned as is; a numpy (or array-like) object -> :class:`ArrayFrameSource`;
2. a path with a component ending in ``.zarr`` (``store.zarr/sub/array``) or a folder holding
   Zarr metadata -> :class:`ZarrFrameSource`;
3. a path through an HDF5 file (``file.h5/dataset``) -> :class:`Hdf5FrameSource`;
4. a folder or a glob pattern -> :class:`ImageSequenceFrameSource`;
5. a file, by suffix, through :data:`READERS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import InputNotFoundError, UnsupportedInputError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.hdf5_source import HDF5_SUFFIXES, Hdf5FrameSource
from vidfilter.io.images_source import _GLOB_CHARS, ImageSequenceFrameSource, TiffFrameSource
from vidfilter.io.source import FrameSource, check_color
from vidfilter.io.video_source import VideoFrameSource
from vidfilter.io.zarr_source import ZarrFrameSource

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".ogv", ".mj2", ".mxf", ".nut", ".h264", ".264", ".hevc", ".h265",
)


def _npy(path: str, color: str = "gray", fps: float | None = None) -> FrameSource:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        from vidfilter.errors import UnreadableInputError

        raise UnreadableInputError(f"{path}: not a readable .npy array ({exc})") from None
    return ArrayFrameSource(arr, fps=fps, color=color, path=path)


#: Reader for each file suffix (lower case). Extend with :func:`register`.
READERS: dict[str, Any] = {
    **{s: VideoFrameSource for s in VIDEO_SUFFIXES},
    ".tif": TiffFrameSource,
    ".tiff": TiffFrameSource,
    ".png": ImageSequenceFrameSource,
    ".jpg": ImageSequenceFrameSource,
    ".jpeg": ImageSequenceFrameSource,
    ".zarr": ZarrFrameSource,
    ".npy": _npy,
    **{s: Hdf5FrameSource for s in HDF5_SUFFIXES},
}


def register(suffix: str, reader: Any) -> None:
    """Map a file suffix (``".xyz"``) to a reader callable ``reader(path, color=..., **kw)``."""
    READERS[suffix.lower()] = reader


def supported_suffixes() -> list[str]:
    return sorted(READERS)


def _is_zarr_dir(p: Path) -> bool:
    return p.is_dir() and any((p / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup"))


def open(path_or_array: Any, *, color: str = "gray", **kw: Any) -> FrameSource:  # noqa: A001
    """Open a recording for reading and return its :class:`FrameSource`.

    Parameters
    ----------
    path_or_array : str, Path or array-like
        A video file, a folder or glob of images, a (multi-page) TIFF, a Zarr / OME-Zarr store
        (``store.zarr/array`` for a node inside), an HDF5 dataset (``file.h5/dataset``), a
        ``.npy`` file, or an array ``(T, H, W[, C])`` in memory.
    color : {"gray", "keep"}
        Colour policy: ``"gray"`` gives ``(T, H, W)`` frames (BT.601 luma), ``"keep"`` keeps channels.
    **kw
        Passed to the reader (e.g. ``fps=`` for arrays and image folders).

    Raises
    ------
    InputNotFoundError
        The path does not exist.
    UnreadableInputError
        The input exists but holds no readable frames (empty folder, corrupt or truncated file).
    UnsupportedInputError
        Unknown file type, or an unsupported dtype or layout.
    """
    check_color(color)
    if isinstance(path_or_array, FrameSource):
        return path_or_array
    if not isinstance(path_or_array, (str, os.PathLike)):
        if hasattr(path_or_array, "shape") and hasattr(path_or_array, "dtype") or isinstance(path_or_array, (list, tuple)):
            return ArrayFrameSource(path_or_array, color=color, **kw)
        raise UnsupportedInputError(
            f"cannot open an object of type {type(path_or_array).__name__}; pass a path or a numpy array"
        )
    spec = os.path.expanduser(os.fspath(path_or_array))
    p = Path(spec)
    # Zarr: a .zarr component anywhere in the path, or a folder with Zarr metadata
    for cand in [p, *p.parents]:
        if cand.suffix.lower() == ".zarr" and cand.is_dir():
            return ZarrFrameSource(spec, color=color, **kw)
    if _is_zarr_dir(p):
        return ZarrFrameSource(spec, color=color, **kw)
    # HDF5: file.h5/inner/dataset
    for cand in [p, *p.parents]:
        if cand.suffix.lower() in HDF5_SUFFIXES and cand.is_file():
            return Hdf5FrameSource(spec, color=color, **kw)
    if p.is_dir():
        return ImageSequenceFrameSource(spec, color=color, **kw)
    if not p.exists():
        if _GLOB_CHARS.search(spec):
            return ImageSequenceFrameSource(spec, color=color, **kw)
        raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise UnsupportedInputError(
            f"{spec}: unknown file type {p.suffix or '(no suffix)'!r}; supported: {', '.join(supported_suffixes())}, "
            "or a folder of images"
        )
    return reader(spec, color=color, **kw)
