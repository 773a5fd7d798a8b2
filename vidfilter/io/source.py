"""The one interface every input offers: :class:`FrameSource`.

A source is a read-only, random-access sequence of frames ``(T, H, W)`` or ``(T, H, W, C)``.
``src[t]`` returns one frame as a numpy array; ``src.iter(start, stop, step)`` yields frames in
order and is the fast path for sequential reading; ``src.to_dask(chunks)`` is a lazy Dask array
whose chunks each read only their own frames. No method ever holds more than a bounded number of
frames, so memory does not grow with the recording's length.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from vidfilter.errors import UnreadableInputError, UnsupportedInputError

#: Colour policies accepted by :func:`vidfilter.open`.
COLOR_POLICIES = ("gray", "keep")

#: ITU-R BT.601 luma weights (R, G, B), the ones OpenCV's BGR2GRAY uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Convert an ``(H, W, C)`` frame to ``(H, W)`` by BT.601 luma, keeping the dtype.

    Grey frames are returned unchanged; an alpha channel (C = 2 or 4) is dropped first.
    Integer outputs are rounded to nearest, matching ``cv2.cvtColor(..., COLOR_RGB2GRAY)``
    to within one grey level.
    """
    if frame.ndim == 2:
        return frame
    c = frame.shape[-1]
    if c in (1, 2):
        return frame[..., 0]
    rgb = frame[..., :3].astype(np.float64)
    grey = rgb @ LUMA
    if np.issubdtype(frame.dtype, np.integer):
        info = np.iinfo(frame.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(frame.dtype)
    return grey.astype(frame.dtype)


class FrameSource(ABC):
    """Abstract read-only frame sequence. Subclasses implement ``_read`` and, optionally, ``_iter``.

    Attributes
    ----------
    path : str
        What was opened (path, URL or ``"<array>"``).
    shape : tuple of int
        ``(T, H, W)`` for grey, ``(T, H, W, C)`` for colour with ``color="keep"``.
    dtype : numpy.dtype
        Frame dtype (uint8, uint16 or float32), preserved from the input.
    fps : float or None
        Frame rate where the container knows it.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fps: float | None = None
    color: str = "gray"

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _read(self, t: int) -> np.ndarray:
        """Return frame ``t`` (0 <= t < len) in the source's native layout (before colour policy)."""

    def _iter(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        """Yield native frames ``start:stop:step``; override where sequential decoding is faster."""
        for t in range(start, stop, step):
            yield self._read(t)

    # -- public ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: ``(H, W)`` or ``(H, W, C)``."""
        return tuple(self.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _apply_color(self, frame: np.ndarray) -> np.ndarray:
        if self.color == "gray":
            return to_gray(frame)
        return frame

    def __getitem__(self, t: int) -> np.ndarray:
        if not isinstance(t, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(t).__name__}; use iter() for ranges")
        n = len(self)
        t = int(t)
        if t < 0:
            t += n
        if not 0 <= t < n:
            raise IndexError(f"frame {t} out of range for a recording of {n} frames")
        return self._apply_color(self._read(t))

    def iter(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Yield frames ``start:stop:step`` in order, one at a time."""
        n = len(self)
        start, stop, step = slice(start, stop, step).indices(n)
        if step <= 0:
            raise ValueError("iter() needs a positive step")
        for frame in self._iter(start, stop, step):
            yield self._apply_color(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter()

    def to_dask(self, chunks: int = 1) -> Any:
        """A lazy ``dask.array`` of the recording; each chunk of ``chunks`` frames reads only those frames."""
        import dask.array as da

        n = len(self)
        chunks = max(1, int(chunks))
        starts = list(range(0, n, chunks))
        sizes = tuple(min(chunks, n - s) for s in starts)

        def load(block_id: tuple[int, ...] | None = None, **_: Any) -> np.ndarray:
            i = block_id[0]
            s = starts[i]
            return np.stack(list(self.iter(s, s + sizes[i])))

        rest = tuple((d,) for d in self.shape[1:])
        return da.map_blocks(load, dtype=self.dtype, chunks=(sizes,) + rest, meta=np.empty((0,) * len(self.shape), self.dtype))

    def describe(self) -> dict[str, Any]:
        """Facts for ``vidfilter info``; subclasses add codec, chunking, size on disk."""
        n = len(self)
        return {
            "path": self.path,
            "kind": type(self).__name__,
            "frames": n,
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "fps": self.fps,
            "duration_s": (n / self.fps) if self.fps else None,
        }

    def reopen(self) -> FrameSource:
        """A handle for a second reader thread (e.g. keyframe look-ahead next to sequential decoding).

        The default shares this object, which is right for sources whose random access is
        stateless or locked; sources with a stateful decoder return an independent handle (the
        caller closes it when it is not ``self``).
        """
        return self

    def close(self) -> None:
        """Release file handles; safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, shape={self.shape}, dtype={self.dtype}, fps={self.fps})"


def no_frames_error(what: str, shape: tuple[int, ...]) -> UnreadableInputError:
    """The error for an input that holds no frames (shape ``(0, ...)``), naming it and its shape."""
    return UnreadableInputError(
        f"{what}: holds no frames (shape {tuple(int(s) for s in shape)}); there is nothing to process, "
        "pass a recording with at least one frame"
    )


def check_not_empty(src: FrameSource) -> FrameSource:
    """Return ``src``; close it and raise :class:`UnreadableInputError` if it holds no frames.

    Every reader refuses an empty recording when it is opened; this also covers sources made
    elsewhere (a custom :class:`FrameSource`, a reader added with ``vidfilter.io.registry.register``).
    """
    if len(src) == 0:
        src.close()
        raise no_frames_error(str(src.path), tuple(src.shape))
    return src


def check_color(color: str) -> str:
    """Validate a colour policy, with a fix-it message."""
    if color not in COLOR_POLICIES:
        raise UnsupportedInputError(f"unknown colour policy {color!r}; use one of {', '.join(COLOR_POLICIES)}")
    return color
