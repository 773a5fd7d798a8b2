"""What vidfilter wrote: the only things ``--overwrite`` may replace and a rerun may clear.

A path passed as ``--out`` may already hold something. vidfilter replaces it (with
``--overwrite``) or empties it (a leftover ``PATH.partial``) only when it carries a mark that
vidfilter itself leaves on every output it writes:

============================  =================================================================
kind                          mark
============================  =================================================================
Zarr store (run, convert,     root ``zarr.json`` whose attributes hold a ``vidfilter`` block
block run)
work-in-progress store        ``.vidfilter_progress.json`` or a ``.lock`` holding ``pid``/``host``
folder (image sequence,       a ``.vidfilter.json`` file inside (:data:`MARKER_NAME`); a crop
crop bank, report)            bank's manifest or a report's ``log.json``
HDF5 file                     root attribute ``vidfilter``
video (FFV1, preview MP4)     container metadata ``comment`` starting with ``vidfilter``
model bundle / checkpoint     readable by :func:`vidfilter.models.bundle.load_model` / a
                              checkpoint archive holding ``checkpoint_version``
PNG image                     a text chunk ``Software`` starting with ``vidfilter``
============================  =================================================================

An empty folder or a 0-byte file holds no data and may be replaced too. Anything else is
refused with one line (:class:`~vidfilter.errors.ForeignOutputError`, exit code 2), so
``--overwrite`` can never delete another recording, a raw Zarr store, or a user's folder that
happens to be called ``X.zarr`` or ``X.zarr.partial``.

The PNG mark is made here too: :func:`png_with_text` adds a text chunk to encoded PNG bytes and
:func:`signed_png` encodes an image carrying vidfilter's.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from vidfilter.errors import ForeignOutputError

__all__ = ["LOCK_NAME", "MARKER_NAME", "PROGRESS_NAME", "SIGNATURE", "check_replaceable", "png_with_text",
    "read_json", "signed_png", "written_by_vidfilter"]

#: Marker file inside every folder vidfilter writes (image sequences, crop banks, reports).
MARKER_NAME = ".vidfilter.json"
#: Prefix of the ``comment`` metadata of videos and the ``Software`` text of PNGs vidfilter writes.
SIGNATURE = "vidfilter"

#: The progress record of a work-in-progress store (what a resume trusts).
PROGRESS_NAME = ".vidfilter_progress.json"
#: The lock file of a work-in-progress output (pid and host of its writer).
LOCK_NAME = ".lock"
_VIDEO_SUFFIXES = {".mkv", ".mp4", ".avi", ".mov", ".webm"}
_HDF5_SUFFIXES = {".h5", ".hdf5"}


def png_with_text(png: bytes, key: str, text: str) -> bytes:
    """``png`` with a ``tEXt`` chunk ``key = text`` (Latin-1) right after its header chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4  # signature, IHDR length+type, data, CRC
    body = b"tEXt" + key.encode("latin-1") + b"\0" + text.encode("latin-1", "replace")
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return png[:end] + chunk + png[end:]


def signed_png(image: object) -> bytes:
    """PNG bytes of ``image`` (OpenCV channel order) carrying the text chunk ``Software=vidfilter``."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("image cannot be encoded as PNG")
    return png_with_text(buf.tobytes(), "Software", SIGNATURE)


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; ``None`` where it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _folder_is_ours(p: Path) -> bool:
    marker = read_json(p / MARKER_NAME)
    if isinstance(marker, dict) and marker.get("written_by") == SIGNATURE:
        return True
    root = read_json(p / "zarr.json")
    if isinstance(root, dict) and isinstance((root.get("attributes") or {}).get("vidfilter"), dict):
        return True
    if isinstance(read_json(p / PROGRESS_NAME), dict):
        return True
    manifest = read_json(p / "manifest.json")  # a crop bank
    if isinstance(manifest, dict) and manifest.get("format") == "vidfilter-crops":
        return True
    log = read_json(p / "log.json")  # a training report
    if isinstance(log, dict) and {"config", "verdict"} <= log.keys():
        return True
    lock = read_json(p / LOCK_NAME)
    return isinstance(lock, dict) and "pid" in lock and "host" in lock


def _hdf5_is_ours(p: Path) -> bool:
    try:
        import h5py
    except ImportError:
        return False
    try:
        with h5py.File(p, "r") as f:
            return "vidfilter" in f.attrs
    except Exception:  # not HDF5, or damaged beyond reading
        return False


def _video_is_ours(p: Path) -> bool:
    try:
        import av
    except ImportError:  # pragma: no cover - a core dependency
        return False
    try:
        with av.open(str(p), "r") as c:
            meta = {k.lower(): v for k, v in (c.metadata or {}).items()}
    except Exception:  # not a video, or cut before its first frame: read the header itself
        return _video_header_is_ours(p)
    return str(meta.get("comment", "")).startswith(SIGNATURE)


#: Bytes of a video's header searched for the comment when the demuxer cannot open the file (a
#: writer killed after the header, before the first cluster or fragment).
_HEADER_BYTES = 8192


def _video_header_is_ours(p: Path) -> bool:
    """A Matroska (EBML magic) or MP4 (``ftyp`` box) header whose tags hold vidfilter's comment."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
    except OSError:
        return False
    container = head.startswith(b"\x1a\x45\xdf\xa3") or head[4:8] == b"ftyp"
    return container and f"{SIGNATURE} ".encode() in head


def _png_is_ours(p: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(p) as im:
            return str(im.info.get("Software", "")).startswith(SIGNATURE)
    except Exception:
        return False


def _archive_is_ours(p: Path) -> bool:
    """A bundle or a training checkpoint: a torch archive of plain data (loaded without
    unpickling objects) that names itself as vidfilter's."""
    try:
        with open(p, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # a torch archive is a zip; nothing else is loaded
                return False
        import torch

        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # not a torch archive, damaged, or holding objects
        return False
    return isinstance(data, dict) and (data.get("format") == "vidfilter-bundle" or "checkpoint_version" in data)


def written_by_vidfilter(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` carries vidfilter's mark (or holds no data at all: an empty folder or file).

    A path that does not exist is ``False`` (there is nothing to replace).
    """
    p = Path(path)
    if p.is_symlink():
        return False  # never follow a link onto something else
    if p.is_dir():
        try:
            if not any(os.scandir(p)):
                return True
        except OSError:
            return False
        return _folder_is_ours(p)
    if not p.is_file():
        return False
    try:
        if p.stat().st_size == 0:
            return True
    except OSError:
        return False
    name = p.name[: -len(".partial")] if p.name.endswith(".partial") else p.name
    suffix = Path(name).suffix.lower()
    if suffix in _HDF5_SUFFIXES:
        return _hdf5_is_ours(p)
    if suffix in _VIDEO_SUFFIXES:
        return _video_is_ours(p)
    if suffix == ".png":
        return _png_is_ours(p)
    if suffix in (".vfm", ".ckpt"):
        return _archive_is_ours(p)
    return False


def check_replaceable(path: str | os.PathLike[str], *, why: str = "--overwrite") -> None:
    """Raise :class:`~vidfilter.errors.ForeignOutputError` unless ``path`` is absent or vidfilter's.

    Parameters
    ----------
    path : path-like
        The output (or its work-in-progress ``.partial``) about to be replaced or emptied.
    why : str
        What would replace it, for the message: ``--overwrite``, or ``a rerun`` clearing a
        leftover partial output.
    """
    p = Path(path)
    if not (p.exists() or p.is_symlink()):
        return
    if written_by_vidfilter(p):
        return
    kind = "a link" if p.is_symlink() else "a folder" if p.is_dir() else "a file"
    raise ForeignOutputError(
        f"{p} is {kind} that vidfilter did not write, so {why} will not replace it; "
        "move it away or choose another --out"
    )
