"""OME-Zarr output: one Zarr v3 store holding several NGFF 0.5 image groups, resumable and atomic.

Layout of ``out.zarr`` (NGFF 0.5 on Zarr v3, the combination ``ome-zarr`` >= 0.10 reads)::

    out.zarr/                     root group; attrs: vidfilter{complete, images}, run metadata
    out.zarr/background/          NGFF image group; attrs: ome{version 0.5, multiscales}, vidfilter{...}
    out.zarr/background/0         array (T, [C,] H, W), a run of frames per chunk, zstd (level 3)

Each array holds a run of up to 16 frames per chunk along ``t`` (:func:`frames_per_chunk`: at
most 32 MiB of frames, so 8 frames at 2048 x 2048 uint8), and 1024 x 1024 spatial blocks when a
frame side exceeds 2048 pixels. Whole chunks are compressed by zstd, which finds what repeats from
one frame to the next: the static parts of a foreground (a decoded video repeats them bit for bit),
a mask, a background. On the real mouse video that makes the default foreground 5x smaller than
per-frame chunks did (docs/performance.md, "Output size"). A sink holds the frames of the chunk
it is filling and writes the chunk when its last frame arrives.

Atomicity and resume
--------------------
Everything is written under ``out.zarr.partial/``. Every ``checkpoint_every`` frames (and on
``close``/``abort``) the chunk files written since the previous checkpoint are fsynced, then the
number of frames durably written is recorded, per image, in the group attribute
``vidfilter.frames_written`` and in ``out.zarr.partial/.vidfilter_progress.json`` (rewritten
atomically; this file is what resume trusts). :meth:`OmeZarrWriter.finalise` writes the final
attributes (``vidfilter.complete = true``) and renames ``out.zarr.partial`` to ``out.zarr`` in one
step, so ``out.zarr`` only ever exists complete. ``resume=True`` reopens a partial store; each image
sink then starts at the recorded count (frames after it are simply rewritten).

``overwrite=True`` writes the new store to ``.partial`` like any other run and replaces the old
output only inside ``finalise``, so a killed overwrite leaves the old output intact.

A lock file ``out.zarr.partial/.lock`` (created with ``O_EXCL``, holding the pid and host) stops
two processes from writing the same output; a lock whose process is gone is taken over.

The partial folder, the lock, the progress record, the clean-up of a resumed store and the commit
are :class:`ZarrStore`'s, which the block store of :mod:`vidfilter.infer.blocks` shares, as it
shares :func:`ngff_multiscales` and :func:`create_image` (an NGFF image group and its array).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import OutputExistsError, OutputLockedError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.ownership import LOCK_NAME, PROGRESS_NAME, check_replaceable, read_json
from vidfilter.io.sink import (FrameSink, OutputWriter, atomic_write_bytes, check_frame, commit_path,
    fsync_dir, partial_path, pid_alive, remove_path)

__all__ = ["NGFF_VERSION", "OmeZarrWriter", "ZarrImageSink", "ZarrStore", "create_image", "ngff_multiscales",
    "remove_store_temporaries"]

logger = logging.getLogger(__name__)

#: NGFF version written (0.5 = Zarr v3, attributes under ``ome``).
NGFF_VERSION = "0.5"
#: Version of vidfilter's own attribute block.
FORMAT_VERSION = 1
#: Frames larger than this on either side are split into spatial blocks ...
SPATIAL_SPLIT_ABOVE = 2048
#: ... of this side, so chunks stay around 1-2 MB.
SPATIAL_BLOCK = 1024
#: Default number of frames between two durable progress records.
CHECKPOINT_EVERY = 16
#: Most frames in one chunk along ``t`` ...
FRAMES_PER_CHUNK = 16
#: ... and most bytes of frames a sink holds for the chunk it is filling.
CHUNK_BUFFER_BYTES = 32 << 20

_RESERVED_ATTRS = ("vidfilter", "ome", "multiscales")


# ---------------------------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------------------------
class _LockFile:
    """``O_EXCL`` lock file holding ``{"pid", "host"}``; stale locks (dead pid, same host) are taken over."""

    def __init__(self, path: Path, what: Path) -> None:
        self.path = path
        self.what = what
        self.held = False
        self._token = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}

    def acquire(self) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = read_json(self.path)
                if info is None:
                    # Being written right now by its creator, or empty garbage from a crash.
                    time.sleep(0.05)
                    info = read_json(self.path)
                    if info is None:
                        info = {"pid": -1, "host": socket.gethostname()}
                pid = int(info.get("pid", -1))
                host = info.get("host")
                if host not in (None, socket.gethostname()):
                    raise OutputLockedError(
                        f"another vidfilter process (pid {pid} on {host}) is writing {self.what}; "
                        f"wait for it, or delete {self.path} if it is no longer running"
                    )
                if pid_alive(pid):
                    raise OutputLockedError(
                        f"another vidfilter process (pid {pid}) is writing {self.what}; "
                        f"wait for it or choose another --out"
                    )
                self._take_over_stale(info)
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(self._token, f)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:  # e.g. no space for its bytes: no empty lock left behind
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise
            self.held = True
            return
        raise OutputLockedError(f"could not lock {self.what} (lock {self.path} keeps changing); try again")

    def _take_over_stale(self, info: dict[str, Any]) -> None:
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else moved it; retry
        moved = read_json(aside)
        if moved is not None and moved.get("pid") != info.get("pid"):
            # We moved a fresh lock taken by a racing process: put it back.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        else:
            logger.info("taking over the stale lock of pid %s on %s", info.get("pid"), self.what)
        with contextlib.suppress(OSError):
            os.unlink(aside)

    def release(self, path: Path | None = None) -> None:
        """Remove the lock (optionally at a new location after a rename) if it is still ours."""
        if not self.held:
            return
        p = path or self.path
        info = read_json(p)
        if info is not None and info.get("pid") == self._token["pid"] and info.get("time") == self._token["time"]:
            with contextlib.suppress(OSError):
                p.unlink()
        self.held = False


# ---------------------------------------------------------------------------------------------
# Chunk checksums
# ---------------------------------------------------------------------------------------------
def _checksummed_store(folder: Path) -> Any:
    """A local Zarr store that records the digest of every chunk it writes for the arrays it
    tracks (:class:`~vidfilter.io.integrity.ChunkDigests`)."""
    import asyncio

    from zarr.storage import LocalStore, WrapperStore

    from vidfilter.io.integrity import chunk_digest

    class ChecksummedStore(WrapperStore):
        def __init__(self, store: Any, tables: dict[str, Any] | None = None) -> None:
            super().__init__(store)
            self.tables: dict[str, Any] = {} if tables is None else tables

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.tables)

        async def set(self, key: str, value: Any) -> None:
            await self._store.set(key, value)
            array, sep, coords = key.rpartition("/c/")
            table = self.tables.get(array) if sep else None
            if table is not None:
                # hashing releases the GIL: off the event loop, so several arrays hash in parallel
                digest = await asyncio.to_thread(chunk_digest, value.as_numpy_array().data)
                table.put(tuple(int(c) for c in coords.split("/")), digest)

        async def _set_many(self, values: Any) -> None:
            for key, value in values:
                await self.set(key, value)

    return ChecksummedStore(LocalStore(str(folder)))


def _chunk_grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-(-int(s) // int(c)) for s, c in zip(shape, chunks))


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------
def _spatial_chunks(h: int, w: int) -> tuple[int, int]:
    if max(h, w) > SPATIAL_SPLIT_ABOVE:
        return min(h, SPATIAL_BLOCK), min(w, SPATIAL_BLOCK)
    return h, w


_AXIS_TYPES = {"t": "time", "c": "channel", "y": "space", "x": "space"}


def ngff_multiscales(name: str, dims: Sequence[str], fps: float | None = None) -> dict[str, Any]:
    """NGFF 0.5 ``ome`` attribute block of a single-level image with the axes ``dims`` (names
    among ``t, c, y, x``, in order); ``fps`` makes the first axis, ``t``, seconds scaled ``1/fps``."""
    axes: list[dict[str, Any]] = [{"name": d, "type": _AXIS_TYPES[d]} for d in dims]
    scale = [1.0] * len(axes)
    if fps:
        axes[0]["unit"] = "second"
        scale[0] = 1.0 / float(fps)
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            }
        ],
    }


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON (numpy scalars/paths -> plain values) so attrs always serialise."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def frames_per_chunk(frame_bytes: int, n_frames: int) -> int:
    """Frames per chunk along ``t`` of an image of ``n_frames`` frames of ``frame_bytes`` bytes:
    up to :data:`FRAMES_PER_CHUNK`, and at most :data:`CHUNK_BUFFER_BYTES` of frames."""
    return max(1, min(FRAMES_PER_CHUNK, CHUNK_BUFFER_BYTES // max(int(frame_bytes), 1), int(n_frames)))


def array_options(frames: int = 1) -> dict[str, Any]:
    """Codec and write options of every array vidfilter writes; ``frames``: frames per chunk."""
    from zarr.codecs import BloscCodec, ZstdCodec

    return {
        # a run of frames: plain zstd over the whole chunk, whose window spans every frame of it
        # (Blosc compresses blocks of a chunk apart). Mouse video foreground, 16-frame chunks:
        # 3.4 kB a frame at level 3 against 4.0 kB at level 1, both at about 0.15 ms a frame.
        # One frame: Blosc-zstd level 1, on real recordings 95 % of level 3's ratio at 40 % of its
        # cost (flies 3.70 vs 3.91, mouse 7.15 vs 7.46).
        "compressors": ZstdCodec(level=3) if frames > 1 else BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
        # every chunk is stored, all-zero ones too: skipping the "is it all fill?" scan halves
        # the cost of a write, and a missing chunk file then always means a missing frame
        "config": {"write_empty_chunks": True},
        "fill_value": 0,
    }


def create_image(
    root: Any, name: str, *, shape: Sequence[int], chunks: Sequence[int], dtype: Any, dims: Sequence[str],
    state: dict[str, Any], fps: float | None = None,
) -> Any:
    """Create the NGFF image group ``name`` of ``root``, its attributes ``ome``
    (:func:`ngff_multiscales`) and ``vidfilter`` (``state``), and its one array ``0`` with the axes
    ``dims`` (:func:`array_options`); returns the array."""
    group = root.create_group(name)
    group.attrs.update({"ome": ngff_multiscales(name, dims, fps), "vidfilter": state})
    return group.create_array(
        "0", shape=tuple(shape), chunks=tuple(chunks), dtype=dtype, dimension_names=list(dims),
        **array_options(int(chunks[0])),
    )


def _image_layout(
    frame_shape: tuple[int, ...], dtype: Any, n_frames: int, channel_axis: bool | None
) -> tuple[tuple[int, ...], np.dtype, tuple[int, ...], tuple[int, ...]]:
    """Checked ``(frame_shape, dtype, shape, chunks)`` of an image of ``n_frames`` frames stored
    ``(T, [C,] H, W)``, :func:`frames_per_chunk` frames per chunk (see :meth:`OmeZarrWriter.image`)."""
    frame_shape = tuple(int(s) for s in frame_shape)
    if len(frame_shape) not in (2, 3):
        raise UnsupportedInputError(f"frame_shape must be (H, W) or (H, W, C), got {frame_shape}")
    if channel_axis is None:
        channel_axis = len(frame_shape) == 3
    if not channel_axis and len(frame_shape) == 3:
        raise UnsupportedInputError("colour frames (H, W, C) need channel_axis=True (or None)")
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    h, w = frame_shape[:2]
    c = ((frame_shape[2] if len(frame_shape) == 3 else 1),) if channel_axis else ()
    dtype = np.dtype(dtype)
    k = frames_per_chunk(int(np.prod(frame_shape)) * dtype.itemsize, n_frames)
    return frame_shape, dtype, (n_frames, *c, h, w), (k, *c, *_spatial_chunks(h, w))


def _fsync_file(path: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_ZARR_TEMP = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_store_temporaries(root: str | os.PathLike[str]) -> int:
    """Delete the temporary files a killed Zarr write leaves inside a store being resumed.

    zarr's local store writes each chunk to ``<name>.<32 hex>.partial`` and renames it into
    place; a kill between the two leaves the temporary behind, where it would survive into the
    finished store. Only names of exactly that form are removed. Returns how many were removed.
    """
    removed = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if _ZARR_TEMP.search(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


# ---------------------------------------------------------------------------------------------
# Image sink
# ---------------------------------------------------------------------------------------------
class _ChunkRun:
    """The frames ``lo..hi-1`` of one chunk along ``t``, held until all of them are there."""

    def __init__(self, lo: int, hi: int, stored_shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.lo, self.hi = lo, hi
        self.frames = np.empty((hi - lo, *stored_shape), dtype=dtype)
        self.have = np.zeros(hi - lo, dtype=bool)

    def put(self, t: int, frame: np.ndarray) -> None:
        self.frames[t - self.lo] = frame
        self.have[t - self.lo] = True

    @property
    def full(self) -> bool:
        return bool(self.have.all())

    @property
    def prefix(self) -> int:
        """How many frames from ``lo`` on are there without a gap."""
        return int(np.argmin(self.have)) if not self.have.all() else len(self.have)


class ZarrImageSink(FrameSink):
    """Frames of one NGFF image group of an :class:`OmeZarrWriter`; made by :meth:`OmeZarrWriter.image`.

    ``append(frame)`` writes the next frame; ``write(t, frame)`` writes frame ``t`` anywhere.
    ``frames_written`` is the length of the written prefix ``0..N-1`` (after a resume it starts at
    the durably recorded count). ``close()`` records the final count (the store itself is
    finalised by :meth:`OmeZarrWriter.finalise`); ``abort()`` records what is durable and stops.
    A frame counts as written once its chunk is: the sink holds the frames of a chunk that is not
    yet full (:class:`_ChunkRun`), and ``close()`` writes the ones it holds at the end.
    """

    #: The array of the group that holds the frames' chunks, and every array of the group.
    array_name = "0"
    array_names: tuple[str, ...] = ("0",)
    #: How the group stores its frames (recorded in the progress record: a resume must match).
    storage = "full"

    @staticmethod
    def create(root: Any, name: str, **kw: Any) -> dict[str, Any]:
        """Create the group ``name`` of ``root`` and its arrays (:func:`create_image`)."""
        return {"0": create_image(root, name, **kw)}

    @staticmethod
    def digest_files(default: str) -> dict[str, str]:
        """The chunk digest table file of each array that records them."""
        return {"0": default}

    def attach(self, arrays: dict[str, Any], digests: dict[str, Any]) -> None:
        """Receive every array of the group and their digest tables (one array here: nothing more)."""

    def __init__(
        self, writer: OmeZarrWriter, name: str, array: Any, *, frame_shape: tuple[int, ...], dtype: np.dtype,
        n_frames: int, has_channel: bool, fps: float | None, start: int, checksums: Any = None,
    ) -> None:
        self.writer = writer
        self.checksums = checksums
        self.name = name
        self.array = array
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.n_frames = int(n_frames)
        self.fps = fps
        self.has_channel = has_channel
        self._grey_with_c = has_channel and len(self.frame_shape) == 2
        self._done = np.zeros(self.n_frames, dtype=bool)
        self._done[:start] = True
        self._frames_written = start
        self._durable = start
        self._pending: set[int] = set()
        self._finished = False
        self._first = self._next = start
        self._seen = self._done.copy()  # frames written or held
        self._per_chunk = int(array.chunks[0])
        self._filling: dict[int, _ChunkRun] = {}

    @property
    def durable_frames(self) -> int:
        """Frames recorded durably (what a resume after a kill would start from)."""
        return self._durable

    def append(self, frame: np.ndarray) -> None:
        """Write the next frame: the first one neither written nor held."""
        while self._next < self.n_frames and self._seen[self._next]:
            self._next += 1
        if self._next >= self.n_frames:
            raise ValueError(
                f"image {self.name!r} already holds all {self.n_frames} frames declared by n_frames"
            )
        self.write(self._next, frame)

    def write(self, t: int, frame: np.ndarray) -> None:
        """Write frame ``t`` (0 <= t < n_frames), in any order."""
        self._append_at(self._writable(t), check_frame(frame, self.frame_shape, self.dtype))

    def _writable(self, t: int) -> int:
        """``t`` as an int, checked: the sink is open and ``t`` is one of its frames."""
        if self._finished:
            raise ValueError(f"image {self.name!r} is closed; open the writer again with resume=True to continue")
        t = int(t)
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range for image {self.name!r} of {self.n_frames} frames")
        return t

    def _append(self, frame: np.ndarray) -> None:  # pragma: no cover - append is overridden
        self._append_at(self._frames_written, frame)

    def _append_at(self, t: int, frame: np.ndarray) -> None:
        """Frame ``t`` into the chunk it belongs to; a chunk whose frames are all there is written."""
        self._seen[t] = True
        if self._per_chunk == 1:
            self._put(t, frame)
            self._mark(t)
            return
        c = t // self._per_chunk
        run = self._filling.get(c)
        if run is None:  # a resumed sink starts at its first durable frame or before, inside a chunk maybe
            lo, hi = max(c * self._per_chunk, min(t, self._first)), min((c + 1) * self._per_chunk, self.n_frames)
            run = self._filling[c] = _ChunkRun(lo, hi, self.array.shape[1:], self.dtype)
        if t < run.lo:  # a durable frame before the resume point, written again: on its own
            self._put(t, frame)
            self._mark(t)
            return
        run.put(t, self._stored(frame))
        if run.full:
            self._write_run(c, run.hi)

    def _write_run(self, c: int, stop: int) -> None:
        """Write frames ``lo..stop-1`` of the chunk run ``c`` in one go and mark them written."""
        run = self._filling.pop(c)
        if stop > run.lo:
            self.array[run.lo : stop] = run.frames[: stop - run.lo]
        for t in range(run.lo, stop):
            self._mark(t)

    def _stored(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` in the stored layout (channels first)."""
        if self._grey_with_c:
            return frame[None]
        if self.has_channel:
            return np.moveaxis(frame, -1, 0)
        return frame

    def _put(self, t: int, frame: np.ndarray) -> None:
        """Write frame ``t``'s chunk(s) in the stored layout."""
        self.array[t] = self._stored(frame)

    def _mark(self, t: int) -> None:
        """Frame ``t`` is written: extend the written prefix and checkpoint when one is due."""
        self._done[t] = True
        self._pending.add(t)
        while self._frames_written < self.n_frames and self._done[self._frames_written]:
            self._frames_written += 1
        if self._frames_written - self._durable >= self.writer.checkpoint_every:
            self.checkpoint()

    def _chunk_dirs(self, t: int) -> Iterator[Path]:
        """The chunk files of frame ``t``."""
        base = self.writer.partial / self.name / self.array_name / "c" / str(t // self._per_chunk)
        if base.is_file():
            yield base
        elif base.is_dir():
            for root, _, files in os.walk(base):
                for f in files:
                    yield Path(root) / f

    def checkpoint(self) -> None:
        """Make the written prefix durable (fsync its chunks) and record it."""
        if self.writer.durable:
            firsts = {t - t % self._per_chunk: t for t in sorted(self._pending) if t < self._frames_written}
            for t in firsts.values():  # one frame of each chunk
                for f in self._chunk_dirs(t):
                    _fsync_file(f)
            if self.checksums is not None:  # the digests of the frames recorded as durable
                self.checksums.sync()
        self._pending = {t for t in self._pending if t >= self._frames_written}
        self._durable = self._frames_written
        self.writer._record_progress(self)

    def shorten(self, frames: int) -> None:
        """Cut the arrays to the first ``frames`` frames (a store finalised short)."""
        self.array.resize((frames,) + tuple(self.array.shape[1:]))

    def finish_checksums(self) -> None:
        """Trim, fsync and close the chunk digest table(s)."""
        if self.checksums is not None:
            self.checksums.finish(_chunk_grid(self.array.shape, self.array.chunks))

    def close_checksums(self) -> None:
        if self.checksums is not None:
            self.checksums.close()

    def group_state(self) -> dict[str, Any]:
        """What this image's group attributes ``vidfilter`` hold besides the frame counts."""
        return {}

    def _finalise(self) -> None:
        """Write the frames held for chunks not yet full (the last chunk of a recording that
        ends early), up to the first frame missing from each, then checkpoint."""
        for c in sorted(self._filling):
            self._write_run(c, self._filling[c].lo + self._filling[c].prefix)
        self.checkpoint()

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self.checkpoint()

    def read(self, t: int) -> np.ndarray:
        """Read frame ``t`` back in the sink's frame layout (for checks)."""
        t = int(t)
        run = self._filling.get(t // self._per_chunk)
        held = run is not None and run.lo <= t < run.hi and run.have[t - run.lo]
        data = run.frames[t - run.lo] if held else np.asarray(self.array[t])
        if self._grey_with_c:
            return data[0]
        if self.has_channel:
            return np.moveaxis(data, 0, -1)
        return data

    def __repr__(self) -> str:
        return (
            f"ZarrImageSink({self.name!r}, frame_shape={self.frame_shape}, dtype={self.dtype}, "
            f"frames_written={self.frames_written}/{self.n_frames})"
        )


# ---------------------------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------------------------
class ZarrStore(OutputWriter):
    """A Zarr v3 store written under ``PATH.partial`` and renamed onto ``PATH`` when complete.

    What every store vidfilter writes shares: the partial folder and its ``.lock`` (a lock whose
    process is gone is taken over), the progress record a resume trusts (:attr:`progress_name`
    inside the partial folder), the clean-up of a partial folder that is resumed or started
    again, and the commit. Subclasses (:class:`OmeZarrWriter`,
    :class:`~vidfilter.infer.blocks.BlockStore`) set ``path``, ``partial`` and ``overwrite``, then
    call :meth:`_open_partial`; their ``finalise()`` is the ``commit()`` of a ``with`` block.
    """

    path: Path
    partial: Path
    overwrite: bool
    finalise: Callable[[], Path]
    #: The progress record inside ``PATH.partial``.
    progress_name = PROGRESS_NAME
    #: fsync the metadata before the commit (and chunk files before a progress record).
    durable = False

    def _open_partial(self, setup: Callable[[], None]) -> None:
        """Create (or reopen) ``PATH.partial``, take its lock, and run ``setup()``; if either
        fails, the lock is released and a folder this call created is removed again."""
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        check_replaceable(self.partial, why="a rerun")
        fresh = not self.partial.exists()
        self.partial.mkdir(exist_ok=True)
        self._lock = _LockFile(self.partial / LOCK_NAME, self.path)
        try:
            self._lock.acquire()
            setup()
        except BaseException:
            self._lock.release()
            if fresh:  # e.g. a disk full from the start: leave nothing behind
                with contextlib.suppress(OSError):
                    remove_path(self.partial)
            raise

    def _start(self, resumed: bool) -> None:
        """Ready the partial folder: a resumed one loses the temporaries of killed chunk writes
        (:func:`remove_store_temporaries`), any other keeps nothing but its lock."""
        if resumed:
            remove_store_temporaries(self.partial)
            return
        for entry in self.partial.iterdir():
            if entry.name != LOCK_NAME:
                remove_path(entry)

    def _read_progress(self) -> Any:
        """The progress record; ``OSError``/``ValueError`` where it is missing or unreadable."""
        return json.loads((self.partial / self.progress_name).read_text())

    def _save_progress(self, payload: Any, indent: int | None = None) -> None:
        """Replace the progress record atomically."""
        atomic_write_bytes(self.partial / self.progress_name, json.dumps(payload, indent=indent).encode())

    def _commit_store(self) -> None:
        """Drop the progress record, fsync the metadata (``durable``), rename ``PATH.partial`` onto
        ``PATH`` (an old output is replaced only now, with ``overwrite``), release the lock."""
        (self.partial / self.progress_name).unlink(missing_ok=True)
        if self.durable:
            for root, dirs, files in os.walk(self.partial):
                dirs[:] = [d for d in dirs if d != "c"]
                if "zarr.json" in files:
                    _fsync_file(os.path.join(root, "zarr.json"))
                fsync_dir(root)
        commit_path(self.partial, self.path, overwrite=self.overwrite)
        self._lock.release(self.path / LOCK_NAME)

    def commit(self) -> Path:
        return self.finalise()


class OmeZarrWriter(ZarrStore):
    """Write several NGFF image groups into one OME-Zarr store, atomically and resumably.

    Parameters
    ----------
    path : path-like
        Final store path, e.g. ``out.zarr``. Work happens in ``out.zarr.partial``.
    overwrite : bool
        Replace an existing ``path`` (only at :meth:`finalise`).
    resume : bool
        Continue a ``path.partial`` left by an interrupted run (a fresh store is started when
        there is none).
    attrs : dict, optional
        JSON-serialisable run metadata written to the root group's attributes.
    checkpoint_every : int
        Frames between two durable progress records per image.
    durable : bool
        fsync chunk files before recording progress (survives power loss, not just a kill).
    checksums : bool
        Record the digest of every chunk file as it is written, for ``vidfilter verify``
        (:class:`~vidfilter.io.integrity.ChunkDigests`); off only to measure what they cost.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    OutputLockedError
        Another live process is writing the same output.

    Examples
    --------
    >>> with OmeZarrWriter("out.zarr", attrs={"model": "m.vfm"}) as w:  # doctest: +SKIP
    ...     bg = w.image("background", (480, 640), "uint8", fps=25, n_frames=100)
    ...     for frame in frames:
    ...         bg.append(frame)
    """

    def __init__(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = False,
        attrs: Mapping[str, Any] | None = None, checkpoint_every: int = CHECKPOINT_EVERY, durable: bool = True,
        checksums: bool = True,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        self.partial = partial_path(self.path)
        self.overwrite = overwrite
        self.checkpoint_every = max(1, int(checkpoint_every))
        self.durable = durable
        self.checksums = checksums
        self.attrs = _jsonable(dict(attrs or {}))
        bad = [k for k in self.attrs if k in _RESERVED_ATTRS]
        if bad:
            raise UnsupportedInputError(f"attrs may not use the reserved key(s) {bad}; rename them")
        if (self.path.exists() or self.path.is_symlink()) and not overwrite:
            raise OutputExistsError(f"{self.path} exists; pass --overwrite to replace it or choose another --out")

        self.images: dict[str, ZarrImageSink] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._mutex = threading.Lock()
        self._finished = False
        self._open_partial(lambda: self._setup(resume))

    def _setup(self, resume: bool) -> None:
        import zarr

        self.resumed = False
        if resume:
            prog = self._load_progress()
            if prog is not None:
                self._progress = prog.get("images", {})
                self.resumed = True
                logger.info("resuming %s (%s)", self.partial, {k: v["frames_written"] for k, v in self._progress.items()})
            else:
                logger.info("no resumable partial output at %s; starting afresh", self.partial)
        self._start(self.resumed)
        self._store = _checksummed_store(self.partial)
        self.root = zarr.open_group(self._store, mode="a", zarr_format=3)
        root_attrs = dict(self.attrs)
        root_attrs["vidfilter"] = {"complete": False, "format_version": FORMAT_VERSION, "images": {}}
        self.root.attrs.update(root_attrs)
        self._write_progress()

    # -- progress ---------------------------------------------------------------------------
    def _load_progress(self) -> dict[str, Any] | None:
        p = self.partial / PROGRESS_NAME
        try:
            data = self._read_progress()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise UnreadableInputError(
                f"cannot resume {self.path}: progress file {p} is unreadable ({e}); "
                "run without --resume to start again"
            ) from e
        if not (self.partial / "zarr.json").exists():
            return None
        return data

    def _write_progress(self) -> None:
        self._save_progress({"format_version": FORMAT_VERSION, "pid": os.getpid(), "images": self._progress}, indent=1)

    def _record_progress(self, sink: ZarrImageSink) -> None:
        with self._mutex:
            if self._finished:
                return
            entry = self._progress[sink.name]
            entry["frames_written"] = sink.durable_frames
            group = self.root[sink.name]
            group.attrs["vidfilter"] = {
                **sink.group_state(),
                "complete": False,
                "frames_written": sink.durable_frames,
                "n_frames": sink.n_frames,
            }
            self._write_progress()

    # -- images -----------------------------------------------------------------------------
    def image(
        self, name: str, frame_shape: tuple[int, ...], dtype: Any, fps: float | None = None, *,
        n_frames: int, channel_axis: bool | None = None, sink_class: type[ZarrImageSink] | None = None,
    ) -> ZarrImageSink:
        """Create (or, when resuming, reopen) image group ``name`` and return its sink.

        Parameters
        ----------
        name : str
            Group name, e.g. ``"background"``.
        frame_shape : tuple of int
            ``(H, W)`` or ``(H, W, C)``; colour frames are stored channel-first, ``(T, C, H, W)``.
        dtype : dtype-like
            Stored dtype (uint8, uint16, float16, float32 ...).
        fps : float, optional
            Frame rate; sets the ``t`` axis unit (second) and scale ``1/fps``.
        n_frames : int
            Total number of frames the image will hold.
        channel_axis : bool, optional
            Store a ``c`` axis. Default: only for ``(H, W, C)`` frames; ``True`` with ``(H, W)``
            frames stores ``(T, 1, H, W)``.
        sink_class : type, optional
            How the group stores its frames: :class:`ZarrImageSink` (default, every frame), or
            :class:`~vidfilter.io.keyframe_sink.KeyframeImageSink` (at keyframes, written with
            :class:`~vidfilter.io.keyframe_store.KeyRecord` records).
        """
        import zarr

        from vidfilter.io.integrity import CHUNK_DIGEST_FILE, ChunkDigests

        if self._finished:
            raise ValueError("this OmeZarrWriter is finalised or aborted; open a new one")
        if name in self.images:
            raise ValueError(f"image {name!r} is already open in this writer")
        if not name or "/" in name or name.startswith("."):
            raise UnsupportedInputError(f"invalid image name {name!r}; use a plain name such as 'background'")
        frame_shape, dtype, shape, chunks = _image_layout(frame_shape, dtype, int(n_frames), channel_axis)
        sink_class = sink_class or ZarrImageSink
        arrays, start = self._open_image(name, shape, chunks, dtype, fps, sink_class)
        if not all(isinstance(a, zarr.Array) for a in arrays.values()):  # pragma: no cover - defensive
            raise UnreadableInputError(f"{self.partial}/{name} does not hold its arrays; run without --resume")
        digests = {}
        if self.checksums:
            for array_name, file_name in sink_class.digest_files(CHUNK_DIGEST_FILE).items():
                a = arrays[array_name]
                digests[array_name] = ChunkDigests(self.partial / name / file_name, _chunk_grid(a.shape, a.chunks), fresh=start == 0)
                self._store.tables[f"{name}/{array_name}"] = digests[array_name]
        sink = sink_class(
            self, name, arrays[sink_class.array_name], frame_shape=frame_shape, dtype=dtype, n_frames=shape[0],
            has_channel=len(shape) == 4, fps=fps, start=start, checksums=digests.get(sink_class.array_name),
        )
        sink.attach(arrays, digests)
        self.images[name] = sink
        return sink

    def _open_image(
        self, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype, fps: float | None,
        sink_class: type[ZarrImageSink],
    ) -> tuple[dict[str, Any], int]:
        """The arrays of image ``name`` (by name) and the frames it holds already: reopened where a
        resumed store holds the same image, created (empty) by ``sink_class`` otherwise."""
        n_frames = shape[0]
        spec = {"shape": list(shape), "dtype": str(dtype), "chunks": list(chunks), "fps": fps,
                "storage": sink_class.storage}
        existing = self._progress.get(name)
        if existing is not None and name in self.root:
            old = {k: existing.get(k, "full" if k == "storage" else None) for k in spec}
            if old != _jsonable(spec):
                raise OutputExistsError(
                    f"cannot resume image {name!r} of {self.partial}: it was started with {old}, "
                    f"this run writes {_jsonable(spec)}; run without --resume to start again"
                )
            # the runtime config is not stored in the array's metadata: set it again, or all-zero
            # frames written after a resume would leave no chunk file (read as "missing")
            group = self.root[name]
            arrays = {k: group[k].with_config(array_options()["config"]) for k in sink_class.array_names}
            return arrays, min(int(existing.get("frames_written", 0)), n_frames)
        if name in self.root:
            del self.root[name]
        dims = ["t", "c", "y", "x"] if len(shape) == 4 else ["t", "y", "x"]
        state = {"complete": False, "frames_written": 0, "n_frames": n_frames}
        arrays = sink_class.create(self.root, name, shape=shape, chunks=chunks, dtype=dtype, dims=dims, state=state, fps=fps)
        with self._mutex:
            self._progress[name] = dict(_jsonable(spec), n_frames=n_frames, frames_written=0)
            self._write_progress()
        return arrays, 0

    # -- finishing --------------------------------------------------------------------------
    def finalise(self, *, allow_short: bool = False) -> Path:
        """Close every image, write the final attributes and rename ``PATH.partial`` to ``PATH``.

        Parameters
        ----------
        allow_short : bool
            Accept images holding fewer frames than their ``n_frames`` (their arrays are
            shortened to the frames written). Without it such an image raises, because a store
            that looks complete must hold every frame.

        Returns
        -------
        pathlib.Path
            The final store path.
        """
        if self._finished:
            raise ValueError("this OmeZarrWriter is already finalised or aborted")
        try:
            for sink in self.images.values():
                if not sink.closed:
                    sink.close()
            short = {n: (s.frames_written, s.n_frames) for n, s in self.images.items() if s.frames_written < s.n_frames}
            if short and not allow_short:
                detail = ", ".join(f"{n}: {w}/{t}" for n, (w, t) in short.items())
                raise RuntimeError(
                    f"cannot finalise {self.path}: images hold fewer frames than declared ({detail}); "
                    "write the missing frames or pass allow_short=True"
                )
            root_attrs = dict(self.attrs)
            root_attrs["vidfilter"] = {
                "complete": True,
                "format_version": FORMAT_VERSION,
                "images": {name: self._finish_image(sink) for name, sink in self.images.items()},
                "finalised_unix": time.time(),
                "chunk_checksums": "blake2b-128 of each chunk file, <group>/vidfilter_chunks.b2" if self.checksums else None,
            }
            self.root.attrs.update(_jsonable(root_attrs))
            with self._mutex:
                self._finished = True
            self._commit_store()
        except BaseException:
            self._finished = True
            self._lock.release()
            raise
        logger.info("wrote %s", self.path)
        return self.path

    def _finish_image(self, sink: ZarrImageSink) -> dict[str, Any]:
        """Shorten a short image to its frames, finish its digests, mark its group complete;
        returns its entry of the root's ``vidfilter.images``."""
        if sink.frames_written < sink.n_frames:
            sink.shorten(sink.frames_written)
        sink.finish_checksums()
        state = sink.group_state()
        self.root[sink.name].attrs["vidfilter"] = {
            **state,
            "complete": True,
            "frames_written": sink.frames_written,
            "n_frames": sink.frames_written,
        }
        shape = list(sink.array.shape)
        entry = {"shape": shape, "dtype": str(sink.dtype), "frames": sink.frames_written, "fps": sink.fps}
        return {**entry, "storage": state["storage"]} if "storage" in state else entry

    def abort(self) -> None:
        """Stop without finalising: record what is durable, release the lock, keep ``PATH.partial``."""
        if self._finished:
            return
        for sink in self.images.values():
            sink.abort()
            sink.close_checksums()
        with self._mutex:
            self._finished = True
        self._lock.release()

    def __repr__(self) -> str:
        return f"OmeZarrWriter({str(self.path)!r}, images={list(self.images)})"
