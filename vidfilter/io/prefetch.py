"""The setup reads of a run in one pass: :class:`PrefetchedSource`. The polarity detection and the
estimator's ``prepare`` read frames spread over the recording, and read one by one each such pass
over a compressed video decodes most of it (a read decodes forward from the keyframe before it);
read together, in ascending order, they cost one forward pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from vidfilter.io.source import FrameSource


class PrefetchedSource(FrameSource):
    """``src`` with the frames ``indices`` read once, in ascending order, when any of them is first asked for.

    ``self[t]`` of a held frame, and ``iter`` over held frames only, are copies from memory; every
    other read and attribute (``len``, ``damage``, digests, ``reopen``, reader facts) is ``src``'s.
    Memory: the held frames, a run's setup frames (at most about 100 whatever the recording's
    length: 16 for the polarity, 51 for the median, the temporal statistic's). ``close()`` (the end
    of a ``with`` block) releases them and leaves ``src`` open: its owner closes it.
    """

    def __init__(self, src: FrameSource, indices: Iterable[int]) -> None:
        self.inner, self.path, self.shape, self.dtype, self.fps = src, src.path, tuple(src.shape), src.dtype, src.fps
        self.color = "keep"  # src applied the colour policy
        self._wanted = frozenset(int(t) for t in indices)
        self._held: dict[int, np.ndarray] | None = None

    def _read(self, t: int) -> np.ndarray:
        if t not in self._wanted:
            return self.inner[t]
        if self._held is None:
            self._held = {s: self.inner[s] for s in sorted(self._wanted)}
        return self._held[t].copy()

    def _iter(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        ts = range(start, stop, step)
        return (self._read(t) for t in ts) if self._wanted.issuperset(ts) else self.inner.iter(start, stop, step)

    def reopen(self) -> FrameSource:
        return self.inner.reopen()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        """Release the held frames (later reads go to ``src``); ``src`` stays open."""
        self._wanted, self._held = frozenset(), None

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
