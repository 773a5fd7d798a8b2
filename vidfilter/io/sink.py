"""The one interface every output offers: :class:`FrameSink`, plus the atomic-write helpers.

A sink receives frames one at a time (``append``) and either *finalises* them (``close``) or
*aborts* (``abort``). A finalised output appears under its final name in one atomic step; an
aborted or killed one never does, so an output that exists is always complete. Every writer (the
sinks, the writers of several images into one output, the Zarr stores) derives from
:class:`OutputWriter`: used as a context manager, an exception inside the ``with`` block aborts
instead of committing.

Helpers:

- :func:`atomic_path` / :func:`atomic_write_bytes`: write a file under a temporary name in the
  same folder, ``fsync`` it, then ``os.replace`` it onto the final name.
- :func:`commit_path`: move a finished ``*.partial`` file or folder onto its final name, replacing
  an old output only at that moment (so a killed overwrite never loses the old output).
- :func:`check_output_path`: refuse outputs that exist, cannot be written, or would land on or
  inside an input.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vidfilter.errors import OutputExistsError, OutputNotWritableError, UnsupportedInputError
from vidfilter.io.ownership import MARKER_NAME, SIGNATURE, check_replaceable

__all__ = ["FrameSink", "OutputWriter", "PARTIAL_SUFFIX", "atomic_path", "atomic_write_bytes", "check_frame",
    "check_output_path", "commit_path", "discard_partial", "fsync_dir", "make_partial_folder", "mark_folder",
    "partial_path", "pid_alive", "remove_aside", "remove_path", "staging_path"]

logger = logging.getLogger(__name__)

#: Suffix of the work-in-progress name every sink writes to before renaming.
PARTIAL_SUFFIX = ".partial"

PathLike = str | os.PathLike


def partial_path(path: PathLike) -> Path:
    """The work-in-progress sibling of ``path``: ``PATH.partial``."""
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def fsync_dir(folder: PathLike) -> None:
    """``fsync`` a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    The temporary name keeps ``path``'s suffix (so libraries that pick a format from the
    extension still work) unless ``suffix`` is given. If the block raises, the temporary file is
    removed and ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    sfx = path.suffix if suffix is None else suffix
    _remove_dead(folder, f".{path.stem}.", f".tmp{sfx}")  # temporaries of killed writers
    # Not tempfile.mkstemp: its 0600 mode would survive the rename; O_EXCL + 0666 honours the umask.
    while True:
        tmp = folder / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{sfx}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _remove_dead(folder: Path, prefix: str, end: str) -> None:
    """Delete the temporaries a killed process left in ``folder`` (a SIGKILL skips the clean-up):
    ``{prefix}{pid}.{token}{end}`` whose pid no longer runs on this host."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(end)]
    except OSError:
        return
    for name in names:
        parts = name[len(prefix) : len(name) - len(end)].split(".")
        if len(parts) != 2 or not parts[0].isdigit() or pid_alive(int(parts[0])):
            continue
        with contextlib.suppress(OSError):
            remove_path(folder / name)
            logger.info("removed %s, left by a killed process", folder / name)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def staging_path(path: PathLike) -> Path:
    """A hidden sibling name for ``path`` owned by this process: ``.NAME.PID.TOKEN.tmp``."""
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def remove_aside(path: PathLike) -> None:
    """Delete a file or folder tree by first renaming it to a :func:`staging_path`: a kill during
    a long deletion then leaves a hidden staging name (removed by the next run), never ``path``
    half-deleted, its mark already gone and its data not."""
    p = Path(path)
    _remove_dead(p.parent, f".{p.name}.", ".tmp")
    if not (p.exists() or p.is_symlink()):
        return
    aside = staging_path(p)
    os.rename(p, aside)
    remove_path(aside)


def mark_folder(folder: PathLike, kind: str) -> None:
    """Write vidfilter's marker file (:data:`~vidfilter.io.ownership.MARKER_NAME`) into ``folder``."""
    atomic_write_bytes(Path(folder) / MARKER_NAME, json.dumps({"written_by": SIGNATURE, "kind": kind}).encode())


def make_partial_folder(partial: PathLike, kind: str) -> Path:
    """Create the empty work-in-progress folder ``partial`` holding vidfilter's marker file.

    It is made and marked under a :func:`staging_path` and then renamed, so ``partial`` never
    exists without its mark: whatever a kill leaves under that name a rerun may clear.
    """
    partial = Path(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead(partial.parent, f".{partial.name}.", ".tmp")
    staging = staging_path(partial)
    staging.mkdir()
    try:
        mark_folder(staging, kind)
        os.rename(staging, partial)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_path(staging)
        raise
    return partial


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def discard_partial(path: PathLike) -> None:
    """Delete a leftover work-in-progress ``PATH.partial``, but only one that vidfilter wrote
    (anything else raises :class:`~vidfilter.errors.ForeignOutputError`)."""
    check_replaceable(path, why="a rerun")
    remove_aside(path)


def remove_path(path: PathLike) -> None:
    """Delete a file, link or folder tree; missing paths are ignored."""
    p = Path(path)
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    elif p.is_dir():
        shutil.rmtree(p, ignore_errors=False)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def commit_path(partial: PathLike, final: PathLike, *, overwrite: bool = False) -> None:
    """Move a finished ``partial`` file/folder onto ``final``.

    If ``final`` exists it is replaced only when ``overwrite`` is true, and only now: the swap is a
    single atomic ``renameat2(RENAME_EXCHANGE)`` where the OS offers it, otherwise the old output
    is first renamed aside (``final.old-PID``) so it is never deleted before the new one is in
    place.

    Raises
    ------
    OutputExistsError
        ``final`` exists and ``overwrite`` is false.
    ForeignOutputError
        ``final`` exists but vidfilter did not write it (:mod:`vidfilter.io.ownership`).
    """
    partial, final = Path(partial), Path(final)
    if final.exists() or final.is_symlink():
        if not overwrite:
            raise OutputExistsError(
                f"{final} exists; pass --overwrite to replace it or choose another --out"
            )
        check_replaceable(final)
        if _exchange(partial, final):
            # ``partial`` now holds the old output.
            remove_aside(partial)
            fsync_dir(final.parent)
            return
        aside = staging_path(final)
        os.replace(final, aside)
        os.replace(partial, final)
        fsync_dir(final.parent)
        remove_path(aside)
        return
    os.replace(partial, final)
    fsync_dir(final.parent)


# ---------------------------------------------------------------------------------------------
# Output path checks
# ---------------------------------------------------------------------------------------------
def _existing_ancestor(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _can_write_in(folder: Path) -> bool:
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".vidfilter-write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def _input_store(path: PathLike) -> Path | None:
    """The filesystem object an input names: the path itself or, for ``store.zarr/array`` and
    ``file.h5/dataset`` addressing, its nearest existing ancestor. ``None`` for URLs/arrays."""
    s = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if s is None or "://" in s:
        return None
    p = Path(s).expanduser().resolve()
    anc = _existing_ancestor(p)
    if anc == anc.parent:  # nothing on disk at all
        return None
    # ``store.zarr/group/array``: the store is the outermost enclosing Zarr hierarchy.
    store = anc
    q = anc
    while q != q.parent:
        if q.is_dir() and (q.suffix.lower() == ".zarr" or any((q / m).exists() for m in _ZARR_MARKERS)):
            store = q
        elif q != anc:
            break
        q = q.parent
    return store


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_output_path(out: PathLike, inputs: Iterable[Any] = (), overwrite: bool = False) -> Path:
    """Check that ``out`` can be written, before any work starts.

    Parameters
    ----------
    out : path-like
        The output file or folder.
    inputs : iterable of path-like
        The inputs of the run; non-path entries (arrays, URLs) are ignored.
    overwrite : bool
        Whether an existing ``out`` may be replaced.

    Returns
    -------
    pathlib.Path
        ``out``, resolved.

    Raises
    ------
    OutputExistsError
        ``out`` exists and ``overwrite`` is false.
    OutputNotWritableError
        The folder that would hold ``out`` cannot be written, or ``out`` is an input, lies
        inside an input folder (image sequence, Zarr store), or contains an input that an
        overwrite would delete.
    ForeignOutputError
        ``out`` or ``out.partial`` exists but vidfilter did not write it.
    """
    out_p = Path(out).expanduser().resolve()
    for inp in inputs:
        store = _input_store(inp)
        if store is None:
            continue
        if out_p == store or out_p == Path(os.fspath(inp)).expanduser().resolve():
            raise OutputNotWritableError(f"output {out} is the input {inp} itself; choose another --out")
        if store.is_dir() and _is_within(out_p, store):
            raise OutputNotWritableError(
                f"output {out} lies inside the input store {store}; choose an --out outside it"
            )
        if _is_within(store, out_p):
            raise OutputNotWritableError(
                f"output {out} contains the input {inp}; writing there would destroy it, choose another --out"
            )
    if (out_p.exists() or out_p.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it or choose another --out")
    check_replaceable(out_p)
    check_replaceable(partial_path(out_p), why="a rerun")
    anc = _existing_ancestor(out_p.parent)
    if not anc.is_dir():
        raise OutputNotWritableError(f"cannot create {out}: {anc} is a file, not a folder; choose another --out")
    if not _can_write_in(anc):
        raise OutputNotWritableError(
            f"cannot write to {anc} (permission denied or read-only); choose another --out"
        )
    return out_p


# ---------------------------------------------------------------------------------------------
# Frame checks shared by sinks
# ---------------------------------------------------------------------------------------------
def check_frame(frame: Any, frame_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Validate one frame for a sink: exact shape; exact dtype, or float -> float storage cast."""
    arr = np.asarray(frame)
    if tuple(arr.shape) != tuple(frame_shape):
        raise UnsupportedInputError(
            f"frame of shape {tuple(arr.shape)} does not match the output's frame shape {tuple(frame_shape)}"
        )
    if arr.dtype != dtype:
        if np.issubdtype(arr.dtype, np.floating) and np.issubdtype(dtype, np.floating):
            return arr.astype(dtype)
        raise UnsupportedInputError(
            f"frame of dtype {arr.dtype} does not match the output's dtype {dtype}; "
            "convert it first (vidfilter.io.scaling.from_float)"
        )
    return arr


_W = TypeVar("_W", bound="OutputWriter")


class OutputWriter:
    """Base of every writer: as a context manager a writer commits its output (``commit()``) when
    the block ends normally and aborts it (``abort()``) when the block raises; one that already
    finished (committed or aborted) is left alone. Subclasses set ``_finished`` and define
    ``commit()`` and ``abort()``."""

    _finished: bool = False
    commit: Callable[[], Any]
    abort: Callable[[], None]

    @property
    def finished(self) -> bool:
        """Whether the output was committed or aborted."""
        return self._finished

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._finished:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class FrameSink(OutputWriter, ABC):
    """Abstract frame writer.

    Subclasses implement :meth:`_append`, :meth:`_finalise` and :meth:`_abort`. ``close()``
    finalises (the output appears complete under its final name); ``abort()`` never does.
    Both are idempotent, and the first one called wins.

    Attributes
    ----------
    frame_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)`` of every frame.
    dtype : numpy.dtype
        Stored dtype.
    """

    frame_shape: tuple[int, ...]
    dtype: np.dtype
    _frames_written: int = 0

    # -- to implement ---------------------------------------------------------------------------
    @abstractmethod
    def _append(self, frame: np.ndarray) -> None:
        """Write the next frame (already validated)."""

    @abstractmethod
    def _finalise(self) -> None:
        """Make the output complete and visible under its final name."""

    @abstractmethod
    def _abort(self) -> None:
        """Stop without finalising (release handles; keep or remove the partial as documented)."""

    # -- public ---------------------------------------------------------------------------------
    @property
    def frames_written(self) -> int:
        """Number of frames written so far (after a resume: including the earlier run's)."""
        return self._frames_written

    @property
    def closed(self) -> bool:
        return self._finished

    def append(self, frame: np.ndarray) -> None:
        """Write the next frame."""
        if self._finished:
            raise ValueError(f"{type(self).__name__} is closed; open a new sink to write more frames")
        self._append(check_frame(frame, self.frame_shape, self.dtype))
        self._frames_written += 1

    def close(self) -> None:
        """Finalise the output (atomic); safe to call twice."""
        if self._finished:
            return
        try:
            self._finalise()
        except BaseException:
            self._finished = True
            with contextlib.suppress(Exception):
                self._abort()
            raise
        self._finished = True

    commit = close

    def abort(self) -> None:
        """Stop without finalising; the final name is never created. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        self._abort()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(frame_shape={self.frame_shape}, dtype={self.dtype}, frames_written={self.frames_written})"
