"""Block-by-block processing of huge arrays: equal to the engine on the whole image, aligned
geometry, (T, H, W) inputs from Zarr, resume after a crash, refusal to overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from torch import nn

from vidfilter.config import Config
from vidfilter.errors import OutputExistsError
from vidfilter.infer.blocks import BlockLayout, process_array
from vidfilter.infer.engine import TiledEngine
from vidfilter.io.scaling import from_float, to_float
from vidfilter.models import build_model, save_bundle


def _model(depth: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(Config().override({"model.width": 4, "model.depth": depth, "model.residual": False}).model)


def _cfg(**kw) -> Config:
    return Config().override({"infer.device": "cpu", **kw})


def _read(store) -> np.ndarray:
    return zarr.open_array(str(store / "background" / "0"), mode="r")[:]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).random((700, 900), dtype=np.float32)


@pytest.mark.parametrize("depth", [3, 5])
def test_blocks_equal_whole_image_engine(tmp_path, image, depth):
    """700 x 900 in 256-px blocks equals the engine on the whole image within 1e-4 (depth 3 and 5)."""
    model = _model(depth)
    cfg = _cfg()
    expected = TiledEngine(model, tile=cfg.infer.tile, device="cpu")(image)

    summary = process_array(image, tmp_path / "out.zarr", model, cfg, block=256)

    out = _read(tmp_path / "out.zarr")
    assert summary.status == "done" and summary.blocks == 3 * 4
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)


def test_halo_is_needed(image):
    """Control: each block run alone (no halo) differs from the whole image - the halo does the work."""
    model = _model(3)
    eng = TiledEngine(model, tile=1024, device="cpu")
    whole = eng(image)
    alone = np.zeros_like(whole)
    for y in range(0, 700, 256):
        for x in range(0, 900, 256):
            alone[y : y + 256, x : x + 256] = eng(image[y : y + 256, x : x + 256])
    assert np.abs(alone - whole).max() > 1e-3


def test_layout_alignment_and_clamping():
    """Blocks and halos sit on the model's multiple; halos are clamped at the image border."""
    model = _model(3)  # margin 40, multiple 8
    lay = BlockLayout.for_model((700, 900), model, block=250, halo=33)
    assert (lay.block, lay.halo, lay.multiple) == (248, 40, 8)
    assert (lay.n_y, lay.n_x, len(lay)) == (3, 4, 12)
    read, crop = lay.region(0, 0)
    assert (read[0].start, read[0].stop, read[1].start, read[1].stop) == (0, 288, 0, 288)
    assert (crop[0].start, crop[0].stop) == (0, 248)
    read, crop = lay.region(2, 3)  # bottom-right block: ends at the true border
    assert (read[0].start, read[0].stop, read[1].start, read[1].stop) == (456, 700, 704, 900)
    assert (crop[0].start, crop[0].stop, crop[1].start, crop[1].stop) == (40, 244, 40, 196)
    for i in range(len(lay)):
        _, iy, ix = lay.coords(i)
        (ry, rx), _ = lay.region(iy, ix)
        assert ry.start % 8 == 0 and rx.start % 8 == 0
        assert lay.index(*lay.coords(i)) == i


def test_movie_from_zarr_path_with_input_dtype(tmp_path):
    """A (T, H, W) uint8 Zarr movie, written back as uint8: each frame equals the engine's frame."""
    rng = np.random.default_rng(2)
    movie = rng.integers(0, 256, size=(3, 300, 330), dtype=np.uint8)
    src = zarr.create_array(str(tmp_path / "in.zarr"), shape=movie.shape, chunks=(1, 100, 100), dtype=np.uint8)
    src[:] = movie
    model = _model(3)
    eng = TiledEngine(model, tile=1024, device="cpu")

    process_array(str(tmp_path / "in.zarr"), tmp_path / "out.zarr", model, _cfg(), block=128, dtype="input")

    out = _read(tmp_path / "out.zarr")
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert out.dtype == np.uint8 and out.shape == movie.shape
    assert root["background"]["0"].chunks == (1, 128, 128)
    assert [a["name"] for a in root["background"].attrs["ome"]["multiscales"][0]["axes"]] == ["t", "y", "x"]
    assert root.attrs["vidfilter"]["complete"] is True
    for t in range(3):
        expected = from_float(eng(to_float(movie[t])), np.uint8)
        assert np.abs(out[t].astype(int) - expected.astype(int)).max() <= 1  # rounding at exact .5 only


class _Flaky(nn.Module):
    """Wraps a network; raises on forward call number ``fail_at`` (a crash mid-run)."""

    def __init__(self, net, fail_at=None):
        super().__init__()
        self.net, self.fail_at, self.calls = net, fail_at, 0
        self.margin, self.multiple, self.in_channels = net.margin, net.multiple, net.in_channels

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.net(x)


def test_resume_after_crash_redoes_only_missing_blocks(tmp_path, image):
    """A run that crashes after some blocks leaves a partial store; re-running finishes only the
    missing blocks and the result equals an uninterrupted run."""
    net = _model(3)
    cfg = _cfg()
    full = process_array(image, tmp_path / "ref.zarr", net, cfg, block=256)
    with pytest.raises(RuntimeError, match="simulated crash"):
        process_array(image, tmp_path / "out.zarr", _Flaky(net, fail_at=6), cfg, block=256)
    assert not (tmp_path / "out.zarr").exists() and (tmp_path / "out.zarr.partial").is_dir()
    prog = json.loads((tmp_path / "out.zarr.partial" / ".vidfilter_blocks.json").read_text())
    assert prog["spec"]["layout"]["block"] == 256

    again = process_array(image, tmp_path / "out.zarr", _Flaky(net), cfg, block=256)

    assert again.blocks_this_run == full.blocks - 5
    np.testing.assert_array_equal(_read(tmp_path / "out.zarr"), _read(tmp_path / "ref.zarr"))
    assert not (tmp_path / "out.zarr.partial").exists()


def test_bundle_path_and_no_overwrite(tmp_path):
    """A bundle path works as the model; a finished output is not overwritten without overwrite=True."""
    net = _model(3)
    bundle = save_bundle(tmp_path / "m.vfm", net, Config().override({"model.width": 4, "model.depth": 3, "model.residual": False}))
    img = np.random.default_rng(3).random((90, 120), dtype=np.float32)
    s = process_array(img, tmp_path / "o.zarr", bundle, _cfg(), block=64)
    assert s.status == "done"
    root = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    assert root.attrs["model"]["sha256"]
    with pytest.raises(OutputExistsError):
        process_array(img, tmp_path / "o.zarr", bundle, _cfg(), block=64)
    assert process_array(img, tmp_path / "o.zarr", bundle, _cfg(), block=64, overwrite=True).status == "done"
