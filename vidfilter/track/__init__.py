"""vidfilter.track: tracks of the moving objects of vidfilter's outputs (or of any mask sequence).

- ``objects.py``: per-frame objects, streaming: 8-connected components of a mask, those below
  ``min_area`` dropped, measured with :func:`skimage.measure.regionprops` (centroid, area, box,
  mean intensity); only the object rows are kept, never the frames.
- ``link.py``: :func:`track_masks` (any iterable of 2-D masks, optional intensity frames) and
  :func:`link` (trackpy; the measurement behind the choice and the defaults are in its docstring).
- ``api.py``: :func:`track`, the tracks of an output store (its ``mask`` group, or its
  ``foreground`` above a threshold); the command line's ``vidfilter track``.
- ``tables.py``: CSV / Parquet files written atomically, and the table group ``OUT.zarr/tracks``.

Columns of a track table: ``frame, track_id, y, x, area, bbox_y0, bbox_x0, bbox_y1, bbox_x1,
mean_intensity``.

``vidfilter.track`` names both this package and the function :func:`track`; calling the package
calls the function, so ``vidfilter.track(store)`` works whichever of the two the name holds.
"""

from __future__ import annotations

from vidfilter._lazy import callable_package
from vidfilter.track.api import SOURCES, summary, track
from vidfilter.track.link import MAX_DISTANCE, MAX_GAP, MIN_AREA, link, track_masks
from vidfilter.track.objects import COLUMNS, measure_frame, measure_frames
from vidfilter.track.tables import GROUP, read_store_table, read_table, write_store_table, write_table

__all__ = ["COLUMNS", "GROUP", "MAX_DISTANCE", "MAX_GAP", "MIN_AREA", "SOURCES", "link", "measure_frame",
    "measure_frames", "read_store_table", "read_table", "summary", "track", "track_masks", "write_store_table",
    "write_table"]


callable_package(__name__, track)
