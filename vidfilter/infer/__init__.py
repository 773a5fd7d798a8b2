"""vidfilter.infer: tile geometry and blending, the tiled engine, device selection.

- :mod:`vidfilter.infer.tiling`: pure geometry (``tile_grid``, ``blend_weights``), no torch.
- :class:`vidfilter.infer.engine.TiledEngine`: seamless tiled inference of a model on frames of any size.
- :mod:`vidfilter.infer.device`: ``resolve_device``, ``autocast_dtype``, ``set_threads``.

Torch is imported lazily, so importing the geometry stays cheap.
"""

from __future__ import annotations

from vidfilter._lazy import lazy_getattr
from vidfilter.infer.tiling import Tile, TileGrid, blend_weights, tile_grid

__all__ = ["InferenceMemoryError", "Tile", "TileGrid", "TiledEngine", "autocast_dtype", "blend_weights",
    "resolve_device", "set_threads", "tile_grid"]

_LAZY = {
    "TiledEngine": "vidfilter.infer.engine",
    "InferenceMemoryError": "vidfilter.infer.engine",
    "resolve_device": "vidfilter.infer.device",
    "autocast_dtype": "vidfilter.infer.device",
    "set_threads": "vidfilter.infer.device",
}


__getattr__ = lazy_getattr(__name__, _LAZY)
