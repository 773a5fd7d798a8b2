"""HDF5 datasets: :class:`Hdf5FrameSource` (``file.h5/group/dataset``), via the optional ``h5py``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.array_source import check_layout, policy_shape, resolve_dtype, source_frame
from vidfilter.io.source import FrameSource, check_color

#: Suffixes of HDF5 files.
HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")


def split_hdf5_path(spec: str) -> tuple[Path, str | None]:
    """``"a/b/file.h5/grp/ds"`` -> ``(Path("a/b/file.h5"), "grp/ds")``; the file part must exist."""
    p = Path(spec)
    for cand in [p, *p.parents]:
        if cand.suffix.lower() in HDF5_SUFFIXES and cand.is_file():
            rest = p.relative_to(cand).as_posix()
            return cand, (None if rest in ("", ".") else rest)
    raise InputNotFoundError(f"{spec}: no such file or folder; check the path")


def _open_failure(file: Path, exc: OSError) -> str:
    """Why h5py could not open ``file``, in a few words."""
    msg = " ".join(str(exc).split())
    try:
        size = file.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return "the file is empty: 0 bytes"
    if "truncated file" in msg:
        return f"the file is cut short: {size} bytes"
    if "file signature not found" in msg:
        return "no HDF5 signature: not an HDF5 file"
    return msg[:100]


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise UnsupportedInputError(
            "reading HDF5 needs h5py; install it with `pip install vidfilter[hdf5]` (or `pip install h5py`)"
        ) from None
    return h5py


class Hdf5FrameSource(FrameSource):
    """One HDF5 dataset ``(T, H, W)`` or ``(T, H, W, C)``, read one frame at a time.

    Parameters
    ----------
    path : str
        ``file.h5/path/to/dataset``; with just ``file.h5`` the file must hold exactly one dataset.
    dataset : str, optional
        Dataset path inside the file, instead of appending it to ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], color: str = "gray", *, dataset: str | None = None, fps: float | None = None
    ) -> None:
        h5py = _h5py()
        self.color = check_color(color)
        spec = os.path.expanduser(os.fspath(path))
        file, inner = split_hdf5_path(spec)
        inner = dataset or inner
        self._file: Any = None
        try:
            self._file = h5py.File(file, "r")
        except OSError as exc:
            raise UnreadableInputError(f"{file}: not a readable HDF5 file ({_open_failure(file, exc)}); check the file "
                                       "is complete (re-copy it from its source) and is HDF5") from None
        try:
            if inner is None:
                found: list[str] = []
                self._file.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
                if len(found) != 1:
                    raise UnsupportedInputError(
                        f"{file}: holds {len(found)} datasets ({', '.join(found[:8]) or 'none'}); "
                        f"name one, e.g. {file}/{found[0] if found else 'dataset'}"
                    )
                inner = found[0]
            if inner not in self._file or not isinstance(self._file[inner], h5py.Dataset):
                raise InputNotFoundError(f"{file}: has no dataset {inner!r}; check the path inside the file")
            self._ds = self._file[inner]
            self.path = f"{file}/{inner.strip('/')}"
            shape = tuple(int(s) for s in self._ds.shape)
            check_layout(shape, self.path)
            self._native_dtype = np.dtype(self._ds.dtype)
            self.dtype = resolve_dtype(self._native_dtype, self.path)
            self.shape = policy_shape(shape, self.color)
        except BaseException:
            self.close()
            raise
        rate = fps or self._ds.attrs.get("fps")
        self.fps = float(rate) if rate else None
        self._args = (os.fspath(path), color, dataset, fps)

    def _read(self, t: int) -> np.ndarray:
        try:
            frame = self._ds[t]
        except (OSError, ValueError, RuntimeError) as exc:  # h5py: a failed filter (checksum), a short read
            raise DamagedInputError.unreadable_frame(
                self.path, t, " ".join(str(exc).split())[:100], "the file is damaged, re-copy it from its source"
            ) from None
        return source_frame(frame, self.dtype)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(chunks=list(self._ds.chunks) if self._ds.chunks else None, compression=self._ds.compression,
                 stored_dtype=str(self._native_dtype))
        return d

    def close(self) -> None:
        f, self._file = getattr(self, "_file", None), None
        if f is not None:
            try:
                f.close()
            except Exception:
                pass

    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        path, color, dataset, fps = state["args"]
        self.__init__(path, color, dataset=dataset, fps=fps)  # type: ignore[misc]
