"""Reading a whole image group of a test's output store into memory, in its stored layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from vidfilter.io.keyframe_store import is_keyframe_group
from vidfilter.io.registry import open as vf_open


def read_group(store: Path, group: str) -> np.ndarray:
    """Every frame of ``store/group`` as stored, ``(T, [C,] H, W)`` in the stored dtype; a
    background stored at keyframes is rebuilt frame by frame by ``vidfilter.open``."""
    path = Path(store) / group
    if not is_keyframe_group(path):
        return zarr.open_array(str(path / "0"), mode="r")[:]
    frames = np.stack(list(vf_open(path, color="keep").iter()))
    return np.moveaxis(frames, -1, 1) if frames.ndim == 4 else frames
