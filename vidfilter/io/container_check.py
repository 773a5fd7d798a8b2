"""Byte-level checks of video containers: is the file cut short, is its structure intact, do its CRCs match?

FFmpeg reads what it can of a damaged file and says little: a Matroska file cut in half demuxes
its first half without an error, and a flipped byte inside an FFV1 frame is only logged. These
checks read the container's own bookkeeping instead:

- **Matroska / WebM** (``.mkv``, ``.webm``, ``.mka``, ``.mk3d``): the Segment declares its size,
  so a file shorter than ``segment start + size`` is truncated; the top-level elements inside the
  Segment (clusters, cues...) must chain exactly up to its end; with ``crc=True`` every element
  that starts with a ``CRC-32`` child (FFmpeg writes one in every cluster) is checked against it.
- **ISO BMFF** (``.mp4``, ``.mov``, ``.m4v``, ``.3gp``): the top-level boxes (``ftyp``, ``moov``,
  ``mdat``...) must have printable four-character types and end inside the file.
- **RIFF / AVI** (``.avi``): the top-level ``RIFF`` chunks (``AVI `` then OpenDML ``AVIX``
  extensions) declare their sizes, so a file shorter than the last one's end is truncated.

Other containers are not checked (``None``: nothing known to be wrong). :func:`check` returns a
:class:`ContainerDamage` or ``None``; the header-only form (``crc=False``) reads a few bytes per
top-level element and is cheap enough for every open; ``crc=True`` reads the whole file once.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ContainerDamage", "check", "is_checked", "MATROSKA_SUFFIXES", "BMFF_SUFFIXES", "RIFF_SUFFIXES"]

MATROSKA_SUFFIXES = (".mkv", ".webm", ".mka", ".mk3d")
BMFF_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp", ".m4a")
RIFF_SUFFIXES = (".avi",)

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_CLUSTER = 0x1F43B675
_CRC32 = 0xBF
_TIMECODE = 0xE7
_INFO = 0x1549A966
_TIMECODE_SCALE = 0x2AD7B1
#: Level-1 elements a Segment may hold (SeekHead, Info, Tracks, Cluster, Cues, Attachments,
#: Chapters, Tags, plus Void and CRC-32 allowed anywhere).
_LEVEL1 = {0x114D9B74, _INFO, 0x1654AE6B, _CLUSTER, 0x1C53BB6B, 0x1941A469, 0x1043A770, 0x1254C367, 0xEC, _CRC32}


@dataclass(frozen=True)
class ContainerDamage:
    """What is wrong with a container.

    Attributes
    ----------
    kind : str
        ``"truncated"`` (the file ends before its declared end) or ``"corrupt"`` (structure or CRC).
    reason : str
        One sentence for the user, e.g. ``"the file is cut short: 92909 of 185818 bytes"``.
    offset : int
        Byte offset where the damage starts.
    time_s : float or None
        Presentation time (seconds) from which frames cannot be trusted, when the container
        tells it (Matroska cluster timecodes); ``None`` when unknown.
    """

    kind: str
    reason: str
    offset: int
    time_s: float | None = None


def check(path: str | os.PathLike[str], *, crc: bool = False) -> ContainerDamage | None:
    """Check the container of ``path``; ``None`` when nothing is found wrong (or the format is not checked)."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            if suffix in MATROSKA_SUFFIXES:
                return _check_matroska(fh, size, crc=crc)
            if suffix in BMFF_SUFFIXES:
                return _check_bmff(fh, size)
            if suffix in RIFF_SUFFIXES:
                return _check_riff(fh, size)
    except OSError as exc:
        return ContainerDamage("corrupt", f"the file cannot be read ({exc.strerror or exc})", 0)
    return None


def is_checked(path: str | os.PathLike[str]) -> bool:
    """Whether :func:`check` knows the container of ``path`` (by its suffix)."""
    return Path(path).suffix.lower() in MATROSKA_SUFFIXES + BMFF_SUFFIXES + RIFF_SUFFIXES


# ---------------------------------------------------------------------------------------------
# Matroska
# ---------------------------------------------------------------------------------------------
class _Short(Exception):
    """An element header runs past the end of the file."""


def _vint(fh: BinaryIO, *, keep_marker: bool) -> tuple[int, int, bool]:
    """Read an EBML variable-size integer: (value, bytes used, all value bits set = unknown size)."""
    first = fh.read(1)
    if not first:
        raise _Short
    b0 = first[0]
    if b0 == 0:
        raise ValueError("invalid EBML length marker")
    length = 8 - b0.bit_length() + 1
    rest = fh.read(length - 1)
    if len(rest) != length - 1:
        raise _Short
    value = b0 if keep_marker else b0 & ((1 << (8 - length)) - 1)
    for b in rest:
        value = (value << 8) | b
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _header(fh: BinaryIO) -> tuple[int, int, int | None]:
    """(element id, header length, data size or None when unknown) at the current position."""
    eid, n1, _ = _vint(fh, keep_marker=True)
    if n1 > 4:
        raise ValueError("element id longer than 4 bytes")
    size, n2, unknown = _vint(fh, keep_marker=False)
    return eid, n1 + n2, None if unknown else size


def _check_matroska(fh: BinaryIO, file_size: int, *, crc: bool) -> ContainerDamage | None:
    try:
        eid, hlen, size = _header(fh)
    except (_Short, ValueError):
        return ContainerDamage("corrupt", "not a Matroska file: the EBML header is unreadable", 0)
    if eid != _EBML or size is None:
        return ContainerDamage("corrupt", "not a Matroska file: no EBML header", 0)
    pos = hlen + size
    # top level: the Segment (Void elements may come first)
    while True:
        fh.seek(pos)
        try:
            eid, hlen, size = _header(fh)
        except _Short:
            return ContainerDamage("truncated", f"the file is cut short: it ends at byte {file_size}, before its Segment", file_size)
        except ValueError:
            return ContainerDamage("corrupt", f"unreadable element header at byte {pos}", pos)
        if eid == _SEGMENT:
            break
        if size is None:
            return None
        pos += hlen + size
    seg_start = pos + hlen
    if size is None:
        return None  # written live, never finalised: its length is not declared
    seg_end = seg_start + size
    if seg_end > file_size:
        damage = ContainerDamage(
            "truncated", f"the file is cut short: {file_size} of the {seg_end} bytes its Matroska segment declares", file_size
        )
    else:
        damage = None
    scale_ns = 1_000_000
    pos = seg_start
    limit = min(seg_end, file_size)
    while pos < limit:
        fh.seek(pos)
        try:
            eid, hlen, esize = _header(fh)
        except _Short:
            break  # cut inside a header: reported as truncation above
        except ValueError:
            return ContainerDamage("corrupt", f"the Matroska structure is broken at byte {pos}", pos, _cluster_time(fh, pos, scale_ns))
        if eid not in _LEVEL1:
            return ContainerDamage(
                "corrupt", f"the Matroska structure is broken at byte {pos} (unknown element {eid:#x})", pos,
                _last_time(fh, seg_start, pos, scale_ns),
            )
        if esize is None:
            return damage  # a live-written cluster of unknown size: cannot walk further
        end = pos + hlen + esize
        if end > seg_end:
            return ContainerDamage(
                "corrupt", f"the Matroska element at byte {pos} runs past the end of its segment", pos, _cluster_time(fh, pos, scale_ns)
            )
        if eid == _INFO:
            scale_ns = _timecode_scale(fh, pos + hlen, esize) or scale_ns
        if crc and end <= file_size:
            bad = _crc_mismatch(fh, pos + hlen, esize)
            if bad:
                t = _cluster_time(fh, pos, scale_ns)
                where = f" (cluster at {t:.3f} s)" if t is not None else ""
                return ContainerDamage("corrupt", f"CRC mismatch in the Matroska element at byte {pos}{where}: its data is damaged", pos, t)
        if end > file_size and damage is not None:
            return ContainerDamage(damage.kind, damage.reason, damage.offset, _cluster_time(fh, pos, scale_ns))
        pos = end
    return damage


def _elements(fh: BinaryIO, start: int, end: int):
    """Yield (id, header offset, header length, data size) of the consecutive elements from
    ``start`` that begin before ``end``; stops at an unreadable header or an unknown size."""
    pos = start
    while pos < end:
        fh.seek(pos)
        try:
            eid, hlen, esize = _header(fh)
        except (_Short, ValueError):
            return
        if esize is None:
            return
        yield eid, pos, hlen, esize
        pos += hlen + esize


def _children(fh: BinaryIO, start: int, size: int):
    """Yield (id, data offset, data size) of the direct children of an element's data."""
    for eid, pos, hlen, esize in _elements(fh, start, start + size):
        yield eid, pos + hlen, esize


def _read_uint(fh: BinaryIO, offset: int, size: int) -> int | None:
    if not 0 < size <= 8:
        return None
    fh.seek(offset)
    data = fh.read(size)
    return int.from_bytes(data, "big") if len(data) == size else None


def _timecode_scale(fh: BinaryIO, start: int, size: int) -> int | None:
    for eid, off, esize in _children(fh, start, size):
        if eid == _TIMECODE_SCALE:
            return _read_uint(fh, off, esize)
    return None


def _cluster_time(fh: BinaryIO, pos: int, scale_ns: int) -> float | None:
    """Timecode (seconds) of the cluster whose header starts at ``pos`` (None for another element)."""
    fh.seek(pos)
    try:
        eid, hlen, size = _header(fh)
    except (_Short, ValueError):
        return None
    if eid != _CLUSTER:
        return None
    for cid, off, csize in _children(fh, pos + hlen, min(size or 64, 64)):
        if cid == _TIMECODE:
            v = _read_uint(fh, off, csize)
            return None if v is None else v * scale_ns / 1e9
    return None


def _last_time(fh: BinaryIO, seg_start: int, before: int, scale_ns: int) -> float | None:
    """Timecode of the last cluster that starts before ``before`` (frames from it on are suspect)."""
    t = None
    for eid, pos, _, _ in _elements(fh, seg_start, before):
        if eid == _CLUSTER:
            t = _cluster_time(fh, pos, scale_ns)
    return t


def _crc_mismatch(fh: BinaryIO, start: int, size: int) -> bool:
    """True when the element's data starts with a CRC-32 child that does not match the rest."""
    fh.seek(start)
    head = fh.read(6)
    if len(head) < 6 or head[0] != _CRC32 or head[1] != 0x84:  # id 0xBF, size 4
        return False
    want = int.from_bytes(head[2:6], "little")
    crc = 0
    left = size - 6
    while left > 0:
        block = fh.read(min(left, 1 << 20))
        if not block:
            return False  # truncated: reported elsewhere
        crc = zlib.crc32(block, crc)
        left -= len(block)
    return crc != want


# ---------------------------------------------------------------------------------------------
# ISO base media (MP4 / MOV)
# ---------------------------------------------------------------------------------------------
#: Boxes a file may start with (those FFmpeg's MOV probe looks for).
_BMFF_FIRST = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"udta", b"uuid", b"prfl", b"junk",
               b"pict", b"PICT", b"styp", b"sidx", b"moof", b"meta"}


def _check_bmff(fh: BinaryIO, file_size: int) -> ContainerDamage | None:
    pos = 0
    while pos < file_size:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8:
            return ContainerDamage("truncated", f"the file is cut short: it ends inside a box header at byte {pos}", pos)
        size = int.from_bytes(head[:4], "big")
        kind = head[4:8]
        if pos == 0 and kind not in _BMFF_FIRST:
            return ContainerDamage("corrupt", f"not an MP4/MOV file: it does not start with an MP4 box ({kind!r})", 0)
        if not all(32 <= c < 127 for c in kind):
            return ContainerDamage("corrupt", f"the MP4 structure is broken at byte {pos} (box type {kind!r})", pos)
        hlen = 8
        if size == 1:
            large = fh.read(8)
            if len(large) < 8:
                return ContainerDamage("truncated", f"the file is cut short: it ends inside a box header at byte {pos}", pos)
            size = int.from_bytes(large, "big")
            hlen = 16
        elif size == 0:
            return None  # the last box runs to the end of the file
        if size < hlen:
            return ContainerDamage("corrupt", f"the MP4 structure is broken at byte {pos} (box size {size})", pos)
        if pos + size > file_size:
            name = kind.decode("ascii")
            return ContainerDamage(
                "truncated", f"the file is cut short: {file_size} bytes, its '{name}' box at byte {pos} needs {pos + size}", pos
            )
        pos += size
    return None


# ---------------------------------------------------------------------------------------------
# RIFF (AVI)
# ---------------------------------------------------------------------------------------------
def _check_riff(fh: BinaryIO, file_size: int) -> ContainerDamage | None:
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"AVI ":
        return ContainerDamage("corrupt", "not an AVI file: no RIFF AVI header", 0)
    if head[:4] == b"RF64":
        return None  # sizes live in a ds64 chunk: not checked
    pos = 0
    while pos + 8 <= file_size:
        fh.seek(pos)
        head = fh.read(12)
        if head[:4] != b"RIFF":
            if pos > 0 and not head.strip(b"\0"):
                return None  # zero padding after the last chunk
            return ContainerDamage("corrupt", f"the AVI structure is broken at byte {pos} (chunk {head[:4]!r})", pos)
        end = pos + 8 + int.from_bytes(head[4:8], "little")
        if end > file_size:
            return ContainerDamage(
                "truncated", f"the file is cut short: {file_size} of the {end} bytes its RIFF header declares", file_size
            )
        pos = end + (end & 1)  # chunks are padded to an even size
    return None
