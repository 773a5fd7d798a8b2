"""``vidfilter.track``: the tracks of the objects of an output store of ``vidfilter run``.

The mask of each frame is the store's ``mask`` group (``source="mask"``) or its foreground above
a threshold (``source="foreground"``); ``"auto"`` takes the mask where the store has one. Frames
are read one at a time from both groups (the foreground gives each object's mean intensity, in
grey levels on the 8-bit scale) and linked by :func:`vidfilter.track.link.track_masks`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError, UnreadableInputError
from vidfilter.track.link import MAX_DISTANCE, MAX_GAP, MIN_AREA, track_masks
from vidfilter.track.tables import check_store, check_table_path, write_store_table, write_table

__all__ = ["SOURCES", "summary", "track"]

#: Where the masks come from.
SOURCES = ("auto", "mask", "foreground")
#: Foreground threshold (grey levels, 8-bit scale) when the store records none.
DEFAULT_THRESHOLD = 10.0


def _groups(store: Path) -> set[str]:
    return {name for name in ("mask", "foreground") if (store / name / "zarr.json").is_file()}


def _pick_source(store: Path, source: str) -> str:
    """The group the masks come from: ``mask`` or ``foreground``."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    have = _groups(store)
    if not have:
        raise UnreadableInputError(f"{store} has neither a mask nor a foreground group; rerun `vidfilter run` with --mask")
    if source == "auto":
        return "mask" if "mask" in have else "foreground"
    if source not in have:
        other = "--source foreground" if source == "mask" else "--source mask"
        hint = "rerun `vidfilter run` with --mask, or use " + other if source == "mask" else "use " + other
        raise UnreadableInputError(f"{store} has no {source} group; {hint}")
    return source


def _threshold(attrs: dict[str, Any], threshold: float | None) -> float:
    if threshold is not None:
        if not float(threshold) >= 0:
            raise ConfigError(f"threshold must be 0 or more grey levels, got {threshold}")
        return float(threshold)
    recorded = ((attrs.get("config") or {}).get("output") or {}).get("mask_threshold")
    return float(recorded) if recorded is not None else DEFAULT_THRESHOLD


def _masks(src: Any, n: int, above: float | None) -> Iterator[np.ndarray]:
    """Boolean masks of the first ``n`` frames of ``src``: non-zero, or grey levels above ``above``."""
    from vidfilter.polarity import grey_levels

    for frame in src.iter(0, n):
        yield np.asarray(frame) != 0 if above is None else grey_levels(frame) > above


def _grey(src: Any, n: int) -> Iterator[np.ndarray]:
    from vidfilter.polarity import grey_levels

    for frame in src.iter(0, n):
        yield grey_levels(frame)


def track(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    source: str = "auto",
    threshold: float | None = None,
    min_area: int = MIN_AREA,
    max_distance: float = MAX_DISTANCE,
    max_gap: int = MAX_GAP,
    into_store: bool = False,
    overwrite: bool = False,
) -> Any:
    """Track the objects of an output store, frame by frame.

    Parameters
    ----------
    store : path-like
        ``OUT.zarr`` written by ``vidfilter run`` (finished).
    out : path-like, optional
        Also write the table here: ``.csv``, or ``.parquet`` (needs pyarrow).
    source : {"auto", "mask", "foreground"}
        The masks: the stored ``mask`` group, or ``foreground > threshold``; ``auto`` takes the
        mask where the store has one.
    threshold : float, optional
        With the foreground: grey levels on the 8-bit scale (default: the run's recorded
        ``output.mask_threshold``, else 10).
    min_area, max_distance, max_gap
        As in :func:`vidfilter.track.link.track_masks` (defaults 50 px, 30 px, 30 frames).
    into_store : bool
        Also write the table into the store as its group ``tracks`` (replacing an earlier one).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    pandas.DataFrame
        One row per object and frame: ``frame, track_id, y, x, area, bbox_y0, bbox_x0, bbox_y1,
        bbox_x1, mean_intensity``.
    """
    from vidfilter.io.registry import open as vf_open

    root = Path(store).expanduser()
    attrs = check_store(root)
    group = _pick_source(root, source)
    above = _threshold(attrs, threshold) if group == "foreground" else None
    if out is not None:
        check_table_path(out, overwrite=overwrite, store=root)
    srcs = {name: vf_open(root / name) for name in _groups(root)}
    try:
        n = min(len(s) for s in srcs.values())
        fg = srcs.get("foreground")
        df = track_masks(_masks(srcs[group], n, above), None if fg is None else _grey(fg, n),
                         min_area=min_area, max_distance=max_distance, max_gap=max_gap)
    finally:
        for s in srcs.values():
            s.close()
    settings = {"source": group, "threshold": above, "min_area": int(min_area), "max_distance": float(max_distance),
                "max_gap": int(max_gap), "frames": int(n)}
    df.attrs["vidfilter"] = settings
    if out is not None:
        write_table(df, out)
    if into_store:
        write_store_table(df, root, settings)
    return df


def summary(df: Any, where: str | None = None) -> str:
    """One line: objects, tracks, median track length (frames with the object), and where it went."""
    lengths = df.groupby("track_id").size() if len(df) else []
    median = float(np.median(lengths)) if len(lengths) else 0.0
    line = f"{len(df)} objects, {len(lengths)} tracks, median track length {median:g} frames"
    return f"{line} -> {where}" if where else line

