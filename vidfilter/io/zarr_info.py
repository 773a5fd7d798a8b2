"""What a vidfilter OME-Zarr output holds, read from its metadata: :func:`read_ome_zarr_info`.

Works on a finished store and on the ``PATH.partial`` of an interrupted one (see
:mod:`vidfilter.io.zarr_sink` for the layout). :func:`describe_static_image` describes a Zarr
array that holds one image (no time axis), the input of static-mode models.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from vidfilter.errors import InputNotFoundError, UnreadableInputError
from vidfilter.io.keyframe_store import KEYFRAMES, STORAGE
from vidfilter.io.sink import partial_path

__all__ = ["describe_static_image", "read_ome_zarr_info"]


def read_ome_zarr_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Describe a vidfilter OME-Zarr output (complete or ``.partial``) for ``info``/verify.

    Returns
    -------
    dict
        ``path``, ``complete`` (bool), ``partial`` (bool: the ``.partial`` store was read),
        ``attrs`` (root attributes except vidfilter's own), ``format_version``, and ``groups``:
        ``{name: {shape, dtype, chunks, axes, scale, fps, frames_written, n_frames, complete}}``.
    """
    import zarr

    p = Path(path).expanduser()
    is_partial = p.name.endswith(".partial")
    if not p.exists():
        pp = partial_path(p)
        if pp.exists():
            p, is_partial = pp, True
        else:
            raise InputNotFoundError(f"{path} does not exist")
    try:
        root = zarr.open_group(str(p), mode="r")
    except Exception as e:  # zarr raises several types here
        raise UnreadableInputError(f"{p} is not a readable Zarr store ({e})") from e
    attrs = dict(root.attrs)
    vf = attrs.pop("vidfilter", {}) or {}
    groups: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        members = sorted(root.groups(), key=lambda kv: kv[0])
    for name, group in members:
        gattrs = dict(group.attrs)
        ome = gattrs.get("ome", {})
        ms = (ome.get("multiscales") or gattrs.get("multiscales") or [{}])[0]
        gvf = gattrs.get("vidfilter", {}) or {}
        keyed = gvf.get("storage") == STORAGE
        if (KEYFRAMES if keyed else "0") not in group:
            continue
        arr = group[KEYFRAMES if keyed else "0"]
        axes = [a.get("name") for a in ms.get("axes", [])]
        scale = None
        for ds in ms.get("datasets", []):
            for tr in ds.get("coordinateTransformations", []):
                if tr.get("type") == "scale":
                    scale = tr.get("scale")
        fps = None
        if axes and axes[0] == "t" and scale and ms["axes"][0].get("unit") == "second" and scale[0]:
            fps = 1.0 / float(scale[0])
        if keyed:  # no NGFF metadata: the axes are the keyframe array's, the rate the group's
            axes, fps = list(getattr(arr.metadata, "dimension_names", None) or []), gvf.get("fps")
        groups[name] = {
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "chunks": list(arr.chunks),
            "axes": axes,
            "scale": scale,
            "fps": fps,
            "frames_written": gvf.get("frames_written"),
            "n_frames": gvf.get("n_frames"),
            "complete": bool(gvf.get("complete", False)),
            "storage": gvf.get("storage", "full"),
        }
    return {
        "path": str(p),
        "partial": is_partial,
        "complete": bool(vf.get("complete", False)) and not is_partial,
        "format_version": vf.get("format_version"),
        "attrs": attrs,
        "groups": groups,
    }


def describe_static_image(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What ``vidfilter info`` shows of a Zarr / OME-Zarr array holding one image: axes ``y, x``
    or ``y, x, c`` and no time axis, read window by window as :func:`vidfilter.io.registry.open_array`
    reads it for static-mode models. ``None`` when ``path`` is no such array (not Zarr, unreadable,
    or with a time axis: a recording, described by its frame source)."""
    from vidfilter.errors import VidfilterError
    from vidfilter.io import windowed
    from vidfilter.io.windowed import windowed_kind

    spec = os.path.expanduser(os.fspath(path))
    if windowed_kind(spec) != "zarr":
        return None
    try:
        arr, names = windowed.open_zarr(spec)
        _, axes = windowed.with_axes(arr, names, spec)
    except VidfilterError:
        return None
    if "t" in axes:
        return None
    return {
        "path": spec, "kind": "static image (Zarr array, no time axis)", "shape": list(arr.shape), "dtype": str(arr.dtype),
        "axes": "".join(n.lower() for n in names) if names else axes, "chunks": list(getattr(arr, "chunks", arr.shape)),
        "zarr_format": getattr(getattr(arr, "metadata", None), "zarr_format", None), "ome_zarr": names is not None,
        "use": "one image: `vidfilter run` filters it with a static-mode model (--model STATIC.vfm), block by block",
    }
