"""The writer of an image group stored at keyframes (:mod:`vidfilter.io.keyframe_store` describes
the layout and reads it back): an :class:`~vidfilter.io.zarr_sink.ZarrImageSink` of an
:class:`~vidfilter.io.zarr_sink.OmeZarrWriter` whose frames are :class:`KeyRecord` records."""

from __future__ import annotations

from typing import Any

import numpy as np

from vidfilter.io.keyframe_store import KEYFRAMES, RULE, STORAGE, TABLE, TABLE_CHUNK, KeyRecord, blend
from vidfilter.io.sink import check_frame
from vidfilter.io.zarr_sink import ZarrImageSink, _chunk_grid, _fsync_file, array_options

__all__ = ["KeyframeImageSink"]


class KeyframeImageSink(ZarrImageSink):
    """The sink of an image stored at keyframes (``OmeZarrWriter.image(..., sink_class=KeyframeImageSink)``).

    ``write(t, record)`` takes a :class:`KeyRecord`: a keyframe's background goes to the
    ``keyframes`` array at ``t``, every frame's row to the table, which is written (a chunk of rows
    at a time) when the written prefix is checkpointed, before its progress is recorded.
    """

    array_name = KEYFRAMES
    array_names = (KEYFRAMES, TABLE)
    storage = STORAGE

    @staticmethod
    def create(root: Any, name: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
               dims: list[str], state: dict[str, Any], fps: float | None) -> dict[str, Any]:
        group = root.create_group(name)
        group.attrs.update({"vidfilter": {**state, "storage": STORAGE, "rule": RULE, "fps": fps}})
        n = shape[0]
        return {
            # one frame per chunk: only the keyframes' chunks are written
            KEYFRAMES: group.create_array(KEYFRAMES, shape=shape, chunks=(1, *chunks[1:]), dtype=dtype,
                                          dimension_names=dims, **array_options()),
            TABLE: group.create_array(TABLE, shape=(n, 4), chunks=(min(TABLE_CHUNK, max(n, 1)), 4), dtype="float64",
                                      dimension_names=["t", "column"], **array_options()),
        }

    @staticmethod
    def digest_files(default: str) -> dict[str, str]:
        return {KEYFRAMES: default, TABLE: "vidfilter_table_chunks.b2"}

    def attach(self, arrays: dict[str, Any], digests: dict[str, Any]) -> None:
        self.table = arrays[TABLE]
        self.table_checksums = digests.get(TABLE)
        self._rows: dict[int, tuple[float, float, float, float]] = {}

    def write(self, t: int, record: KeyRecord) -> None:  # type: ignore[override]
        """Write frame ``t``'s record: its keyframe background, if it is one, and its table row."""
        t = self._writable(t)
        if record.key is not None:
            self._put(t, check_frame(record.key, self.frame_shape, self.dtype))
        if t >= self._durable:  # a resumed run rewrites a few frames whose rows are durable already
            self._rows[t] = (record.t0, record.t1, record.weight, record.offset)
        self._mark(t)

    def checkpoint(self) -> None:
        """Write the table rows of the written prefix, then checkpoint as every image does."""
        start, stop = self._durable, self._frames_written
        if stop > start:
            self.table[start:stop] = np.array([self._rows.pop(t) for t in range(start, stop)], dtype=np.float64)
        if self.writer.durable:
            for c in range(start // TABLE_CHUNK, -(-stop // TABLE_CHUNK)):
                _fsync_file(self.writer.partial / self.name / TABLE / "c" / str(c) / "0")
        if self.table_checksums is not None:
            self.table_checksums.sync()
        super().checkpoint()

    def shorten(self, frames: int) -> None:
        super().shorten(frames)
        self.table.resize((frames, 4))

    def finish_checksums(self) -> None:
        super().finish_checksums()
        if self.table_checksums is not None:
            self.table_checksums.finish(_chunk_grid(self.table.shape, self.table.chunks))

    def close_checksums(self) -> None:
        super().close_checksums()
        if self.table_checksums is not None:
            self.table_checksums.close()

    def group_state(self) -> dict[str, Any]:
        return {"storage": STORAGE, "rule": RULE, "fps": self.fps}

    def read(self, t: int) -> np.ndarray:
        """Frame ``t``'s background rebuilt from what is written (for checks)."""
        k0, k1, w, off = self._rows.get(t) or tuple(np.asarray(self.table[t]))
        return blend(super().read(int(k0)), super().read(int(k1)) if w > 0 else None, w, int(off))
