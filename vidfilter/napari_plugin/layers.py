"""What the napari reader hands to the viewer, as napari "layer data" tuples ``(data, kwargs, type)``.

Nothing here imports napari or Qt: every function returns plain tuples, so the reader's decisions
(which layers, in which order, with which names, contrast limits and metadata) are testable
without a viewer.

- an output store of ``vidfilter run`` (``OUT.zarr``): the input recording (when the path in the
  run record still exists), ``background``, ``foreground`` (image layers) and ``mask`` (a labels
  layer), in that order, then the tracks when the store has any (:func:`find_tracks`);
- any other recording :func:`vidfilter.open` reads (video, image folder, TIFF, Zarr, HDF5, ``.npy``):
  one image layer;
- a tracks table (``.csv`` with the columns of :data:`TRACK_COLUMNS`): one tracks layer.

Image data are lazy Dask arrays from :meth:`FrameSource.to_dask`, so a layer opens at once however
long the recording is: only the frames napari shows are read, plus :data:`SAMPLE_FRAMES` frames for
the contrast limits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IMAGE_GROUPS", "SAMPLE_FRAMES", "TRACK_COLUMNS", "contrast_limits", "find_tracks", "is_output_store",
    "layer_data", "read_tracks", "recording_layer", "run_record", "store_layers", "tracks_layer"]

LayerData = tuple[Any, dict[str, Any], str]

#: The image groups of an output store, in the order they are stacked (the mask, a labels layer, on top).
IMAGE_GROUPS = ("background", "foreground", "mask")
#: Frames read, evenly spaced, to choose contrast limits.
SAMPLE_FRAMES = 5
#: Columns of a tracks table: one row per object and frame.
TRACK_COLUMNS = ("frame", "track_id", "y", "x", "area", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "mean_intensity")
#: The columns napari's tracks layer needs; the others become its features.
_TRACK_REQUIRED = ("frame", "track_id", "y", "x")


def is_output_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an output store of ``vidfilter run``: a ``.zarr`` folder whose root
    ``zarr.json`` holds a run record and which has a ``background`` or ``foreground`` group."""
    p = Path(path)
    if not (p.is_dir() and p.suffix.lower() == ".zarr"):
        return False
    return any((p / g / "zarr.json").is_file() for g in IMAGE_GROUPS[:2]) and "method" in run_record(p)


def run_record(store: str | os.PathLike[str]) -> dict[str, Any]:
    """The run record of an output store (its root ``zarr.json`` attributes); ``{}`` when unreadable."""
    try:
        meta = json.loads((Path(store) / "zarr.json").read_text())
    except (OSError, ValueError):
        return {}
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return attrs if isinstance(attrs, dict) else {}


def contrast_limits(src: Any, n: int = SAMPLE_FRAMES) -> tuple[float, float]:
    """Contrast limits of a :class:`FrameSource` from at most ``n`` evenly spaced frames.

    Parameters
    ----------
    src : FrameSource
        The recording; only the sampled frames are read.
    n : int
        How many frames to read at most.

    Returns
    -------
    tuple of float
        ``(min, max)`` over the sampled frames; where they are equal (a blank foreground), the
        dtype's range for integers and ``(v, v + 1)`` for floats.
    """
    count = len(src)
    picks = sorted({int(round(t)) for t in np.linspace(0, count - 1, num=min(n, count))})
    lo, hi = np.inf, -np.inf
    for t in picks:
        frame = np.asarray(src[t])
        finite = frame[np.isfinite(frame)] if frame.dtype.kind == "f" else frame
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if hi > lo:
        return lo, hi
    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        return float(info.min), float(info.max)
    base = 0.0 if not np.isfinite(lo) else lo
    return base, base + 1.0


def _meta(role: str, path: str, store: Path | None, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A layer's ``metadata``: where its frames come from (``path``, which the widgets run on)."""
    info: dict[str, Any] = {"role": role, "path": str(path), "store": None if store is None else str(store)}
    if record is not None:
        info["run"] = {"method": record.get("method"), "model": (record.get("model") or {}).get("path"),
                       "input": (record.get("input") or {}).get("path")}
    return {"vidfilter": info}


def _image(src: Any, name: str, metadata: dict[str, Any], kind: str = "image") -> LayerData:
    """A lazy layer of ``src``: colour frames ``(T, H, W, 3|4)`` as RGB, labels without contrast limits."""
    data = src.to_dask()
    kwargs: dict[str, Any] = {"name": name, "metadata": metadata}
    if kind == "image":
        kwargs["contrast_limits"] = list(contrast_limits(src))
        kwargs["rgb"] = bool(data.ndim == 4 and data.shape[-1] in (3, 4))
    return data, kwargs, kind


def _stem(path: str | os.PathLike[str]) -> str:
    p = Path(os.fspath(path).rstrip("/"))
    return p.name[: -len(p.suffix)] if p.suffix and p.name != p.suffix else p.name


def store_layers(store: str | os.PathLike[str]) -> list[LayerData]:
    """The layers of an output store: input (if its path exists), background, foreground, mask, tracks.

    Parameters
    ----------
    store : str or Path
        ``OUT.zarr``, written by ``vidfilter run``.

    Returns
    -------
    list of tuple
        napari layer data ``(data, kwargs, layer_type)`` in stacking order; each image is a lazy
        Dask array read through :func:`vidfilter.open` (a background stored at keyframes is
        rebuilt frame by frame).
    """
    from vidfilter.io.registry import open as vf_open

    store = Path(store)
    record = run_record(store)
    stem = _stem(store)
    color = ((record.get("config") or {}).get("output") or {}).get("color", "gray")
    layers: list[LayerData] = []
    in_path = (record.get("input") or {}).get("path")
    if in_path and Path(in_path).exists():
        try:
            src = vf_open(in_path, color=color)
        except Exception:  # noqa: BLE001 - an input that no longer reads: the outputs still open
            src = None
        if src is not None:
            layers.append(_image(src, f"{stem} input", _meta("input", in_path, store, record)))
    for group in IMAGE_GROUPS:
        if not (store / group / "zarr.json").is_file():
            continue
        path = str(store / group)
        kind = "labels" if group == "mask" else "image"
        src = vf_open(path, color="gray" if kind == "labels" else "keep")
        layers.append(_image(src, f"{stem} {group}", _meta(group, path, store, record), kind))
    tracks = find_tracks(store)
    cols = read_tracks(tracks) if tracks is not None else {}
    if cols and len(cols["frame"]):  # napari's tracks layer needs at least one row
        layers.append(tracks_layer(cols, f"{stem} tracks", _meta("tracks", str(tracks), store, record)))
    return layers


def recording_layer(path: str | os.PathLike[str]) -> LayerData:
    """One lazy image layer of a recording :func:`vidfilter.open` reads (colour kept as RGB)."""
    from vidfilter.io.hdf5_source import HDF5_SUFFIXES
    from vidfilter.io.registry import open as vf_open

    spec = os.fspath(path)
    src = vf_open(spec, color="keep")
    parent = Path(spec.rstrip("/")).parent
    inside = any(c.suffix.lower() in (".zarr", *HDF5_SUFFIXES) for c in [parent, *parent.parents])
    name = f"{_stem(parent)} {_stem(spec)}" if inside else _stem(spec)  # a node in a store: "store node"
    return _image(src, name, _meta("recording", spec, None))


def find_tracks(store: str | os.PathLike[str]) -> Path | None:
    """The tracks of an output store: its ``tracks`` group, else ``OUT.tracks.csv`` or ``tracks.csv``
    beside it, else ``tracks.csv`` inside it; ``None`` when there are none."""
    store = Path(os.fspath(store).rstrip("/"))
    candidates = [store / "tracks", store.with_name(f"{_stem(store)}.tracks.csv"), store.with_name("tracks.csv"),
                  store / "tracks.csv"]
    for c in candidates:
        if (c.is_dir() and (c / "zarr.json").is_file()) or (c.suffix == ".csv" and c.is_file()):
            return c
    return None


def read_tracks(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The columns of a tracks table: a ``.csv`` file with a header row, or a Zarr group of 1-D arrays.

    Raises
    ------
    UnreadableInputError
        A required column (``frame``, ``track_id``, ``y``, ``x``) is missing or the columns differ in length.
    """
    from vidfilter.errors import UnreadableInputError

    p = Path(path)
    if p.is_dir():
        import zarr

        group = zarr.open_group(str(p), mode="r")
        cols = {name: np.asarray(arr[:]) for name, arr in group.arrays() if arr.ndim == 1}
    else:  # the reader of vidfilter track's own tables; a cell that is not a number reads as NaN
        import pandas as pd

        from vidfilter.track.tables import read_table

        df = read_table(p)
        cols = {str(name): pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64) for name in df.columns}
    missing = [c for c in _TRACK_REQUIRED if c not in cols]
    if missing:
        raise UnreadableInputError(f"{p}: not a tracks table, it lacks the column(s) {', '.join(missing)}; "
                                   f"expected {', '.join(TRACK_COLUMNS)}")
    if len({len(v) for v in cols.values()}) > 1:
        raise UnreadableInputError(f"{p}: the columns of the tracks table differ in length; write it again")
    return cols


def tracks_layer(cols: dict[str, np.ndarray], name: str, metadata: dict[str, Any]) -> LayerData:
    """A napari tracks layer of a table: data ``(track_id, t, y, x)``, the other columns as features."""
    data = np.stack([np.asarray(cols[c], dtype=np.float64) for c in ("track_id", "frame", "y", "x")], axis=1)
    order = np.lexsort((data[:, 1], data[:, 0]))  # by track, then time
    names = [c for c in TRACK_COLUMNS if c in cols] + sorted(c for c in cols if c not in TRACK_COLUMNS)
    features = {c: np.asarray(cols[c])[order] for c in names if c not in _TRACK_REQUIRED}
    return data[order], {"name": name, "metadata": metadata, "features": features}, "tracks"


def layer_data(path: str | os.PathLike[str]) -> list[LayerData]:
    """Every layer for ``path``: an output store, a tracks ``.csv`` or a recording (see the module)."""
    p = Path(os.fspath(path).rstrip("/"))
    if is_output_store(p):
        return store_layers(p)
    if p.suffix.lower() == ".csv":
        cols = read_tracks(p)
        if not len(cols["frame"]):
            from vidfilter.errors import UnreadableInputError

            raise UnreadableInputError(f"{p}: the tracks table has no rows; there is nothing to show")
        return [tracks_layer(cols, _stem(p), _meta("tracks", str(p), None))]
    return [recording_layer(path)]
