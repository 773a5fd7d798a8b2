"""Integrity of outputs: a record of exactly what was read, and a check that everything was written.

Frame digests
-------------
Every frame the pipeline reads gets a digest ``d_t = xxh3_128("vidfilter-frame", dtype, shape,
frame bytes)`` (xxHash: 0.2 ms for a 2048² frame where blake2b takes 4.5 ms, on the decode
thread that sets the pace), computed on the frame as decoded (after the colour policy, before any
conversion). The *content hash* of an input is ``blake2b(d_0 || d_1 || ...
|| d_{n-1}; digest_size=32, person="vidfilter-frames")``: a hash of the frames read, independent
of the container, the codec settings or where the bytes sit on disk.

While a run goes the digests are written to ``OUT.zarr.partial/vidfilter_frames.b2`` (16 bytes per
frame at offset ``16 t``), so a run resumed after a crash still records the hash of *all* frames
while reading only the ones it processes; the file stays in the finished store, so
``vidfilter verify OUT.zarr --input IN`` can name the first frame that differs.

Chunk checksums
---------------
Every chunk file an output store holds gets ``blake2b(file bytes; digest_size=16,
person="vidfilter-chunk")`` as it is written (:class:`ChunkDigests`), in
``<group>/vidfilter_chunks.b2`` (16 bytes per chunk, in the C order of the chunk grid).
:func:`verify` re-hashes every chunk file and names the group, frame and chunk of any mismatch: a
flipped byte, a truncated or emptied file, or a chunk copied over another.

Also here: :func:`resume_compatible` (resume only a partial output made from the same input,
method, model and settings) and :func:`verify` (is a store complete, are all chunks there and
readable, does the input still match).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import InputNotFoundError, UnreadableInputError, VidfilterError

__all__ = ["CHUNK_DIGEST_FILE", "ChunkDigests", "DIGEST_FILE", "FrameDigests", "VerifyReport",
    "chunk_digest", "content_hash", "file_sha256", "frame_digest", "made_by_same_run", "resume_compatible",
    "verify"]

log = logging.getLogger(__name__)

#: Per-frame digests inside an output store (16 bytes per frame, frame order).
DIGEST_FILE = "vidfilter_frames.b2"
#: Per-chunk digests of each image group's array, beside it (16 bytes per chunk, grid order).
CHUNK_DIGEST_FILE = "vidfilter_chunks.b2"
DIGEST_SIZE = 16
#: How the content hash is made (recorded next to it in the run metadata).
CONTENT_HASH = "blake2b-256 over the per-frame xxh3-128 digests (see docs/reliability.md)"

#: Config keys that do not change the output, so a partial output made with other values resumes.
_VOLATILE_CONFIG = {
    ("output", "overwrite"), ("output", "formats"), ("infer", "threads"), ("infer", "queue_size"),
    ("infer", "salvage"), ("infer", "missing_chunks"), ("infer", "setup_cache"),
}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def frame_digest(frame: np.ndarray) -> bytes:
    """xxh3-128 of one frame: its dtype, shape and C-order bytes."""
    import xxhash

    a = np.ascontiguousarray(frame)
    h = xxhash.xxh3_128()
    h.update(f"vidfilter-frame{a.dtype.str}{a.shape}".encode())
    h.update(a.reshape(-1).view(np.uint8))
    return h.digest()


def _combine(digests: bytes) -> str:
    h = hashlib.blake2b(digest_size=32, person=b"vidfilter-frames")
    h.update(digests)
    return h.hexdigest()


class FrameDigests:
    """Per-frame digests persisted in ``folder/vidfilter_frames.b2`` (positional writes, thread-safe).

    Parameters
    ----------
    folder : path-like
        The output's (partial) store folder.
    n_frames : int
        Frames the output holds; records past it are dropped by :meth:`finish`.
    """

    def __init__(self, folder: str | os.PathLike[str], n_frames: int) -> None:
        self.path = Path(folder) / DIGEST_FILE
        self.n_frames = int(n_frames)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def put(self, t: int, frame: np.ndarray) -> None:
        """Record the digest of frame ``t``."""
        if self._fd is not None and 0 <= t < self.n_frames:
            os.pwrite(self._fd, frame_digest(frame), DIGEST_SIZE * int(t))

    def _records(self) -> bytes:
        assert self._fd is not None
        data = os.pread(self._fd, DIGEST_SIZE * self.n_frames, 0)
        return data + bytes(DIGEST_SIZE * self.n_frames - len(data))

    def missing(self) -> list[int]:
        """Frames with no record yet (never read by this run or the interrupted ones before it)."""
        data = self._records()
        zero = bytes(DIGEST_SIZE)
        return [t for t in range(self.n_frames) if data[DIGEST_SIZE * t : DIGEST_SIZE * (t + 1)] == zero]

    def finish(self) -> str:
        """Trim to ``n_frames`` records, fsync, and return the content hash."""
        assert self._fd is not None
        os.ftruncate(self._fd, DIGEST_SIZE * self.n_frames)
        os.fsync(self._fd)
        return _combine(self._records())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# chunk checksums of the output
# ---------------------------------------------------------------------------------------------
def chunk_digest(data: bytes | memoryview) -> bytes:
    """blake2b-128 of one stored chunk file's bytes (as compressed on disk)."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE, person=b"vidfilter-chunk").digest()


class ChunkDigests:
    """The digest of every chunk file of one output array, in a positional table.

    Record ``i`` (16 bytes at offset ``16 i``) belongs to the chunk whose grid coordinates have
    C-order linear index ``i``, so a chunk copied over another, a flipped byte or a truncated file
    all show as a mismatch at the exact chunk. Writes are positional (``pwrite``) and thread-safe.

    Parameters
    ----------
    path : path-like
        The table file (``<group>/vidfilter_chunks.b2`` inside the store).
    grid : tuple of int
        Chunks per axis of the array.
    fresh : bool
        Start an empty table (a new array) instead of continuing one (a resumed array).
    """

    def __init__(self, path: str | os.PathLike[str], grid: tuple[int, ...], *, fresh: bool) -> None:
        self.path = Path(path)
        self.grid = tuple(int(g) for g in grid)
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        self._fd: int | None = os.open(self.path, flags, 0o644)

    def index(self, coords: tuple[int, ...]) -> int:
        return int(np.ravel_multi_index(coords, self.grid))

    def put(self, coords: tuple[int, ...], digest: bytes) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, digest, DIGEST_SIZE * self.index(coords))

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def finish(self, grid: tuple[int, ...]) -> None:
        """Trim to an array shortened to ``grid`` (records keep their index: the leading axis
        is the one shortened), fsync and close."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, DIGEST_SIZE * int(np.prod(grid)))
        self.sync()
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def content_hash(src: Any, n_frames: int | None = None) -> tuple[str, list[bytes]]:
    """Content hash of the first ``n_frames`` frames of a :class:`FrameSource` (all by default),
    read sequentially, and the per-frame digests."""
    n = len(src) if n_frames is None else min(int(n_frames), len(src))
    digests = [frame_digest(f) for f in src.iter(0, n)]
    return _combine(b"".join(digests)), digests


# ---------------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------------
def _identity(meta: dict[str, Any]) -> dict[str, Any]:
    """The parts of a run's metadata that decide its output."""
    inp = meta.get("input") or {}
    cfg = json.loads(json.dumps(meta.get("config") or {}))
    for section, key in _VOLATILE_CONFIG:
        (cfg.get(section) or {}).pop(key, None)
    return {
        "input": {k: inp.get(k) for k in ("path", "size", "sha256") if k in inp},
        "input_shape": meta.get("input_shape"),
        "input_dtype": meta.get("input_dtype"),
        "method": meta.get("method"),
        "model": (meta.get("model") or {}).get("sha256"),
        "config": cfg,
    }


def made_by_same_run(store: str | os.PathLike[str], meta: dict[str, Any]) -> bool:
    """Whether the finished store ``store`` was made from the same input file (path, size,
    SHA-256), method, model and output-changing settings as the run described by ``meta``.

    Inputs without a file hash (a Zarr store, an image folder, an array) can change in place
    unseen, so their outputs are never taken as made by the same run. A polarity left to ``auto``
    matches whatever the earlier run resolved it to.
    """
    try:
        old = json.loads((Path(store) / "zarr.json").read_text()).get("attributes") or {}
    except (OSError, ValueError):
        return False
    if not (old.get("vidfilter") or {}).get("complete") or not (meta.get("input") or {}).get("sha256"):
        return False
    a, b = _identity(old), _identity(meta)
    if ((b["config"].get("output") or {}).get("polarity")) == "auto":
        for ident in (a, b):
            (ident["config"].get("output") or {}).pop("polarity", None)
    return a == b


def _first_changed_frame(src: Any, stored: bytes, done: int, *, sampled: bool) -> int | None:
    """The first frame whose digest differs from the one recorded, or None.

    A file input whose SHA-256 matched already has identical frames, so three of the frames
    ``0..done-1`` are enough (first, middle, last: a cheap guard against a different decoder). Any
    other input (a Zarr store, an image folder, an array) can change in place without a file hash
    to show it, so every frame the output was computed from is read again: the frames ``0..done-1``
    in order, then every later frame with a recorded digest (the setup's frames, which every
    background of the output depends on, and frames read ahead of the written ones).
    """
    if sampled:
        if done <= 0:
            return None
        frames = sorted({0, done // 2, done - 1})
        it = ((t, src[t]) for t in frames)
    else:
        zero = bytes(DIGEST_SIZE)
        later = [t for t in range(max(done, 0), min(len(stored) // DIGEST_SIZE, len(src)))
                 if stored[DIGEST_SIZE * t : DIGEST_SIZE * (t + 1)] != zero]
        it = itertools.chain(zip(range(done), src.iter(0, done)) if done > 0 else (), ((t, src[t]) for t in later))
    for t, frame in it:
        if frame_digest(frame) != stored[DIGEST_SIZE * t : DIGEST_SIZE * (t + 1)]:
            return t
    return None


def resume_compatible(out: str | os.PathLike[str], meta: dict[str, Any], src: Any = None) -> bool:
    """Whether the partial output ``OUT.partial`` (if any) was made by the same run as ``meta``.

    A partial store made from another input (the file was re-copied or re-exported), another
    method or model, or other output-changing settings must not be continued: its frames would be
    mixed with this run's. The recorded metadata are compared and, when ``src`` is given, the
    frames already processed are re-read and compared with their recorded digests: all of them,
    and the setup's frames, for inputs without a file hash (a Zarr store, an image folder or an
    array changed in place), the first, middle and last for a file whose SHA-256 matched.
    On a difference ``False`` is returned (and logged) and the caller starts afresh.
    """
    from vidfilter.io.sink import partial_path
    from vidfilter.io.ownership import PROGRESS_NAME

    part = partial_path(out)
    try:
        old = json.loads((part / "zarr.json").read_text()).get("attributes") or {}
    except (OSError, ValueError):
        return True  # nothing to resume, or a store the writer itself will judge
    if "method" not in old:
        return True
    a, b = _identity(old), _identity(meta)
    diff = [k for k in b if k in a and a[k] != b[k]]
    if not diff and src is not None:
        try:
            images = json.loads((part / PROGRESS_NAME).read_text()).get("images") or {}
            done = min(int(v.get("frames_written", 0)) for v in images.values()) if images else 0
            stored = (part / DIGEST_FILE).read_bytes()
        except (OSError, ValueError):
            done, stored = 0, b""
        done = min(done, len(stored) // DIGEST_SIZE, len(src))
        t = _first_changed_frame(src, stored, done, sampled=bool((meta.get("input") or {}).get("sha256")))
        if t is not None:
            diff.append(f"input frames (frame {t} differs)")
    if diff:
        log.warning(
            "the partial output %s was made with a different %s; starting afresh instead of resuming",
            part, ", ".join(diff),
        )
        return False
    return True


# ---------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    """What :func:`verify` found.

    Attributes
    ----------
    path : str
        The store checked.
    complete : bool
        Every declared frame is written, every chunk is present (and readable unless ``quick``),
        and the input matches when one was given.
    problems : list of str
        One line per problem found (empty when complete).
    facts : dict
        Frames per image, chunks checked, the recorded input and its hash, input check result.
    """

    path: str
    complete: bool = True
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        self.complete = False
        self.problems.append(text)

    def summary(self) -> str:
        if self.complete:
            images = self.facts.get("images", {})
            what = ", ".join(f"{k} {v['frames']} frames" for k, v in images.items())
            extra = "; input matches" if self.facts.get("input_check") == "match" else ""
            return f"complete: {self.path} ({what}{extra})"
        n = len(self.problems)
        return f"INCOMPLETE: {self.path}: {n} problem{'s' if n != 1 else ''}; first: {self.problems[0]}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "complete": self.complete, "problems": self.problems, "facts": self.facts}


def _expected_keys(arr: Any) -> list[tuple[int, ...]]:
    grid = getattr(arr, "shards", None) or arr.chunks
    return list(itertools.product(*[range(-(-s // c)) for s, c in zip(arr.shape, grid)]))


def _present_chunk_files(folder: Path) -> set[str]:
    """Chunk keys (``c/0/0/0``) present under an array folder of a local Zarr v3 store."""
    found: set[str] = set()
    base = folder / "c"
    if not base.is_dir():
        return found
    for root, _, files in os.walk(base):
        rel = Path(root).relative_to(folder)
        for f in files:
            found.add("/".join((*rel.parts, f)))
    return found


def _check_chunk_digests(
    report: VerifyReport, group: Path, arr: Any, keys: list[tuple[int, ...]], missing: set, *, array: str = "0",
    digest_file: str = CHUNK_DIGEST_FILE,
) -> str:
    """Re-hash the chunk files ``keys`` of ``group``'s array ``array`` against the digests recorded
    as they were written (table ``digest_file``); one problem per mismatching chunk (the first five,
    then a count). Returns what was found: ``"match"``, ``"mismatch"`` or ``"not recorded"`` (a
    store written without them)."""
    try:
        table = (group / digest_file).read_bytes()
    except OSError:
        return "not recorded"
    grid = tuple(-(-s // c) for s, c in zip(arr.shape, arr.chunks))
    if len(table) != DIGEST_SIZE * int(np.prod(grid)):
        report.problem(f"{group.name}: its chunk checksum table {digest_file} is truncated or too long")
        return "mismatch"
    bad = 0
    for k in keys:
        if k in missing:
            continue
        key = arr.metadata.encode_chunk_key(k)
        i = int(np.ravel_multi_index(k, grid))
        try:
            data = (group / array / key).read_bytes()
        except OSError:
            data = b""
        if chunk_digest(data) != table[DIGEST_SIZE * i : DIGEST_SIZE * (i + 1)]:
            bad += 1
            if bad <= 5:
                report.problem(
                    f"{group.name}: chunk {key}{_frames_of(arr, k)} does not match the checksum recorded when it was "
                    f"written ({len(data)} bytes on disk): damaged or replaced; rerun with --overwrite to rewrite it"
                )
    if bad > 5:
        report.problem(f"{group.name}: {bad - 5} more chunks do not match their checksums")
    return "mismatch" if bad else "match"


def verify(
    path: str | os.PathLike[str], *, input: Any = None, quick: bool = False, missing_chunks: str | None = None,
) -> VerifyReport:
    """Check that a vidfilter output store is complete, and optionally that its input still matches.

    Parameters
    ----------
    path : path-like
        ``OUT.zarr`` (an interrupted ``OUT.zarr.partial`` is reported as incomplete).
    input : path-like or FrameSource, optional
        Re-read this input and compare its content hash (and file SHA-256 when recorded) with the
        record in the store.
    quick : bool
        Check every chunk file against its recorded checksum without decompressing it.
    missing_chunks : {"error", "fill"}, optional
        Policy for a Zarr input; default: the one the run used.

    Raises
    ------
    InputNotFoundError
        Neither ``path`` nor ``path.partial`` exists.
    UnreadableInputError
        ``path`` is not a vidfilter output store.
    """
    import zarr

    from vidfilter.io.sink import partial_path

    p = Path(path).expanduser()
    report = VerifyReport(str(p))
    if p.name.endswith(".partial") or (not p.exists() and partial_path(p).exists()):
        _interrupted(report, p if p.name.endswith(".partial") else partial_path(p))
        return report
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such output store; check the path")
    try:
        root = zarr.open_group(str(p), mode="r")
        attrs = dict(root.attrs)
    except Exception as e:
        raise UnreadableInputError(f"{p}: not a readable Zarr store ({' '.join(str(e).split())[:100]})") from None
    vf = attrs.get("vidfilter")
    if not isinstance(vf, dict):
        raise UnreadableInputError(f"{p}: not a vidfilter output (no 'vidfilter' attributes); pass a store written by `vidfilter run`")
    if not vf.get("complete"):
        report.problem("the store is not marked complete")
    declared = vf.get("images") or {}
    if not declared:
        report.problem("the store declares no images")
    images: dict[str, Any] = {}
    n_frames = None
    for name, info in declared.items():
        frames = int(info.get("frames", -1))
        images[name] = {"frames": frames}
        n_frames = frames if n_frames is None else n_frames
        if frames != n_frames:
            report.problem(f"{name}: {frames} frames, other images hold {n_frames}")
        _check_image(report, p, name, images[name], bool(vf.get("chunk_checksums")), quick)
    report.facts["images"] = images
    rec = attrs.get("input") or {}
    report.facts["input"] = {k: rec.get(k) for k in ("path", "size", "sha256", "frames_read", "frames_xxh3", "damage")}
    if "frames_read" in rec and n_frames is not None and rec["frames_read"] != n_frames:
        report.problem(f"the run read {rec['frames_read']} input frames but the store holds {n_frames}")
    if input is not None:
        _check_input(report, p, input, rec, attrs, n_frames or 0, missing_chunks)
    return report


def _interrupted(report: VerifyReport, part: Path) -> None:
    """Report the partial store ``part`` of an interrupted run, with the frames its images hold."""
    from vidfilter.io.ownership import PROGRESS_NAME

    report.path = str(part)
    try:
        prog = json.loads((part / PROGRESS_NAME).read_text()).get("images", {})
        done = ", ".join(f"{k} {v.get('frames_written')}/{v.get('n_frames')}" for k, v in prog.items())
    except (OSError, ValueError):
        done = "progress unknown"
    report.problem(
        f"interrupted run: only the partial store {part.name} exists ({done} frames durable); "
        "rerun the same command to resume it"
    )


def _check_image(report: VerifyReport, store: Path, name: str, facts: dict[str, Any], checksums: bool, quick: bool) -> None:
    """Check the array of image ``name`` (``facts["frames"]`` frames declared), its chunks and their checksums
    (``checksums``: the store recorded them) and, unless ``quick``, its frames; adds to ``facts``."""
    import zarr

    from vidfilter.io.keyframe_store import is_keyframe_group

    if is_keyframe_group(store / name):
        _check_keyframe_image(report, store, name, facts, checksums, quick)
        return
    frames = facts["frames"]
    try:
        arr = zarr.open_array(str(store / name / "0"), mode="r")
    except Exception:
        report.problem(f"{name}: its array {name}/0 is missing or unreadable")
        return
    if arr.shape[0] != frames:
        report.problem(f"{name}: array holds {arr.shape[0]} frames, the store declares {frames}")
    gvf = (dict(zarr.open_group(str(store / name), mode="r").attrs).get("vidfilter") or {})
    if not gvf.get("complete") or gvf.get("frames_written") != frames:
        report.problem(f"{name}: {gvf.get('frames_written')} of {frames} frames recorded as written")
    facts["chunks"] = 0
    facts["checksums"], missing = _check_stored_chunks(report, store / name, "0", arr, _expected_keys(arr), CHUNK_DIGEST_FILE, facts)
    if facts["checksums"] == "not recorded" and checksums:
        report.problem(f"{name}: its chunk checksum table {CHUNK_DIGEST_FILE} is missing")
    if quick or missing:
        return
    for t in range(arr.shape[0]):
        try:
            np.asarray(arr[t])
        except Exception as e:
            report.problem(f"{name}: frame {t} cannot be read ({' '.join(str(e).split())[:80]})")
            break


def _check_keyframe_image(report: VerifyReport, store: Path, name: str, facts: dict[str, Any], checksums: bool, quick: bool) -> None:
    """:func:`_check_image` of an image stored at keyframes: its table holds every frame, each
    keyframe a row names is stored, and both match their checksums (unless ``quick``, each
    keyframe is also read)."""
    import zarr

    from vidfilter.io.keyframe_store import KEYFRAMES, TABLE

    frames, group = facts["frames"], store / name
    try:
        g = zarr.open_group(str(group), mode="r")
        keys, table = g[KEYFRAMES], g[TABLE]
    except Exception:
        report.problem(f"{name}: its arrays {name}/{KEYFRAMES} and {name}/{TABLE} are missing or unreadable")
        return
    gvf = dict(g.attrs).get("vidfilter") or {}
    if not gvf.get("complete") or gvf.get("frames_written") != frames or table.shape[0] != frames:
        report.problem(f"{name}: {gvf.get('frames_written')} of {frames} frames recorded as written")
    facts.update(storage="keyframes", chunks=0)
    results = [_check_stored_chunks(report, group, TABLE, table, _expected_keys(table), "vidfilter_table_chunks.b2", facts)]
    try:
        rows = np.asarray(table[:]) if _intact(results[0]) else np.zeros((0, 4))
    except Exception as e:
        report.problem(f"{name}: its table {name}/{TABLE} cannot be read ({' '.join(str(e).split())[:80]})")
        return
    named = np.unique(rows[:, :2].astype(np.int64))
    facts["keyframes"] = int(named.size)
    if named.size and (named[0] < 0 or named[-1] >= keys.shape[0]):
        report.problem(f"{name}: its table names keyframes outside the recording")
        return
    named_set = set(named.tolist())
    wanted = [k for k in _expected_keys(keys) if k[0] in named_set]
    results.append(_check_stored_chunks(report, group, KEYFRAMES, keys, wanted, CHUNK_DIGEST_FILE, facts))
    found = [r for r, _ in results]
    facts["checksums"] = "mismatch" if "mismatch" in found else found[0]
    if facts["checksums"] == "not recorded" and checksums:
        report.problem(f"{name}: its chunk checksum tables are missing")
    if quick or not all(_intact(r) for r in results):
        return
    for k in named.tolist():
        try:
            np.asarray(keys[k])
        except Exception as e:
            report.problem(f"{name}: keyframe {k} cannot be read ({' '.join(str(e).split())[:80]})")
            break


def _frames_of(arr: Any, k: tuple[int, ...]) -> str:
    """`` (frame t)`` or `` (frames a-b)``: the frames of chunk ``k`` where the array's first axis is time."""
    names = getattr(arr.metadata, "dimension_names", None)
    if not names or names[0] != "t":
        return ""
    lo = k[0] * arr.chunks[0]
    hi = min(lo + arr.chunks[0], arr.shape[0]) - 1
    return f" (frame {lo})" if hi <= lo else f" (frames {lo}-{hi})"


def _check_stored_chunks(
    report: VerifyReport, group: Path, array: str, arr: Any, keys: list[tuple[int, ...]], digest_file: str,
    facts: dict[str, Any],
) -> tuple[str, int]:
    """Check that the chunks ``keys`` of ``group``'s array ``array`` are present (the first five
    missing named, with their frame, then a count) and match their digests (table ``digest_file``):
    ``(checksum finding, chunks missing)``."""
    present = _present_chunk_files(group / array)
    missing = [k for k in keys if arr.metadata.encode_chunk_key(k) not in present]
    label = "" if array == "0" else f"{array}/"
    for k in missing[:5]:
        report.problem(f"{group.name}: chunk {label}{arr.metadata.encode_chunk_key(k)}{_frames_of(arr, k)} is missing")
    if len(missing) > 5:
        report.problem(f"{group.name}: {len(missing) - 5} more chunks missing")
    facts["chunks"] += len(keys)
    found = _check_chunk_digests(report, group, arr, keys, set(missing), array=array, digest_file=digest_file)
    return found, len(missing)


def _intact(result: tuple[str, int]) -> bool:
    """A :func:`_check_stored_chunks` result with every chunk present and matching."""
    return not result[1] and result[0] != "mismatch"


def _check_input(
    report: VerifyReport, store: Path, input: Any, rec: dict[str, Any], attrs: dict[str, Any], n: int,
    missing_chunks: str | None,
) -> None:
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.source import FrameSource

    want = rec.get("frames_xxh3")
    if not want:
        report.problem("the store holds no content hash of its input (written by an older vidfilter); cannot compare")
        return
    if isinstance(input, (str, os.PathLike)) and rec.get("sha256") and Path(input).is_file():
        report.facts["input_sha256_match"] = file_sha256(input) == rec["sha256"]
    cfg = attrs.get("config") or {}
    color = (cfg.get("output") or {}).get("color", "gray")
    policy = missing_chunks or (cfg.get("infer") or {}).get("missing_chunks", "error")
    src = input if isinstance(input, FrameSource) else vf_open(input, color=color)
    try:
        if hasattr(src, "missing_chunks"):
            src.missing_chunks = policy
        if len(src) < n:
            report.facts["input_check"] = "mismatch"
            report.problem(f"the input has {len(src)} frames, the run read {n}")
            return
        got, digests = content_hash(src, n)
    except VidfilterError as e:
        report.facts["input_check"] = "unreadable"
        report.problem(f"the input cannot be re-read: {' '.join(str(e).split())}")
        return
    finally:
        if src is not input:
            src.close()
    if got == want:
        report.facts["input_check"] = "match"
        return
    report.facts["input_check"] = "mismatch"
    first = None
    try:
        stored = (store / DIGEST_FILE).read_bytes()
        first = next((t for t, d in enumerate(digests) if stored[DIGEST_SIZE * t : DIGEST_SIZE * (t + 1)] != d), None)
    except OSError:
        pass
    where = f" (first differing frame: {first})" if first is not None else ""
    report.problem(f"the input's frames differ from the ones this output was made from{where}")
