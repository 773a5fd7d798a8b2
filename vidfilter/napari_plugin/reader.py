"""The napari reader contributions: which paths vidfilter opens, and the function that opens them.

napari calls :func:`get_reader` (and :func:`get_tracks_reader` for ``.csv``) with the dropped or
opened path; each returns ``None`` for a path it does not take, so napari can ask other readers,
else a function that returns the layers of :func:`vidfilter.napari_plugin.layers.layer_data`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidfilter.napari_plugin.layers import LayerData, layer_data

__all__ = ["get_reader", "get_tracks_reader", "read"]

ReaderFunction = Callable[[Any], list[LayerData]]


def _one_path(path: Any) -> str | None:
    """The path napari passes (a list of one path counts as that path); ``None`` for several."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _readable(spec: str) -> bool:
    """Whether :func:`vidfilter.open` has a reader for ``spec``: a file of a known suffix, a Zarr
    folder (an output store included), a folder of images, or a node inside a Zarr / HDF5 store."""
    from vidfilter.io.hdf5_source import HDF5_SUFFIXES
    from vidfilter.io.images_source import list_images
    from vidfilter.io.registry import READERS

    p = Path(spec.rstrip("/"))
    if any(c.suffix.lower() in (".zarr", *HDF5_SUFFIXES) and c.exists() for c in p.parents):
        return True  # store.zarr/group, file.h5/dataset
    if p.is_dir():
        return any((p / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup")) or bool(list_images(p))
    return p.is_file() and p.suffix.lower() in READERS


def read(path: Any) -> list[LayerData]:
    """Open ``path`` as napari layer data (see :mod:`vidfilter.napari_plugin.layers`)."""
    return layer_data(_one_path(path) or path)


def get_reader(path: Any) -> ReaderFunction | None:
    """napari's reader hook: :func:`read` for an output store or a recording vidfilter reads, else ``None``."""
    spec = _one_path(path)
    if spec is None or spec.lower().endswith(".csv") or not _readable(spec):
        return None
    return read


def get_tracks_reader(path: Any) -> ReaderFunction | None:
    """napari's reader hook for a tracks table ``.csv`` (columns ``frame, track_id, y, x, ...``)."""
    spec = _one_path(path)
    if spec is None or not spec.lower().endswith(".csv") or not Path(spec).is_file():
        return None
    with open(spec, newline="") as fh:
        header = {h.strip() for h in fh.readline().split(",")}
    return read if {"frame", "track_id", "y", "x"} <= header else None
