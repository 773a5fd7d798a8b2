"""Test media for the reader tests: videos whose frames encode their own index."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: frame geometry of the coded test videos: 2 rows x 8 columns of 16x16 blocks = 16 bits
H, W, B = 64, 128, 16


def coded_frame(t: int, h: int = H, w: int = W) -> np.ndarray:
    """A grey uint8 frame whose 16 blocks spell ``t`` in binary (survives lossy codecs)."""
    img = np.full((h, w), 40, np.uint8)
    for bit in range(16):
        if (t >> bit) & 1:
            r, c = divmod(bit, 8)
            img[r * B : (r + 1) * B, c * B : (c + 1) * B] = 215
    return img


def decode_index(frame: np.ndarray) -> int:
    """Read back the index spelled by :func:`coded_frame` (grey or RGB frame)."""
    if frame.ndim == 3:
        frame = frame[..., 0]
    t = 0
    for bit in range(16):
        r, c = divmod(bit, 8)
        if frame[r * B + 4 : (r + 1) * B - 4, c * B + 4 : (c + 1) * B - 4].mean() > 128:
            t |= 1 << bit
    return t


def write_video(
    path: Path,
    frames: Sequence[np.ndarray] | int,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    in_format: str = "gray",
    options: dict[str, str] | None = None,
    pts_ms: Sequence[int] | None = None,
    rate: int = 25,
) -> Path:
    """Encode frames (or ``n`` coded frames) with PyAV; ``pts_ms`` gives explicit (VFR) timestamps."""
    if isinstance(frames, int):
        frames = [coded_frame(t) for t in range(frames)]
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if options:
            s.options = options
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
            s.time_base = Fraction(1, 1000)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format=in_format)
            if pts_ms is not None:
                f.pts, f.time_base = int(pts_ms[i]), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
