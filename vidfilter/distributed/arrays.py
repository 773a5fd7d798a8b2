"""Huge single arrays on a Dask cluster: the block plan of :mod:`vidfilter.infer.blocks`, one task per block.

Design (map_overlap-style, but exact): the output array's chunks are the blocks of
:class:`~vidfilter.infer.blocks.BlockLayout`. The task of block ``(t, iy, ix)`` reads its own
window *with its halo* (depth ``>= model.margin``, aligned to ``model.multiple``, clamped at the
image border so the border gets exactly the model's whole-image padding) straight from the input
Zarr, runs the tiled engine, crops the halo and writes exactly its own output chunk. This is
``da.map_overlap(..., boundary="none")`` with the border handling the U-Net needs, minus the
halo exchange between tasks (each task reads its halo from storage, which is what a shared
Zarr store makes cheap), so the output is identical to :func:`vidfilter.infer.blocks.process_array`
and to the engine on the whole image.

Two entry points:

* :func:`process_array_distributed` - resumable run into ``OUT.zarr`` (same store as
  :func:`~vidfilter.infer.blocks.process_array`): the client owns the store and the progress
  bitmap, keeps a bounded number of block tasks in flight (so 10^6 blocks do not flood the
  scheduler), and records each block as its task finishes; workers write the chunks.
* :func:`background_dask` - the same computation as a lazy ``dask.array`` (``da.map_blocks`` over
  output-block coordinates), to compose with other Dask code or ``to_zarr`` yourself.

The model travels as the bundle path plus its sha256 (or its bytes, scattered once to every
worker); each worker process loads it once (:func:`vidfilter.distributed.batch.cached_bundle`)
and keeps one engine per (bundle, inference settings).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.distributed.batch import cached_bundle, connected_client, gpu_resources
from vidfilter.errors import ConfigError
from vidfilter.infer.blocks import (BlockLayout, BlockStore, compute_block, convert_output, open_array,
    output_dtype, run_summary, write_block)
from vidfilter.infer.result import RunResult

__all__ = ["background_dask", "process_array_distributed"]

log = logging.getLogger(__name__)

_ENGINES: dict[tuple[Any, ...], Any] = {}
_ARRAYS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def _engine(model_path: str | None, sha256: str, config_dict: dict[str, Any], data: bytes | None = None) -> Any:
    """One engine per (bundle, inference settings) per worker process."""
    key = (sha256, tuple(sorted((k, str(v)) for k, v in config_dict.get("infer", {}).items())))
    with _LOCK:
        eng = _ENGINES.get(key)
    if eng is None:
        from vidfilter.infer.engine import TiledEngine

        bundle = cached_bundle(model_path, sha256, data)
        eng = TiledEngine.from_config(bundle.model, Config.from_dict(config_dict).infer)
        with _LOCK:
            if len(_ENGINES) >= 4:
                _ENGINES.pop(next(iter(_ENGINES)))
            _ENGINES[key] = eng
    return eng


def _open_cached(path: str, mode: str) -> Any:
    with _LOCK:
        a = _ARRAYS.get((path, mode))
    if a is None:
        if mode == "r":
            a = open_array(path)
        else:
            import zarr

            a = zarr.open_array(path, mode=mode)
        with _LOCK:
            if len(_ARRAYS) >= 16:
                _ARRAYS.pop(next(iter(_ARRAYS)))
            _ARRAYS[(path, mode)] = a
    return a


def _block_task(
    src: str, out_array: str, model_path: str | None, sha256: str, config_dict: dict[str, Any], layout: BlockLayout,
    dtype: str, indices: list[int], data: bytes | None = None,
) -> list[int]:
    """Worker side: compute and write the blocks ``indices`` (each exactly one output chunk)."""
    eng = _engine(model_path, sha256, config_dict, data)
    arr = _open_cached(src, "r")
    out = _open_cached(out_array, "r+")
    dt = np.dtype(dtype)
    for i in indices:
        t, iy, ix = layout.coords(i)
        write_block(out, layout, t, iy, ix, convert_output(compute_block(arr, eng, layout, t, iy, ix), dt))
    return indices


def _bundle_info(model: Any) -> tuple[str, str, Any]:
    """``(path, sha256, network)`` of a bundle path or a loaded Bundle (which must have a path)."""
    from vidfilter.models.bundle import load_model

    if isinstance(model, (str, os.PathLike)):
        path = str(Path(model).resolve())
        b = load_model(path)
    elif hasattr(model, "sha256") and getattr(model, "path", None):
        b, path = model, str(Path(model.path).resolve())
    else:
        raise ConfigError("distributed processing takes the model as a bundle path (workers load it themselves); save it with save_bundle first")
    if getattr(b.config.model, "temporal_channel", "none") != "none":
        from vidfilter.errors import UnsupportedInputError

        raise UnsupportedInputError("block processing runs frame by frame; this model needs a temporal channel")
    return path, b.sha256, b


def _prepare(
    src: str | os.PathLike[str], model: Any, config: Config, block: int, halo: int | None, dtype: str
) -> tuple[str, Any, str, str, Any, BlockLayout, np.dtype]:
    """The input path and array, the bundle's path, sha256 and bundle, the block layout and the
    output dtype."""
    src_s = os.fspath(src)
    arr = open_array(src_s)
    model_path, sha, bundle = _bundle_info(model)
    layout = BlockLayout.for_model(tuple(arr.shape), bundle.model, block, halo, config.infer.overlap)
    return src_s, arr, model_path, sha, bundle, layout, output_dtype(dtype, arr.dtype)


def process_array_distributed(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: Any,
    config: Config | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    block: int = 4096,
    halo: int | None = None,
    dtype: str = "float32",
    overwrite: bool | None = None,
    blocks_per_task: int = 1,
    max_in_flight: int | None = None,
    retries: int = 2,
    ship_bundle: bool = False,
) -> RunResult:
    """Background of a huge 2-D/3-D Zarr array on a Dask cluster, into ``out`` (resumable).

    Same arguments and output as :func:`vidfilter.infer.blocks.process_array`, plus: ``src``
    must be a Zarr path the workers can read and ``out`` a path they can write; ``client`` or
    ``scheduler`` as in :func:`vidfilter.distributed.batch.run_batch`; ``blocks_per_task`` groups
    consecutive blocks (use > 1 for small blocks); ``max_in_flight`` bounds the tasks submitted
    at once (default 4 per worker thread); ``retries`` for failed tasks.
    """
    config = config or Config()
    src_s, arr, model_path, sha, bundle, layout, out_dt = _prepare(src, model, config, block, halo, dtype)
    attrs = {
        "input": src_s, "input_shape": list(arr.shape), "input_dtype": str(arr.dtype),
        "model": {"path": model_path, "sha256": sha, "version": bundle.version},
        "config": config.to_dict(), "vidfilter_version": __import__("vidfilter").__version__,
    }
    ow = config.output.overwrite if overwrite is None else overwrite
    store = BlockStore(out, layout, out_dt, key=sha, attrs=attrs, overwrite=ow)
    t0 = time.perf_counter()
    todo = list(store.pending())
    try:
        with connected_client(client, scheduler, config) as client:
            data = client.scatter(Path(model_path).read_bytes(), broadcast=True, hash=False) if ship_bundle else None
            task = (src_s, store.array_path, model_path, sha, config.to_dict(), layout, str(out_dt))
            groups = [todo[k : k + blocks_per_task] for k in range(0, len(todo), max(1, blocks_per_task))]
            _run_block_tasks(client, store, groups, task, data, config, max_in_flight, retries)
        store.flush(force=True)
        path = store.finalise()
    except BaseException:
        store.abort()
        raise
    return run_summary(src_s, path, list(arr.shape), layout, todo, t0)


def _run_block_tasks(
    client: Any, store: BlockStore, groups: list[list[int]], task: tuple[Any, ...], data: Any, config: Config,
    max_in_flight: int | None, retries: int,
) -> None:
    """Submit one :func:`_block_task` per group of blocks, at most ``max_in_flight`` at once
    (default 4 per worker thread), marking each block done in ``store`` as its task finishes."""
    from dask.distributed import as_completed

    resources = gpu_resources(client, config.infer.device)
    n_threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()) or 1
    it = iter(groups)

    def submit(g: list[int]) -> Any:
        return client.submit(_block_task, *task, g, data, pure=False, retries=retries, resources=resources)

    ac = as_completed([submit(g) for g in _take(it, max_in_flight or 4 * n_threads)])
    for fut in ac:
        for i in fut.result():  # a block that failed after its retries stops the run (resumable)
            store.mark_done(i)
        for g in _take(it, 1):
            ac.add(submit(g))


def _take(it: Any, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


def background_dask(
    src: str | os.PathLike[str], model: Any, config: Config | None = None, *, block: int = 4096, halo: int | None = None,
    dtype: str = "float32",
) -> Any:
    """The background of ``src`` as a lazy ``dask.array`` chunked by output block.

    Each chunk's task reads its own halo from the input Zarr and runs the engine (model loaded
    once per worker from the bundle path), so ``background_dask(...).to_zarr(...)`` writes every
    chunk from exactly one task and equals the engine on the whole image.
    """
    import dask.array as da
    from dask.base import tokenize

    config = config or Config()
    src_s, _arr, model_path, sha, _bundle, layout, out_dt = _prepare(src, model, config, block, halo, dtype)
    cfg = config.to_dict()

    def ax(n: int) -> tuple[int, ...]:
        return tuple(min(layout.block, n - k) for k in range(0, n, layout.block))

    chunks = (ax(layout.height), ax(layout.width))
    if layout.frames is not None:
        chunks = ((1,) * layout.frames, *chunks)

    def fn(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        loc = block_info[None]["chunk-location"]
        t, iy, ix = (0, *loc) if layout.frames is None else loc
        y = convert_output(compute_block(_open_cached(src_s, "r"), _engine(model_path, sha, cfg), layout, t, iy, ix), out_dt)
        return y if layout.frames is None else y[None]

    return da.map_blocks(fn, chunks=chunks, dtype=out_dt, meta=np.empty((0,) * len(chunks), out_dt), name="vidfilter-bg-" + tokenize(src_s, sha, cfg, layout.to_dict(), str(out_dt)))
