"""The Noise2Noise U-Net: architecture, parameter count, padding, residual mode, channels-last."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidfilter.config import ModelConfig, Preset
from vidfilter.models import UNet, build_model
from vidfilter.models.unet import decoder_head_widths


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_params(n_in: int, n_out: int, w: int, depth: int) -> int:
    """Independent count from the layer list of the paper's network (docs/architecture.md)."""
    conv = lambda a, b: a * b * 9 + b  # noqa: E731
    h1, h2 = (64, 32) if w == 48 else (max(8, round(64 * w / 48)), max(8, round(32 * w / 48)))
    total = conv(n_in, w) + conv(w, w) + (depth - 1) * conv(w, w) + conv(w, w)
    total += conv(2 * w, 2 * w) + conv(2 * w, 2 * w)  # first decoder stage
    total += (depth - 2) * (conv(3 * w, 2 * w) + conv(2 * w, 2 * w))
    total += conv(2 * w + n_in, h1) + conv(h1, h2) + conv(h2, n_out)
    return total


def test_paper_parameter_count() -> None:
    """Width 48, depth 5, 1 in / 1 out: exactly 988 609 parameters (the paper's ~0.99 M)."""
    model = build_model(ModelConfig(preset=Preset.paper))
    assert n_params(model) == 988_609
    assert model.width == 48 and model.depth == 5


def test_fast_parameter_count() -> None:
    """Preset fast = width 16: 110 336 parameters; head widths 21/11."""
    model = build_model(ModelConfig(preset=Preset.fast))
    assert model.width == 16
    assert decoder_head_widths(16) == (21, 11)
    assert n_params(model) == 110_336 == expected_params(1, 1, 16, 5)


@pytest.mark.parametrize("n_in,n_out,w,depth", [(1, 1, 48, 5), (3, 3, 8, 4), (2, 1, 4, 2), (1, 1, 12, 6)])
def test_parameter_count_formula(n_in: int, n_out: int, w: int, depth: int) -> None:
    """Parameter counts follow the documented layer list for other widths/depths."""
    assert n_params(UNet(n_in, n_out, width=w, depth=depth)) == expected_params(n_in, n_out, w, depth)


def test_head_widths_scale_with_minimum() -> None:
    assert decoder_head_widths(48) == (64, 32)
    assert decoder_head_widths(96) == (128, 64)
    assert decoder_head_widths(4) == (8, 8)


def test_temporal_channel_adds_input() -> None:
    """temporal_channel != 'none' adds one input channel."""
    model = build_model(ModelConfig(width=4, depth=2, temporal_channel="median"))
    assert model.in_channels == 2
    assert model(torch.rand(1, 2, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        model(torch.rand(1, 1, 16, 16))


def test_init_xavier_and_zero_bias() -> None:
    """Biases start at zero, weights are Xavier-normal (std = sqrt(2 / (fan_in + fan_out)))."""
    torch.manual_seed(0)
    model = UNet(1, 1, width=48, depth=5)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert torch.all(m.bias == 0)
    conv = model.dec[1][0]  # 144 -> 96
    fan_in, fan_out = 144 * 9, 96 * 9
    assert conv.weight.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)


def test_output_is_linear_and_others_leaky() -> None:
    """LeakyReLU(0.1) everywhere but after the last conv: the output can be negative and unbounded."""
    slopes = {m.negative_slope for m in UNet(1, 1, width=4, depth=2).modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    model = UNet(1, 1, width=4, depth=2)
    assert isinstance(list(model.children())[-1], nn.Conv2d)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (2, 3), (5, 37), (31, 33), (32, 32), (70, 45)])
def test_any_size_works(shape: tuple[int, int]) -> None:
    """Inputs smaller than or not a multiple of 2**depth are padded and cropped back."""
    model = UNet(1, 1, width=4, depth=5)
    y = model(torch.rand(2, 1, *shape))
    assert y.shape == (2, 1, *shape)
    assert torch.isfinite(y).all()


def test_padding_is_reflect_on_bottom_right() -> None:
    """Forward equals running the net on the reflect-padded input and cropping the top-left corner."""
    torch.manual_seed(1)
    model = UNet(1, 1, width=4, depth=3).eval()
    x = torch.rand(1, 1, 21, 13)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="reflect")
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :21, :13], atol=1e-6)


def test_aligned_tiles_match_whole_frame() -> None:
    """A tile with origin on the 2**depth grid and `margin` context reproduces whole-frame output."""
    torch.manual_seed(2)
    model = UNet(1, 1, width=4, depth=3).eval()
    m = model.margin  # 40
    x = torch.rand(1, 1, 150, 170)
    with torch.no_grad():
        whole = model(x)
        y0, x0 = 48, 56  # multiples of 8
        tile = model(x[..., y0 - m : y0 + 16 + m, x0 - m : x0 + 24 + m])
        core = tile[..., m : m + 16, m : m + 24]
        assert torch.allclose(core, whole[..., y0 : y0 + 16, x0 : x0 + 24], atol=1e-5)
        # a tile ending at the frame border pads like the whole frame does
        edge = model(x[..., y0 - m :, x0 - m :])
        assert torch.allclose(edge[..., m:, m:], whole[..., y0:, x0:], atol=1e-5)
        # an unaligned origin does not (pooling grid shifts)
        off = model(x[..., y0 - m + 3 : y0 + 16 + m + 3, x0 - m : x0 + 24 + m])
        assert not torch.allclose(off[..., m - 3 : m + 13, m : m + 24], whole[..., y0:y0 + 16, x0 : x0 + 24], atol=1e-5)


def test_residual_is_identity_at_init() -> None:
    """residual=True: untrained model returns its input's first n_out channels exactly."""
    model = build_model(ModelConfig(width=4, depth=3, residual=True, gate=False, temporal_channel="max"))
    x = torch.rand(2, 2, 19, 27)
    assert torch.equal(model(x), x[:, :1])
    assert torch.all(model.out.weight == 0)


def test_gate_starts_at_the_mean_and_stays_between_frame_and_statistic() -> None:
    """gate=True: output = plate + sigmoid(g) (frame - plate), plate = stat + c: the mean of frame and
    statistic at init, and between the two whenever the correction c is zero."""
    model = build_model(ModelConfig(width=4, depth=3, temporal_channel="max"))
    assert model.gate and not model.residual
    x = torch.rand(2, 2, 19, 27)
    assert torch.allclose(model(x), 0.5 * (x[:, :1] + x[:, 1:]))
    assert model.out.out_channels == 2  # correction and gate
    with torch.no_grad():
        model.out.weight[1:].normal_(std=3.0)  # gate only; correction stays zero
    y = model(x)
    lo, hi = torch.minimum(x[:, :1], x[:, 1:]), torch.maximum(x[:, :1], x[:, 1:])
    assert torch.all(y >= lo - 1e-6) and torch.all(y <= hi + 1e-6)
    assert not torch.allclose(y, 0.5 * (x[:, :1] + x[:, 1:]))
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.copy_(torch.tensor([0.25, -30.0]))  # plate = stat + 0.25, gate closed
    assert torch.allclose(model(x), x[:, 1:] + 0.25, atol=1e-5)
    with pytest.raises(ValueError, match="temporal statistic"):
        UNet(1, 1, width=4, depth=2, gate=True)


def test_residual_learns() -> None:
    """The residual branch receives gradients (zero last layer does not freeze the network)."""
    model = UNet(1, 1, width=4, depth=2, residual=True)
    x = torch.rand(1, 1, 16, 16)
    (model(x) - 0.5).abs().mean().backward()
    assert model.out.weight.grad is not None and model.out.weight.grad.abs().sum() > 0


def test_channels_last_matches() -> None:
    """channels_last model and input give the same result as contiguous ones."""
    torch.manual_seed(3)
    model = UNet(2, 1, width=4, depth=3).eval()
    x = torch.rand(2, 2, 37, 50)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last))
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-5)


def _reference_forward(model: UNet, x: torch.Tensor) -> torch.Tensor:
    """The U-Net's forward written out layer by layer, skips concatenated as they come (no casts)."""
    import torch.nn.functional as F

    from vidfilter.models.unet import pad_to_multiple

    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, model.multiple)
    skips, y = [xp], F.max_pool2d(model.enc0(xp), 2)
    for stage in model.enc:
        skips.append(y)
        y = F.max_pool2d(stage(y), 2)
    y = model.bottleneck(y)
    for stage in model.dec:
        y = stage(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
    return model.out(y)[..., :h, :w] + x[:, :1]


def test_bf16_autocast_keeps_decoder_maps_bf16_channels_last() -> None:
    """Under CPU bf16 autocast every decoder stage gets one bf16, channels-last map (a float32 skip
    would promote the full-resolution concatenation to float32 and drop the layout), and the output
    is the same as the layer-by-layer reference's."""
    torch.manual_seed(5)
    model = UNet(2, 1, width=8, depth=3, residual=True).eval().to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    seen: list[tuple[torch.dtype, bool]] = []
    for stage in model.dec:
        stage.register_forward_pre_hook(
            lambda _m, args: seen.append((args[0].dtype, args[0].is_contiguous(memory_format=torch.channels_last)))
        )
    x = torch.rand(1, 2, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x).float()
        assert seen == [(torch.bfloat16, True)] * len(model.dec)
        ref = _reference_forward(model, x).float()
    assert seen[-1][0] == torch.float32  # what the plain concatenation does to the last stage
    assert torch.equal(out, ref)


def test_in_place_activations_train() -> None:
    """In-place LeakyReLU leaves the gradients those of the out-of-place network."""
    torch.manual_seed(6)
    model = UNet(1, 1, width=4, depth=2)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    plain = UNet(1, 1, width=4, depth=2)
    plain.load_state_dict(model.state_dict())
    for m in plain.modules():
        if isinstance(m, nn.LeakyReLU):
            m.inplace = False
    assert any(m.inplace for m in model.modules() if isinstance(m, nn.LeakyReLU))
    x = torch.rand(2, 1, 24, 24)
    for net in (model, plain):
        (net(x) - 0.3).pow(2).mean().backward()
    for (name, a), b in zip(model.named_parameters(), plain.parameters()):
        assert a.grad is not None and torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_config_property_round_trips() -> None:
    """.config is the ModelConfig dict; building from it gives the same architecture."""
    cfg = ModelConfig(preset=Preset.fast, depth=4, residual=True, temporal_channel="none")
    model = build_model(cfg)
    assert model.config == cfg.model_dump(mode="json")
    again = build_model(model.config)
    assert n_params(again) == n_params(model)
    direct = UNet(1, 1, width=8, depth=3)
    assert build_model(direct.config).width == 8


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        UNet(1, 1, depth=0)
    with pytest.raises(ValueError, match="residual"):
        UNet(1, 2, residual=True)
