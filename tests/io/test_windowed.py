"""vidfilter.io.registry.open_array: huge images opened for windowed reads (Zarr, OME-Zarr, TIFF)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from vidfilter.errors import InputNotFoundError, UnsupportedInputError
from vidfilter.io.registry import open_array, windowed_kind
from vidfilter.io.windowed import Squeezed

RNG = np.random.default_rng(5)


def test_2d_zarr_array_is_read_window_by_window(tmp_path):
    img = RNG.integers(0, 65535, (96, 80), dtype=np.uint16)
    zarr.create_array(str(tmp_path / "slide.zarr"), data=img, chunks=(32, 32))
    arr, axes = open_array(tmp_path / "slide.zarr")
    assert axes == "yx" and isinstance(arr, zarr.Array) and arr.shape == img.shape
    np.testing.assert_array_equal(arr[10:50, 33:71], img[10:50, 33:71])


def test_ome_zarr_axes_and_singleton_axes(tmp_path):
    data = RNG.integers(0, 255, (3, 1, 1, 40, 48), dtype=np.uint8)
    g = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    g.create_array("0", data=data, chunks=(1, 1, 1, 16, 16))
    names = ["t", "c", "z", "y", "x"]
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": n} for n in names], "datasets": [{"path": "0"}]}]}
    arr, axes = open_array(tmp_path / "ome.zarr")
    assert axes == "tcyx" and isinstance(arr, Squeezed) and arr.shape == (3, 1, 40, 48)
    np.testing.assert_array_equal(arr[1, slice(None), 5:30, 7:41], data[1, :, 0, 5:30, 7:41])


def test_tiled_tiff_windows_equal_imread(tmp_path):
    img = RNG.integers(0, 65535, (200, 150), dtype=np.uint16)
    path = tmp_path / "slide.tif"
    tifffile.imwrite(path, img, tile=(64, 64))
    assert windowed_kind(path) == "tiff"
    arr, axes = open_array(path)
    assert axes == "yx" and arr.shape == img.shape
    whole = tifffile.imread(path)
    for ys, xs in [(slice(0, 64), slice(0, 64)), (slice(50, 170), slice(30, 150)), (slice(128, 200), slice(100, 150))]:
        np.testing.assert_array_equal(arr[ys, xs], whole[ys, xs])


def test_arrays_get_guessed_axes():
    assert open_array(np.zeros((4, 8, 9)))[1] == "tyx"
    assert open_array(np.zeros((8, 9, 3)))[1] == "yxc"
    with pytest.raises(UnsupportedInputError, match="cannot tell the axes"):
        open_array(np.zeros((2, 3, 8, 9)))
    with pytest.raises(UnsupportedInputError, match="cannot read an object of type list"):
        open_array([[1, 2], [3, 4]])


def test_check_sees_the_stored_shape_first():
    seen = []
    arr, axes = open_array(np.zeros((8, 9)), check=seen.append)
    assert seen == [(8, 9)] and axes == "yx"


def test_other_inputs_are_refused(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    assert windowed_kind(clip) is None
    with pytest.raises(UnsupportedInputError, match="cannot be read window by window") as e:
        open_array(clip)
    assert "\n" not in str(e.value) and "Zarr" in str(e.value) and "TIFF" in str(e.value)
    with pytest.raises(InputNotFoundError, match="no such Zarr store"):
        open_array(tmp_path / "missing.zarr")
