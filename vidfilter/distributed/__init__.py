"""vidfilter.distributed: fan-out on a Dask cluster (``dask.distributed``), local by default.

- :func:`run_batch` (``batch.py``): many recordings, one task per recording, the model bundle
  loaded once per worker, retries, skipping finished outputs, ``batch_summary.json``.
- :func:`process_array_distributed` / :func:`background_dask` (``arrays.py``): one huge 2-D or
  (T, H, W) Zarr array, one task per output block reading its own halo; identical to
  :func:`vidfilter.infer.blocks.process_array` and to the tiled engine on the whole image.
- :func:`get_client`: a ``Client`` for ``"local"``, ``"local:N"`` or ``"tcp://HOST:PORT"``.

Dask is imported lazily: importing this package costs nothing until a function is called.
"""

from __future__ import annotations

from vidfilter._lazy import lazy_getattr

__all__ = ["background_dask", "format_table", "get_client", "process_array_distributed", "run_batch"]

_LAZY = {
    "run_batch": "vidfilter.distributed.batch",
    "get_client": "vidfilter.distributed.batch",
    "format_table": "vidfilter.distributed.batch",
    "process_array_distributed": "vidfilter.distributed.arrays",
    "background_dask": "vidfilter.distributed.arrays",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
