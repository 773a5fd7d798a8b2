"""Inference with static-mode models: single images, image folders and whole-slide arrays.

A static-mode bundle (trained on synthetic crop-pasting pairs, ``config.sampling.mode: static``)
outputs the *target layer*: the image with everything but the target class removed.
:func:`run_static` writes one OME-Zarr store ``OUT.zarr`` with two NGFF image groups::

    OUT.zarr/target/0     the network's output (float32, the network's units: linear or log)
    OUT.zarr/residual/0   preprocessed input - output (what was removed)

Inputs are preprocessed exactly as in training (:mod:`vidfilter.static.preprocess`, with the
bundle's settings and log gain): RGB -> grey, complement, log. Every input goes through the
block machinery of :mod:`vidfilter.infer.blocks` (aligned blocks of ``config.static.block`` px
with a halo of the model's margin, the tiled engine inside each block, chunk = block, resumable),
so a 30 000 x 30 000 slide in Zarr / OME-Zarr or a tiled TIFF is read block by block and memory
stays at one block plus the engine's tiles; the result equals whole-image inference.

Input kinds, read window by window through :func:`vidfilter.io.registry.open_array`: an array, a Zarr /
OME-Zarr array or NGFF image (level 0; axes from the NGFF metadata, else ``(y, x)``, ``(y, x, c)`` with
c = 3/4, or ``(t, y, x)``), a TIFF (tifffile's Zarr view, so tiled or stripped TIFFs are read in pieces;
RGB samples and one leading axis such as pages or time supported); any other image file or image folder
through :func:`vidfilter.open` (one image at a time). One image gives ``(y, x)`` outputs, several ``(t, y, x)``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidfilter.config import Config
from vidfilter.static.config import PreprocessConfig
from vidfilter.errors import ConfigError, UnsupportedInputError
from vidfilter.infer.result import RunResult
from vidfilter.static.preprocess import encode, linearise, resolve_gain

__all__ = ["BlockPlan", "StaticView", "activation_bytes", "filter_image", "is_static", "load_static_model", "open_static_input",
           "plan_blocks", "run_static", "run_static_many"]

log = logging.getLogger(__name__)

GROUPS = ("target", "residual")


def is_static(bundle: Any) -> bool:
    """Whether a loaded bundle was trained in static mode."""
    return getattr(getattr(getattr(bundle, "config", None), "sampling", None), "mode", "video") == "static"


def load_static_model(model: Any) -> Any | None:
    """The loaded bundle when ``model`` (a path or a Bundle) is a static-mode model, else ``None``."""
    if isinstance(model, (str, os.PathLike)):
        from vidfilter.models.bundle import load_model

        model = load_model(model)
    return model if is_static(model) else None


def _preprocessing(bundle: Any) -> tuple[PreprocessConfig, float | None]:
    pre = bundle.config.static.preprocess
    gain = (bundle.normalisation or {}).get("log_gain")
    return pre, (float(gain) if gain is not None else None)


# ---------------------------------------------------------------------------------------------
# a lazy, preprocessed view of any input


class StaticView:
    """What the network sees, lazily: float32 ``(H, W)`` or ``(T, H, W)``, indexable by slices.

    ``backend`` is an array (numpy / zarr) with ``axes`` (a string of ``t``, ``c``, ``y``, ``x``)
    or a :class:`~vidfilter.io.source.FrameSource` (``axes`` ``None``; one decoded frame is cached).
    Reading ``view[t, ys, xs]`` reads only that window of an array backend, then converts it to
    linear grey and encodes it (:mod:`vidfilter.static.preprocess`).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, backend: Any, axes: str | None, pre: PreprocessConfig, gain: float | None, *, name: str = "") -> None:
        self.backend, self.axes, self.pre, self.name = backend, axes, pre, name
        self._cache: tuple[int, np.ndarray] | None = None
        stored = np.dtype(backend.dtype)
        if axes is None:  # FrameSource
            n, h, w = len(backend), int(backend.shape[1]), int(backend.shape[2])
        else:
            shape = dict(zip(axes, backend.shape))
            n, h, w = int(shape.get("t", 1)), int(shape["y"]), int(shape["x"])
            if "c" in shape and shape["c"] not in (1, 2, 3, 4):
                raise UnsupportedInputError(f"{name}: {shape['c']} channels; static mode reads grey, RGB or RGBA images")
        self.stored_dtype = stored
        self.gain = gain if gain is not None else resolve_gain(pre, stored)
        self.frames = None if (n == 1 and (axes is None or "t" not in axes)) else n
        self.shape: tuple[int, ...] = (h, w) if self.frames is None else (n, h, w)

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        return encode(linearise(raw, self.pre), self.pre, self.gain)

    def _frame(self, t: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != t:
            self._cache = (t, self._convert(np.asarray(self.backend[t])))
        return self._cache[1]

    def __getitem__(self, sel: Any) -> np.ndarray:
        if not isinstance(sel, tuple):
            sel = (sel,)
        t, ys, xs = (0, *sel[:2]) if self.frames is None else sel[:3]
        if self.axes is None:
            return self._frame(int(t))[ys, xs]
        index = tuple({"t": t, "y": ys, "x": xs, "c": slice(None)}[a] for a in self.axes)
        raw = np.asarray(self.backend[index])
        kept = [a for a in self.axes if a != "t"]  # t was an integer index
        if "c" in kept:
            raw = np.moveaxis(raw, kept.index("c"), -1)
        return self._convert(raw)


def open_static_input(src: Any, pre: PreprocessConfig, gain: float | None = None) -> StaticView:
    """A :class:`StaticView` of a path (image, folder, TIFF, Zarr / OME-Zarr), a FrameSource or an array.
    Arrays, Zarr and TIFF are read window by window (:func:`vidfilter.io.registry.open_array`); the
    rest opens through :func:`vidfilter.io.registry.open`."""
    from vidfilter.io.registry import open as vf_open
    from vidfilter.io.registry import open_array, windowed_kind
    from vidfilter.io.source import FrameSource

    if isinstance(src, FrameSource):
        return StaticView(vf_open(src, color="keep"), None, pre, gain, name=src.path)
    if not isinstance(src, (str, os.PathLike)):
        return StaticView(*open_array(src), pre, gain, name=f"<{type(src).__name__}>")
    spec = os.path.expanduser(os.fspath(src))
    if windowed_kind(spec):
        return StaticView(*open_array(spec), pre, gain, name=spec)
    return StaticView(vf_open(spec, color="keep"), None, pre, gain, name=spec)


# ---------------------------------------------------------------------------------------------
# memory: block side, tile and batch from static.memory_gb

#: Host bytes per pixel of a block's region besides the network, when the region runs as one pass:
#: the window read and converted to float32, the engine's reflect-padded copy, its output and the
#: output's copy, the target and residual crops and their compressed chunks (about ten float32 copies).
HOST_BYTES_PER_PIXEL = 48
#: The same when the engine cuts the region into tiles (an explicit infer.tile, or a CUDA device):
#: the tile accumulator and the blend-weight sums it keeps for up to nine region shapes come on top.
TILED_HOST_BYTES_PER_PIXEL = 96
#: The convolution library's workspace and layout copies on top of the counted activations: the
#: peak RSS growth of one CPU forward pass of a 1024² tile measured 1.14x (width 48) to 1.27x
#: (width 16) :func:`activation_bytes`' count without it.
ACTIVATION_ALLOWANCE = 1.3


def activation_bytes(net: Any) -> float:
    """Bytes per input pixel that one forward pass of ``net`` holds at its peak (float32), counted
    from its channel widths, times :data:`ACTIVATION_ALLOWANCE`.

    For the U-Net of :mod:`vidfilter.models.unet` the peak is in its last decoder stage, at full
    resolution: the input and its padded copy (``c_in`` channels each), the up-sampled tensor from
    below and its concatenation with the input (``k - c_in`` and ``k`` channels, ``k`` the first
    head convolution's input), and that convolution's output and its LeakyReLU (``h1`` each).
    Every other stage holds fewer bytes per input pixel (it runs at a quarter of the resolution or
    less, or with fewer channels). Another network counts twice its widest convolution's input and
    output channels.
    """
    import torch.nn as nn

    head = getattr(net, "dec", None)
    first = head[-1][0] if head is not None and len(head) and isinstance(head[-1][0], nn.Conv2d) else None
    if first is not None:
        c_in = int(getattr(net, "in_channels", 1))
        channels = c_in + 2 * first.in_channels + 2 * first.out_channels
    else:
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)] if isinstance(net, nn.Module) else []
        channels = 2 * max((m.in_channels for m in convs), default=64) + 2 * max((m.out_channels for m in convs), default=64)
    return 4.0 * channels * ACTIVATION_ALLOWANCE


@dataclass(frozen=True)
class BlockPlan:
    """Block side, engine tile and batch of a static run, the reflect border added at the image's
    edges (:func:`_edge_pad`), the halo read around each block (the model's margin, or the border
    when that is wider, so an edge block holds every pixel its reflection needs), and the working
    memory they are estimated to take (``estimate_bytes``, without the interpreter and libraries;
    0 for an integer ``static.block``)."""

    block: int
    tile: int
    batch_size: int
    border: int
    halo: int
    estimate_bytes: int

    def describe(self) -> str:
        size = f"about {self.estimate_bytes / 2**30:.2f} GiB" if self.estimate_bytes else "static.block as set"
        return f"blocks of {self.block} px, tile {self.tile}, batch {self.batch_size}: {size}"


def plan_blocks(net: Any, config: Config, device: Any) -> BlockPlan:
    """The block side, tile and batch of a static run with ``net`` on ``device``.

    An integer ``config.static.block`` is used as given, with ``config.infer``'s tile and batch.
    With ``auto`` the block follows ``config.static.memory_gb``, whatever the image size:

    * on the CPU (or MPS, whose memory the process shares), unless ``infer.tile`` or
      ``infer.batch_size`` was set, each block's region (the block and its halos of the model's
      margin, or the reflect border at the image's edges) runs as one pass, batch 1; the largest
      region whose :func:`activation_bytes` plus :data:`HOST_BYTES_PER_PIXEL` fit the budget sets
      the block;
    * on CUDA (the activations live on the GPU) or with an explicit tile or batch, the engine keeps
      ``config.infer``'s tile and batch and the budget bounds the host side of a block
      (:data:`TILED_HOST_BYTES_PER_PIXEL`).
    """
    infer = config.infer
    mult = int(getattr(net, "multiple", 1) or 1)
    margin = -(-max(int(getattr(net, "margin", 0) or 0), int(infer.overlap or 0)) // mult) * mult
    border = -(-(mult if infer.border is None else int(infer.border)) // mult) * mult
    halo = max(margin, border)  # each side of a region: a halo, or the border at the image's edge
    if config.static.block != "auto":
        return BlockPlan(int(config.static.block), infer.tile, infer.batch_size, border, halo, 0)
    budget = config.static.memory_gb * 2**30
    whole = getattr(device, "type", str(device)) != "cuda" and not ({"tile", "batch_size"} & infer.model_fields_set)
    per_px = activation_bytes(net) + HOST_BYTES_PER_PIXEL if whole else TILED_HOST_BYTES_PER_PIXEL
    side = math.isqrt(int(budget / per_px))
    block = (side - 2 * halo) // mult * mult
    if block < mult:
        need = (mult + 2 * halo) ** 2 * per_px / 2**30
        raise ConfigError(f"static.memory_gb {config.static.memory_gb} is too small for this model: one block of {mult} px with "
                          f"its {halo} px halos needs about {need:.2f} GiB; raise static.memory_gb or set static.block")
    estimate = int((block + 2 * halo) ** 2 * per_px)
    if whole:
        return BlockPlan(block, block + 2 * halo, 1, border, halo, estimate)
    return BlockPlan(block, infer.tile, infer.batch_size, border, halo, estimate)


# ---------------------------------------------------------------------------------------------
# running


def _model_parts(model: Any) -> tuple[Any, Any]:
    bundle = load_static_model(model) if isinstance(model, (str, os.PathLike)) else model
    if bundle is None or not is_static(bundle):
        raise ConfigError(f"{model}: not a static-mode model (its config has sampling.mode: video); use `vidfilter run` without it")
    return bundle, bundle.model


def filter_image(image: Any, model: Any, config: Config | None = None) -> tuple[np.ndarray, np.ndarray]:
    """In memory: ``(target, residual)`` float32 of one image ``(H, W)`` / ``(H, W, C)`` with a
    static-mode model (a bundle path or a loaded bundle), on the whole image through the tiled engine."""
    from vidfilter.infer.engine import TiledEngine

    config = config or Config()
    bundle, net = _model_parts(model)
    pre, gain = _preprocessing(bundle)
    x = encode(linearise(image, pre), pre, gain if gain is not None else resolve_gain(pre, np.asarray(image).dtype))
    y = TiledEngine.from_config(net, config.infer)(x)
    y = y[0] if y.ndim == 3 else y
    return y, x - y


def run_static(
    input: Any,
    out: str | os.PathLike[str],
    *,
    model: Any,
    config: Config | None = None,
    progress: bool = False,
) -> RunResult:
    """Filter one input with a static-mode model into ``out`` (``OUT.zarr``: ``target``, ``residual``).

    Parameters
    ----------
    input
        An image file, image folder, TIFF, Zarr / OME-Zarr path, or an array.
    out
        The output store (``.zarr`` is appended when missing).
    model
        A static-mode bundle (path or loaded).
    config
        ``config.infer`` sets the engine (tile, batch, device, precision), ``config.static.block``
        the block side (``auto``: block, and on the CPU tile and batch, from ``config.static.memory_gb``,
        see :func:`plan_blocks`), ``config.output.overwrite`` whether an existing output is replaced.

    Returns
    -------
    RunResult
        status ``done``, with shape, blocks, blocks_this_run, seconds and mpx_per_s.
    """

    from vidfilter.infer.blocks import BlockLayout, BlockStore, drive_blocks
    from vidfilter.infer.device import resolve_device
    from vidfilter.infer.engine import TiledEngine
    from vidfilter.io.sink import check_output_path

    config = config or Config()
    bundle, net = _model_parts(model)
    pre, gain = _preprocessing(bundle)
    view = open_static_input(input, pre, gain)
    out = Path(out)
    if out.suffix != ".zarr":
        out = out.with_name(out.name + ".zarr")
    in_paths = [input] if isinstance(input, (str, os.PathLike)) else []
    check_output_path(out, inputs=in_paths, overwrite=True)  # existence is checked by the store (resume)
    plan = plan_blocks(net, config, resolve_device(config.infer.device))
    log.info("%s: %s", view.name, plan.describe())
    layout = BlockLayout.for_model(view.shape, net, plan.block, plan.halo, config.infer.overlap)
    store = BlockStore(out, layout, np.float32, key=f"static:{bundle.sha256}:{view.gain}", attrs=_store_attrs(view, bundle, config),
                       overwrite=config.output.overwrite, groups=GROUPS)
    # the border is added by _edge_pad at the image's edges only, not around every block
    infer = config.infer.model_copy(update={"tile": plan.tile, "batch_size": plan.batch_size, "border": 0})
    block = _block_writer(view, layout, store, TiledEngine.from_config(net, infer), plan.border)
    try:
        return drive_blocks(store, layout, block, progress=progress, input=view.name, shape=list(view.shape))
    finally:
        close = getattr(view.backend, "close", None)
        if view.axes is None and close is not None:
            close()


def _store_attrs(view: StaticView, bundle: Any, config: Config) -> dict[str, Any]:
    """What the output store records about its input, model and settings."""
    return {
        "input": {"path": view.name}, "input_shape": list(view.shape), "input_dtype": str(view.stored_dtype),
        "method": "model", "mode": "static",
        "groups": {"target": "network output (the target layer)", "residual": "preprocessed input - output"},
        "preprocess": view.pre.model_dump(mode="json"), "log_gain": view.gain,
        "model": {"path": str(getattr(bundle, "path", "")), "sha256": bundle.sha256, "version": bundle.version},
        "config": config.to_dict(), "vidfilter_version": __import__("vidfilter").__version__,
    }


def _edge_pad(region: np.ndarray, layout: Any, iy: int, ix: int, border: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """``(padded region, where the region sits in it)``: the region reflect-padded by ``border`` on
    the sides where it meets the image's edge, as the engine pads the whole image (when the image's
    shorter side exceeds the border); interior sides are halos of real pixels and get nothing.

    The padded region is a window of the whole image's padded frame starting on its pooling grid
    (``border`` and block origins are multiples of ``model.multiple``), so the engine without a
    border of its own gives the whole image's output on the block."""
    (ys, xs), _ = layout.region(iy, ix)
    b = border if min(layout.height, layout.width) > border else 0
    pads = ((b if ys.start == 0 else 0, b if ys.stop == layout.height else 0),
            (b if xs.start == 0 else 0, b if xs.stop == layout.width else 0))
    inner = (slice(pads[0][0], pads[0][0] + region.shape[0]), slice(pads[1][0], pads[1][0] + region.shape[1]))
    return (np.pad(region, pads, mode="reflect") if b else region), inner


def _block_writer(view: StaticView, layout: Any, store: Any, engine: Any, border: int) -> Any:
    """``block(t, iy, ix)``: filter one block of ``view`` (with its halo, and ``border`` px of
    reflection at the image's edges) into the store's groups."""
    from vidfilter.infer.blocks import read_region, write_block

    def block(t: int, iy: int, ix: int) -> None:
        region, crop = read_region(view, layout, t, iy, ix)
        padded, inner = _edge_pad(region, layout, iy, ix, border)
        y = engine(np.ascontiguousarray(padded, dtype=np.float32))
        y = (y[0] if y.ndim == 3 else y)[inner]
        target = np.ascontiguousarray(y[crop])
        write_block(store.arrays["target"], layout, t, iy, ix, target)
        write_block(store.arrays["residual"], layout, t, iy, ix, region[crop] - target)

    return block


def run_static_many(
    inputs: Sequence[Any],
    *,
    model: Any,
    out: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    progress: bool = False,
    **_: Any,
) -> list[RunResult]:
    """:func:`run_static` for several inputs (one output each under ``out_dir``, or ``out`` for one
    input); a failing input is reported and the others still run."""
    from vidfilter.infer.pipeline import run_each

    config = config or Config()
    if out is None and out_dir is None:
        raise ConfigError("say where to write: --out OUT.zarr for one input, or --out-dir DIR")
    bundle, _ = _model_parts(model)  # loaded once for all inputs
    return run_each(
        inputs, out, out_dir, lambda inp, target: run_static(inp, target, model=bundle, config=config, progress=progress), log
    )
