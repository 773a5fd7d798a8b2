"""Image-sequence output: one PNG or TIFF file per frame (``000000.png``, ``000001.png`` ...).

Frames go to ``FOLDER.partial/``, each file written atomically (temporary name, fsync, rename),
and the folder is renamed onto ``FOLDER`` by ``close()``. Because every file is complete or
absent, an interrupted sequence can be resumed: ``resume=True`` continues after the last
consecutive frame file present in ``FOLDER.partial``.

The folder holds a marker file ``.vidfilter.json`` (``{"written_by": "vidfilter", "kind":
"png"}``), written when the partial folder is created, so :mod:`vidfilter.io.ownership` knows it
as vidfilter's; image readers skip it (they list image files only). A full disk, a file-size
limit or a read-only file system ends the write with one
:class:`~vidfilter.errors.VidfilterError` (:func:`~vidfilter.io.video_sink.output_error`).

PNG holds uint8/uint16 grey, RGB or RGBA frames; TIFF (via tifffile) also holds float frames.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import OutputExistsError, UnsupportedInputError
from vidfilter.io.sink import (FrameSink, atomic_write_bytes, commit_path, discard_partial, fsync_dir,
    make_partial_folder, mark_folder, partial_path)
from vidfilter.io.video_sink import raise_output_error

__all__ = ["ImageSequenceSink"]

logger = logging.getLogger(__name__)

_EXTENSIONS = {"png": ".png", "tiff": ".tif", "tif": ".tif"}


class ImageSequenceSink(FrameSink):
    """Write frames as numbered image files in a folder.

    Parameters
    ----------
    folder : path-like
        Output folder; written as ``folder.partial`` and renamed by :meth:`close`.
    fmt : {"png", "tiff"}
        File format.
    digits : int
        Zero padding of the frame number in file names.
    frame_shape, dtype : optional
        Expected frame shape and dtype; fixed by the first frame when not given.
    overwrite : bool
        Replace an existing ``folder`` at close.
    resume : bool
        Continue an existing ``folder.partial`` after its last consecutive frame.

    Notes
    -----
    ``abort()`` keeps ``folder.partial`` so the sequence can be resumed.
    """

    def __init__(
        self, folder: str | os.PathLike[str], fmt: str = "png", digits: int = 6, *,
        frame_shape: tuple[int, ...] | None = None, dtype: Any = None, overwrite: bool = False, resume: bool = False,
    ) -> None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in _EXTENSIONS:
            raise UnsupportedInputError(f"image format {fmt!r} is not supported; use png or tiff")
        self.fmt = "png" if fmt == "png" else "tiff"
        self.ext = _EXTENSIONS[fmt]
        self.digits = int(digits)
        self.folder = Path(folder).expanduser().absolute()
        self.partial = partial_path(self.folder)
        self.overwrite = overwrite
        self.frame_shape = tuple(int(s) for s in frame_shape) if frame_shape is not None else ()
        self.dtype = np.dtype(dtype) if dtype is not None else np.dtype("V0")
        self._shape_fixed = frame_shape is not None
        self._dtype_fixed = dtype is not None
        if self._dtype_fixed:
            self._check_dtype(self.dtype, self.frame_shape)
        if (self.folder.exists() or self.folder.is_symlink()) and not overwrite:
            raise OutputExistsError(f"{self.folder} exists; pass --overwrite to replace it or choose another --out")
        self._frames_written = 0
        self._finished = False
        try:
            if self.partial.exists() and resume:
                while (self.partial / self.name(self._frames_written)).exists():
                    self._frames_written += 1
                logger.info("resuming %s after %d frames", self.partial, self._frames_written)
            else:
                discard_partial(self.partial)
            if self.partial.is_dir():
                mark_folder(self.partial, self.fmt)
            else:
                make_partial_folder(self.partial, self.fmt)
        except OSError as e:
            raise_output_error(e, self.folder)

    def name(self, t: int) -> str:
        """File name of frame ``t``."""
        return f"{t:0{self.digits}d}{self.ext}"

    def _check_dtype(self, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        if self.fmt == "png" and dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise UnsupportedInputError(f"PNG holds uint8 or uint16 frames, not {dtype}; use fmt='tiff'")
        if self.fmt == "png" and len(shape) == 3 and shape[2] not in (1, 3, 4):
            raise UnsupportedInputError(f"PNG holds 1, 3 or 4 channels, not {shape[2]}; use fmt='tiff'")

    def append(self, frame: np.ndarray) -> None:
        """Write the next frame as one file."""
        arr = np.asarray(frame)
        if not self._shape_fixed:
            self.frame_shape, self._shape_fixed = tuple(arr.shape), True
        if not self._dtype_fixed:
            self._check_dtype(arr.dtype, tuple(arr.shape))
            self.dtype, self._dtype_fixed = arr.dtype, True
        super().append(arr)

    def _encode(self, frame: np.ndarray) -> bytes:
        if self.fmt == "png":
            import cv2

            img = frame
            if img.ndim == 3 and img.shape[2] == 3:
                img = img[..., ::-1]  # RGB -> BGR for OpenCV
            elif img.ndim == 3 and img.shape[2] == 4:
                img = img[..., [2, 1, 0, 3]]
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
            if not ok:  # pragma: no cover - cv2 failure
                raise UnsupportedInputError(f"could not encode a {frame.dtype} {frame.shape} frame as PNG")
            return buf.tobytes()
        import tifffile

        bio = io.BytesIO()
        photometric = "rgb" if frame.ndim == 3 and frame.shape[2] in (3, 4) else "minisblack"
        tifffile.imwrite(bio, frame, photometric=photometric, compression="zlib")
        return bio.getvalue()

    def _append(self, frame: np.ndarray) -> None:
        data = self._encode(frame)
        try:
            atomic_write_bytes(self.partial / self.name(self._frames_written), data)
        except OSError as e:
            raise_output_error(e, self.folder)

    def _finalise(self) -> None:
        try:
            fsync_dir(self.partial)
            commit_path(self.partial, self.folder, overwrite=self.overwrite)
        except OSError as e:
            raise_output_error(e, self.folder)

    def _abort(self) -> None:
        """Keep ``folder.partial`` (every file in it is complete) for ``resume=True``."""
