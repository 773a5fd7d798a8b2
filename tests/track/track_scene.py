"""A generated mask sequence with exact trajectories, for the tracking tests and the linker benchmark.

Seven discs of radius ``r`` on a ``(H, W)`` field, one path each (``y, x`` per frame):

- ``cross_a``, ``cross_b``: cross each other's path at the same moment (their discs overlap);
- ``touch_a``, ``touch_b``: come together until their discs touch, stay touching, then part the way
  they came;
- ``pause``: moves, stops for a while, moves on;
- ``still``: never moves;
- ``leave``: moves off the right edge and is gone for the rest of the recording.

Each disc has its own intensity (``intensity = 60 + 20 k`` for disc ``k``) on a dark field.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

NAMES = ("cross_a", "cross_b", "touch_a", "touch_b", "pause", "still", "leave")


def paths(t_len: int = 200, h: int = 160, w: int = 220, r: int = 6) -> np.ndarray:
    """``(T, 7, 2)`` centres ``y, x`` of the discs of :data:`NAMES` (``NaN`` once ``leave`` is out)."""
    t = np.arange(t_len, dtype=np.float64)
    mid = t_len / 2
    out = np.full((t_len, len(NAMES), 2), np.nan)
    # crossing: both cross x = w/2 at t = mid, with a small vertical offset so the discs overlap
    out[:, 0] = np.stack([np.full(t_len, 30.0), w / 2 + 1.0 * (t - mid)], 1)
    out[:, 1] = np.stack([np.full(t_len, 34.0), w / 2 - 1.0 * (t - mid)], 1)
    # touching: both approach at 1 px/frame, touch (centres 2r apart: one shared column) for 7 frames, part
    gap = np.clip(np.abs(t - mid) - 3, 0, None) + 2 * r
    a_x = w / 2 - gap / 2 - 0.3 * np.clip(t - mid, 0, None)  # a retreats a little faster than b
    out[:, 2] = np.stack([np.full(t_len, 80.0), a_x], 1)
    out[:, 3] = np.stack([np.full(t_len, 80.0), a_x + gap], 1)
    # pause: moves down-right, stops for 40 frames in the middle, moves on
    s = np.clip(t, None, mid - 20) + np.clip(t - (mid + 20), 0, None)
    out[:, 4] = np.stack([110 + 0.2 * s, 20 + 0.8 * s], 1)
    out[:, 5] = (140.0, 30.0)
    leave_x = w / 2 + 2.5 * t
    gone = leave_x - r > w
    out[:, 6] = np.stack([np.full(t_len, 130.0), leave_x], 1)
    out[gone, 6] = np.nan
    return out


def frames(centres: np.ndarray, h: int = 160, w: int = 220, r: int = 6) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(mask, intensity)`` of each frame: discs of radius ``r`` (``(y-cy)^2 + (x-cx)^2 <= r^2``)."""
    yy, xx = np.mgrid[:h, :w]
    for row in centres:
        mask = np.zeros((h, w), bool)
        img = np.zeros((h, w), np.uint8)
        for k, (cy, cx) in enumerate(row):
            if np.isnan(cy):
                continue
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            mask |= disc
            img[disc] = 60 + 20 * k
        yield mask, img


def match(tracks, centres: np.ndarray, r: int = 6) -> np.ndarray:
    """``(T, K)`` track id of the detection each true disc is matched to (-1: none): per frame, each
    detection goes to the nearest true centre within ``r``; a merged blob (a box holding the
    centres of several discs) goes to none of them, since it is neither."""
    ids = np.full(centres.shape[:2], -1, np.int64)
    for t, rows in tracks.groupby("frame"):
        c = centres[int(t)]
        for _, row in rows.iterrows():
            inside = ((c[:, 0] >= row["bbox_y0"]) & (c[:, 0] < row["bbox_y1"])
                      & (c[:, 1] >= row["bbox_x0"]) & (c[:, 1] < row["bbox_x1"]))
            if inside.sum() > 1:
                continue
            d = np.hypot(c[:, 0] - row["y"], c[:, 1] - row["x"])
            d[np.isnan(d)] = np.inf
            k = int(np.argmin(d))
            if d[k] <= r and ids[int(t), k] < 0:
                ids[int(t), k] = int(row["track_id"])
    return ids


def identity_scores(ids: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, int]:
    """Per true disc, the share of its frames in view covered by its most frequent track id, and
    the number of identity switches (changes of id between consecutive matched frames), summed."""
    cover, switches = np.zeros(ids.shape[1]), 0
    for k in range(ids.shape[1]):
        in_view = ~np.isnan(centres[:, k, 0])
        got = ids[in_view, k]
        seen = got[got >= 0]
        if seen.size:
            cover[k] = np.bincount(seen).max() / in_view.sum()
            switches += int(np.count_nonzero(np.diff(seen)))
    return cover, switches
