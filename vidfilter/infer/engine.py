"""Tiled inference: run a fully-convolutional model on frames of any size, seamlessly.

Design after MONAI's ``sliding_window_inference``: tiles go to the compute device
``batch_size`` at a time; each prediction is multiplied by its blend weights and added, with the
weights, into float32 accumulators on ``accumulate_device``; one division at the end. The
geometry (see :mod:`vidfilter.infer.tiling`) aligns tiles to the model's ``multiple`` and pads
the frame exactly as the model does, so tiled output equals whole-frame output to float
tolerance whenever ``overlap >= model.margin``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidfilter.errors import ConfigError, UnsupportedInputError, VidfilterError
from vidfilter.infer.device import autocast_dtype, resolve_device
from vidfilter.infer.tiling import Tile, TileGrid, min_tile, tile_grid

if TYPE_CHECKING:
    from vidfilter.config import InferConfig

__all__ = ["InferenceMemoryError", "TiledEngine"]

log = logging.getLogger(__name__)


class InferenceMemoryError(VidfilterError, MemoryError):
    """The compute device ran out of memory even with batch 1 and the smallest valid tile."""


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):  # torch.cuda.OutOfMemoryError is the same class
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e).lower()


class _TileTooLarge(Exception):
    """Internal: out of memory at batch size 1; the caller shrinks the tile and starts again."""


class TiledEngine:
    """Seamless tiled inference with a fully-convolutional model.

    Parameters
    ----------
    model:
        ``nn.Module`` (or callable) mapping ``(B, C_in, h, w)`` float32 to ``(B, C_out, h, w)``.
        Read if present: ``margin`` (context pixels per side, the receptive radius),
        ``multiple`` (alignment, ``2**depth``; the model pads reflect at the bottom/right to it
        internally), ``in_channels``.
    tile:
        Tile side in pixels, rounded down to a multiple of ``model.multiple``. A tile smaller than
        ``2*overlap + multiple`` is read as the wanted core and grown (with a warning) to
        ``2*overlap + tile``. Frames that fit in one tile run whole. Each tile contributes only
        its ``tile - 2*overlap`` core, so the work is about ``(tile / (tile - 2*overlap))**2``
        times whole-frame inference: prefer the largest tile that fits in memory.
    overlap:
        Context kept on each cut side of a tile; neighbouring tiles overlap by ``>= 2*overlap``.
        ``None`` = ``model.margin``. Smaller than ``model.margin`` logs a warning (seams possible).
    batch_size:
        Tiles per forward pass (tiles of several frames share batches in :meth:`infer_batch`).
    device, precision, compile:
        Compute device (``auto``/``cpu``/``cuda[:N]``/``mps``); ``auto``/``fp32``/``bf16``/``fp16``
        autocast (auto = bf16 on CUDA, fp32 elsewhere); ``torch.compile`` the model. On CUDA and
        the CPU the model and the tiles use channels-last memory format.
    accumulate_device:
        Where the float32 accumulators (one frame's sum and weight) live; ``cpu`` by default.
    border:
        Reflect padding added around every frame before inference and cropped off after, so the
        frame's own edges are computed with image-like context instead of the convolutions' zero
        padding (measured on the real worm plate: a model left a false object along the left and
        top edges of every frame without it). ``None`` = ``model.multiple`` (keeps the pooling grid
        aligned); ``0`` = off. Frames no larger than ``tile`` still run whole (the pass is then
        ``tile + 2*border`` wide); frames with a side not above the border are not padded.

    On out-of-memory the batch size is halved, then the tile (not below ``2*overlap + multiple``),
    with a warning each time; the reduced values are kept for later frames.
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        *,
        tile: int = 512,
        overlap: int | None = None,
        batch_size: int = 4,
        device: str | torch.device = "auto",
        precision: str = "auto",
        compile: bool = False,
        accumulate_device: str | torch.device = "cpu",
        border: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.accumulate_device = resolve_device(accumulate_device)
        self.multiple = int(getattr(model, "multiple", 1) or 1)
        model_margin = getattr(model, "margin", None)
        if overlap is None:
            if model_margin is None:
                raise ConfigError("the model has no .margin attribute; pass overlap= (its receptive radius in pixels)")
            overlap = int(model_margin)
        elif overlap < 0:
            raise ConfigError(f"overlap must be >= 0, got {overlap}")
        elif model_margin is not None and overlap < model_margin:
            log.warning(
                "overlap %d is smaller than the model's receptive margin %d: tile seams are possible; "
                "leave overlap unset to use the margin",
                overlap,
                model_margin,
            )
        self.margin = int(overlap)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.min_tile = min_tile(self.margin, self.multiple)
        aligned = int(tile) // self.multiple * self.multiple
        if aligned < self.min_tile:
            # Read a too-small tile as the wanted core: the bare minimum (2*overlap + multiple) would
            # advance tiles by only `multiple` pixels, costing (tile / multiple)**2 times the work.
            grown = 2 * self.margin + max(aligned, self.multiple)
            grown = -(-grown // self.multiple) * self.multiple
            log.warning(
                "tile %d leaves no room inside 2 x %d px of context; using tile %d (a %d px core plus the context)",
                tile,
                self.margin,
                grown,
                grown - 2 * self.margin,
            )
            aligned = grown
        self.tile = aligned
        if border is not None and border < 0:
            raise ConfigError(f"border must be >= 0, got {border}")
        b = self.multiple if border is None else int(border)
        self.border = -(-b // self.multiple) * self.multiple  # a multiple of the alignment: same pooling grid
        self.precision = precision
        self.autocast = autocast_dtype(precision, self.device, inference=True)
        # channels-last convolutions: on CUDA, and on the CPU too (oneDNN; one 1024^2 tile on 2 cores:
        # fast preset 1.30 -> 0.99 s, paper preset 4.43 -> 3.89 s, benchmarks/cpu_layout.py)
        self.channels_last = self.device.type in ("cuda", "cpu")
        self.in_channels = getattr(model, "in_channels", None)
        if isinstance(model, nn.Module):
            model.eval().to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile else model  # type: ignore[assignment]
        self._weights: dict[tuple[Any, ...], torch.Tensor] = {}
        self._weight_sums: dict[TileGrid, torch.Tensor] = {}

    @classmethod
    def from_config(cls, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], infer: InferConfig) -> TiledEngine:
        """The engine for ``model`` with the settings of the ``infer`` section of a :class:`~vidfilter.config.Config`."""
        return cls(
            model, tile=infer.tile, overlap=infer.overlap, batch_size=infer.batch_size, device=infer.device,
            precision=infer.precision, compile=infer.compile, border=infer.border,
        )

    def __repr__(self) -> str:
        return (
            f"TiledEngine(tile={self.tile}, overlap={self.margin}, multiple={self.multiple}, border={self.border}, batch_size={self.batch_size}, "
            f"device={self.device}, autocast={self.autocast}, accumulate_device={self.accumulate_device})"
        )

    # -- public API -----------------------------------------------------------------------------
    def __call__(self, frame: np.ndarray | torch.Tensor) -> np.ndarray:
        """Infer one float32 frame ``(H, W)`` or ``(C, H, W)`` -> float32 ``(C_out, H, W)``, or ``(H, W)``
        when the input is 2-D and the model has one output channel."""
        return self.infer_batch([frame])[0]

    @overload
    def infer_batch(self, frames: np.ndarray) -> np.ndarray: ...
    @overload
    def infer_batch(self, frames: Sequence[np.ndarray | torch.Tensor]) -> list[np.ndarray]: ...
    def infer_batch(self, frames):  # type: ignore[no-untyped-def]
        """Infer several frames; their tiles share batches (small frames run whole, several per batch).

        ``frames``: a sequence of frames as for :meth:`__call__` (sizes may differ) -> list of
        outputs; or an array ``(N, H, W)`` / ``(N, C, H, W)`` -> stacked array.
        """
        stacked = isinstance(frames, np.ndarray)
        if stacked and frames.ndim not in (3, 4):
            raise UnsupportedInputError(f"infer_batch needs (N, H, W) or (N, C, H, W) frames, got shape {frames.shape}")
        items = [self._as_chw(f) for f in frames]
        if not items:
            return np.zeros((0,), np.float32) if stacked else []
        while True:
            try:
                outs = self._run([x for x, _ in items])
                break
            except _TileTooLarge:
                self._shrink_tile(items)
        result = [o[0] if squeeze and o.shape[0] == 1 else o for o, (_, squeeze) in zip(outs, items)]
        return np.stack(result) if stacked else result

    # -- internals ------------------------------------------------------------------------------
    def _as_chw(self, frame: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
        if isinstance(frame, torch.Tensor):
            frame = frame.detach().cpu().numpy()
        a = np.asarray(frame)
        if a.dtype.kind != "f":
            raise UnsupportedInputError(
                f"the engine takes float frames scaled to [0, 1], got dtype {a.dtype}; convert with vidfilter.io.scaling.to_float"
            )
        if a.ndim not in (2, 3) or min(a.shape[-2:], default=0) < 1:
            raise UnsupportedInputError(f"a frame must be (H, W) or (C, H, W) with H, W >= 1, got shape {a.shape}")
        squeeze = a.ndim == 2
        if squeeze:
            a = a[None]
        if self.in_channels is not None and a.shape[0] != self.in_channels:
            raise UnsupportedInputError(
                f"the model takes {self.in_channels} input channel(s) but the frame has {a.shape[0]} (shape {a.shape}); "
                "check the colour policy (gray/keep) and the model's temporal channel"
            )
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)), squeeze

    def _shrink_tile(self, items: list[tuple[torch.Tensor, bool]]) -> None:
        largest = max(max(x.shape[-2:]) for x, _ in items)
        current = min(self.tile, -(-largest // self.multiple) * self.multiple)
        new = max(self.min_tile, current // 2 // self.multiple * self.multiple)
        if new >= current:
            raise InferenceMemoryError(
                f"out of memory on {self.device} even with batch size 1 and tile {current} (the smallest for overlap "
                f"{self.margin} at alignment {self.multiple}); use precision 'bf16', a smaller model (preset 'fast'), "
                "a smaller overlap, or device 'cpu'"
            )
        log.warning("out of memory on %s at batch size 1 and tile %d; retrying with tile %d", self.device, current, new)
        self.tile = new
        self._weight_sums.clear()
        self._empty_cache()

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.autocast is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast):
                y = self._forward(batch)
        else:
            y = self._forward(batch)
        if y.ndim != 4 or y.shape[0] != batch.shape[0] or y.shape[-2:] != batch.shape[-2:]:
            raise UnsupportedInputError(
                f"the model must map (B, C, h, w) to (B, C_out, h, w); got {tuple(batch.shape)} -> {tuple(y.shape)}"
            )
        return y.float()

    def _weight(self, grid: TileGrid, tile: Tile) -> torch.Tensor:
        key = (grid.tile_h, grid.tile_w, grid.margin, grid.ramp_y, grid.ramp_x, tile.sides, self.device, torch.float32)
        w = self._weights.get(key)
        if w is None:
            w = torch.from_numpy(grid.weights(tile).copy()).to(self.device)
            self._weights[key] = w
        return w

    def _weight_sum(self, grid: TileGrid) -> torch.Tensor:
        s = self._weight_sums.get(grid)
        if s is None:
            if len(self._weight_sums) >= 16:
                self._weight_sums.clear()
            s = torch.from_numpy(grid.weight_sum()).to(self.accumulate_device)
            self._weight_sums[grid] = s
        return s

    @torch.inference_mode()
    def _run(self, frames: list[torch.Tensor]) -> list[np.ndarray]:
        borders = [self.border if min(x.shape[-2:]) > self.border else 0 for x in frames]
        frames = [F.pad(x[None], (b, b, b, b), mode="reflect")[0] if b else x for x, b in zip(frames, borders)]
        grids = [tile_grid(x.shape[-2], x.shape[-1], self.tile + 2 * b, self.margin, self.multiple) for x, b in zip(frames, borders)]
        sources: list[torch.Tensor] = []
        for x, g in zip(frames, grids):
            ph, pw = g.pad
            if ph or pw:  # same reflect padding (bottom/right) the model applies internally
                x = F.pad(x[None], (0, pw, 0, ph), mode="reflect")[0]
            sources.append(x.to(self.device, non_blocking=True))
        groups: dict[tuple[int, int, int], list[tuple[int, Tile]]] = {}
        for i, (x, g) in enumerate(zip(frames, grids)):
            for t in g:
                groups.setdefault((x.shape[0], g.tile_h, g.tile_w), []).append((i, t))
        acc: list[torch.Tensor | None] = [None] * len(frames)
        for jobs in groups.values():
            start = 0
            while start < len(jobs):
                chunk = jobs[start : start + self.batch_size]
                batch = torch.stack([sources[i][(slice(None), *t.slices)] for i, t in chunk])
                oom = False
                try:
                    pred = self._predict(batch)
                except Exception as e:  # noqa: BLE001 - only out-of-memory is handled
                    if not _is_oom(e):
                        raise
                    oom = True
                if oom:  # outside the except block so the failed batch's memory can be freed
                    del batch
                    self._empty_cache()
                    if self.batch_size == 1:
                        raise _TileTooLarge
                    new = self.batch_size // 2
                    log.warning("out of memory on %s at batch size %d; retrying with batch size %d", self.device, self.batch_size, new)
                    self.batch_size = new
                    continue
                whole = [grids[i].whole for i, _ in chunk]
                if not all(whole):
                    w = torch.stack([self._weight(grids[i], t) for i, t in chunk])
                    pred = pred * w[:, None]
                pred = pred.to(self.accumulate_device)
                for k, (i, t) in enumerate(chunk):
                    if whole[k]:
                        acc[i] = pred[k]
                        continue
                    if acc[i] is None:
                        g = grids[i]
                        acc[i] = torch.zeros(
                            (pred.shape[1], g.padded_height, g.padded_width), dtype=torch.float32, device=self.accumulate_device
                        )
                    acc[i][(slice(None), *t.slices)] += pred[k]  # type: ignore[index]
                start += len(chunk)
        outs = []
        for a, g, b in zip(acc, grids, borders):
            assert a is not None
            if not g.whole:
                a = (a / self._weight_sum(g))[:, : g.height, : g.width]
            if b:
                a = a[:, b : g.height - b, b : g.width - b]
            outs.append(np.ascontiguousarray(a.cpu().numpy(), dtype=np.float32))
        return outs
