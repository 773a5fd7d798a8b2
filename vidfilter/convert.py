"""Copy frames from any reader into any writer, and export finished run outputs to other formats.

Output kind follows the path: ``OUT.zarr`` (OME-Zarr, one image group ``image``), ``OUT.mkv``
(FFV1 lossless), ``OUT.mp4`` (H.264 preview, lossy), ``OUT.h5`` (HDF5 dataset ``/frames``),
``OUT.tif``/``OUT.tiff`` (a folder of TIFF files), any other name (a folder of PNG files).
Every writer finalises atomically, so a killed conversion never leaves a complete-looking output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.errors import UnsupportedInputError
from vidfilter.io.source import FrameSource

log = logging.getLogger(__name__)


def _open_sink(out: Path, frame_shape: tuple[int, ...], dtype: np.dtype, n: int, fps: float | None, overwrite: bool) -> Any:
    """A context-managed FrameSink-like object with ``append`` for ``out``; returns (sink, closer)."""
    suffix = out.suffix.lower()
    if suffix == ".zarr":
        from vidfilter.io.zarr_sink import OmeZarrWriter

        writer = OmeZarrWriter(out, overwrite=overwrite)
        return writer.image("image", frame_shape, dtype, fps=fps, n_frames=n), writer
    if suffix == ".mkv":
        from vidfilter.io.video_sink import FFV1Sink

        return FFV1Sink(out, frame_shape, dtype, fps=fps or 25, overwrite=overwrite), None
    if suffix == ".mp4":
        from vidfilter.io.video_sink import PreviewComposer

        return PreviewComposer(out, [out.stem], frame_shape, fps or 25, overwrite=overwrite), None
    if suffix in (".h5", ".hdf5"):
        from vidfilter.io.hdf5_sink import Hdf5Writer

        writer = Hdf5Writer(out, overwrite=overwrite)
        return writer.dataset("frames", frame_shape, dtype, n, fps=fps), writer
    fmt = "tiff" if suffix in (".tif", ".tiff") else "png"
    from vidfilter.io.images_sink import ImageSequenceSink

    return ImageSequenceSink(out, fmt=fmt, frame_shape=frame_shape, dtype=dtype, overwrite=overwrite), None


def write_frames(frames: Iterable[np.ndarray], out: str | Path, *, frame_shape: tuple[int, ...], dtype: Any,
                 n_frames: int, fps: float | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Stream ``frames`` into the writer chosen by ``out``'s suffix; atomic on success, aborted on error."""
    from tqdm.auto import tqdm

    out = Path(out)
    sink, writer = _open_sink(out, tuple(frame_shape), np.dtype(dtype), n_frames, fps, overwrite)
    try:
        for frame in tqdm(frames, total=n_frames, unit="frame", disable=not progress, desc=out.name[:30]):
            sink.append(frame)
        sink.close()
        if writer is not None:
            writer.finalise()
    except BaseException:
        sink.abort()
        if writer is not None:
            writer.abort()
        raise
    return out


def convert(input: str | Path | FrameSource, output: str | Path, *, color: str = "keep", overwrite: bool = False,
            progress: bool = False, start: int = 0, stop: int | None = None, step: int = 1) -> Path:
    """Copy frames ``start:stop:step`` of ``input`` into ``output`` (format from its suffix)."""
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.sink import check_output_path

    src = input if isinstance(input, FrameSource) else vf_open(input, color=color)
    try:
        out = Path(output)
        check_output_path(out, inputs=[src.path], overwrite=overwrite)
        s0, s1, st = slice(start, stop, step).indices(len(src))
        n = len(range(s0, s1, st))
        if n == 0:
            raise UnsupportedInputError(f"{src.path}: no frames in {start}:{stop}:{step} of {len(src)}")
        fps = src.fps / st if src.fps else None
        return write_frames(src.iter(s0, s1, st), out, frame_shape=src.frame_shape, dtype=src.dtype,
                            n_frames=n, fps=fps, overwrite=overwrite, progress=progress)
    finally:
        if not isinstance(input, FrameSource):
            src.close()


def export_outputs(store: str | Path, *, src_path: str, formats: Iterable[str], color: str = "gray",
                   overwrite: bool = False, preview_frames: int | None = 600) -> list[Path]:
    """Export a finished run store ``OUT.zarr`` to the other formats requested.

    ``ffv1`` -> ``OUT.background.mkv`` / ``OUT.foreground.mkv``; ``png``/``tiff`` -> folders
    ``OUT.background/``...; ``hdf5`` -> ``OUT.h5`` with ``/background``, ``/foreground`` (and
    ``/mask``); ``preview`` -> ``OUT.preview.mp4`` (input | background | foreground, at most
    ``preview_frames`` frames) and ``OUT.preview.png`` (the middle frame).
    """
    from vidfilter.io.registry import open as vf_open

    store = Path(store)
    base = store.with_suffix("")
    groups = {name: vf_open(f"{store}/{name}", color=color) for name in ("background", "foreground", "mask")
              if (store / name).exists()}
    written: list[Path] = []
    try:
        for fmt in formats:
            if fmt == "ffv1":
                for name in ("background", "foreground"):
                    g = groups[name]
                    if g.dtype == np.float16 or g.dtype == np.float32:
                        log.warning("FFV1 needs integer frames; %s is %s, skipped (use --foreground-dtype input)", name, g.dtype)
                        continue
                    written.append(write_frames(g.iter(), f"{base}.{name}.mkv", frame_shape=g.frame_shape, dtype=g.dtype,
                                                n_frames=len(g), fps=g.fps, overwrite=overwrite))
            elif fmt in ("png", "tiff"):
                suffix = ".tif" if fmt == "tiff" else ""
                for name, g in groups.items():
                    written.append(write_frames(g.iter(), f"{base}.{name}{suffix}", frame_shape=g.frame_shape,
                                                dtype=g.dtype, n_frames=len(g), fps=g.fps, overwrite=overwrite))
            elif fmt == "hdf5":
                written.append(_export_hdf5(groups, Path(f"{base}.h5"), overwrite))
            elif fmt == "preview":
                written.extend(_export_preview(groups, src_path, base, color, overwrite, preview_frames))
            elif fmt != "zarr":
                raise UnsupportedInputError(f"unknown output format {fmt!r}; use zarr, ffv1, png, tiff, hdf5 or preview")
    finally:
        for g in groups.values():
            g.close()
    return written


def _export_hdf5(groups: dict[str, FrameSource], out: Path, overwrite: bool) -> Path:
    from vidfilter.io.hdf5_sink import Hdf5Writer

    writer = Hdf5Writer(out, overwrite=overwrite)
    try:
        for name, g in groups.items():
            sink = writer.dataset(name, g.frame_shape, g.dtype, len(g), fps=g.fps)
            for frame in g.iter():
                sink.append(frame)
            sink.close()
        writer.finalise()
    except BaseException:
        writer.abort()
        raise
    return out


def _export_preview(groups: dict[str, FrameSource], src_path: str, base: Path, color: str, overwrite: bool,
                    max_frames: int | None) -> list[Path]:
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.video_sink import PreviewComposer, write_preview_png

    bg, fg = groups["background"], groups["foreground"]
    n = len(bg)
    stop = n if max_frames is None else min(n, max_frames)
    with vf_open(src_path, color=color) as src:
        mid = n // 2
        png = write_preview_png(f"{base}.preview.png", {"input": src[mid], "background": bg[mid], "foreground": fg[mid]})
        mp4 = Path(f"{base}.preview.mp4")
        if mp4.exists() and overwrite:
            mp4.unlink()
        comp = PreviewComposer(mp4, ["input", "background", "foreground"], src.frame_shape, src.fps or 25, overwrite=overwrite)
        try:
            for f, b, g in zip(src.iter(0, stop), bg.iter(0, stop), fg.iter(0, stop)):
                comp.append(f, b, g)
            comp.close()
        except BaseException:
            comp.abort()
            raise
    return [mp4, Path(png)]
