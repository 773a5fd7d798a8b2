"""Every output format in one place: copy frames from any reader into any writer, and export
finished run outputs to other formats.

:data:`FORMATS` maps each format name (``zarr``, ``ffv1``, ``png``, ``tiff``, ``hdf5``,
``preview``) to its :class:`OutputFormat`: the suffixes that choose it, the writer of one frame
stream, the outputs exporting a run store makes, and that export.

Output kind follows the path: ``OUT.zarr`` (OME-Zarr, one image group ``image``), ``OUT.mkv``
(FFV1 lossless), ``OUT.mp4`` (H.264 preview, lossy), ``OUT.h5`` (HDF5 dataset ``/frames``),
``OUT.tif``/``OUT.tiff`` (a folder of TIFF files), any other name (a folder of PNG files).
Every writer finalises atomically, so a killed conversion never leaves a complete-looking output,
and a full disk (:class:`~vidfilter.errors.DiskFullError`), a file-size limit
(:class:`~vidfilter.errors.FileTooLargeError`) or a read-only target
(:class:`~vidfilter.errors.OutputNotWritableError`) ends it with one line that names the file.

:func:`export_outputs` adds other formats to a finished run store; each export is redone on its
own: exports already complete are skipped, and :func:`pending_exports` lists the missing ones.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import UnreadableInputError, UnsupportedInputError
from vidfilter.io.hdf5_sink import Hdf5Writer
from vidfilter.io.images_sink import ImageSequenceSink
from vidfilter.io.registry import open as vf_open
from vidfilter.io.sink import check_output_path, partial_path, remove_aside
from vidfilter.io.source import FrameSource
from vidfilter.io.video_sink import FFV1Sink, PreviewComposer, raise_output_error, write_preview_png
from vidfilter.io.zarr_sink import OmeZarrWriter

log = logging.getLogger(__name__)

#: The outputs exporting a run store makes (see :attr:`OutputFormat.targets`).
Targets = dict[str, Path | None]


@dataclass(frozen=True)
class OutputFormat:
    """One output format: how :func:`write_frames` writes a frame stream in it, and how
    :func:`export_outputs` exports a run store to it."""

    #: Output suffixes that choose it in :func:`write_frames` (a name with none: ``png``, a folder).
    suffixes: tuple[str, ...]
    #: ``open(out, frame_shape, dtype, n_frames, fps, overwrite) -> (sink, writer)``: the sink to
    #: append frames to and the writer to finalise after it (``None``: closing the sink is all).
    open: Callable[..., tuple[Any, Any]]
    #: ``targets(store, groups) -> {key: path}``: what exporting the run store ``store`` (image
    #: groups ``groups``: name -> dtype) makes; ``None`` for a group this format skips.
    targets: Callable[[Path, dict[str, Any]], Targets]
    #: ``export(groups, targets, job) -> paths written``; ``None`` where the store is the output.
    export: Callable[[dict[str, FrameSource], Targets, _Job], list[Path]] | None


def _zarr_sink(out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None, overwrite: bool) -> Any:
    writer = OmeZarrWriter(out, overwrite=overwrite)
    try:
        return writer.image("image", shape, dtype, fps=fps, n_frames=n), writer
    except BaseException:
        _quietly(writer.abort, out)
        raise


def _ffv1_sink(out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None, overwrite: bool) -> Any:
    return FFV1Sink(out, shape, dtype, fps=fps or 25, overwrite=overwrite), None


def _preview_sink(out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None, overwrite: bool) -> Any:
    return PreviewComposer(out, [out.stem], shape, fps or 25, overwrite=overwrite), None


def _hdf5_sink(out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None, overwrite: bool) -> Any:
    writer = Hdf5Writer(out, overwrite=overwrite)
    try:
        return writer.dataset("frames", shape, dtype, n, fps=fps), writer
    except BaseException:
        writer.abort()
        raise


def _images_sink(fmt: str, out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None,
                 overwrite: bool) -> Any:
    return ImageSequenceSink(out, fmt=fmt, frame_shape=shape, dtype=dtype, overwrite=overwrite), None


def _ffv1_targets(store: Path, groups: dict[str, Any]) -> Targets:
    """``OUT.background.mkv``, ``OUT.foreground.mkv``; a group of float frames is skipped."""
    return {name: None if _is_float(groups[name]) else Path(f"{store.with_suffix('')}.{name}.mkv")
            for name in ("background", "foreground") if name in groups}


def _sequence_targets(suffix: str, store: Path, groups: dict[str, Any]) -> Targets:
    """One folder per group: ``OUT.<group>`` (PNG) or ``OUT.<group>.tif`` (TIFF)."""
    return {name: Path(f"{store.with_suffix('')}.{name}{suffix}") for name in groups}


def _export_streams(groups: dict[str, FrameSource], targets: Targets, job: _Job) -> list[Path]:
    """Each image group's frames into its own output (FFV1, PNG, TIFF) through :func:`write_frames`."""
    written: list[Path] = []
    for name, path in targets.items():
        g = groups[name]
        if path is None:
            log.warning("FFV1 needs integer frames; %s is %s, skipped (use --foreground-dtype input)", name, g.dtype)
        elif job.todo(path):
            written.append(write_frames(g.iter(), path, frame_shape=g.frame_shape, dtype=g.dtype,
                                        n_frames=len(g), fps=g.fps, overwrite=job.overwrite))
    return written


def _open_sink(out: Path, shape: tuple[int, ...], dtype: Any, n: int, fps: float | None, overwrite: bool) -> Any:
    """A FrameSink-like object with ``append`` for ``out``, and the writer to finalise (or ``None``)."""
    return FORMATS[format_of(out)].open(out, shape, dtype, n, fps, overwrite)


def format_of(out: Path) -> str:
    """The format written to ``out``, chosen by its suffix: ``png`` (a folder) for a name with none."""
    suffix = out.suffix.lower()
    return next((name for name, f in FORMATS.items() if suffix in f.suffixes), "png")


def _quietly(fn: Any, out: Path) -> None:
    """Run the clean-up ``fn`` after a failure; its own failure (a full disk again) is only logged."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the first error is the one to report
        log.warning("cleaning up after the failure to write %s: %s", out, e)


def write_frames(frames: Iterable[np.ndarray], out: str | Path, *, frame_shape: tuple[int, ...], dtype: Any,
                 n_frames: int, fps: float | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Stream ``frames`` into the writer chosen by ``out``'s suffix; atomic on success, aborted on error.

    Raises
    ------
    DiskFullError, FileTooLargeError, OutputNotWritableError
        Writing ``out`` failed for want of space, past a file-size limit, or on a read-only or
        forbidden target; the message names ``out`` and what to do. Errors of reading ``frames``
        are raised unchanged.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    try:
        sink, writer = _open_sink(out, tuple(frame_shape), np.dtype(dtype), n_frames, fps, overwrite)
    except OSError as e:
        raise_output_error(e, out)
    try:
        for frame in tqdm(frames, total=n_frames, unit="frame", disable=not progress, desc=out.name[:30]):
            try:
                sink.append(frame)
            except OSError as e:
                raise_output_error(e, out)
        try:
            sink.close()
            if writer is not None:
                writer.finalise()
        except OSError as e:
            raise_output_error(e, out)
    except BaseException:
        _quietly(sink.abort, out)
        if writer is not None:
            _quietly(writer.abort, out)
        raise
    return out


def convert(input: str | Path | FrameSource, output: str | Path, *, color: str = "keep", overwrite: bool = False,
            progress: bool = False, start: int = 0, stop: int | None = None, step: int = 1) -> Path:
    """Copy frames ``start:stop:step`` of ``input`` into ``output`` (format from its suffix).

    Raises
    ------
    DiskFullError, FileTooLargeError, OutputNotWritableError
        ``output`` cannot be written (full disk, file-size limit, read-only or forbidden target);
        nothing complete-looking is left, and the same command redoes the conversion.
    """
    src = input if isinstance(input, FrameSource) else vf_open(input, color=color)
    try:
        out = Path(output)
        try:
            check_output_path(out, inputs=[src.path], overwrite=overwrite)
        except OSError as e:
            raise_output_error(e, out)
        s0, s1, st = slice(start, stop, step).indices(len(src))
        n = len(range(s0, s1, st))
        if n == 0:
            raise UnsupportedInputError(f"{src.path}: no frames in {start}:{stop}:{step} of {len(src)}")
        fps = src.fps / st if src.fps else None
        partial = partial_path(out)
        fresh = not (partial.exists() or partial.is_symlink())
        try:
            return write_frames(src.iter(s0, s1, st), out, frame_shape=src.frame_shape, dtype=src.dtype,
                                n_frames=n, fps=fps, overwrite=overwrite, progress=progress)
        except (UnreadableInputError, UnsupportedInputError):
            # the input fails at the same frame every time: a partial output of it helps no one
            if fresh:
                with contextlib.suppress(OSError):
                    remove_aside(partial)
            raise
    finally:
        if not isinstance(input, FrameSource):
            src.close()


def _check_formats(formats: Iterable[str]) -> list[str]:
    fmts = list(dict.fromkeys(formats))
    for fmt in fmts:
        if fmt not in FORMATS:
            raise UnsupportedInputError(f"unknown output format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    return fmts


def _is_float(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f"


def export_paths(store: str | Path, fmt: str, groups: dict[str, Any]) -> list[Path]:
    """The files or folders that export ``fmt`` of the run store ``store`` makes.

    Parameters
    ----------
    store : path-like
        The run store ``OUT.zarr``.
    fmt : str
        One of :data:`EXPORT_FORMATS`.
    groups : dict
        The store's image groups (``background``, ``foreground``, ``mask``) and their dtypes.

    Returns
    -------
    list of pathlib.Path
        ``zarr``: the store; ``ffv1``: ``OUT.background.mkv``, ``OUT.foreground.mkv`` (integer
        groups only); ``png``: folders ``OUT.<group>/``; ``tiff``: ``OUT.<group>.tif/``;
        ``hdf5``: ``OUT.h5``; ``preview``: ``OUT.preview.mp4``, ``OUT.preview.png``.
    """
    if fmt not in FORMATS:
        raise UnsupportedInputError(f"unknown output format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    return [p for p in FORMATS[fmt].targets(Path(store), groups).values() if p is not None]


def _store_groups(store: Path) -> dict[str, Any]:
    """Image groups of a run store and their dtypes, read from the Zarr metadata only."""
    import zarr

    from vidfilter.io.keyframe_store import KEYFRAMES, is_keyframe_group

    groups: dict[str, Any] = {}
    for name in ("background", "foreground", "mask"):
        if (store / name).exists():
            array = KEYFRAMES if is_keyframe_group(store / name) else "0"
            groups[name] = zarr.open_array(str(store / name / array), mode="r").dtype
    return groups


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def pending_exports(store: str | Path, formats: Iterable[str]) -> list[str]:
    """The formats among ``formats`` whose outputs for the finished run store ``store`` are missing.

    A format is pending when any of its files or folders (:func:`export_paths`) does not exist;
    ``zarr`` is pending when ``store`` itself does not. Where ``store`` does not exist (the run is
    not finished) every format is pending. Order follows ``formats``, without repeats.

    Raises
    ------
    UnsupportedInputError
        A format is unknown.
    """
    fmts = _check_formats(formats)
    store = Path(store)
    if not store.is_dir():
        return fmts
    groups = _store_groups(store)
    return [fmt for fmt in fmts if not all(_exists(p) for p in export_paths(store, fmt, groups))]


@dataclass(frozen=True)
class _Job:
    """What the exports of one :func:`export_outputs` call share."""

    src_path: str
    color: str
    overwrite: bool
    preview_frames: int | None

    def todo(self, path: Path) -> bool:
        """Whether to write ``path``: it does not exist yet, or ``overwrite`` replaces it."""
        if _exists(path) and not self.overwrite:
            log.info("%s exists; kept", path)
            return False
        return True


def export_outputs(store: str | Path, *, src_path: str, formats: Iterable[str], color: str = "gray",
                   overwrite: bool = False, preview_frames: int | None = 600) -> list[Path]:
    """Export a finished run store ``OUT.zarr`` to the other formats requested.

    ``ffv1`` -> ``OUT.background.mkv`` / ``OUT.foreground.mkv``; ``png``/``tiff`` -> folders
    ``OUT.background/``...; ``hdf5`` -> ``OUT.h5`` with ``/background``, ``/foreground`` (and
    ``/mask``); ``preview`` -> ``OUT.preview.mp4`` (input | background | foreground, at most
    ``preview_frames`` frames) and ``OUT.preview.png`` (the middle frame).

    Each file or folder is written as ``PATH.partial`` and renamed when complete. One that exists
    already is kept (and not written again) unless ``overwrite``, so calling this again after a
    failure finishes only what is missing. The first failure stops the exports: the outputs
    finished before it stay, the failed one leaves nothing complete-looking.

    Returns
    -------
    list of pathlib.Path
        The outputs written by this call.

    Raises
    ------
    DiskFullError, FileTooLargeError, OutputNotWritableError
        An export cannot be written; the message names its file.
    """
    fmts = [f for f in _check_formats(formats) if FORMATS[f].export is not None]
    store = Path(store)
    if not fmts:
        return []
    groups = {name: vf_open(f"{store}/{name}", color=color) for name in ("background", "foreground", "mask")
              if (store / name).exists()}
    dtypes = {name: g.dtype for name, g in groups.items()}
    job = _Job(src_path, color, overwrite, preview_frames)
    written: list[Path] = []
    try:
        for fmt in fmts:
            f = FORMATS[fmt]
            written.extend(f.export(groups, f.targets(store, dtypes), job))
    finally:
        for g in groups.values():
            g.close()
    return written


def _export_hdf5(groups: dict[str, FrameSource], targets: Targets, job: _Job) -> list[Path]:
    """Write ``groups`` as datasets of one HDF5 file (``OUT.h5.partial`` until complete)."""
    (out,) = targets.values()
    if out is None or not job.todo(out):
        return []
    with Hdf5Writer(out, overwrite=job.overwrite) as writer:
        for name, g in groups.items():
            sink = writer.dataset(name, g.frame_shape, g.dtype, len(g), fps=g.fps)
            for frame in g.iter():
                sink.append(frame)
            sink.close()
    return [out]


def _export_preview(groups: dict[str, FrameSource], targets: Targets, job: _Job) -> list[Path]:
    """Write the preview ``OUT.preview.mp4`` and ``OUT.preview.png`` (each unless it is kept);
    returns those written."""
    mp4, png = (p if p is not None and job.todo(p) else None for p in targets.values())
    if mp4 is None and png is None:
        return []
    bg, fg = groups["background"], groups["foreground"]
    n = len(bg)
    stop = n if job.preview_frames is None else min(n, job.preview_frames)
    written: list[Path] = []
    with vf_open(job.src_path, color=job.color) as src:
        if mp4 is not None:
            with PreviewComposer(mp4, ["input", "background", "foreground"], src.frame_shape, src.fps or 25,
                                 overwrite=job.overwrite) as comp:
                for f, b, g in zip(src.iter(0, stop), bg.iter(0, stop), fg.iter(0, stop)):
                    comp.append(f, b, g)
            written.append(mp4)
        if png is not None:
            mid = n // 2
            written.append(write_preview_png(png, {"input": src[mid], "background": bg[mid], "foreground": fg[mid]},
                                             overwrite=job.overwrite))
    return written


#: Every output format, by the name ``vidfilter run --format`` takes.
FORMATS: dict[str, OutputFormat] = {
    "zarr": OutputFormat((".zarr",), _zarr_sink, lambda store, groups: {"store": store}, None),
    "ffv1": OutputFormat((".mkv",), _ffv1_sink, _ffv1_targets, _export_streams),
    "png": OutputFormat((), partial(_images_sink, "png"), partial(_sequence_targets, ""), _export_streams),
    "tiff": OutputFormat(
        (".tif", ".tiff"), partial(_images_sink, "tiff"), partial(_sequence_targets, ".tif"), _export_streams
    ),
    "hdf5": OutputFormat(
        (".h5", ".hdf5"), _hdf5_sink, lambda store, groups: {"h5": Path(f"{store.with_suffix('')}.h5")}, _export_hdf5
    ),
    "preview": OutputFormat(
        (".mp4",), _preview_sink,
        lambda store, groups: {k: Path(f"{store.with_suffix('')}.preview.{k}") for k in ("mp4", "png")},
        _export_preview,
    ),
}
#: Output formats of ``vidfilter run --format``.
EXPORT_FORMATS = tuple(FORMATS)
