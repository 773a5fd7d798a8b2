"""TiledEngine: oracles (known predictors, local operators, whole-frame U-Net), coverage, OOM back-off."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from vidfilter.config import ModelConfig
from vidfilter.errors import ConfigError, UnsupportedInputError
from vidfilter.infer.device import autocast_dtype, resolve_device, set_threads
from vidfilter.infer.engine import InferenceMemoryError, TiledEngine
from vidfilter.models.unet import build_model

# -- stand-in models ---------------------------------------------------------------------------


class PixelFn(nn.Module):
    """Per-pixel predictor ``fn`` (no spatial context): tiling must reproduce it exactly."""

    def __init__(self, fn, margin=0, multiple=1):
        super().__init__()
        self.fn, self.margin, self.multiple = fn, margin, multiple

    def forward(self, x):
        return self.fn(x)


PIXEL_FNS = {
    "identity": lambda x: x,
    "plus_one": lambda x: x + 1,
    "double": lambda x: 2 * x,
    "nonlinear": lambda x: torch.sigmoid(3 * x) - x**2,
    "channel_mix": lambda x: torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True) ** 2], 1),
}


def pixel_oracle(name, frame):
    x = frame if frame.ndim == 3 else frame[None]
    out = {
        "identity": lambda: x,
        "plus_one": lambda: x + 1,
        "double": lambda: 2 * x,
        "nonlinear": lambda: 1 / (1 + np.exp(-3 * x)) - x**2,
        "channel_mix": lambda: np.stack([x.mean(0), x.max(0) ** 2]),
    }[name]()
    return out[0] if frame.ndim == 2 and out.shape[0] == 1 else out


class Blur(nn.Module):
    """Box blur of radius ``radius`` (a local operator with known reach)."""

    def __init__(self, radius, padding="zeros", channels=1):
        super().__init__()
        self.radius, self.margin, self.padding = radius, radius, padding
        k = 2 * radius + 1
        self.register_buffer("kernel", torch.full((channels, 1, k, k), 1.0 / k**2))

    def forward(self, x):
        r = self.radius
        if self.padding == "reflect":
            return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), self.kernel, groups=x.shape[1])
        return F.conv2d(x, self.kernel, padding=r, groups=x.shape[1])


def real_unet(depth, width, in_channels=1, out_channels=1, seed=0):
    """The package U-Net (plain output, no residual), seeded."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(width=width, depth=depth, in_channels=in_channels, out_channels=out_channels, residual=False)).eval()


def whole(model, frame, border=0):
    """The model on the whole frame, reflect-padded by ``border`` first and cropped back after
    (the engine's ``border``; frames with a side not above it are not padded)."""
    with torch.inference_mode():
        x = torch.from_numpy(frame if frame.ndim == 3 else frame[None])[None]
        b = border if min(x.shape[-2:]) > border else 0
        if b:
            x = torch.nn.functional.pad(x, (b, b, b, b), mode="reflect")
        y = model(x)[0]
        return (y[:, b : y.shape[-2] - b, b : y.shape[-1] - b] if b else y).numpy()


def rng_frame(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


# -- (1) predictors with known results ------------------------------------------------------------


@st.composite
def cases(draw):
    name = draw(st.sampled_from(sorted(PIXEL_FNS)))
    channels = draw(st.integers(1, 3)) if name != "channel_mix" else draw(st.integers(2, 3))
    height, width = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    return (
        name,
        draw(st.sampled_from([None, channels])),  # None: 2-D frame (only when one channel)
        height,
        width,
        draw(st.integers(4, 64)),  # tile
        draw(st.integers(0, 12)),  # overlap
        draw(st.sampled_from([1, 2, 4, 8])),  # multiple
        draw(st.integers(1, 5)),  # batch size
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_pixelwise_predictors_are_reproduced_exactly(case):
    """identity, x+1, 2x, nonlinear and channel-mixing per-pixel maps survive any tiling."""
    name, channels, height, width, tile, overlap, multiple, batch = case
    shape = (height, width) if channels in (None, 1) and name != "channel_mix" else (channels or 2, height, width)
    frame = rng_frame(shape, seed=height * 131 + width)
    engine = TiledEngine(
        PixelFn(PIXEL_FNS[name], overlap, multiple), tile=tile, overlap=overlap, batch_size=batch, device="cpu"
    )
    # Act
    out = engine(frame)
    # Assert
    expected = pixel_oracle(name, frame)
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (1, 300), (300, 1), (65, 129)])
def test_every_pixel_covered_including_tiny_frames(shape):
    """Frames smaller than a tile, single rows/columns and odd sizes come back whole: x + 1."""
    frame = rng_frame(shape)
    engine = TiledEngine(PixelFn(PIXEL_FNS["plus_one"], 6, 4), tile=32, device="cpu")
    np.testing.assert_allclose(engine(frame), frame + 1, atol=1e-6)


# -- (2) a local operator with known radius ------------------------------------------------------


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
@pytest.mark.parametrize(("shape", "tile", "radius"), [((70, 95), 24, 4), ((10, 14), 6, 1), ((101, 57), 40, 7)])
def test_blur_tiled_equals_whole_frame(padding, shape, tile, radius):
    """A blur of radius r: tiles cut with overlap >= r reproduce the whole-frame result, borders
    included (the frame border of every edge tile is the real frame border, padded the same way)."""
    frame = rng_frame(shape, seed=3)
    blur = Blur(radius, padding)
    engine = TiledEngine(blur, tile=tile, batch_size=3, device="cpu", precision="fp32")
    assert len(engine_grid(engine, shape)) > 1  # the test really cuts
    np.testing.assert_allclose(engine(frame), whole(blur, frame, engine.border)[0], atol=1e-6)


def engine_grid(engine, shape):
    from vidfilter.infer.tiling import tile_grid

    return tile_grid(*shape, engine.tile, engine.margin, engine.multiple)


def test_overlap_below_margin_warns_and_seams(caplog):
    """overlap < model.margin logs a warning, and the result really differs (the oracle has teeth)."""
    frame = rng_frame((60, 60), seed=4)
    blur = Blur(5)
    with caplog.at_level(logging.WARNING, logger="vidfilter.infer.engine"):
        engine = TiledEngine(blur, tile=20, overlap=1, device="cpu")
    assert "seams" in caplog.text
    assert np.abs(engine(frame) - whole(blur, frame, engine.border)[0]).max() > 1e-3


# -- real (tiny) U-Net: tiled == whole frame ------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "width", "shape", "tile"),
    [(3, 8, (200, 333), 128), (3, 8, (97, 250), 120), (5, 4, (300, 470), 352), (5, 4, (430, 470), 384)],
)
def test_unet_tiled_equals_whole_frame(depth, width, shape, tile):
    """Aligned tiles + the model's own reflect padding: tiled == whole-frame within 1e-4 (float32)."""
    model = real_unet(depth, width)
    frame = rng_frame(shape, seed=depth)
    engine = TiledEngine(model, tile=tile, batch_size=2, device="cpu", precision="fp32")
    assert len(engine_grid(engine, shape)) > 1
    out = engine(frame)
    ref = whole(model, frame, engine.border)[0]
    assert out.shape == shape
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_unet_no_seams_on_smooth_ramp():
    """(4) A smooth ramp through a random U-Net: equal to whole frame, and the x-gradient shows no
    spike at tile borders (max |d/dx| near cut columns is no larger than elsewhere)."""
    model = real_unet(3, 8, seed=1)
    h, w = 96, 300
    frame = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32), (h, w)).copy()
    frame += 0.2 * np.linspace(0, 1, h, dtype=np.float32)[:, None]
    engine = TiledEngine(model, tile=96, device="cpu", precision="fp32")
    grid = engine_grid(engine, (h, w))
    cuts = sorted({t.x0 for t in grid if t.x0 > 0} | {t.x1 for t in grid if t.x1 < w})
    assert cuts
    out = engine(frame)
    np.testing.assert_allclose(out, whole(model, frame, engine.border)[0], atol=1e-4)
    gx = np.abs(np.diff(out, axis=1))[8:-8]  # rows away from the top/bottom frame borders
    near = np.zeros(gx.shape[1], bool)
    for c in cuts:
        near[max(c - 3, 0) : c + 2] = True
    near[:16] = near[-16:] = False
    assert gx[:, near].max() <= gx[:, ~near].max() + 1e-5


def test_default_depth_net_enlarges_small_tile(caplog):
    """Tile 256 cannot hold 2*160 + 32 px for the depth-5 margin: the engine reads it as the core,
    uses 2*160 + 256 = 576 (not the bare 352, whose 32 px steps would cost ~60x) and says so."""
    model = real_unet(5, 4)
    with caplog.at_level(logging.WARNING, logger="vidfilter.infer.engine"):
        engine = TiledEngine(model, tile=256, device="cpu")
    assert engine.margin == model.margin == 160 and engine.tile == 576
    assert "using tile 576" in caplog.text


# -- (5) channels ---------------------------------------------------------------------------------


def test_two_channels_in_one_out():
    """A 2-channel frame through a 2-in/1-out U-Net: (C, H, W) -> (1, H, W), equal to whole frame."""
    model = real_unet(3, 8, in_channels=2, out_channels=1)
    frame = rng_frame((2, 150, 170), seed=5)
    engine = TiledEngine(model, tile=96, batch_size=3, device="cpu", precision="fp32")
    out = engine(frame)
    assert out.shape == (1, 150, 170)
    np.testing.assert_allclose(out, whole(model, frame, engine.border), atol=1e-4)


def test_shapes_2d_and_3d_and_channel_check():
    """2-D in -> 2-D out for one output channel; (1, H, W) in -> (1, H, W) out; wrong channels refused."""
    model = real_unet(3, 4)
    engine = TiledEngine(model, tile=64, device="cpu")
    frame = rng_frame((40, 50))
    assert engine(frame).shape == (40, 50)
    assert engine(frame[None]).shape == (1, 40, 50)
    with pytest.raises(UnsupportedInputError, match="input channel"):
        engine(rng_frame((3, 40, 50)))
    with pytest.raises(UnsupportedInputError, match="float"):
        engine((frame * 255).astype(np.uint8))


def test_infer_batch_mixed_sizes_matches_single_calls():
    """Tiles of several frames share batches; results equal one-frame calls (list and stacked array)."""
    model = real_unet(3, 4)
    engine = TiledEngine(model, tile=64, batch_size=5, device="cpu", precision="fp32")
    frames = [rng_frame(s, seed=i) for i, s in enumerate([(30, 40), (100, 75), (30, 40), (9, 200)])]
    outs = engine.infer_batch(frames)
    for f, o in zip(frames, outs):
        np.testing.assert_allclose(o, engine(f), atol=1e-5)
    stack = np.stack([rng_frame((30, 40), seed=i) for i in range(3)])
    out = engine.infer_batch(stack)
    assert isinstance(out, np.ndarray) and out.shape == (3, 30, 40)
    np.testing.assert_allclose(out[1], whole(model, stack[1], engine.border)[0], atol=1e-5)


# -- (6) out-of-memory back-off -------------------------------------------------------------------


class OomAbove(nn.Module):
    """Raises CUDA out-of-memory when the batch or the tile is too big; else x + 1."""

    def __init__(self, max_batch=1, max_side=10**9, error=torch.cuda.OutOfMemoryError):
        super().__init__()
        self.max_batch, self.max_side, self.error = max_batch, max_side, error
        self.margin, self.multiple, self.calls = 4, 8, []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if x.shape[0] > self.max_batch or max(x.shape[-2:]) > self.max_side:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x + 1


def test_oom_halves_batch_and_logs(caplog):
    """OOM for batches > 1: the engine halves 4 -> 2 -> 1, logs each step, and the result is right."""
    model = OomAbove(max_batch=1)
    engine = TiledEngine(model, tile=32, batch_size=4, device="cpu")
    frame = rng_frame((100, 90))
    with caplog.at_level(logging.WARNING, logger="vidfilter.infer.engine"):
        out = engine(frame)
    np.testing.assert_allclose(out, frame + 1, atol=1e-6)
    assert engine.batch_size == 1
    assert caplog.text.count("out of memory") == 2 and "batch size 2" in caplog.text and "batch size 1" in caplog.text


def test_oom_then_halves_tile(caplog):
    """Still out of memory at batch 1: the tile halves (staying >= 2*margin + multiple)."""
    model = OomAbove(max_batch=1, max_side=40, error=lambda msg: RuntimeError(msg))
    engine = TiledEngine(model, tile=128, batch_size=2, device="cpu", border=0)  # the pass is the tile itself
    frame = rng_frame((150, 130))
    with caplog.at_level(logging.WARNING, logger="vidfilter.infer.engine"):
        out = engine(frame)
    np.testing.assert_allclose(out, frame + 1, atol=1e-6)
    assert engine.tile == 32 and engine.tile >= 2 * engine.margin + model.multiple
    assert "retrying with tile 64" in caplog.text and "retrying with tile 32" in caplog.text


def test_oom_at_smallest_tile_raises_with_advice():
    """Nothing left to halve: an InferenceMemoryError (a VidfilterError and MemoryError) with advice."""
    engine = TiledEngine(OomAbove(max_batch=0), tile=64, batch_size=2, device="cpu")
    with pytest.raises(InferenceMemoryError, match="bf16") as info:
        engine(rng_frame((50, 50)))
    assert isinstance(info.value, MemoryError)


def test_other_errors_propagate():
    """Only out-of-memory is retried; other errors surface unchanged."""
    engine = TiledEngine(OomAbove(max_batch=0, error=lambda msg: RuntimeError("shape mismatch")), tile=64, device="cpu")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine(rng_frame((20, 20)))


# -- device / precision ---------------------------------------------------------------------------


def test_resolve_device_and_precision():
    """cpu resolves; CUDA requested without CUDA is a ConfigError with advice; autocast dtypes."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:1")
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None  # training: float32 on a CPU
    assert autocast_dtype("fp32", cpu, inference=True) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError):
        autocast_dtype("int8", cpu)
    previous = set_threads(1)
    try:
        assert torch.get_num_threads() == 1
    finally:
        set_threads(previous)


def test_auto_precision_follows_the_cpus_bf16_support(monkeypatch):
    """Inference's auto precision is bf16 exactly where the CPU reports native bf16 (asked of
    torch, independently of vidfilter's helper), and float32 when that support is hidden."""
    from vidfilter.infer import device

    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert device.cpu_has_native_bf16() == native
    assert TiledEngine(real_unet(3, 4), tile=64, device="cpu").autocast == (torch.bfloat16 if native else None)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert autocast_dtype("auto", cpu, inference=True) is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert autocast_dtype("auto", cpu, inference=True) == torch.bfloat16


def test_bf16_autocast_close_to_fp32():
    """precision='bf16' runs under autocast and stays close to float32; output is float32."""
    model = real_unet(3, 4)
    frame = rng_frame((70, 90))
    ref = TiledEngine(model, tile=64, device="cpu", precision="fp32")(frame)
    out = TiledEngine(model, tile=64, device="cpu", precision="bf16")(frame)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() < 0.05 * (np.abs(ref).max() + 1e-3)


def test_engine_attributes():
    """engine.margin / tile / device are exposed; overlap=None takes the model's margin."""
    model = real_unet(3, 4)
    engine = TiledEngine(model, tile=100, device="cpu")
    assert engine.margin == model.margin and engine.tile == 96 and engine.device == torch.device("cpu")
    with pytest.raises(ConfigError, match="overlap"):
        TiledEngine(lambda x: x, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_channels_last_matches_cpu():
    """On CUDA (bf16 autocast, channels-last) the tiled result is close to CPU float32."""
    model = real_unet(3, 8)
    frame = rng_frame((300, 260))
    ref = TiledEngine(model, tile=128, device="cpu", precision="fp32")(frame)
    out = TiledEngine(model, tile=128, device="cuda", precision="auto")(frame)
    assert np.abs(out - ref).max() < 0.05 * (np.abs(ref).max() + 1e-3)
    fp32 = TiledEngine(model, tile=128, device="cuda", precision="fp32")(frame)
    np.testing.assert_allclose(fp32, ref, atol=1e-3)


@pytest.mark.slow
def test_compile_matches_eager():
    """torch.compile gives the same result (slow: compiles the graph)."""
    model = real_unet(3, 4)
    frame = rng_frame((80, 100))
    ref = TiledEngine(model, tile=64, device="cpu", precision="fp32")(frame)
    out = TiledEngine(model, tile=64, device="cpu", precision="fp32", compile=True)(frame)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_border_gives_frame_edges_image_context():
    """A zero-padded blur darkens the frame's edges; the engine's reflect border removes that
    (a flat frame stays flat to the edge), and border=0 gives the plain whole-frame result."""
    blur = Blur(3, "zeros")
    flat = np.full((40, 56), 0.5, np.float32)
    plain = TiledEngine(blur, tile=64, device="cpu", border=0, precision="fp32")(flat)
    assert plain[0, 0] < 0.4 and np.allclose(plain, whole(blur, flat)[0], atol=1e-6)
    bordered = TiledEngine(blur, tile=64, device="cpu", border=4, precision="fp32")
    np.testing.assert_allclose(bordered(flat), 0.5, atol=1e-6)
    frame = rng_frame((40, 56), seed=5)
    np.testing.assert_allclose(bordered(frame), whole(blur, frame, 4)[0], atol=1e-6)
    with pytest.raises(ConfigError, match="border"):
        TiledEngine(blur, device="cpu", border=-1)


def test_cpu_runs_channels_last_and_matches_the_plain_model():
    """On the CPU the engine runs the U-Net in channels-last memory format (faster with oneDNN);
    its output equals the model run in the default format on the whole frame."""
    torch.manual_seed(3)
    net = build_model(ModelConfig(depth=3, width=8)).eval()
    x = torch.rand(1, 1, 96, 80)
    with torch.no_grad():
        ref = net(x)[0, 0].numpy()
    engine = TiledEngine(net, tile=256, device="cpu", border=0)
    assert engine.channels_last
    assert next(net.parameters()).is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(engine(x[0, 0].numpy()), ref, atol=1e-5)
