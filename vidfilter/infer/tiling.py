"""Tile geometry and blending weights for tiled inference (pure numpy, no torch).

Geometry (why tiled output can equal whole-frame output)
--------------------------------------------------------
A U-Net with ``depth`` 2x max-poolings is translation-equivariant only in steps of
``align = 2**depth`` and pads its input (reflect, bottom/right) to a multiple of ``align``.
Whole-frame inference therefore computes ``net(reflect_pad(frame))`` cropped back. The grid is
built so that every tile is a window of *that same padded frame*:

* An axis that fits in one tile (``size <= tile``) is not cut and not padded: the tile spans the
  whole axis and the model pads it internally exactly as it would the whole frame (2-D reflect
  padding is separable, so padding the axes separately is the same as padding both at once).
  Read windows never extend beyond the frame.
* An axis longer than the tile is padded (reflect, at the end) to ``padded = ceil(size/align)*align``
  by the caller, and cut into tiles of ``tile`` pixels (a multiple of ``align``) whose origins are
  multiples of ``align``; the last tile is flush with the padded border. Tiles see the pooling grid
  of the whole frame, so a pixel at least ``margin`` (the receptive radius) away from every cut edge
  of its tile gets bit-for-bit the same receptive input as in whole-frame inference.
* Neighbouring tiles overlap by at least ``2*margin`` (origins spread evenly, cellpose-style, then
  snapped to ``align`` by integer distribution so no step exceeds the maximum), hence every pixel
  has a tile in which it is ``>= margin`` away from the cut edges.

Weights (:func:`blend_weights`) are exactly 0 in the ``margin``-wide band along a cut edge (pixels
there lack context), rise along a Hann (sin^2) ramp over the rest of the nominal overlap, and are
1 elsewhere - including along real frame borders, where no other tile could do better. With the
nominal overlap the two ramps of a pair of neighbours sum to exactly 1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

from vidfilter.errors import ConfigError

__all__ = ["Tile", "TileGrid", "axis_tiles", "blend_weights", "min_tile", "tile_grid"]

Sides = tuple[bool, bool, bool, bool]  # top, bottom, left, right: True = faces a neighbouring tile


@dataclass(frozen=True)
class Tile:
    """One read window ``[y0:y1, x0:x1]`` of the (padded) frame.

    ``sides`` (top, bottom, left, right) is True where the edge is a cut that faces another tile
    (tapered) and False where it is a frame border (weight 1 up to the edge).
    """

    y0: int
    y1: int
    x0: int
    x1: int
    sides: Sides

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)

    @property
    def slices(self) -> tuple[slice, slice]:
        return (slice(self.y0, self.y1), slice(self.x0, self.x1))


@dataclass(frozen=True)
class TileGrid(Sequence[Tile]):
    """Tiles covering a ``height x width`` frame; a sequence of :class:`Tile`.

    Tile coordinates refer to the frame padded (reflect, at the bottom/right) to
    ``padded_height x padded_width``; ``pad`` gives the (bottom, right) amounts, zero on axes
    that are not cut. Every tile has the same shape ``(tile_h, tile_w)``.
    """

    height: int
    width: int
    padded_height: int
    padded_width: int
    tile_h: int
    tile_w: int
    margin: int
    ramp_y: int
    ramp_x: int
    tiles: tuple[Tile, ...]

    @property
    def pad(self) -> tuple[int, int]:
        return (self.padded_height - self.height, self.padded_width - self.width)

    @property
    def tile_shape(self) -> tuple[int, int]:
        return (self.tile_h, self.tile_w)

    @property
    def whole(self) -> bool:
        """True when one tile is the whole (unpadded) frame: no cutting, no blending needed."""
        return len(self.tiles) == 1 and self.pad == (0, 0)

    def weights(self, tile: Tile) -> np.ndarray:
        """Blend weights of ``tile`` (read-only float32 ``(tile_h, tile_w)``)."""
        return blend_weights(self.tile_h, self.tile_w, self.margin, tile.sides, (self.ramp_y, self.ramp_x))

    def weight_sum(self) -> np.ndarray:
        """Total weight per pixel of the padded frame (all > 0: the grid covers every pixel)."""
        total = np.zeros((self.padded_height, self.padded_width), np.float32)
        for t in self.tiles:
            total[t.slices] += self.weights(t)
        return total

    def __len__(self) -> int:
        return len(self.tiles)

    @overload
    def __getitem__(self, i: int) -> Tile: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Tile]: ...
    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.tiles[i]

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)


def min_tile(margin: int, align: int = 1) -> int:
    """Smallest tile side that can be cut with ``margin`` context: ``2*margin + align``, rounded up to ``align``."""
    return -(-(2 * margin + align) // align) * align


def axis_tiles(size: int, tile: int, margin: int, align: int = 1) -> tuple[int, int, list[int], int]:
    """1-D tiling of one axis: ``(padded_size, tile_len, starts, ramp)``.

    ``size <= tile``: one tile spanning the unpadded axis. Otherwise the axis is padded to a
    multiple of ``align`` and cut into ``tile_len`` = ``tile`` rounded down to ``align`` windows
    whose starts are multiples of ``align``, the last flush with the padded end, neighbours
    overlapping by ``>= 2*margin``. ``ramp`` = smallest overlap minus ``2*margin``.
    """
    if size < 1:
        raise ConfigError(f"cannot tile an axis of {size} pixels; frames need at least 1x1 pixels")
    if size <= tile:
        return size, size, [0], 0
    t = tile // align * align
    if t < min_tile(margin, align):
        raise ConfigError(
            f"tile {tile} is too small for margin {margin} at alignment {align}; "
            f"use a tile of at least {min_tile(margin, align)} or a smaller overlap"
        )
    padded = -(-size // align) * align
    units = (padded - t) // align  # distance the origin travels, in align steps
    max_step = (t - 2 * margin) // align  # >= 1 by the check above
    n_steps = -(-units // max_step)
    q, r = divmod(units, n_steps)
    steps = [q + 1] * r + [q] * (n_steps - r)  # integer spread: no step exceeds ceil(units/n_steps) <= max_step
    starts = [0]
    for s in steps:
        starts.append(starts[-1] + s * align)
    ramp = t - max(steps) * align - 2 * margin
    return padded, t, starts, ramp


def tile_grid(height: int, width: int, tile: int, margin: int, align: int = 1) -> TileGrid:
    """Tiles of side ``tile`` covering a ``height x width`` frame (see the module docstring).

    ``margin``: context (pixels) each tile needs on each cut side; neighbouring tiles overlap by
    at least ``2*margin``. ``align``: tile origins and cut tile sides are multiples of it (the
    model's ``multiple``). Raises :class:`ConfigError` when an axis must be cut but
    ``tile < 2*margin + align``.
    """
    if tile < 1 or margin < 0 or align < 1:
        raise ConfigError(f"tile_grid needs tile >= 1, margin >= 0, align >= 1 (got {tile}, {margin}, {align})")
    ph, th, ys, ry = axis_tiles(height, tile, margin, align)
    pw, tw, xs, rx = axis_tiles(width, tile, margin, align)
    tiles = tuple(
        Tile(y, y + th, x, x + tw, (i > 0, i < len(ys) - 1, j > 0, j < len(xs) - 1))
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    )
    return TileGrid(height, width, ph, pw, th, tw, margin, ry, rx, tiles)


@functools.lru_cache(maxsize=256)
def _profile(n: int, margin: int, ramp: int, before: bool, after: bool) -> np.ndarray:
    """1-D weights: 0 for the ``margin`` pixels next to a cut end, sin^2 ramp of ``ramp`` pixels, then 1."""
    d = np.arange(n, dtype=np.float64)
    w = np.ones(n, np.float64)
    j = np.arange(1, ramp + 1, dtype=np.float64)
    rise = np.sin(0.5 * math.pi * j / (ramp + 1)) ** 2 if ramp > 0 else np.zeros(0)
    for cut, dist in ((before, d), (after, n - 1 - d)):
        if not cut:
            continue
        edge = np.where(dist < margin, 0.0, 1.0)
        in_ramp = (dist >= margin) & (dist < margin + ramp)
        edge[in_ramp] = rise[(dist[in_ramp] - margin).astype(int)]
        w *= edge
    out = w.astype(np.float32)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=256)
def _blend_weights(tile_h: int, tile_w: int, margin: int, sides: Sides, ramp: tuple[int, int]) -> np.ndarray:
    wy = _profile(tile_h, margin, ramp[0], sides[0], sides[1])
    wx = _profile(tile_w, margin, ramp[1], sides[2], sides[3])
    out = np.outer(wy, wx).astype(np.float32)
    out.flags.writeable = False
    return out


def blend_weights(
    tile_h: int,
    tile_w: int,
    margin: int,
    sides: Sides = (True, True, True, True),
    ramp: int | tuple[int, int] | None = None,
) -> np.ndarray:
    """Blending weights of one tile, read-only float32 ``(tile_h, tile_w)``, cached.

    ``sides`` (top, bottom, left, right): True where the edge is cut (faces another tile); only
    those sides are tapered: exactly 0 over ``margin`` pixels, then a Hann ramp of ``ramp``
    pixels (per axis; ``None`` = ``margin``) up to 1. Frame-border sides keep weight 1.
    """
    r = (margin, margin) if ramp is None else (ramp, ramp) if isinstance(ramp, int) else tuple(ramp)
    return _blend_weights(int(tile_h), int(tile_w), int(margin), tuple(bool(s) for s in sides), (int(r[0]), int(r[1])))
