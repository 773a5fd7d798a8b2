"""Huge single arrays (whole-slide images, movies with huge frames) block by block, with bounded memory.

``process_array(src, out, model, config, block=4096)`` cuts each frame of a 2-D ``(H, W)`` or 3-D
``(T, H, W)`` array into output blocks, reads every block with a halo of context, runs the
:class:`~vidfilter.infer.engine.TiledEngine` on that region, crops the halo off and writes the
block into an output Zarr store. Memory is one region (``(block + 2*halo)**2`` floats) plus the
engine's accumulators, whatever the array size.

Why the output equals whole-image inference
-------------------------------------------
The U-Net pads its input (reflect, bottom/right only) to a multiple of ``model.multiple`` and is
translation-equivariant only in steps of ``model.multiple``. So:

* block origins and the halo are multiples of ``model.multiple`` (``block`` is rounded down,
  ``halo`` up), hence every region starts on the whole image's pooling grid;
* interior halo sides are real pixels of the image, never padding: a pixel of the block lies at
  least ``halo >= model.margin`` pixels from every cut edge of its region, so its receptive field
  is the same as in the whole image;
* a region touching the image's bottom/right border ends exactly at that border, and the engine
  pads it there exactly as it pads the whole image (at the top/left border the halo is clamped to
  0 and nothing is padded, as for the whole image).

The result equals ``TiledEngine(...)(whole image)`` to float tolerance (tested at 1e-4).

Output layout (``OUT.zarr``, Zarr v3 + NGFF 0.5 metadata, readable with ``ome-zarr``)::

    OUT.zarr/                  root; attrs: vidfilter{complete, kind: "blocks", ...}, run metadata
    OUT.zarr/background/       NGFF image group; axes (t,) y, x
    OUT.zarr/background/0      array, same shape as the input, chunks = one block ((1,) B, B)

Each output chunk is written by exactly one block (so blocks can be written by independent
processes, see :mod:`vidfilter.distributed.arrays`). Work goes to ``OUT.zarr.partial``; finished
blocks are recorded in ``OUT.zarr.partial/.vidfilter_blocks.json`` (a bitmap, rewritten atomically
every few seconds), so a killed run restarted with the same call redoes only unrecorded blocks;
the store is renamed to ``OUT.zarr`` when every block is done (:class:`BlockStore`, a
:class:`~vidfilter.io.zarr_sink.ZarrStore`).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.errors import ConfigError, OutputExistsError, UnsupportedInputError
from vidfilter.infer.result import RunResult
from vidfilter.io.ownership import check_replaceable
from vidfilter.io.sink import partial_path
from vidfilter.io.zarr_sink import ZarrStore, _jsonable, create_image

__all__ = ["BlockLayout", "BlockStore", "compute_block", "open_array", "process_array"]

log = logging.getLogger(__name__)

PROGRESS_NAME = ".vidfilter_blocks.json"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class BlockLayout:
    """Output blocks of an array ``(H, W)`` (``frames is None``) or ``(T, H, W)``.

    ``block``: block side (a multiple of ``multiple``); ``halo``: context read on each interior
    side (a multiple of ``multiple``, ``>= model.margin``). Blocks are numbered
    ``t * (n_y * n_x) + iy * n_x + ix``.
    """

    height: int
    width: int
    frames: int | None
    block: int
    halo: int
    multiple: int

    @classmethod
    def for_model(cls, shape: tuple[int, ...], model: Any, block: int, halo: int | None = None, overlap: int | None = None) -> BlockLayout:
        """Layout for ``shape`` and ``model`` (reads ``model.multiple`` and ``model.margin``)."""
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise UnsupportedInputError(f"process_array takes a 2-D (H, W) or 3-D (T, H, W) array, got shape {tuple(shape)}")
        mult = int(getattr(model, "multiple", 1) or 1)
        margin = max(int(getattr(model, "margin", 0) or 0), int(overlap or 0))
        need = margin if halo is None else max(int(halo), margin)
        if halo is not None and halo < margin:
            log.warning("halo %d is smaller than the model's margin %d; using %d", halo, margin, margin)
        halo_a = -(-need // mult) * mult
        blk = int(block) // mult * mult
        if blk < mult:
            raise ConfigError(f"block {block} is smaller than the model's alignment {mult}; use a block of at least {mult} (e.g. 4096)")
        h, w = int(shape[-2]), int(shape[-1])
        return cls(h, w, int(shape[0]) if len(shape) == 3 else None, blk, halo_a, mult)

    @property
    def n_y(self) -> int:
        return -(-self.height // self.block)

    @property
    def n_x(self) -> int:
        return -(-self.width // self.block)

    @property
    def n_t(self) -> int:
        return 1 if self.frames is None else self.frames

    def __len__(self) -> int:
        return self.n_t * self.n_y * self.n_x

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.height, self.width) if self.frames is None else (self.frames, self.height, self.width)

    @property
    def chunks(self) -> tuple[int, ...]:
        c = (min(self.block, self.height), min(self.block, self.width))
        return c if self.frames is None else (1, *c)

    def coords(self, index: int) -> tuple[int, int, int]:
        """``index -> (t, iy, ix)``."""
        t, rest = divmod(int(index), self.n_y * self.n_x)
        iy, ix = divmod(rest, self.n_x)
        return t, iy, ix

    def index(self, t: int, iy: int, ix: int) -> int:
        return (t * self.n_y + iy) * self.n_x + ix

    def block_slices(self, iy: int, ix: int) -> tuple[slice, slice]:
        """The block's output window ``[y0:y1, x0:x1]``."""
        y0, x0 = iy * self.block, ix * self.block
        return slice(y0, min(y0 + self.block, self.height)), slice(x0, min(x0 + self.block, self.width))

    def region(self, iy: int, ix: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """``(read window, crop)``: the input window with its halo (clamped to the image) and
        where the block sits inside that window."""
        (sy, sx) = self.block_slices(iy, ix)
        ry0, rx0 = max(0, sy.start - self.halo), max(0, sx.start - self.halo)
        ry1, rx1 = min(self.height, sy.stop + self.halo), min(self.width, sx.stop + self.halo)
        read = (slice(ry0, ry1), slice(rx0, rx1))
        crop = (slice(sy.start - ry0, sy.stop - ry0), slice(sx.start - rx0, sx.stop - rx0))
        return read, crop

    def block_pixels(self, iy: int, ix: int) -> int:
        sy, sx = self.block_slices(iy, ix)
        return (sy.stop - sy.start) * (sx.stop - sx.start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# input


def open_array(src: Any) -> Any:
    """A 2-D or 3-D array-like from a numpy/zarr/dask array, a Zarr path (``store.zarr``,
    ``store.zarr/array``, or an NGFF image group: level 0 is read) or a TIFF, opened for windowed
    reads by :func:`vidfilter.io.registry.open_array`."""
    from vidfilter.io.registry import open_array as open_windowed

    def check(shape: tuple[int, ...]) -> None:
        if len(shape) not in (2, 3):
            raise UnsupportedInputError(
                f"process_array takes a 2-D (H, W) or 3-D (T, H, W) array, got shape {shape}; select one channel first"
            )

    return open_windowed(src, check=check)[0]


def read_region(src: Any, layout: BlockLayout, t: int, iy: int, ix: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Float32 ``[0, 1]`` input window of block ``(t, iy, ix)`` with its halo, and the crop."""
    from vidfilter.io.scaling import to_float

    read, crop = layout.region(iy, ix)
    sel = read if layout.frames is None else (t, *read)
    return to_float(np.asarray(src[sel])), crop


def compute_block(src: Any, engine: Any, layout: BlockLayout, t: int, iy: int, ix: int) -> np.ndarray:
    """The engine's output on block ``(t, iy, ix)`` (float32, halo cropped off)."""
    region, crop = read_region(src, layout, t, iy, ix)
    y = engine(np.ascontiguousarray(region, dtype=np.float32))
    if y.ndim == 3:
        if y.shape[0] != 1:
            raise UnsupportedInputError(f"process_array writes one output channel; the model gives {y.shape[0]}")
        y = y[0]
    return np.ascontiguousarray(y[crop])


# ---------------------------------------------------------------------------------------------
# output store


class BlockStore(ZarrStore):
    """The output store of a block run: ``PATH.partial`` while running, renamed to ``PATH`` at the end.

    Opening it resumes a partial store written with the same layout, dtype and ``key`` (e.g. the
    model hash); anything else starts afresh. Holds the lock of
    :class:`~vidfilter.io.zarr_sink.ZarrStore` (a lock left by a dead process is taken over).
    Blocks may be written by other processes through :attr:`array_path`; only the owner records
    progress (:meth:`mark_done`).

    ``groups`` names the NGFF image groups (one array ``<group>/0`` each, same layout and dtype):
    ``("background",)`` by default, ``("target", "residual")`` for static-mode models;
    :attr:`arrays` maps each name to its array and :attr:`array` is the first one.
    """

    progress_name = PROGRESS_NAME

    def __init__(
        self, path: str | os.PathLike[str], layout: BlockLayout, dtype: Any, *, key: str = "",
        attrs: dict[str, Any] | None = None, overwrite: bool = False, flush_seconds: float = 5.0,
        groups: tuple[str, ...] = ("background",),
    ) -> None:
        self.path = Path(path)
        if self.path.suffix != ".zarr":
            self.path = self.path.with_name(self.path.name + ".zarr")
        self.partial = partial_path(self.path)
        self.layout = layout
        self.dtype = np.dtype(dtype)
        self.overwrite = overwrite
        self.flush_seconds = flush_seconds
        self.groups = tuple(groups)
        if self.path.exists() and not overwrite:
            raise OutputExistsError(f"{self.path} exists; pass overwrite=True (--overwrite) to replace it or choose another output")
        check_replaceable(self.path)
        spec = {"format_version": FORMAT_VERSION, "layout": layout.to_dict(), "dtype": str(self.dtype), "key": key}
        if self.groups != ("background",):
            spec["groups"] = list(self.groups)
        self._spec = _jsonable(spec)
        self._open_partial(lambda: self._setup(attrs))

    def _setup(self, attrs: dict[str, Any] | None) -> None:
        import zarr

        layout = self.layout
        self.done = np.zeros(len(layout), dtype=bool)
        try:
            prog = self._read_progress()
        except (OSError, ValueError):
            prog = None
        self.resumed = prog is not None and prog.get("spec") == self._spec
        self._start(self.resumed)
        if self.resumed:
            bits = np.unpackbits(np.frombuffer(base64.b64decode(prog["done"]), np.uint8))[: len(layout)]
            self.done[: bits.size] = bits.astype(bool)
            log.info("resuming %s: %d of %d blocks done", self.partial, int(self.done.sum()), len(layout))
        self.root = zarr.open_group(str(self.partial), mode="a", zarr_format=3)
        if self.resumed:
            self.arrays = {name: self.root[name]["0"] for name in self.groups}
        else:
            meta = dict(_jsonable(attrs or {}))
            meta["vidfilter"] = {"complete": False, "format_version": FORMAT_VERSION, "kind": "blocks", "layout": layout.to_dict()}
            self.root.attrs.update(meta)
            dims = (["t"] if layout.frames is not None else []) + ["y", "x"]
            self.arrays = {
                name: create_image(self.root, name, shape=layout.shape, chunks=layout.chunks, dtype=self.dtype,
                                   dims=dims, state={"complete": False})
                for name in self.groups
            }
        self.array = self.arrays[self.groups[0]]
        self._last_flush = 0.0
        self.flush(force=True)

    @property
    def array_path(self) -> str:
        """Path of the output array (for writers in other processes)."""
        return str(self.partial / self.groups[0] / "0")

    def pending(self) -> Iterator[int]:
        """Indices of blocks not yet recorded as done."""
        return (int(i) for i in np.flatnonzero(~self.done))

    def mark_done(self, index: int) -> None:
        self.done[int(index)] = True
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        """Record the done bitmap (atomically), at most every ``flush_seconds`` unless forced."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_seconds:
            return
        self._save_progress({"spec": self._spec, "done": base64.b64encode(np.packbits(self.done).tobytes()).decode()})
        self._last_flush = now

    def finalise(self) -> Path:
        """Mark complete and rename ``PATH.partial`` to ``PATH`` (every block must be done)."""
        missing = int((~self.done).sum())
        if missing:
            raise RuntimeError(f"cannot finalise {self.path}: {missing} of {len(self.done)} blocks are not done")
        for name in self.groups:
            self.root[name].attrs["vidfilter"] = {"complete": True}
        vf = dict(self.root.attrs["vidfilter"])
        vf.update(complete=True, finalised_unix=time.time())
        self.root.attrs["vidfilter"] = vf
        self._commit_store()
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Record progress and release the lock, keeping ``PATH.partial`` for a resume."""
        try:
            self.flush(force=True)
        finally:
            self._lock.release()


def write_block(array: Any, layout: BlockLayout, t: int, iy: int, ix: int, data: np.ndarray) -> None:
    """Write block ``(t, iy, ix)`` (exactly one chunk of ``array``)."""
    sy, sx = layout.block_slices(iy, ix)
    array[(sy, sx) if layout.frames is None else (t, sy, sx)] = data


def convert_output(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from vidfilter.io.scaling import from_float

    return data.astype(dtype) if dtype.kind == "f" else from_float(data, dtype)


def output_dtype(dtype: str | Any, src_dtype: Any) -> np.dtype:
    return np.dtype(src_dtype) if dtype == "input" else np.dtype(dtype)


# ---------------------------------------------------------------------------------------------
# the call


def _as_model(model: Any) -> tuple[Any, str, dict[str, Any]]:
    """``(network, key, metadata)`` from a bundle path, a Bundle or a bare network."""
    if isinstance(model, (str, os.PathLike)):
        from vidfilter.models.bundle import load_model

        model = load_model(model)
    if hasattr(model, "model") and hasattr(model, "sha256"):
        if getattr(model.config.model, "temporal_channel", "none") != "none":
            raise UnsupportedInputError(
                "this model needs a temporal channel (a statistic over the whole movie); block processing runs frame by frame "
                "on models without one"
            )
        return model.model, model.sha256, {"path": str(getattr(model, "path", "")), "sha256": model.sha256, "version": model.version}
    return model, f"module:{type(model).__name__}", {"module": type(model).__name__}


def process_array(
    src: Any,
    out: str | os.PathLike[str],
    model: Any,
    config: Config | None = None,
    *,
    block: int = 4096,
    halo: int | None = None,
    dtype: str = "float32",
    overwrite: bool | None = None,
    progress: bool = False,
) -> RunResult:
    """Background of a huge 2-D/3-D array, block by block, into ``out`` (a Zarr store).

    Parameters
    ----------
    src
        A Zarr path (``store.zarr``, ``store.zarr/array``, an NGFF image group), a TIFF or an array
        (zarr/numpy/dask) of shape ``(H, W)`` or ``(T, H, W)``; integers are scaled to ``[0, 1]``.
    out
        Output store ``OUT.zarr`` (see the module docstring).
    model
        A bundle path, a loaded :class:`~vidfilter.models.bundle.Bundle`, or a network with
        ``margin``/``multiple``.
    config
        ``config.infer`` sets the engine (tile, batch size, device, precision).
    block
        Output block side (rounded down to ``model.multiple``); also the output chunk side.
    halo
        Context per side; ``None`` = the model's margin (raised to it if smaller), rounded up to
        ``model.multiple``.
    dtype
        Output dtype: ``"float32"`` (default), ``"float16"``, or ``"input"``.
    overwrite
        Replace an existing ``out``; ``None`` = ``config.output.overwrite``.

    Returns
    -------
    RunResult
        status ``done``, with shape, blocks, blocks_this_run, seconds and mpx_per_s.
    """
    from vidfilter.infer.engine import TiledEngine

    config = config or Config()
    arr = open_array(src)
    net, key, model_meta = _as_model(model)
    engine = TiledEngine.from_config(net, config.infer)
    layout = BlockLayout.for_model(tuple(arr.shape), net, block, halo, config.infer.overlap)
    out_dtype = output_dtype(dtype, arr.dtype)
    attrs = {
        "input": str(src) if isinstance(src, (str, os.PathLike)) else f"<{type(src).__name__} {tuple(arr.shape)}>",
        "input_shape": list(arr.shape),
        "input_dtype": str(arr.dtype),
        "model": model_meta,
        "config": config.to_dict(),
        "vidfilter_version": __import__("vidfilter").__version__,
    }
    ow = config.output.overwrite if overwrite is None else overwrite
    store = BlockStore(out, layout, out_dtype, key=key, attrs=attrs, overwrite=ow)
    def block(t: int, iy: int, ix: int) -> None:
        y = compute_block(arr, engine, layout, t, iy, ix)
        write_block(store.array, layout, t, iy, ix, convert_output(y, out_dtype))

    return drive_blocks(store, layout, block, progress=progress, input=attrs["input"], shape=list(arr.shape))


def drive_blocks(
    store: Any, layout: BlockLayout, block: Any, *, progress: bool = False, input: str, shape: list[int]
) -> RunResult:
    """Run ``block(t, iy, ix)`` on every block the store still lacks, marking each done (resumable),
    then finalise the store; abort it on any error. Returns the run's result."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    todo = list(store.pending())
    bar = tqdm(total=len(layout), initial=len(layout) - len(todo), unit="block", disable=not progress)
    try:
        for i in todo:
            block(*layout.coords(i))
            store.mark_done(i)
            bar.update(1)
        store.flush(force=True)
        path = store.finalise()
    except BaseException:
        store.abort()
        raise
    finally:
        bar.close()
    return run_summary(input, path, shape, layout, todo, t0)


def run_summary(input: str, path: Path, shape: list[int], layout: BlockLayout, todo: list[int], t0: float) -> RunResult:
    """The result of a block run into ``path`` that computed the blocks ``todo``, from ``t0``
    (``time.perf_counter()``) until now."""
    seconds = time.perf_counter() - t0
    px = sum(layout.block_pixels(*layout.coords(i)[1:]) for i in todo)
    return RunResult(
        input=input, output=str(path), status="done", shape=tuple(shape), blocks=len(layout),
        blocks_this_run=len(todo), seconds=round(seconds, 3), mpx_per_s=round(px / 1e6 / seconds, 3) if seconds > 0 else None,
    )
