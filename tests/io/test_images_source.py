"""ImageSequenceFrameSource (PNG/TIFF/JPEG folders and globs) and TiffFrameSource (multi-page, OME)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from vidfilter.errors import InputNotFoundError, UnreadableInputError, UnsupportedInputError
from vidfilter.io.images_source import ImageSequenceFrameSource, TiffFrameSource, natural_key


def _stack(t: int = 12, h: int = 16, w: int = 20, c: int | None = None, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(t)
    shape = (t, h, w) if c is None else (t, h, w, c)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _write_pngs(folder: Path, frames: np.ndarray, pattern: str = "frame{}.png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        img = f[..., ::-1] if f.ndim == 3 else f  # OpenCV writes BGR
        cv2.imwrite(str(folder / pattern.format(i)), img)


def test_natural_sort() -> None:
    names = ["frame10.png", "frame2.png", "frame1.png", "Frame3.png"]
    assert sorted(names, key=natural_key) == ["frame1.png", "frame2.png", "Frame3.png", "frame10.png"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_folder_natural_order(tmp_path: Path, dtype: type) -> None:
    """Unpadded names (frame2 before frame10) come back in time order, any depth."""
    data = _stack(dtype=dtype)
    _write_pngs(tmp_path / "pngs", data)
    with ImageSequenceFrameSource(tmp_path / "pngs") as src:
        assert src.shape == data.shape and src.dtype == dtype
        np.testing.assert_array_equal(np.stack(list(src.iter())), data)
        np.testing.assert_array_equal(src[10], data[10])
        np.testing.assert_array_equal(src.to_dask(5).compute(), data)


def test_png_rgb_is_rgb_order(tmp_path: Path) -> None:
    data = _stack(t=3, c=3)
    _write_pngs(tmp_path / "rgb", data)
    with ImageSequenceFrameSource(tmp_path / "rgb", color="keep") as src:
        assert src.shape == data.shape
        np.testing.assert_array_equal(src[1], data[1])


def test_glob_and_tiff_folder(tmp_path: Path) -> None:
    data = _stack(dtype=np.uint16)
    for i, f in enumerate(data):
        tifffile.imwrite(tmp_path / f"img_{i}.tif", f)
    (tmp_path / "notes.txt").write_text("not an image")
    with ImageSequenceFrameSource(str(tmp_path / "img_*.tif")) as src:
        np.testing.assert_array_equal(np.stack(list(src.iter())), data)
    with ImageSequenceFrameSource(tmp_path) as src:
        assert len(src) == len(data)


def test_mismatched_frame_is_reported_on_read(tmp_path: Path) -> None:
    data = _stack(t=4)
    _write_pngs(tmp_path / "mix", data)
    cv2.imwrite(str(tmp_path / "mix" / "frame4.png"), np.zeros((5, 5), np.uint8))
    with ImageSequenceFrameSource(tmp_path / "mix") as src:
        assert len(src) == 5
        src[3]
        with pytest.raises(UnsupportedInputError, match="frame4.png") as err:
            src[4]
        assert "\n" not in str(err.value)


def test_empty_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnreadableInputError, match="no image files"):
        ImageSequenceFrameSource(tmp_path / "empty")
    with pytest.raises(InputNotFoundError):
        ImageSequenceFrameSource(tmp_path / "nope")


def test_corrupt_png(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "c", _stack(t=2))
    (tmp_path / "c" / "frame1.png").write_bytes(b"\x89PNG garbage")
    with ImageSequenceFrameSource(tmp_path / "c") as src:
        with pytest.raises(UnreadableInputError, match="frame1.png"):
            src[1]


def test_multipage_tiff(tmp_path: Path) -> None:
    data = _stack(t=9, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", data)
    with TiffFrameSource(tmp_path / "stack.tif") as src:
        assert src.shape == data.shape and src.dtype == np.uint16
        for t in (8, 0, 4):
            np.testing.assert_array_equal(src[t], data[t])
        np.testing.assert_array_equal(src.to_dask(4).compute(), data)


def test_ome_tiff_channels_become_last_axis(tmp_path: Path) -> None:
    data = _stack(t=5, c=2)  # t y x c
    tczyx = np.moveaxis(data, -1, 1)[:, :, None]  # t c z y x
    tifffile.imwrite(tmp_path / "x.ome.tif", tczyx, metadata={"axes": "TCZYX"}, ome=True)
    with TiffFrameSource(tmp_path / "x.ome.tif", color="keep") as src:
        assert src.shape == data.shape
        for t in (4, 1):
            np.testing.assert_array_equal(src[t], data[t])
        assert src.describe()["ome"]


def test_tiff_rgb_pages(tmp_path: Path) -> None:
    data = _stack(t=3, c=3)
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    with TiffFrameSource(tmp_path / "rgb.tif", color="keep") as src:
        assert src.shape == data.shape
        np.testing.assert_array_equal(src[2], data[2])


def test_not_a_tiff(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("hello")
    with pytest.raises(UnreadableInputError, match="not a readable TIFF"):
        TiffFrameSource(bad)


def test_shared_zebrafish_tiffs(shared_data: Path) -> None:
    folder = shared_data / "zebrafish_larva"
    with ImageSequenceFrameSource(folder) as src:
        assert src.shape == (38, 1024, 1024) and src.dtype == np.uint8
        files = sorted(folder.glob("*.tif"))
        np.testing.assert_array_equal(src[37], tifffile.imread(files[37]))
        np.testing.assert_array_equal(src[0], tifffile.imread(files[0]))


def test_shared_worm_pngs(shared_data: Path) -> None:
    folder = shared_data / "worms_yolo_640" / "frames"
    with ImageSequenceFrameSource(folder) as src:
        assert src.shape == (100, 640, 640) and src.dtype == np.uint8
        files = sorted(folder.glob("*.png"))
        np.testing.assert_array_equal(src[42], cv2.imread(str(files[42]), cv2.IMREAD_UNCHANGED))
