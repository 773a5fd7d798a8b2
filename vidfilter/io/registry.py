"""``vidfilter.open``: one entry point that picks the reader for a path or an array.

Dispatch, in order:

1. a :class:`FrameSource` is returned as is; a numpy (or array-like) object -> :class:`ArrayFrameSource`;
2. a path with a component ending in ``.zarr`` (``store.zarr/sub/array``) or a folder holding
   Zarr metadata -> :class:`ZarrFrameSource`;
3. a path through an HDF5 file (``file.h5/dataset``) -> :class:`Hdf5FrameSource`;
4. a folder or a glob pattern -> :class:`ImageSequenceFrameSource` (a folder named like a file,
   ``clip.mp4/`` holding no images, is refused as a folder given for a file);
5. a file, by suffix, through :data:`READERS`.

A recording with no frames is refused by every path here, before any output is made.

:func:`open_array` is the windowed entry for huge images (slides, huge frames), read block by
block, never whole: an array as is, a Zarr / OME-Zarr path or a TIFF through
:mod:`vidfilter.io.windowed`, each with its axes (``"yx"``, ``"tyx"``, ``"yxc"``, ``"tyxc"``, ...).

:func:`describe` gives the facts ``vidfilter info`` shows about a path.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io import windowed
from vidfilter.io.windowed import is_zarr_dir, windowed_kind
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.hdf5_source import HDF5_SUFFIXES, Hdf5FrameSource
from vidfilter.io.images_source import _GLOB_CHARS, ImageSequenceFrameSource, TiffFrameSource, list_images
from vidfilter.io.source import FrameSource, check_color, check_not_empty
from vidfilter.io.video_source import VideoFrameSource
from vidfilter.io.zarr_source import ZarrFrameSource

VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".ogv", ".mj2", ".mxf", ".nut", ".h264", ".264", ".hevc", ".h265",
)


def _npy(path: str, color: str = "gray", fps: float | None = None) -> FrameSource:
    """A ``.npy`` file, memory-mapped; its header is checked against the file first."""
    check_npy(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UnreadableInputError(f"{path}: not a readable .npy array ({_short(exc)}); save it again with numpy.save") from None
    return ArrayFrameSource(arr, fps=fps, color=color, path=path)


def check_npy(path: str) -> None:
    """Raise :class:`UnreadableInputError` unless ``path`` is a whole ``.npy`` file of plain numbers.

    The header (magic, shape, dtype) must parse, the dtype must not hold Python objects, and the
    file must hold every byte the header declares: a cut ``.npy`` would otherwise fail when it is
    memory-mapped, with a message about ``mmap`` rather than the file.
    """
    fmt = np.lib.format
    size = os.path.getsize(path)
    if size == 0:
        raise UnreadableInputError(f"{path}: the file is empty (0 bytes); save the array again with numpy.save")
    with builtins.open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(fh)
        except (ValueError, EOFError, OSError, SyntaxError) as exc:
            raise UnreadableInputError(f"{path}: not a .npy file ({_short(exc)}); pass an array saved with numpy.save") from None
        start = fh.tell()
    if dtype.hasobject:
        raise UnreadableInputError(f"{path}: holds Python objects, not numbers; save a numeric (T, H, W) array with numpy.save")
    need = start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < need:
        raise UnreadableInputError(f"{path}: the file is cut short: {size} of the {need} bytes its header declares; "
                                   "re-copy it from its source")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


#: Reader for each file suffix (lower case). Extend with :func:`register`.
READERS: dict[str, Any] = {
    **{s: VideoFrameSource for s in VIDEO_SUFFIXES},
    **dict.fromkeys((".tif", ".tiff"), TiffFrameSource),
    **dict.fromkeys((".png", ".jpg", ".jpeg"), ImageSequenceFrameSource),
    ".zarr": ZarrFrameSource,
    ".npy": _npy,
    **{s: Hdf5FrameSource for s in HDF5_SUFFIXES},
}


def register(suffix: str, reader: Any) -> None:
    """Map a file suffix (``".xyz"``) to a reader callable ``reader(path, color=..., **kw)``."""
    READERS[suffix.lower()] = reader


def supported_suffixes() -> list[str]:
    return sorted(READERS)


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
        The input exists but holds no readable frames (no frames at all, an empty folder, a corrupt
        or truncated file, a folder where a file is expected).
    UnsupportedInputError
        Unknown file type, or an unsupported dtype or layout.
    """
    check_color(color)
    if isinstance(path_or_array, FrameSource):
        return path_or_array
    return check_not_empty(_open(path_or_array, color=color, **kw))


def _open(path_or_array: Any, *, color: str, **kw: Any) -> FrameSource:
    """The reader for ``path_or_array`` (dispatch of :func:`open`)."""
    if not isinstance(path_or_array, (str, os.PathLike)):
        if hasattr(path_or_array, "shape") and hasattr(path_or_array, "dtype") or isinstance(path_or_array, (list, tuple)):
            return ArrayFrameSource(path_or_array, color=color, **kw)
        raise UnsupportedInputError(f"cannot open an object of type {type(path_or_array).__name__}; pass a path or a numpy array")
    spec = os.path.expanduser(os.fspath(path_or_array))
    p = Path(spec)
    # Zarr: a .zarr component anywhere in the path, or a folder with Zarr metadata
    if any(c.suffix.lower() == ".zarr" and c.is_dir() for c in [p, *p.parents]) or is_zarr_dir(p):
        from vidfilter.io.keyframe_store import KeyframeBackgroundSource, is_keyframe_group

        if is_keyframe_group(p):  # a background stored at keyframes, rebuilt frame by frame
            return KeyframeBackgroundSource(spec, color=color, **kw)
        return ZarrFrameSource(spec, color=color, **kw)
    # HDF5: file.h5/inner/dataset
    if any(c.suffix.lower() in HDF5_SUFFIXES and c.is_file() for c in [p, *p.parents]):
        return Hdf5FrameSource(spec, color=color, **kw)
    if p.is_dir():
        suffix = p.suffix.lower()
        if suffix in READERS and READERS[suffix] is not ImageSequenceFrameSource and not list_images(p):
            raise UnreadableInputError(f"{spec}: is a folder, not a {suffix} file; pass the file itself (or a folder of image files)")
        return ImageSequenceFrameSource(spec, color=color, **kw)
    if not p.exists():
        if _GLOB_CHARS.search(spec):
            return ImageSequenceFrameSource(spec, color=color, **kw)
        raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise UnsupportedInputError(f"{spec}: unknown file type {p.suffix or '(no suffix)'!r}; supported: "
                                    f"{', '.join(supported_suffixes())}, or a folder of images")
    return reader(spec, color=color, **kw)


def open_array(src: Any, *, check: Callable[[tuple[int, ...]], None] | None = None) -> tuple[Any, str]:
    """``(array-like indexable by slices, axes)`` of a huge image for windowed reads: a numpy / zarr / dask
    array (axes guessed from its shape), a Zarr / OME-Zarr path (NGFF level 0) or a TIFF (axes from the
    metadata, singleton extra axes dropped); a missing path is looked up as a Zarr store; anything else
    raises :class:`UnsupportedInputError`. ``check(shape)`` sees the shape as stored, before the axes."""
    if isinstance(src, (str, os.PathLike)):
        spec = os.path.expanduser(os.fspath(src))
        kind = windowed_kind(spec) or ("zarr" if "://" in spec or not Path(spec).exists() else None)
        if kind is None:
            raise UnsupportedInputError(f"{spec}: cannot be read window by window; pass a Zarr / OME-Zarr store "
                                        "(store.zarr or store.zarr/array), a TIFF file or an array")
        arr, names = windowed.open_tiff(spec) if kind == "tiff" else windowed.open_zarr(spec)
    elif hasattr(src, "shape") and hasattr(src, "__getitem__"):
        spec, arr, names = f"<{type(src).__name__}>", src, None
    else:
        raise UnsupportedInputError(f"cannot read an object of type {type(src).__name__}; pass a path or an array")
    if check is not None:
        check(tuple(arr.shape))
    return windowed.with_axes(arr, names, spec)


def describe(path: str | os.PathLike[str], *, color: str = "keep") -> dict[str, Any]:
    """The facts ``vidfilter info`` shows: for an output store of ``vidfilter run`` (a ``.zarr``
    folder with a ``background`` or ``target`` group) its input, method, model and one line per
    group (shape, dtype, chunks, fps, frames written); for any other path, its reader's description."""
    p = Path(path)
    if p.suffix == ".zarr" and p.is_dir() and ((p / "background").exists() or (p / "target").exists()):
        from vidfilter.io.zarr_info import read_ome_zarr_info

        info = read_ome_zarr_info(p)
        attrs = info.get("attrs", {})
        facts = {"path": info["path"], "complete": info["complete"], "input": attrs.get("input", {}).get("path"),
                 "method": attrs.get("method"), "model": (attrs.get("model") or {}).get("path")}
        for name, g in info["groups"].items():
            facts[name] = f"{tuple(g['shape'])} {g['dtype']} chunks={tuple(g['chunks'])} fps={g['fps']} written={g['frames_written']}/{g['n_frames']}"
            if g.get("storage") == "keyframes":
                facts[name] += " (stored at keyframes: read it with vidfilter.open)"
        return facts
    with open(path, color=color) as src:
        return src.describe()
