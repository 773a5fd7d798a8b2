"""HDF5 output via h5py (optional extra ``vidfilter[hdf5]``).

One file can hold several datasets (``/background``, ``/foreground``): :class:`Hdf5Writer` hands
out one :class:`Hdf5Sink` per dataset, like :class:`~vidfilter.io.zarr_sink.OmeZarrWriter`.
Datasets are ``(T, H, W[, C])``, one frame per chunk, gzip-compressed with byte shuffle. The
file is written as ``PATH.partial`` and renamed by :meth:`Hdf5Writer.finalise`; HDF5 files are not
safe to reopen after a crash, so an aborted write deletes its partial file (no resume).

The root attribute ``vidfilter`` (JSON, ``{"format_version": 1, "version": ...}``) is written and
flushed when the file is created, so even the partial file of a killed run shows who wrote it
(:mod:`vidfilter.io.ownership`). HDF5 writes through a
:class:`~vidfilter.io.video_sink.GuardedFile`: HDF5 never sees a failed write (after one it
crashes the interpreter when the file is closed), and a full disk, a file-size limit or a
read-only file system ends the write with one :class:`~vidfilter.errors.VidfilterError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import OutputExistsError, UnsupportedInputError
from vidfilter.io.sink import FrameSink, OutputWriter, commit_path, discard_partial, partial_path
from vidfilter.io.video_sink import GuardedFile, raise_output_error

__all__ = ["Hdf5Sink", "Hdf5Writer"]

logger = logging.getLogger(__name__)

#: gzip level of every dataset.
GZIP_LEVEL = 4
#: Version of the layout described in the root attribute ``vidfilter``.
FORMAT_VERSION = 1


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise UnsupportedInputError(
            "writing HDF5 needs h5py; install the extra with pip install 'vidfilter[hdf5]'"
        ) from e
    return h5py


def _attr_value(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool, np.generic)):
        return v
    return json.dumps(v, default=str)


class Hdf5Writer(OutputWriter):
    """One HDF5 file holding several frame datasets.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    overwrite : bool
        Replace an existing ``path`` at :meth:`finalise`.
    attrs : dict, optional
        Run metadata stored as root attributes (non-scalar values as JSON strings).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, attrs: Mapping[str, Any] | None = None,
    ) -> None:
        h5py = _h5py()
        self.path = Path(path).expanduser().absolute()
        self.partial = partial_path(self.path)
        self.overwrite = overwrite
        self.attrs = dict(attrs or {})
        self.datasets: dict[str, Hdf5Sink] = {}
        self._finished = False
        self._aborted = False
        self.file: Any = None
        self._io: GuardedFile | None = None
        if (self.path.exists() or self.path.is_symlink()) and not overwrite:
            raise OutputExistsError(f"{self.path} exists; pass --overwrite to replace it or choose another --out")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            discard_partial(self.partial)
            self._io = GuardedFile(self.partial, name=self.path)
        except OSError as e:
            raise_output_error(e, self.path)
        try:
            from vidfilter import __version__

            self.file = h5py.File(self._io, "w")
            self.file.attrs["vidfilter"] = json.dumps({"format_version": FORMAT_VERSION, "version": __version__})
            self.file.attrs["vidfilter_complete"] = False
            self.file.flush()
            self._io.check()
        except BaseException as e:
            self.abort()
            raise_output_error(e, self.path)

    def check(self) -> None:
        """Raise the first failed write of this file (full disk, file-size limit, read-only)."""
        if self._io is not None:
            self._io.check()

    def dataset(
        self, name: str, frame_shape: tuple[int, ...], dtype: Any, n_frames: int, fps: float | None = None,
    ) -> Hdf5Sink:
        """Create dataset ``name`` of ``n_frames`` frames and return its sink."""
        if self._finished:
            raise ValueError("this Hdf5Writer is finalised or aborted; open a new one")
        name = name.strip("/")
        if name in self.datasets:
            raise ValueError(f"dataset {name!r} is already open in this writer")
        sink = Hdf5Sink.__new__(Hdf5Sink)
        sink._init_dataset(self, name, frame_shape, dtype, n_frames, fps)
        self.datasets[name] = sink
        return sink

    def finalise(self, *, allow_short: bool = False) -> Path:
        """Close every dataset, mark the file complete and rename it onto ``path``."""
        if self._finished:
            raise ValueError("this Hdf5Writer is already finalised or aborted")
        try:
            for sink in self.datasets.values():
                if not sink.closed:
                    sink.close()
            for name, sink in self.datasets.items():
                if sink.frames_written < sink.n_frames:
                    if not allow_short:
                        raise RuntimeError(
                            f"cannot finalise {self.path}: dataset {name!r} holds {sink.frames_written} of "
                            f"{sink.n_frames} frames; write them all or pass allow_short=True"
                        )
                    sink.ds.resize(sink.frames_written, axis=0)
            for k, v in self.attrs.items():
                self.file.attrs[k] = _attr_value(v)
            self.file.attrs["vidfilter_complete"] = True
            self.file.flush()
            self.check()
            self.file.close()
            assert self._io is not None
            self._io.sync()
            self._io.close()
            self.check()
            self._finished = True
            commit_path(self.partial, self.path, overwrite=self.overwrite)
        except BaseException as e:
            self.abort()
            raise_output_error(e, self.path)
        return self.path

    commit = finalise

    def abort(self) -> None:
        """Close and delete the partial file; never raises."""
        if self._aborted:
            return
        self._aborted = True
        self._finished = True
        if self.file is not None:
            with contextlib.suppress(Exception):
                if self.file.id.valid:
                    self.file.close()
        if self._io is not None:
            self._io.discard()
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)


class Hdf5Sink(FrameSink):
    """Frames of one HDF5 dataset.

    ``Hdf5Sink(path, dataset, frame_shape, dtype, n_frames)`` writes a file holding one dataset
    (its ``close()`` finalises the file); :meth:`Hdf5Writer.dataset` returns sinks sharing one file
    (their ``close()`` only ends the dataset; the writer's ``finalise()`` makes the file).
    """

    def __init__(
        self, path: str | os.PathLike[str], dataset: str, frame_shape: tuple[int, ...], dtype: Any, n_frames: int,
        *, fps: float | None = None, overwrite: bool = False, attrs: Mapping[str, Any] | None = None,
    ) -> None:
        writer = Hdf5Writer(path, overwrite=overwrite, attrs=attrs)
        try:
            self._init_dataset(writer, dataset.strip("/"), frame_shape, dtype, n_frames, fps)
        except BaseException:
            writer.abort()
            raise
        writer.datasets[self.name] = self
        self._owns_writer = True

    def _init_dataset(
        self, writer: Hdf5Writer, name: str, frame_shape: tuple[int, ...], dtype: Any, n_frames: int,
        fps: float | None,
    ) -> None:
        self.writer = writer
        self.name = name
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        self.n_frames = int(n_frames)
        self._owns_writer = False
        self._frames_written = 0
        self._finished = False
        if len(self.frame_shape) not in (2, 3):
            raise UnsupportedInputError(f"frame_shape must be (H, W) or (H, W, C), got {self.frame_shape}")
        self.ds = writer.file.create_dataset(
            name,
            shape=(self.n_frames,) + self.frame_shape,
            maxshape=(None,) + self.frame_shape,
            chunks=(1,) + self.frame_shape,
            dtype=self.dtype,
            compression="gzip",
            compression_opts=GZIP_LEVEL,
            shuffle=self.dtype.itemsize > 1,
        )
        self.ds.attrs["axes"] = "tyxc" if len(self.frame_shape) == 3 else "tyx"
        if fps:
            self.ds.attrs["fps"] = float(fps)
        self.ds.attrs["frames_written"] = 0
        writer.check()

    def _append(self, frame: np.ndarray) -> None:
        if self._frames_written >= self.n_frames:
            raise ValueError(f"dataset {self.name!r} already holds all {self.n_frames} frames declared by n_frames")
        self.ds[self._frames_written] = frame
        self.writer.check()

    def _finalise(self) -> None:
        self.ds.attrs["frames_written"] = self._frames_written
        self.writer.check()
        if self._owns_writer:
            self._finished = True
            self.writer.finalise()

    def _abort(self) -> None:
        if self._owns_writer:
            self.writer.abort()
