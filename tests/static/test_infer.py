"""Static-mode inference (``vidfilter.static.infer``): block-by-block output equals whole-image
inference for every input kind (Zarr, OME-Zarr with a channel axis, tiled RGB TIFF, PNG folder,
arrays), the ``target`` / ``residual`` groups, bounded reads, and refusals."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
import torch
import zarr

from vidfilter.config import Config
from vidfilter.errors import ConfigError, OutputExistsError, UnsupportedInputError
from vidfilter.models import build_model, load_model, save_bundle
from vidfilter.static.infer import filter_image, open_static_input, run_static, run_static_many
from vidfilter.static.preprocess import to_network


def _bundle(path, *, mode: str = "static", **pre: object):
    cfg = Config().override({
        "sampling.mode": mode, "model.width": 4, "model.depth": 3, "model.residual": False, "model.gate": False,
        "model.temporal_channel": "none", **{f"static.preprocess.{k}": v for k, v in pre.items()},
    })
    torch.manual_seed(0)
    model = build_model(cfg.model)
    save_bundle(path, model, cfg, normalisation={"mode": mode, "log_gain": 65535.0 if pre.get("log") else None})
    return load_model(path)


def _cfg(block: int = 64, **kw: object) -> Config:
    return Config().override({"infer.device": "cpu", "static.block": block, **kw})


def _read(store, group: str) -> np.ndarray:
    return zarr.open_array(str(store / group / "0"), mode="r")[:]


@pytest.fixture(scope="module")
def log_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory.mktemp("m") / "log.vfm", log=True)


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory.mktemp("m") / "rgb.vfm", invert=True)


def test_zarr_slide_in_blocks_equals_whole_image(tmp_path, log_bundle):
    """A 16-bit 200 x 230 Zarr slide in 96-px blocks: target equals the engine on the whole log
    image (1e-4), residual = log input - target, both float32 with one chunk per block."""
    rng = np.random.default_rng(1)
    img = (rng.random((200, 230)) ** 3 * 65535).astype(np.uint16)
    zarr.save_array(str(tmp_path / "slide.zarr"), img)
    summary = run_static(tmp_path / "slide.zarr", tmp_path / "out.zarr", model=log_bundle, config=_cfg(96))
    target, residual = _read(tmp_path / "out.zarr", "target"), _read(tmp_path / "out.zarr", "residual")
    whole, whole_res = filter_image(img, log_bundle, _cfg())
    x = to_network(img, log_bundle.config.static.preprocess, 65535.0)
    assert summary.blocks == 3 * 3 and target.shape == img.shape and target.dtype == np.float32
    np.testing.assert_allclose(target, whole, atol=1e-4)
    np.testing.assert_allclose(residual, x - target, atol=1e-6)
    np.testing.assert_allclose(whole_res, x - whole, atol=1e-6)
    assert zarr.open_array(str(tmp_path / "out.zarr" / "target" / "0"), mode="r").chunks == (96, 96)
    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert root.attrs["mode"] == "static" and root.attrs["vidfilter"]["complete"] is True


def test_rgb_tiled_tiff_and_ome_zarr_channel_axis(tmp_path, rgb_bundle):
    """Tiled RGB TIFF (YXS) and OME-Zarr (c, y, x) slides give the grey-complement filter of the
    same pixels (RGB -> luma -> 1 - x, as in training)."""
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "slide.tif", rgb, photometric="rgb", tile=(64, 64))
    g = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    g.create_array("0", data=np.moveaxis(rgb, -1, 0), chunks=(3, 64, 64))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": "c"}, {"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}]}
    expected, _ = filter_image(rgb, rgb_bundle, _cfg())
    for name in ("slide.tif", "ome.zarr"):
        run_static(tmp_path / name, tmp_path / f"{name}.out.zarr", model=rgb_bundle, config=_cfg(64))
        np.testing.assert_allclose(_read(tmp_path / f"{name}.out.zarr", "target"), expected, atol=1e-4)


def test_image_folder_gives_a_stack(tmp_path, rgb_bundle):
    """A folder of PNGs: outputs (t, y, x), each frame the filter of its image."""
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, (70, 90, 3), dtype=np.uint8) for _ in range(2)]
    (tmp_path / "imgs").mkdir()
    for i, im in enumerate(imgs):
        cv2.imwrite(str(tmp_path / "imgs" / f"im{i}.png"), im[..., ::-1])
    res = run_static_many([tmp_path / "imgs"], model=rgb_bundle, out_dir=tmp_path / "outs", config=_cfg(64))
    assert res[0].status == "done"
    target = _read(tmp_path / "outs" / "imgs.zarr", "target")
    assert target.shape == (2, 70, 90)
    for i, im in enumerate(imgs):
        np.testing.assert_allclose(target[i], filter_image(im, rgb_bundle, _cfg())[0], atol=1e-4)


class _Recorder:
    """A huge-looking array that records the largest window read."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr, self.shape, self.dtype, self.largest = arr, arr.shape, arr.dtype, 0

    def __getitem__(self, sel):
        out = self.arr[sel]
        self.largest = max(self.largest, out.size)
        return out


def test_reads_one_block_with_its_halo_at_a_time(tmp_path, log_bundle):
    """Out of core: no read is larger than (block + 2 x halo)^2, far below the whole image."""
    img = np.random.default_rng(4).integers(0, 65535, (400, 420), dtype=np.uint16)
    rec = _Recorder(img)
    run_static(rec, tmp_path / "out.zarr", model=log_bundle, config=_cfg(128))
    halo = log_bundle.model.margin
    assert rec.largest <= (128 + 2 * halo) ** 2 < img.size / 2


def test_refusals(tmp_path, log_bundle):
    """A video bundle, an existing output, and an array of unknown layout are one-line errors."""
    video = _bundle(tmp_path / "video.vfm", mode="video")
    img = np.zeros((40, 40), np.uint8)
    with pytest.raises(ConfigError, match="not a static-mode model"):
        run_static(img, tmp_path / "a.zarr", model=video, config=_cfg())
    run_static(img, tmp_path / "b.zarr", model=log_bundle, config=_cfg())
    with pytest.raises(OutputExistsError):
        run_static(img, tmp_path / "b.zarr", model=log_bundle, config=_cfg())
    run_static(img, tmp_path / "b.zarr", model=log_bundle, config=_cfg(**{"output.overwrite": True}))
    with pytest.raises(UnsupportedInputError, match="cannot tell the axes"):
        open_static_input(np.zeros((7, 30, 40, 7), np.uint8), log_bundle.config.static.preprocess)
