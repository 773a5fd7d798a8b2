"""Windowed readers of huge images: a Zarr / OME-Zarr node or a TIFF as a lazy array read block by block.

:func:`open_zarr` (NGFF level 0, a group's only member or a vidfilter output's ``background``) and
:func:`open_tiff` (tifffile's Zarr view) give an array and its axis names or ``None``;
:func:`with_axes` turns those into an axes string of ``t``, ``c``, ``y``, ``x`` (singleton extra
axes dropped lazily by :class:`Squeezed`) or guesses it from the shape (:func:`guess_axes`).
:func:`vidfilter.io.registry.open_array` picks among them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidfilter.errors import InputNotFoundError, UnreadableInputError, UnsupportedInputError


def is_zarr_dir(p: Path) -> bool:
    """Whether ``p`` is a folder with Zarr metadata (v2 or v3)."""
    return p.is_dir() and any((p / m).is_file() for m in ("zarr.json", ".zarray", ".zgroup"))


def windowed_kind(path: str | os.PathLike[str]) -> str | None:
    """``"zarr"`` (a ``.zarr`` component or a folder with Zarr metadata), ``"tiff"`` (a TIFF file)
    or ``None``: how :func:`vidfilter.io.registry.open_array` reads ``path`` window by window."""
    p = Path(path)
    if any(c.suffix.lower() == ".zarr" for c in [p, *p.parents]) or is_zarr_dir(p):
        return "zarr"
    return "tiff" if p.suffix.lower() in (".tif", ".tiff") and p.is_file() else None


def open_zarr(spec: str, node: Any = None) -> tuple[Any, list[str] | None]:
    """``(array, NGFF axis names or None)`` at a Zarr path (``store.zarr``, ``store.zarr/array``), read-only:
    an array itself, an NGFF image's level 0, a group's only member, or a vidfilter output's ``background``
    (``node``: the node at ``spec`` if already open); a one-line error for a missing or unreadable store."""
    import zarr

    if node is None:
        if "://" not in spec and not Path(spec).exists():
            raise InputNotFoundError(f"{spec}: no such Zarr store; check the path")
        try:
            node = zarr.open(spec, mode="r")
        except Exception as e:
            raise UnreadableInputError(f"{spec}: not a readable Zarr store ({' '.join(str(e).split())[:100]})") from None
    if isinstance(node, zarr.Array):
        return node, None
    attrs = dict(node.attrs)
    ms = (attrs.get("ome") or attrs).get("multiscales")
    if ms:
        arr = node[ms[0]["datasets"][0]["path"]]
        names = [a["name"] if isinstance(a, dict) else str(a) for a in ms[0].get("axes", [])]
        return arr, (names if names and len(names) == arr.ndim else None)
    members = list(node.members())
    if len(members) == 1:
        return open_zarr(f"{spec}/{members[0][0]}", members[0][1])
    if "background" in node:  # a vidfilter output
        return open_zarr(f"{spec}/background", node["background"])
    names = ", ".join(sorted(k for k, _ in members)) or "nothing"
    raise UnsupportedInputError(f"{spec}: a Zarr group holding {names}; name the array, e.g. {spec}/<name>")


def open_tiff(spec: str) -> tuple[Any, list[str]]:
    """``(array, axis names)`` of a TIFF's first series (level 0), read through tifffile's Zarr view."""
    import tifffile
    import zarr

    try:
        series = tifffile.TiffFile(spec).series[0]
        arr = zarr.open(series.aszarr(level=0), mode="r")
        names = list(series.axes)
    except Exception as e:
        raise UnreadableInputError(f"{spec}: not a readable TIFF ({' '.join(str(e).split())[:100]})") from None
    if isinstance(arr, zarr.Group):  # some tifffile versions give a group for pyramids
        arr = arr["0"]
    return arr, names


def guess_axes(shape: tuple[int, ...]) -> str:
    """Axes of an array without axis names: ``yx``, ``yxc`` (last axis 3 or 4), ``tyx`` or ``tyxc``."""
    if len(shape) == 2:
        return "yx"
    if len(shape) == 3:
        return "yxc" if shape[-1] in (3, 4) else "tyx"
    if len(shape) == 4 and shape[-1] in (3, 4):
        return "tyxc"
    raise UnsupportedInputError(f"cannot tell the axes of an array of shape {shape}; give (y, x), (y, x, c) or (t, y, x)")


class Squeezed:
    """An array with some axes fixed by an index (read lazily)."""

    def __init__(self, arr: Any, index: tuple[Any, ...]) -> None:
        self.arr, self.index = arr, index
        self.shape = tuple(n for n, i in zip(arr.shape, index) if isinstance(i, slice))
        self.dtype = arr.dtype

    def __getitem__(self, sel: tuple[Any, ...]) -> Any:
        it = iter(sel)
        full = tuple(next(it) if isinstance(i, slice) else i for i in self.index)
        return self.arr[full]


def with_axes(arr: Any, names: Sequence[str] | None, spec: str) -> tuple[Any, str]:
    """``(array, axes)``: NGFF / TIFF axis ``names`` mapped to ``t``, ``c``, ``y``, ``x`` (singleton
    extra axes dropped lazily by :class:`Squeezed`), or without names the axes guessed from the shape."""
    if names is None:
        return arr, guess_axes(tuple(arr.shape))
    axes, index = "", []
    for name, n in zip(names, arr.shape):
        a = name.lower()
        a = {"s": "c", "i": "t", "q": "t", "z": "t"}.get(a, a)
        if a in ("y", "x", "c") or (a == "t" and "t" not in axes):
            if a in axes:
                raise UnsupportedInputError(f"{spec}: more than one {a!r} axis ({''.join(names)}); select one first")
            axes += a
            index.append(slice(None))
        elif n == 1:
            index.append(0)
        else:
            raise UnsupportedInputError(f"{spec}: axes {''.join(names)} with more than one non-spatial axis; select one first")
    if "y" not in axes or "x" not in axes:
        raise UnsupportedInputError(f"{spec}: no y/x axes in {''.join(names)}")
    return (arr if all(isinstance(i, slice) for i in index) else Squeezed(arr, tuple(index))), axes
