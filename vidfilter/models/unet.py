"""The Noise2Noise U-Net (Lehtinen et al. 2018) used by the paper, with width/depth presets.

Architecture with width ``w`` and ``depth`` poolings (``w = 48``, ``depth = 5`` is the paper's
network, 988 609 parameters for one input and one output channel):

- encoder: conv(n_in -> w), conv(w -> w), max-pool; then ``depth - 1`` times [conv(w -> w),
  max-pool]; bottleneck conv(w -> w);
- decoder: nearest up-sampling and concatenation with the matching pooled skip tensor; the first
  stage is conv(2w -> 2w), conv(2w -> 2w), the next ``depth - 2`` stages conv(3w -> 2w),
  conv(2w -> 2w); the last stage concatenates the network input: conv(2w + n_in -> 64),
  conv(64 -> 32), then a linear conv(32 -> n_out). For widths other than 48 the 64/32 become
  ``round(64 w / 48)`` / ``round(32 w / 48)`` (at least 8).
- 3x3 convolutions with zero padding, LeakyReLU(0.1) after every conv but the last,
  Xavier-normal weights, zero biases.

``forward`` pads the input (reflect, on the bottom/right only) to a multiple of ``2**depth`` and
crops the output back, so any ``H, W >= 1`` works. Because padding is only added after the
last row/column, a tile whose origin is a multiple of :attr:`UNet.multiple` sees the same pooling
grid (and the same bottom/right padding when it ends at the frame border) as the whole frame:
tiled inference with such tiles and an overlap of :attr:`UNet.margin` reproduces whole-frame
inference to float tolerance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidfilter.config import ModelConfig
from vidfilter.models.receptive_field import unet_receptive_field

__all__ = ["UNet", "build_model", "decoder_head_widths"]

_SLOPE = 0.1


def decoder_head_widths(width: int) -> tuple[int, int]:
    """Channels of the last decoder stage: (64, 32) for width 48, scaled with ``width`` otherwise."""
    if width == 48:
        return 64, 32
    return max(8, round(64 * width / 48)), max(8, round(32 * width / 48))


def _conv(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, kernel_size=3, padding=1)


def _act() -> nn.LeakyReLU:
    """The activation after every conv but the last, in place: a convolution's output is used once."""
    return nn.LeakyReLU(_SLOPE, inplace=True)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two axes on the bottom/right to a multiple of ``multiple``.

    Uses reflect padding; a side shorter than its padding is extended by reflecting repeatedly
    (a side of 1 pixel is replicated), which equals reflect padding wherever that is defined.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if ph < h and pw < w:
        return F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x.index_select(-2, _reflect_index(h, h + ph, x.device)).index_select(-1, _reflect_index(w, w + pw, x.device))


def _reflect_index(n: int, total: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(total, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    k = idx % period
    return torch.where(k >= n, period - k, k)


class UNet(nn.Module):
    """Noise2Noise U-Net.

    Parameters
    ----------
    in_channels
        Channels of the network input (frame channels plus an optional temporal channel).
    out_channels
        Channels of the output (the background estimate).
    width
        Channels per encoder stage (48 in the paper).
    depth
        Number of 2x max-poolings (5 in the paper); inputs are padded to ``2**depth``.
    residual
        Output ``x[:, :out_channels] + net(x)`` with the last conv zero-initialised, so the
        untrained network is the identity.
    gate
        Output ``plate + sigmoid(g) * (frame - plate)`` with ``plate = stat + c``, where
        ``frame = x[:, :C]``, ``stat = x[:, C:2C]`` is the temporal statistic channel and ``c, g``
        are the network's two outputs per channel: per pixel it decides how much of the current
        frame to keep (the plate's current texture) and how much of the statistic, corrected where
        the statistic still shows an animal (one that never moved). Needs the temporal channel.
    config
        The :class:`~vidfilter.config.ModelConfig` dict this network was built from (kept for
        bundles); built from the other arguments when omitted.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        *,
        width: int = 48,
        depth: int = 5,
        residual: bool = False,
        gate: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if residual and out_channels > in_channels:
            raise ValueError(f"residual output needs out_channels <= in_channels, got {out_channels} > {in_channels}")
        if gate and in_channels < 2 * out_channels:
            raise ValueError(
                f"gate output needs the frame and a temporal statistic channel: in_channels {in_channels} < 2 x {out_channels}"
            )
        self.gate = gate
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.width = width
        self.depth = depth
        self.residual = residual
        w = width
        self.enc0 = nn.Sequential(_conv(in_channels, w), _act(), _conv(w, w), _act())
        self.enc = nn.ModuleList(nn.Sequential(_conv(w, w), _act()) for _ in range(depth - 1))
        self.bottleneck = nn.Sequential(_conv(w, w), _act())
        # decoder stages from deepest (index 0) to shallowest (index depth - 1)
        dec: list[nn.Module] = []
        below = w  # channels arriving from the level below
        for level in range(depth - 1, 0, -1):
            dec.append(
                nn.Sequential(_conv(below + w, 2 * w), _act(), _conv(2 * w, 2 * w), _act())
            )
            below = 2 * w
        h1, h2 = decoder_head_widths(w)
        dec.append(
            nn.Sequential(_conv(below + in_channels, h1), _act(), _conv(h1, h2), _act())
        )
        self.dec = nn.ModuleList(dec)
        # gate: a correction of the statistic (the plate estimate) and a gate logit per channel
        self.out = _conv(h2, 2 * out_channels if gate else out_channels)
        self._init_weights()
        if config is None:
            config = ModelConfig(width=width, depth=depth, in_channels=in_channels, out_channels=out_channels,
                                 residual=residual, gate=gate).model_dump(mode="json")
        self._config = dict(config)
        rf = unet_receptive_field(depth)
        self._margin = rf.margin
        self._radius = rf.radius

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
        if self.residual or self.gate:  # start at the identity / at the mean of frame and statistic
            nn.init.zeros_(self.out.weight)

    # -- properties used by infer/ and distributed/ -------------------------------------------
    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (``2**depth``); tile origins should sit on it."""
        return 2**self.depth

    @property
    def margin(self) -> int:
        """Context in pixels needed on each side of a tile for seamless output (multiple of :attr:`multiple`)."""
        return self._margin

    @property
    def radius(self) -> int:
        """Exact receptive radius in pixels (``margin`` is this rounded up to :attr:`multiple`)."""
        return self._radius

    @property
    def config(self) -> dict[str, Any]:
        """The ModelConfig dict this network was built from."""
        return dict(self._config)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, width={self.width}, "
            f"depth={self.depth}, residual={self.residual}"
        )

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Background estimate for ``x`` of shape (N, in_channels, H, W); returns (N, out_channels, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, self.multiple)
        skips = [xp]
        y = F.max_pool2d(self.enc0(xp), 2)
        for stage in self.enc:
            skips.append(y)
            y = F.max_pool2d(stage(y), 2)
        y = self.bottleneck(y)
        for stage in self.dec:
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            skip = skips.pop()
            # the input skip is float32 under autocast: cast it, or torch.cat promotes the whole
            # map to float32 and loses the channels-last layout (0.7 s of 2.5 at 2048² on a CPU);
            # the convolution casts its input to the same dtype, so the values do not change
            y = stage(torch.cat([y, skip.to(y.dtype)], dim=1))
        y = self.out(y)[..., :h, :w]
        if self.gate:
            c = self.out_channels
            frame, stat = x[:, :c], x[:, c : 2 * c]
            plate = stat + y[:, :c]  # the statistic, corrected where it still shows an animal
            return plate + torch.sigmoid(y[:, c:]) * (frame - plate)
        if self.residual:
            y = y + x[:, : self.out_channels]
        return y


def build_model(cfg: ModelConfig | dict[str, Any]) -> UNet:
    """Build the U-Net a :class:`~vidfilter.config.ModelConfig` describes.

    ``in_channels`` of the network is ``cfg.in_channels`` plus one when a temporal channel is
    requested; the width comes from ``cfg.resolved_width()`` (preset ``paper`` 48, ``fast`` 16).
    """
    if isinstance(cfg, dict):
        cfg = ModelConfig.model_validate(cfg)
    if cfg.temporal_channel == "auto":  # training resolves it from the polarity; bare builds have none
        cfg = cfg.model_copy(update={"temporal_channel": "none"})
    n_in = cfg.in_channels + (1 if cfg.temporal_channel != "none" else 0)
    gate = cfg.gate and cfg.temporal_channel != "none"
    return UNet(
        n_in,
        cfg.out_channels,
        width=cfg.resolved_width(),
        depth=cfg.depth,
        residual=cfg.residual and not gate,
        gate=gate,
        config=cfg.model_dump(mode="json"),
    )
