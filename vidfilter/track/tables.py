"""Writing and reading track tables: CSV, Parquet, and a ``tracks`` table group inside an output store.

Files (``.csv``, ``.parquet``) are written under a temporary name in their folder and renamed
onto the final name (:func:`vidfilter.io.sink.atomic_path`), so a reader never sees half a table.
Parquet needs pyarrow; without it the write is refused before any work starts.

The table group ``OUT.zarr/tracks`` holds one 1-D Zarr array per column (named after it, Blosc
zstd like every array vidfilter writes) and the attributes ``vidfilter``: ``{"table": "tracks",
"version", "columns", "rows", "complete": true, "settings": {...}}``. It is written whole under a
hidden temporary name inside the store (``.tracks.PID.TOKEN.tmp``), fsynced, and then swapped
with the old group in one rename, so the group is always either the old table or the new one. The
store's marker, image groups and chunk checksums are not touched: ``vidfilter verify`` checks the
image groups the store declares, and they stay as the run wrote them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import (ConfigError, InputNotFoundError, OutputExistsError, OutputNotWritableError,
    UnreadableInputError)
from vidfilter.track.objects import COLUMNS

__all__ = ["GROUP", "TABLE_SUFFIXES", "check_table_path", "read_store_table", "read_table", "write_store_table",
    "write_table"]

#: Name of the table group inside an output store.
GROUP = "tracks"
#: File suffixes a track table can be written to.
TABLE_SUFFIXES = (".csv", ".parquet")
_VERSION = 1


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("writing Parquet needs pyarrow; install it with `pip install pyarrow`, or write a .csv") from None


def _table_suffix(p: Path, hint: str = "") -> str:
    """``.csv`` or ``.parquet`` (with pyarrow importable), from ``p``'s suffix; else a one-line error."""
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"cannot write a track table to {p}: give a .csv or .parquet path{hint}")
    if suffix == ".parquet":
        _need_pyarrow()
    return suffix


def check_table_path(path: str | os.PathLike[str], *, overwrite: bool = False, store: Any = None) -> Path:
    """Check, before any work, that a table can be written to ``path``.

    Raises
    ------
    ConfigError
        Not a ``.csv`` or ``.parquet`` path, or Parquet without pyarrow.
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    OutputNotWritableError
        ``path`` is a folder, lies inside ``store``, or its folder cannot be written.
    """
    p = Path(path).expanduser()
    _table_suffix(p, " (or --into-store)")
    if store is not None and Path(store).expanduser().resolve() in p.resolve().parents:
        raise OutputNotWritableError(f"{path} lies inside the store {store}; write the table outside it, or use --into-store")
    if p.is_dir():
        raise OutputNotWritableError(f"{path} is a folder; give a file name ending in .csv or .parquet")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it or choose another --out")
    from vidfilter.io.sink import _can_write_in, _existing_ancestor

    anc = _existing_ancestor(p.resolve().parent)
    if not _can_write_in(anc):
        raise OutputNotWritableError(f"cannot write to {anc} (not a writable folder); choose another --out")
    return p


def write_table(df: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``path`` (``.csv`` or ``.parquet``, by suffix) atomically; returns the path."""
    from vidfilter.io.sink import atomic_path

    p = Path(path).expanduser()
    suffix = _table_suffix(p)
    try:
        with atomic_path(p) as tmp:
            if suffix == ".csv":
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False, engine="pyarrow")
    except PermissionError as e:
        raise OutputNotWritableError(f"cannot write {path} ({e.strerror or e}); choose another --out") from None
    return p


def read_table(path: str | os.PathLike[str]) -> Any:
    """A track table written by :func:`write_table` (or the ``tracks`` group of a store)."""
    import pandas as pd

    p = Path(path).expanduser()
    if p.suffix.lower() == ".zarr" or (p / "zarr.json").is_file():
        return read_store_table(p)
    if not p.exists():
        raise InputNotFoundError(f"{path}: no such file; check the path")
    if p.suffix.lower() == ".parquet":
        _need_pyarrow()
        return pd.read_parquet(p, engine="pyarrow")
    return pd.read_csv(p)


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (a small table group: a few files)."""
    from vidfilter.io.sink import fsync_dir

    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(root)


def _write_group(folder: Path, df: Any, settings: dict[str, Any]) -> None:
    """The table group at ``folder`` (a new folder): one 1-D array per column, then the attributes."""
    import zarr

    from vidfilter.io.zarr_sink import _jsonable, array_options

    group = zarr.open_group(str(folder), mode="w")
    n = len(df)
    for name in COLUMNS:
        values = np.ascontiguousarray(df[name].to_numpy())
        arr = group.create_array(name, shape=(n,), chunks=(max(1, min(n, 1 << 20)),), dtype=values.dtype,
                                 dimension_names=["row"], **array_options())
        if n:
            arr[:] = values
    group.attrs["vidfilter"] = _jsonable({"table": GROUP, "version": _VERSION, "columns": list(COLUMNS), "rows": n,
                                          "complete": True, "settings": settings})


def write_store_table(df: Any, store: str | os.PathLike[str], settings: dict[str, Any] | None = None) -> Path:
    """Write ``df`` as the table group ``tracks`` of the finished output store ``store``, replacing
    an earlier one in one rename; returns the group's path."""
    from vidfilter.io.sink import _remove_dead, commit_path, remove_path, staging_path

    root = Path(store).expanduser()
    check_store(root)
    final = root / GROUP
    _remove_dead(root, f".{GROUP}.", ".tmp")  # the temporary of a killed earlier write
    tmp = staging_path(final)
    try:
        _write_group(tmp, df, settings or {})
        _fsync_tree(tmp)
        commit_path(tmp, final, overwrite=True)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_path(tmp)
        raise
    return final


def check_store(store: Path) -> dict[str, Any]:
    """The root attributes of a finished vidfilter output store; raises on anything else."""
    from vidfilter.io.ownership import read_json
    from vidfilter.io.sink import partial_path

    if not store.exists():
        if partial_path(store).exists():
            raise UnreadableInputError(f"{store}: the run is not finished (only {partial_path(store).name} exists); "
                                       "rerun the same `vidfilter run` command to complete it")
        raise InputNotFoundError(f"{store}: no such output store; check the path")
    root = read_json(store / "zarr.json")
    attrs = (root or {}).get("attributes") if isinstance(root, dict) else None
    vf = (attrs or {}).get("vidfilter")
    if not isinstance(vf, dict):
        raise UnreadableInputError(f"{store}: not an output store of `vidfilter run`; pass the OUT.zarr it wrote")
    if not vf.get("complete"):
        raise UnreadableInputError(f"{store}: the run is not finished; rerun the same `vidfilter run` command to complete it")
    return attrs  # type: ignore[return-value]


def read_store_table(store: str | os.PathLike[str]) -> Any:
    """The ``tracks`` table group of an output store, as a DataFrame."""
    import pandas as pd
    import zarr

    group_path = Path(store).expanduser() / GROUP
    if not (group_path / "zarr.json").is_file():
        raise InputNotFoundError(f"{store} holds no track table; write one with `vidfilter track {store} --into-store`")
    group = zarr.open_group(str(group_path), mode="r")
    info = dict(group.attrs).get("vidfilter") or {}
    columns = info.get("columns") or list(COLUMNS)
    df = pd.DataFrame({name: np.asarray(group[name][:]) for name in columns})
    if len(df) != int(info.get("rows", len(df))):
        raise UnreadableInputError(f"{group_path}: holds {len(df)} rows, its attributes declare {info.get('rows')}")
    return df
