"""Zarr v2/v3 arrays and OME-Zarr (NGFF) images: :class:`ZarrFrameSource`.

Addressing: ``store.zarr`` (an array, an NGFF image group, or a group holding exactly one of
those), or ``store.zarr/sub/array`` for a node inside a store. For an NGFF image the first
(full-resolution) dataset of the first multiscale is read. Axes come from the NGFF ``axes``,
Zarr v3 ``dimension_names`` or xarray's ``_ARRAY_DIMENSIONS`` when they name ``t c z y x``;
otherwise the array must be ``(T, H, W)`` or ``(T, H, W, C)``. Frames are returned channels-last.

A chunk file missing from the store is an error by default (``missing_chunks="error"``): Zarr
would silently return the fill value, i.e. a black frame, for a store that lost a file. Stores
written with ``write_empty_chunks=False`` leave out chunks holding only the fill value on purpose;
read those with ``missing_chunks="fill"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.array_source import _policy_dask, check_layout, policy_shape, resolve_dtype, source_frame
from vidfilter.io.source import FrameSource, check_color

_AXES = set("tczyx")


def _multiscales(attrs: Any) -> list[dict[str, Any]] | None:
    attrs = dict(attrs)
    if "ome" in attrs and isinstance(attrs["ome"], dict):  # NGFF 0.5
        attrs = attrs["ome"]
    ms = attrs.get("multiscales")
    return ms if isinstance(ms, list) and ms else None


def _axis_names(axes: Any) -> list[str] | None:
    if not axes:
        return None
    names = [(a.get("name") if isinstance(a, dict) else a) for a in axes]
    if not all(isinstance(n, str) for n in names):
        return None
    names = [n.lower() for n in names]
    if set(names) <= _AXES and len(set(names)) == len(names) and "y" in names and "x" in names:
        return names
    return None


class ZarrFrameSource(FrameSource):
    """A Zarr array or OME-Zarr image as frames ``(T, H, W)`` or ``(T, H, W, C)``.

    ``missing_chunks``: ``"error"`` (default) raises :class:`DamagedInputError` for a frame whose
    chunk file is missing; ``"fill"`` reads it as the array's fill value.
    """

    def __init__(
        self, path: str | os.PathLike[str], color: str = "gray", *, fps: float | None = None,
        missing_chunks: str = "error",
    ) -> None:
        import zarr

        self.color = check_color(color)
        if missing_chunks not in ("error", "fill"):
            raise UnsupportedInputError(f"missing_chunks must be 'error' or 'fill', got {missing_chunks!r}")
        self.missing_chunks = missing_chunks
        spec = os.path.expanduser(os.fspath(path))
        self.path = spec
        if not Path(spec).exists():
            raise InputNotFoundError(f"{spec}: no such file or folder; check the path")
        try:
            node = zarr.open(spec, mode="r")
        except Exception as exc:
            raise UnreadableInputError(
                f"{spec}: not a readable Zarr store ({' '.join(str(exc).split())[:100]}); check the path points at "
                "a Zarr array or OME-Zarr image"
            ) from None
        names: list[str] | None = None
        self.ngff = False
        self._fps_meta: float | None = None
        if isinstance(node, zarr.Group):
            node, names = self._resolve_group(node, spec)
        else:
            attrs = dict(node.attrs)
            names = _axis_names(getattr(node.metadata, "dimension_names", None)) or _axis_names(
                attrs.get("_ARRAY_DIMENSIONS")
            )
        self._array = node
        shape = tuple(int(s) for s in node.shape)
        if names is not None and len(names) != len(shape):
            names = None
        if names is None:
            check_layout(shape, spec)
            names = ["t", "y", "x"] if len(shape) == 3 else ["t", "y", "x", "c"]
        self._names = names
        # selection for frame t, and the transpose that makes the result (y, x[, c])
        for ax in names:
            if ax == "z" and shape[names.index("z")] != 1:
                raise UnsupportedInputError(
                    f"{spec}: has a z axis of {shape[names.index('z')]} planes; vidfilter reads 2-D frames over time, "
                    "select one plane (or a projection) first"
                )
        kept = [a for a in names if a not in ("t", "z")]
        self._perm = [kept.index(a) for a in ("y", "x", "c") if a in kept]
        n_t = shape[names.index("t")] if "t" in names else 1
        frame_native = tuple(shape[names.index(a)] for a in ("y", "x", "c") if a in names)
        native = (n_t,) + frame_native
        check_layout(native, spec)
        self._native_dtype = np.dtype(node.dtype)
        self.dtype = resolve_dtype(self._native_dtype, spec)
        self.shape = policy_shape(native, self.color)
        self.fps = float(fps) if fps else self._fps_meta
        self._run = _ChunkRunReader(node, names, int(np.prod(frame_native)) * self._native_dtype.itemsize)

    def _resolve_group(self, group: Any, spec: str) -> tuple[Any, list[str] | None]:
        import zarr

        ms = _multiscales(group.attrs)
        if ms is None:
            children = list(group.members())
            if len(children) == 1 and (isinstance(children[0][1], zarr.Array) or _multiscales(children[0][1].attrs)):
                key, child = children[0]
                if isinstance(child, zarr.Array):
                    self.path = f"{spec.rstrip('/')}/{key}"
                    return child, _axis_names(dict(child.attrs).get("_ARRAY_DIMENSIONS"))
                self.path = f"{spec.rstrip('/')}/{key}"
                return self._resolve_group(child, self.path)
            listing = ", ".join(sorted(k for k, _ in group.members())) or "nothing"
            raise UnsupportedInputError(
                f"{spec}: is a Zarr group with no single image inside (holds: {listing}); "
                f"name one, e.g. {spec.rstrip('/')}/<name>"
            )
        self.ngff = True
        m = ms[0]
        try:
            level0 = m["datasets"][0]["path"]
            arr = group[level0]
        except (KeyError, IndexError, TypeError):
            raise UnreadableInputError(f"{spec}: OME-Zarr metadata names no readable level-0 dataset") from None
        names = _axis_names(m.get("axes"))
        if names is None and m.get("axes") is None:
            # NGFF 0.1/0.2 have no axes: always 5-D t c z y x
            names = ["t", "c", "z", "y", "x"] if len(arr.shape) == 5 else None
        self._fps_meta = _fps_from_ngff(m, names)
        return arr, names

    def _select(self, t: int | slice) -> tuple[Any, ...]:
        sel: list[Any] = []
        for a in self._names:
            if a == "t":
                sel.append(t)
            elif a == "z":
                sel.append(0)
            else:
                sel.append(slice(None))
        return tuple(sel)

    def chunk_keys(self, t: int) -> list[str]:
        """Store keys of the chunk (or shard) files that hold frame ``t``."""
        import itertools

        arr = self._array
        grid = getattr(arr, "shards", None) or arr.chunks
        per_axis: list[Any] = []
        for ax, size, c in zip(self._names, arr.shape, grid):
            if ax == "t":
                per_axis.append([t // c])
            elif ax == "z":
                per_axis.append([0])
            else:
                per_axis.append(range(-(-size // c)))
        prefix = arr.store_path.path
        keys = [arr.metadata.encode_chunk_key(tuple(ix)) for ix in itertools.product(*per_axis)]
        return [f"{prefix}/{k}" if prefix else k for k in keys]

    def missing_chunk_keys(self, t: int) -> list[str]:
        """Keys of the chunk files of frame ``t`` that are not in the store."""
        from zarr.core.sync import sync

        store = self._array.store_path.store
        return [k for k in self.chunk_keys(t) if not sync(store.exists(k))]

    def _read(self, t: int) -> np.ndarray:
        if self.missing_chunks == "error" and "t" in self._names:
            missing = self.missing_chunk_keys(t)
            if missing:
                reason = f"frame {t} is missing from the store (chunk file {missing[0]} not found)"
                raise DamagedInputError(
                    f"{self.path}: {reason}; restore the store from a copy, or if it leaves out all-fill "
                    "chunks on purpose read it with --missing-chunks fill",
                    frame=t, reason=reason,
                )
        try:
            frame = self._run.frame(t, self._select) if self._run.frames > 1 else np.asarray(self._array[self._select(t)])
        except Exception as exc:
            raise DamagedInputError.unreadable_frame(
                self.path, t, " ".join(str(exc).split())[:100], "the store is damaged, restore it from a copy"
            ) from None
        return source_frame(np.transpose(frame, self._perm), self.dtype)

    def to_dask(self, chunks: int | None = None) -> Any:
        """``dask.array.from_zarr`` over the store, keeping its chunks (``chunks`` rechunks time)."""
        import dask.array as da

        arr = da.from_zarr(self._array)
        arr = arr[self._select(slice(None))]
        if "t" not in self._names:
            arr = arr[None]
        arr = arr.transpose([0] + [p + 1 for p in self._perm])
        if chunks:
            arr = arr.rechunk({0: int(chunks)})
        return _policy_dask(arr, self)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        a = self._array
        d.update(
            axes="".join(self._names),
            chunks=list(a.chunks),
            stored_dtype=str(self._native_dtype),
            zarr_format=getattr(a.metadata, "zarr_format", None),
            ome_zarr=self.ngff,
        )
        return d


class _ChunkRunReader:
    """Frames of an array that holds several frames per chunk along ``t``: the chunk of the last
    frame read is kept, so reading frames in order decompresses each chunk once, not once a frame.
    Chunks of more than :attr:`MAX_BYTES` of frames are not kept (``frames`` is then 1)."""

    MAX_BYTES = 256 << 20

    def __init__(self, array: Any, names: list[str], frame_bytes: int) -> None:
        import threading

        self.array = array
        k = int(array.chunks[names.index("t")]) if "t" in names else 1
        self.frames = k if 1 < k and k * frame_bytes <= self.MAX_BYTES else 1
        self.axis = [a for a in names if a != "z"].index("t") if "t" in names else 0
        self.n = int(array.shape[names.index("t")]) if "t" in names else 1
        self._held: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_held": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import threading

        self.__dict__.update(state, _lock=threading.Lock())

    def frame(self, t: int, select: Any) -> np.ndarray:
        """Frame ``t`` as ``array[select(t)]`` gives it, from its chunk's frames."""
        c = t // self.frames
        with self._lock:
            held = self._held
            if held is None or held[0] != c:
                lo = c * self.frames
                held = self._held = (c, np.asarray(self.array[select(slice(lo, min(lo + self.frames, self.n)))]))
        return np.take(held[1], t - c * self.frames, axis=self.axis)


def _fps_from_ngff(m: dict[str, Any], names: list[str] | None) -> float | None:
    """Frame rate from the level-0 scale of the t axis when its unit is a time unit."""
    if not names or "t" not in names:
        return None
    try:
        axes = m["axes"]
        unit = axes[names.index("t")].get("unit")
        scale = next(
            tr["scale"] for tr in m["datasets"][0].get("coordinateTransformations", []) if tr.get("type") == "scale"
        )
        dt = float(scale[names.index("t")])
    except (KeyError, IndexError, TypeError, AttributeError, StopIteration, ValueError):
        return None
    per_s = {"second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6, "minute": 60.0, "hour": 3600.0}.get(unit or "")
    if per_s is None or dt <= 0:
        return None
    return 1.0 / (dt * per_s)
