"""Linking per-frame objects into tracks, with trackpy.

Choice of linker
----------------
laptrack (0.17) and trackpy (0.7) were measured on the same object table: the generated scene of
``tests/track/track_scene.py`` (200 frames of 160 x 220 px, seven discs of radius 6: a pair that
crosses, a pair that touches for 7 frames and parts, one that pauses for 40 frames, one that never
moves, one that leaves the field; 1226 objects), ``max_distance`` 20 px, on a 2-core machine
shared with other work (``benchmarks/linkers.py``). An ID switch is a change of track id
along a true trajectory (frames where two discs form one blob count for neither); "cover" is the
share of a disc's frames held by its most frequent id:

=====================  ======  ========  ===============  ========  ===========
linker, gap (frames)   tracks  switches  cover, touching  1226      30 650 rows
                                         pair a / b       rows      (5000 fr.)
=====================  ======  ========  ===============  ========  ===========
trackpy, memory 30     7       2         0.965 / 0.965    19 ms     0.37 s
trackpy, memory 10     8       2         0.965 / 0.965    15 ms     0.38 s
laptrack, gap 30       8       4         0.485 / 0.485    496 ms    16.9 s
laptrack, gap 10       8       4         0.485 / 0.485    586 ms    14.9 s
trackpy + velocity 30  7       2         0.965 / 0.965    1133 ms   36.3 s
trackpy + velocity 10  8       1         0.965 / 0.965    967 ms    29.6 s
=====================  ======  ========  ===============  ========  ===========

(7 discs: 7 tracks is the right count. The still, paused and leaving discs are one track each
with every linker. The crossing pair switches identity (2 switches) with every linker: only a
motion model tells which disc came out on which side, and trackpy's velocity predictor gets one
of the two right at memory 10, at 60 times the cost. laptrack's 2 further switches are the
touching pair, whose merged blob it continues into the wrong part.)

trackpy is used: 30 to 40 times faster, its state while linking is the objects of the last
``max_gap`` frames (laptrack builds a graph of every object), and its memory re-links an object
that merged with another to the part that reappears nearest to where it was last seen on its
own, which recovers the identities of a touching pair once ``max_gap`` outlasts the contact;
laptrack's segment gap closing did not, with either gap.

Defaults (:data:`MIN_AREA`, :data:`MAX_DISTANCE`, :data:`MAX_GAP`) are chosen on the mouse video
of the examples (640 x 480 px, 30 fps, ``--method median --mask``): the mouse is 1070 to 3300 px,
99.4 % of the other components of its mask are noise specks under 50 px; its centroid moves at
most 9 px per frame in 99 % of frames; and 30 frames (1 s) of memory keeps an animal's identity
through a short contact with another or a short drop-out of its mask. With these defaults the
mouse video gives 301 tracks: two hold the mouse over the whole video (frames 0-5629 and
5619-9999; the break is where a second large blob beside the mouse joins it and the merged blob
continues the other's track), the other 299 are short-lived mask fragments and shadows (median
5 frames; 85 tracks in all with ``min_area=500``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from vidfilter.errors import ConfigError
from vidfilter.track.objects import COLUMNS, measure_frames

__all__ = ["MAX_DISTANCE", "MAX_GAP", "MIN_AREA", "link", "track_masks"]

#: Smallest object kept, in pixels: drops sensor-noise specks of a mask, keeps small animals.
MIN_AREA = 50
#: Largest move of an object between two frames it is seen in, in pixels.
MAX_DISTANCE = 30.0
#: Frames an object may be missing (merged with another, dropped out of the mask) and keep its id.
MAX_GAP = 30


def _check(min_area: Any, max_distance: Any, max_gap: Any) -> None:
    if int(min_area) < 1:
        raise ConfigError(f"min_area must be at least 1 pixel, got {min_area}")
    if not float(max_distance) > 0:
        raise ConfigError(f"max_distance must be more than 0 pixels, got {max_distance}")
    if int(max_gap) < 0:
        raise ConfigError(f"max_gap must be 0 or more frames, got {max_gap}")


@contextlib.contextmanager
def _repeatable() -> Iterator[None]:
    """trackpy keeps the objects it links in sets, hashed by their address in memory, so the order
    it visits them in, and which of two equally good links it takes, changed from call to call
    (measured: two different results in ten calls on the same table). Its objects carry a counter
    of creation order, reset by every ``link``: hashing by it makes the result the same every time."""
    from trackpy.linking.utils import Point

    had = Point.__dict__.get("__hash__")
    Point.__hash__ = lambda self: self.uuid  # type: ignore[method-assign]
    try:
        yield
    finally:
        if had is None:
            del Point.__hash__
        else:
            Point.__hash__ = had  # type: ignore[method-assign]


def link(objects: Any, *, max_distance: float = MAX_DISTANCE, max_gap: int = MAX_GAP) -> Any:
    """Give each object row (``frame``, ``y``, ``x``, ...) a ``track_id``.

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per object and frame, with at least ``frame``, ``y`` and ``x``.
    max_distance : float
        Largest distance, in pixels, between an object and its continuation.
    max_gap : int
        Frames an object may be missing and still be continued (trackpy's ``memory``).

    Returns
    -------
    pandas.DataFrame
        The rows with ``track_id`` (1, 2, ... in order of first appearance), columns in the order
        of :data:`~vidfilter.track.objects.COLUMNS`, sorted by ``frame`` then ``track_id``.
    """
    import pandas as pd
    import trackpy

    _check(1, max_distance, max_gap)
    df = objects.reset_index(drop=True)
    if df.empty:
        return pd.DataFrame({c: np.zeros(0, np.float64 if c in ("y", "x", "mean_intensity") else np.int64) for c in COLUMNS})
    trackpy.quiet()
    try:
        with warnings.catch_warnings(), _repeatable():  # trackpy's own use of pandas features pandas deprecates
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            linked = trackpy.link(df, search_range=float(max_distance), memory=int(max_gap), pos_columns=["y", "x"],
                                  t_column="frame", adaptive_stop=max(0.5, float(max_distance) / 10), adaptive_step=0.9)
    except trackpy.SubnetOversizeException:
        raise ConfigError(f"too many objects lie within max_distance {max_distance:g} px of each other to link them; "
                          "lower --max-distance or raise --min-area") from None
    # renumber: 1, 2, ... in order of first appearance (trackpy's labels follow its own bookkeeping)
    first = linked.groupby("particle", sort=False)["frame"].min().sort_values(kind="stable")
    order = pd.Series(np.arange(1, len(first) + 1, dtype=np.int64), index=first.index)
    linked["track_id"] = order.loc[linked["particle"].to_numpy()].to_numpy()
    out = linked[list(COLUMNS)].sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True)
    return out.astype({"frame": np.int64, "track_id": np.int64})


def track_masks(
    masks: Iterable[np.ndarray],
    intensities: Iterable[np.ndarray] | None = None,
    *,
    min_area: int = MIN_AREA,
    max_distance: float = MAX_DISTANCE,
    max_gap: int = MAX_GAP,
) -> Any:
    """Tracks of the objects of a sequence of 2-D masks, read one frame at a time.

    Parameters
    ----------
    masks : iterable of numpy.ndarray
        One ``(H, W)`` mask per frame (non-zero: object); frames are numbered from 0.
    intensities : iterable of numpy.ndarray, optional
        One ``(H, W)`` frame per mask whose mean over each object is ``mean_intensity``
        (``NaN`` without them).
    min_area : int
        Components (8-connected) of fewer pixels are dropped.
    max_distance : float
        Largest move, in pixels, between two frames an object is seen in.
    max_gap : int
        Frames an object may be missing and keep its track.

    Returns
    -------
    pandas.DataFrame
        Columns ``frame, track_id, y, x, area, bbox_y0, bbox_x0, bbox_y1, bbox_x1, mean_intensity``
        (centroid in pixels, bounding box with exclusive ends), one row per object and frame.
    """
    import pandas as pd

    _check(min_area, max_distance, max_gap)
    table = measure_frames(masks, intensities, min_area=int(min_area))
    return link(pd.DataFrame(table.columns()), max_distance=max_distance, max_gap=max_gap)
