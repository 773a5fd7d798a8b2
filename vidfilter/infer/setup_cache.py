"""The per-recording setup of a run, kept by the input's content: the detected polarity and the
estimator's prepared state (a median image, a temporal statistic), so that a second run on the same
file (other mask settings, another export, a resumed run, another bundle with the same temporal
channel) reads no setup frames at all.

Entries are keyed by the input file's SHA-256 (the run already computes it for its metadata), its
decoded shape and dtype, and the vidfilter version; an estimator's state is also keyed by what
``prepare`` depends on besides the frames (:meth:`BackgroundEstimator.setup_params`). So a file that
changes gets new entries, and an entry is only ever used for the bytes it was computed from.
Inputs without a file hash (a Zarr store, an image folder, an array) are not cached.

Layout: ``<root>/<input key>.polarity.json`` and ``<root>/<input key>.<params key>.npz``, where the
root is ``$VIDFILTER_SETUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/vidfilter/setup``, else
``~/.cache/vidfilter/setup`` (beside the frame index cache). Files are written atomically (a temporary
file renamed into place), checked when read (a zip CRC per array, the recorded key, shape, dtype and
finiteness) and anything doubtful counts as a miss. The folder is kept under
``$VIDFILTER_SETUP_CACHE_MB`` (default :data:`DEFAULT_LIMIT_MB`): after each write the least recently
used entries are removed. A 2048² float32 statistic is 16 MiB before compression.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LIMIT_MB", "SetupCache", "cache_root"]

#: Bump when what an entry holds, or how it is computed, changes.
VERSION = 1
#: Size the cache folder is pruned to after a write (MiB), unless ``$VIDFILTER_SETUP_CACHE_MB`` says otherwise.
DEFAULT_LIMIT_MB = 2048


def cache_root() -> Path:
    """The folder of the setup cache (see the module)."""
    env = os.environ.get("VIDFILTER_SETUP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "vidfilter" / "setup"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _limit_bytes() -> int:
    try:
        return int(float(os.environ.get("VIDFILTER_SETUP_CACHE_MB", DEFAULT_LIMIT_MB)) * 2**20)
    except ValueError:
        return DEFAULT_LIMIT_MB * 2**20


class SetupCache:
    """The cache entries of one input (:meth:`for_input` gives ``None`` where none may be kept)."""

    def __init__(self, root: Path, identity: dict[str, Any], frame_shape: tuple[int, ...]) -> None:
        self.root = root
        self.identity = identity
        self.key = _digest(identity)
        self.frame_shape = tuple(int(s) for s in frame_shape)

    @classmethod
    def for_input(cls, fingerprint: dict[str, Any], shape: tuple[int, ...], dtype: Any, color: str,
                  enabled: bool = True) -> SetupCache | None:
        """The cache of an input whose run metadata recorded ``fingerprint`` (its ``sha256`` when a
        file), read as frames of ``shape`` and ``dtype`` with the colour policy ``color``."""
        sha = fingerprint.get("sha256")
        if not enabled or not sha:
            return None
        from vidfilter import __version__

        identity = {"sha256": sha, "shape": [int(s) for s in shape], "dtype": str(np.dtype(dtype)), "color": color,
                    "vidfilter": __version__, "version": VERSION}
        return cls(cache_root(), identity, tuple(shape[1:]))

    # -- polarity ------------------------------------------------------------------------------

    def _polarity_file(self) -> Path:
        return self.root / f"{self.key}.polarity.json"

    def polarity(self) -> str | None:
        """The polarity detected earlier from this input's frames, or ``None``."""
        path = self._polarity_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("identity") != self.identity or data.get("polarity") not in ("dark", "bright", "absolute"):
            return None
        _touch(path)
        return str(data["polarity"])

    def save_polarity(self, polarity: str) -> None:
        """Keep the polarity detected from this input's frames."""
        body = json.dumps({"identity": self.identity, "polarity": str(polarity)}).encode()
        self._write(self._polarity_file(), lambda fh: fh.write(body))

    # -- the estimator's state -----------------------------------------------------------------

    def _state_file(self, params: dict[str, Any]) -> Path:
        return self.root / f"{self.key}.{_digest(params)}.npz"

    def state(self, params: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The prepared state kept for an estimator with ``params``, checked, or ``None``."""
        path = self._state_file(params)
        try:
            with np.load(path, allow_pickle=False) as npz:
                recorded = json.loads(str(npz["__key__"]))
                arrays = {k: np.array(npz[k]) for k in npz.files if k != "__key__"}  # reads (and CRC-checks) each member
        except Exception as e:  # missing, cut short, not a zip, a bad CRC: a miss, never an error
            if not isinstance(e, FileNotFoundError):
                log.info("setup cache entry %s unreadable (%s); setting up afresh", path, e)
            return None
        if recorded != {"identity": self.identity, "params": json.loads(json.dumps(params, default=str))}:
            return None
        for name, a in arrays.items():
            if a.dtype != np.float32 or a.shape[:2] != self.frame_shape[:2] or not np.isfinite(a).all():
                log.info("setup cache entry %s holds an unexpected %s; setting up afresh", path, name)
                return None
        _touch(path)
        return arrays

    def save_state(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Keep an estimator's prepared ``arrays`` (float32 images of the frame's size)."""
        key = json.dumps({"identity": self.identity, "params": params}, default=str)
        self._write(self._state_file(params), lambda fh: np.savez_compressed(fh, __key__=np.array(key), **arrays))

    # -- files ---------------------------------------------------------------------------------

    def _write(self, path: Path, write: Any) -> None:
        """Write ``path`` atomically (:func:`vidfilter.io.sink.atomic_path`, which also clears the
        temporaries of killed writers); a cache that cannot be written is not an error (the next run
        sets up again)."""
        from vidfilter.io.sink import atomic_path

        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                write(fh)
            _prune(self.root, _limit_bytes(), keep=path)
        except OSError as e:
            log.info("setup cache not written (%s): the next run sets up again", e)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(root: Path, limit: int, keep: Path) -> None:
    """Remove the least recently used entries until the folder holds at most ``limit`` bytes (``keep`` stays)."""
    entries = []
    for p in root.iterdir():
        if p.name.startswith(".") or p == keep:
            continue
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    try:
        total = keep.stat().st_size + sum(size for _, size, _ in entries)
    except OSError:
        return
    for _, size, p in sorted(entries):
        if total <= limit:
            break
        try:
            p.unlink()
            total -= size
        except OSError:
            pass
