"""vidfilter: separate what moves from what stays in microscopy and behaviour recordings.

Package map (one concept per folder):

- ``io/``          readers (:class:`FrameSource`) and writers (OME-Zarr, FFV1, image sequences, preview MP4)
- ``sampling/``    time-lagged frame-pair samplers with a decoded frame pool
- ``models/``      the U-Net presets, receptive-field arithmetic, model bundles
- ``train/``       training loop, resumable checkpoints, training report
- ``infer/``       tile geometry and blending, tiled engine, streaming pipeline, keyframe mode
- ``synth/``       synthetic recordings; static mode: crop extraction and crop-pasting pair synthesis
- ``eval/``        metrics of the paper, foreground masks, ground truth readers, ``vidfilter eval``
- ``baselines/``   classical backgrounds: median, running median, min / max, MOG2, KNN
- ``track/``       tracks of the moving objects: per-frame objects of a mask, linked (trackpy)
- ``distributed/`` dask.distributed fan-out over recordings and blocks
- ``napari_plugin/`` the napari reader and widgets (optional extra ``vidfilter[napari]``; nothing else imports it)
- ``cli/``         the ``vidfilter`` command; ``config.py`` typed configuration; ``errors.py`` exceptions

The public surface is re-exported here lazily so ``import vidfilter`` stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from vidfilter._lazy import lazy_getattr

try:
    __version__ = version("vidfilter")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["open", "load_model", "train", "run", "track", "RunResult", "Config", "__version__"]

_LAZY = {
    "open": ("vidfilter.io.registry", "open"),
    "load_model": ("vidfilter.models.bundle", "load_model"),
    "train": ("vidfilter.train.loop", "train"),
    "run": ("vidfilter.api", "run"),
    "track": ("vidfilter.track.api", "track"),
    "RunResult": ("vidfilter.infer.result", "RunResult"),
    "Config": ("vidfilter.config", "Config"),
}


__getattr__ = lazy_getattr(__name__, _LAZY)
