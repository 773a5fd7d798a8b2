"""The input guard of ``vidfilter run``: refuse damaged input clearly, or salvage what precedes the damage.

A recording processed unattended must never turn into an output that looks complete but is not:
a Matroska file cut in half demuxes its first half without complaint, a flipped byte inside an
FFV1 frame is only logged by FFmpeg, a Zarr store that lost a chunk file reads it as black, and a
float frame can hold NaN. :func:`guard_input` wraps the source of a run in a
:class:`CheckedSource` that

- checks the container before any work (file cut short, broken structure, Matroska CRCs) and,
  unless ``salvage`` is on, raises :class:`~vidfilter.errors.DamagedInputError` naming the file
  and the problem;
- with ``salvage``, finds the first damaged frame (container damage, a frame the decoder cannot
  decode or flags corrupt, a missing chunk) and exposes only the frames before it, recording the
  damage for the output's metadata;
- checks every frame it hands out (NaN/Inf, naming the file and the frame) and records its digest
  (:class:`~vidfilter.io.integrity.FrameDigests`) once the output store is known.

:func:`run_error` turns the operating system's "no space left on device" into a
:class:`~vidfilter.errors.DiskFullError` that says what to do, and removes the partial output of a
run that failed on its input.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import (DamagedInputError, DiskFullError, OutputNotWritableError,
    UnsupportedInputError, VidfilterError)
from vidfilter.io.integrity import CONTENT_HASH, FrameDigests
from vidfilter.io.source import FrameSource, no_frames_error

__all__ = ["CheckedSource", "guard_input", "run_error"]

log = logging.getLogger(__name__)


class CheckedSource(FrameSource):
    """A read-only view of another source with the checks of :mod:`vidfilter.io.guard`.

    Parameters
    ----------
    src : FrameSource
        The source read (its colour policy already applied).
    limit : int, optional
        Expose only the first ``limit`` frames (salvage: the frames before the damage).
    damage : str, optional
        What is wrong with the input (recorded in the output's metadata).
    """

    def __init__(self, src: FrameSource, *, limit: int | None = None, damage: str | None = None) -> None:
        self.inner = src
        self.path = src.path
        n = len(src) if limit is None else max(0, min(int(limit), len(src)))
        self.shape = (n, *tuple(src.shape[1:]))
        self.dtype = src.dtype
        self.fps = src.fps
        self.color = "keep"  # the inner source applied the policy already
        self.damage = damage
        self.frames_declared = len(src)
        self._float = bool(np.issubdtype(self.dtype, np.floating))
        self._digests: FrameDigests | None = None

    # -- reading -------------------------------------------------------------------------------
    def _check(self, t: int, frame: np.ndarray) -> np.ndarray:
        if self._float and not np.isfinite(frame).all():
            files = getattr(self.inner, "files", None)  # an image sequence: name the file to fix
            where = files[t] if files is not None and t < len(files) else self.path
            raise UnsupportedInputError(
                f"{where}: frame {t} holds NaN or Inf values; replace them (e.g. numpy.nan_to_num) "
                "or convert the input to uint8/uint16 first"
            )
        if self._digests is not None:
            self._digests.put(t, frame)
        return frame

    def _read(self, t: int) -> np.ndarray:
        return self._check(t, self.inner[t])

    def _iter(self, start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        for t, frame in zip(range(start, stop, step), self.inner.iter(start, stop, step)):
            yield self._check(t, frame)

    def reopen(self) -> FrameSource:
        inner = self.inner.reopen()
        if inner is self.inner:
            return self
        return CheckedSource(inner, limit=len(self), damage=self.damage)

    # -- integrity record ----------------------------------------------------------------------
    def record_digests(self, folder: str | os.PathLike[str]) -> None:
        """Record the digest of every frame read from now on in ``folder`` (the partial store)."""
        if self._digests is not None:
            self._digests.close()
        self._digests = FrameDigests(folder, len(self))

    def note_digests(self, frames: Iterable[tuple[int, np.ndarray]]) -> None:
        """Record the digests of frames read before :meth:`record_digests` (``(index, frame)`` pairs:
        a run's setup frames, read before its output store exists)."""
        if self._digests is not None:
            for t, frame in frames:
                self._digests.put(int(t), frame)

    def integrity(self) -> dict[str, Any]:
        """The input record for the output's metadata: frames read, their content hash, damage.

        Frames never read through this source (none, in a complete run) are read now, so the
        hash always covers every frame of the output.
        """
        rec: dict[str, Any] = {"frames_read": len(self), "damage": self.damage}
        if self.damage is not None:
            rec["frames_declared"] = self.frames_declared
        if self._digests is not None:
            for t in self._digests.missing():
                self._digests.put(t, self.inner[t])
            rec["frames_xxh3"] = self._digests.finish()
            rec["content_hash"] = CONTENT_HASH
            self._digests.close()
            self._digests = None
        return rec

    # -- the rest ------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = self.inner.describe()
        d.update(frames=len(self), shape=list(self.shape), damage=self.damage)
        return d

    def close(self) -> None:
        if self._digests is not None:
            self._digests.close()
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # reader-specific facts (timestamps(), pix_fmt...) come from the wrapped source
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _first_frame_at(src: Any, time_s: float) -> int | None:
    """Index of the first frame presented at or after ``time_s`` (container clock), if known."""
    try:
        ts = np.asarray(src.timestamps(absolute=True), dtype=np.float64)
    except Exception:
        return None
    if not ts.size or not np.isfinite(ts).all():
        return None
    return int(np.searchsorted(ts, time_s - 1e-6, side="left"))


def guard_input(src: FrameSource, *, salvage: bool = False, missing_chunks: str = "error") -> CheckedSource:
    """Check ``src`` before a run and wrap it in a :class:`CheckedSource`.

    Parameters
    ----------
    src : FrameSource
        The opened input.
    salvage : bool
        Process the frames before the first damage instead of refusing a damaged input. Finding
        damage that shows only when decoding costs one extra decoding pass over the input.
    missing_chunks : {"error", "fill"}
        Policy for a missing chunk of a Zarr input.

    Raises
    ------
    UnreadableInputError
        The input holds no frames.
    DamagedInputError
        The input is damaged and ``salvage`` is off, or no frame precedes the damage.
    """
    from vidfilter.io import container_check

    if len(src) == 0:
        raise no_frames_error(str(src.path), tuple(src.shape))
    if hasattr(src, "missing_chunks"):
        src.missing_chunks = missing_chunks
    n = len(src)
    limit = n
    damage: str | None = None
    cd = getattr(src, "container_damage", None)
    path = Path(str(src.path))
    if cd is None and path.suffix.lower() in container_check.MATROSKA_SUFFIXES and path.is_file():
        cd = container_check.check(path, crc=True)  # reads the file once: clusters carry CRC-32s
    if cd is not None:
        if not salvage:
            raise DamagedInputError(
                f"{src.path}: {cd.reason}; re-copy the file from its source, or pass --salvage to process "
                "the frames before the damage",
                frame=None, reason=cd.reason,
            )
        damage = cd.reason
        # a file cut short: the frames the demuxer found before the cut are whole; corrupt data:
        # nothing from the damaged cluster on is trusted
        if cd.kind != "truncated" and cd.time_s is not None:
            at = _first_frame_at(src, cd.time_s)
            if at is not None:
                limit = min(limit, _first_dependent(src, at) if at < n else at)
    if salvage:
        limit, found = _scan(src, limit)
        damage = damage or found
        if limit == 0:
            raise DamagedInputError(
                f"{src.path}: no frame before the damage can be read ({damage}); nothing to salvage", frame=0, reason=damage
            )
        if damage is not None:
            log.warning("%s: %s; processing the %d frames before the damage (--salvage)", src.path, damage, limit)
    return CheckedSource(src, limit=limit if damage is not None else None, damage=damage)


def _first_dependent(src: Any, t: int) -> int:
    """The first frame that may be spoiled by damage in frame ``t`` (B-frames shown before it)."""
    fn = getattr(src, "first_dependent", None)
    return min(t, int(fn(t))) if fn is not None else t


def _scan(src: FrameSource, limit: int) -> tuple[int, str | None]:
    """Decode frames ``0..limit-1``; stop at the first one that fails: (frames before it, reason)."""
    t = 0
    try:
        for t, _ in zip(range(limit), src.iter(0, limit)):
            pass
    except DamagedInputError as e:
        at = e.frame if e.frame is not None else t
        return _first_dependent(src, at), " ".join(e.reason.split())
    return limit, None


def run_error(exc: BaseException, writer: Any) -> BaseException:
    """Tidy up after a run that failed with ``exc`` and return the error to raise.

    - The input was damaged or unusable (damage found while decoding, NaN frames): the partial
      output this run started (not one it resumed) is deleted, since rerunning on the same input
      would fail at the same frame (``--salvage`` starts afresh anyway).
    - ``ENOSPC``/``EDQUOT`` becomes a :class:`DiskFullError` that says the disk is full and that
      the same command resumes; ``EROFS``/``EACCES`` an :class:`OutputNotWritableError`.
    - Anything else is returned unchanged (the partial output is kept for resuming).
    """
    from vidfilter.errors import UnreadableInputError
    from vidfilter.io.sink import partial_path, remove_path

    out = writer.path
    if isinstance(exc, (UnreadableInputError, UnsupportedInputError)) and not getattr(writer, "resumed", True):
        try:
            remove_path(writer.partial)
        except OSError as e:  # pragma: no cover - best effort
            log.warning("could not remove %s: %s", writer.partial, e)
        return exc
    from vidfilter.io.video_sink import output_error

    err = output_error(exc, out)
    if type(err) is DiskFullError:  # a full disk (not a file-size limit): the run resumes
        resumable = DiskFullError(f"{err}: it resumes from {partial_path(out).name}")
        resumable.errno = err.errno
        return resumable
    return err
