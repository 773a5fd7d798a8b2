"""Receptive-field arithmetic of the U-Net (pure Python: no torch, no numpy).

The tile margin that makes tiled inference seamless is derived here and reused by ``infer/``
(tile overlap) and ``distributed/`` (``map_overlap`` depth), the way dask-image derives its halo
from the filter's kernel size.

Two computations are offered and agree:

- :func:`receptive_field_size` runs the standard recurrence over a layer list
  (``r += (k - 1) * j``; ``j *= stride``; nearest up-sampling divides ``j``), walking the deepest
  path of the network (encoder, bottleneck, decoder). Its half-width is the textbook radius.
- :func:`unet_extent` propagates exact integer intervals backwards through the whole graph
  (skip connections included) for every output alignment modulo ``2**depth``. Max-pooling and
  nearest up-sampling are not centred, so one side can reach a few pixels further than the
  textbook half-width; :class:`ReceptiveField.radius` is the larger of the two, so a margin of
  ``radius`` pixels on every side is always enough.

For the paper network (depth 5, 3x3 convolutions) the receptive field is 286 px wide; the radius
is 143 px (exact one-sided reach up to 158 px, see :func:`unet_extent`) and the recommended tile
margin, rounded up to a multiple of 32, is 160 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Layer", "ReceptiveField", "receptive_field_size", "unet_extent", "unet_layers",
    "unet_receptive_field"]


@dataclass(frozen=True)
class Layer:
    """One spatial operation on the deepest path.

    Parameters
    ----------
    kind
        ``"conv"`` (kernel ``kernel``, stride ``stride``), ``"pool"`` (window ``kernel``,
        stride ``stride``) or ``"up"`` (nearest up-sampling by ``stride``).
    kernel
        Kernel or window side in pixels (1 for up-sampling).
    stride
        Down-sampling stride, or up-sampling factor for ``"up"``.
    """

    kind: Literal["conv", "pool", "up"]
    kernel: int = 3
    stride: int = 1


def unet_layers(depth: int = 5, kernel: int = 3) -> list[Layer]:
    """The deepest path of the Noise2Noise U-Net with ``depth`` poolings.

    Encoder: conv, conv, pool, then ``depth - 1`` times [conv, pool]; bottleneck conv; decoder:
    ``depth`` times [up, conv, conv]; output conv.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    conv = Layer("conv", kernel, 1)
    pool = Layer("pool", 2, 2)
    up = Layer("up", 1, 2)
    layers = [conv, conv, pool]
    for _ in range(depth - 1):
        layers += [conv, pool]
    layers.append(conv)  # bottleneck
    for _ in range(depth):
        layers += [up, conv, conv]
    layers.append(conv)  # linear output conv
    return layers


def receptive_field_size(layers: list[Layer]) -> int:
    """Receptive-field width in input pixels by the standard recurrence.

    ``r`` starts at 1 and ``j`` (the distance in input pixels between neighbouring positions of
    the current layer) at 1; a layer of kernel ``k`` adds ``(k - 1) * j`` and a stride multiplies
    ``j``; an up-sampling divides ``j`` by its factor and adds nothing.
    """
    r = 1.0
    j = 1.0
    for layer in layers:
        if layer.kind == "up":
            j /= layer.stride
            continue
        r += (layer.kernel - 1) * j
        j *= layer.stride
    return int(round(r))


def _need(node: str, level: int, depth: int, lo: int, hi: int, pad: int) -> tuple[int, int]:
    """Input interval (level 0) that output interval ``[lo, hi]`` of ``node`` at ``level`` reads.

    Nodes: ``"x"`` (input), ``"enc"`` (encoder conv output at ``level``), ``"pool"`` (pooled
    tensor at ``level``), ``"dec"`` (decoder output at ``level``; ``dec`` at ``depth`` is the
    bottleneck). ``pad`` is the conv half-kernel.
    """
    if node == "x":
        return lo, hi
    if node == "pool":  # max-pool 2x2 of enc at level - 1
        return _need("enc", level - 1, depth, 2 * lo, 2 * hi + 1, pad)
    if node == "enc":
        if level == 0:  # conv(conv(x))
            return _need("x", 0, depth, lo - 2 * pad, hi + 2 * pad, pad)
        return _need("pool", level, depth, lo - pad, hi + pad, pad)
    if node == "dec":
        if level == depth:  # bottleneck conv on the last pooled tensor
            return _need("pool", depth, depth, lo - pad, hi + pad, pad)
        # two convs on cat(up(dec[level+1]), skip)
        a, b = lo - 2 * pad, hi + 2 * pad
        deep = _need("dec", level + 1, depth, a // 2, b // 2, pad)
        skip = _need("x" if level == 0 else "pool", level, depth, a, b, pad)
        return min(deep[0], skip[0]), max(deep[1], skip[1])
    raise ValueError(node)


def unet_extent(depth: int = 5, kernel: int = 3) -> tuple[int, int]:
    """Exact reach of one output pixel: (pixels to the left/top, pixels to the right/bottom).

    Maximum over the ``2**depth`` alignments of the output pixel, through every path of the graph
    (skip connections included). Positions are measured in the padded frame the network sees.
    """
    pad = (kernel - 1) // 2
    left = right = 0
    for p in range(2**depth):
        lo, hi = _need("dec", 0, depth, p - pad, p + pad, pad)  # output conv then decoder
        left = max(left, p - lo)
        right = max(right, hi - p)
    return left, right


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a U-Net and the tile margin derived from it.

    Attributes
    ----------
    size
        Width of the receptive field by the standard recurrence (286 for the paper network).
    radius
        Pixels of context an output pixel may depend on, on either side: the larger of the
        textbook half-width ``ceil((size - 1) / 2)`` and the exact one-sided reach.
    extent
        Exact (left, right) reach over all alignments, from :func:`unet_extent`.
    multiple
        ``2**depth``: input sides are padded to it, tile origins should sit on it.
    margin
        Recommended tile overlap on each side: ``radius`` rounded up to a multiple of ``multiple``.
    """

    size: int
    radius: int
    extent: tuple[int, int]
    multiple: int
    margin: int


def unet_receptive_field(depth: int = 5, kernel: int = 3) -> ReceptiveField:
    """Receptive field, radius and recommended tile margin of the U-Net with ``depth`` poolings.

    Examples
    --------
    >>> rf = unet_receptive_field(5)
    >>> rf.size, rf.margin
    (286, 160)
    """
    size = receptive_field_size(unet_layers(depth, kernel))
    extent = unet_extent(depth, kernel)
    half = (size - 1 + 1) // 2  # ceil((size - 1) / 2)
    radius = max(half, *extent)
    multiple = 2**depth
    margin = -(-radius // multiple) * multiple
    return ReceptiveField(size=size, radius=radius, extent=extent, multiple=multiple, margin=margin)
