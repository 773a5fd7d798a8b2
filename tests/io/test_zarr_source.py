"""ZarrFrameSource: Zarr v2/v3 arrays, OME-Zarr images, sub-path addressing, to_dask, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image

from vidfilter.errors import DamagedInputError, InputNotFoundError, UnsupportedInputError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.zarr_source import ZarrFrameSource


def _frames(t: int = 6, h: int = 20, w: int = 24, c: int | None = None, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(t * 100 + h)
    shape = (t, h, w) if c is None else (t, h, w, c)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_array(tmp_path: Path, zarr_format: int) -> None:
    data = _frames(dtype=np.uint16)
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), data=data, chunks=(4, 7, 5), zarr_format=zarr_format)
    with ZarrFrameSource(path) as src:
        assert src.shape == data.shape and src.dtype == np.uint16
        for t in (5, 0, 3):
            np.testing.assert_array_equal(src[t], data[t])
        np.testing.assert_array_equal(np.stack(list(src.iter(1, None, 2))), data[1::2])
        dk = src.to_dask()
        assert dk.chunks[0] == (4, 2)  # the store's own chunks
        np.testing.assert_array_equal(dk.compute(), data)
        assert src.describe()["zarr_format"] == zarr_format


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_sub_path_addressing_and_group(tmp_path: Path, zarr_format: int) -> None:
    data = _frames()
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=zarr_format)
    root.create_group("sub").create_array("raw", data=data, chunks=(1, 20, 24))
    root.create_array("other", data=data[:2], chunks=(1, 20, 24))
    with ZarrFrameSource(tmp_path / "s.zarr" / "sub" / "raw") as src:
        np.testing.assert_array_equal(src[4], data[4])
    with ZarrFrameSource(tmp_path / "s.zarr" / "sub") as src:  # group with one array: taken
        assert src.shape == data.shape
    with pytest.raises(UnsupportedInputError, match="name one"):
        ZarrFrameSource(tmp_path / "s.zarr")
    with pytest.raises(InputNotFoundError):
        ZarrFrameSource(tmp_path / "s.zarr" / "nope")


def test_colour_array_keep_and_gray(tmp_path: Path) -> None:
    data = _frames(c=3)
    zarr.create_array(str(tmp_path / "rgb.zarr"), data=data, chunks=(2, 10, 10, 3))
    with ZarrFrameSource(tmp_path / "rgb.zarr", color="keep") as src:
        assert src.shape == data.shape
        np.testing.assert_array_equal(src[2], data[2])
        np.testing.assert_array_equal(src.to_dask().compute(), data)
    with ZarrFrameSource(tmp_path / "rgb.zarr") as src:
        assert src.shape == data.shape[:3]
        g = src.to_dask().compute()
        np.testing.assert_array_equal(g[2], src[2])
        want = np.rint(data[2].astype(float) @ [0.299, 0.587, 0.114])
        assert np.abs(src[2] - want).max() <= 1


@pytest.mark.parametrize("fmt", ["0.5", "0.4"])
def test_ome_zarr_tcyx_level0(tmp_path: Path, fmt: str) -> None:
    """NGFF (t, c, y, x) images read level 0, channels last."""
    data = np.moveaxis(_frames(t=5, h=32, w=48, c=2), -1, 1)  # t c y x
    path = tmp_path / "img.ome.zarr"
    kw = {"fmt": FormatV04()} if fmt == "0.4" else {}
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if fmt == "0.4" else 3)
    write_image(data, group, axes="tcyx", scale_factors=(2,), **kw)
    with ZarrFrameSource(path, color="keep") as src:
        assert src.ngff
        assert src.shape == (5, 32, 48, 2)
        np.testing.assert_array_equal(src[3], np.moveaxis(data[3], 0, -1))
        np.testing.assert_array_equal(src.to_dask().compute(), np.moveaxis(data, 1, -1))
    with ZarrFrameSource(path) as src:  # grey: C = 2 is grey + alpha, first channel
        np.testing.assert_array_equal(src[1], data[1, 0])


def test_ome_zarr_tczyx_single_plane(tmp_path: Path) -> None:
    data = _frames(t=4, h=16, w=16)[:, None, None]  # t c z y x with c = z = 1
    group = zarr.open_group(str(tmp_path / "v.zarr"), mode="w")
    write_image(data, group, axes="tczyx", scale_factors=())
    with ZarrFrameSource(tmp_path / "v.zarr") as src:
        assert src.shape == (4, 16, 16)
        np.testing.assert_array_equal(src[2], data[2, 0, 0])


def test_z_stack_rejected(tmp_path: Path) -> None:
    data = np.zeros((2, 1, 3, 16, 16), np.uint8)
    group = zarr.open_group(str(tmp_path / "z.zarr"), mode="w")
    write_image(data, group, axes="tczyx", scale_factors=())
    with pytest.raises(UnsupportedInputError, match="z axis"):
        ZarrFrameSource(tmp_path / "z.zarr")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64])
def test_unsupported_dtype(tmp_path: Path, dtype: type) -> None:
    zarr.create_array(str(tmp_path / "i.zarr"), data=np.zeros((2, 4, 4), dtype))
    with pytest.raises(UnsupportedInputError, match="not supported") as err:
        ZarrFrameSource(tmp_path / "i.zarr")
    assert "\n" not in str(err.value)


def test_float16_read_as_float32(tmp_path: Path) -> None:
    data = _frames(dtype=np.float16)
    zarr.create_array(str(tmp_path / "h.zarr"), data=data)
    with ZarrFrameSource(tmp_path / "h.zarr") as src:
        assert src.dtype == np.float32
        assert src[1].dtype == np.float32
        np.testing.assert_array_equal(src[1], data[1].astype(np.float32))
        assert src.to_dask().dtype == np.float32


def test_missing_chunks_are_an_error_or_read_as_fill_value(tmp_path: Path) -> None:
    """A chunk file missing from the store is damage by default (Zarr would return the fill value,
    a black frame); ``missing_chunks="fill"`` reads stores that leave out all-fill chunks on purpose."""
    arr = zarr.create_array(str(tmp_path / "m.zarr"), shape=(4, 8, 8), chunks=(1, 8, 8), dtype=np.uint8, fill_value=7)
    arr[1] = 3
    with ZarrFrameSource(tmp_path / "m.zarr") as src:
        assert (src[1] == 3).all()
        with pytest.raises(DamagedInputError, match="frame 0 is missing") as info:
            src[0]
        assert info.value.frame == 0
    with ZarrFrameSource(tmp_path / "m.zarr", missing_chunks="fill") as src:
        assert (src[0] == 7).all() and (src[1] == 3).all()


_dtypes = st.sampled_from([np.uint8, np.uint16, np.float32])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=st.integers(1, 6), h=st.integers(1, 13), w=st.integers(1, 13), c=st.sampled_from([None, 1, 3, 4]),
    dtype=_dtypes, ct=st.integers(1, 4), cy=st.integers(1, 9), cx=st.integers(1, 9), data=st.data(),
)
def test_property_zarr_and_array_agree(tmp_path_factory: pytest.TempPathFactory, t: int, h: int, w: int,
                                       c: int | None, dtype: type, ct: int, cy: int, cx: int,
                                       data: st.DataObject) -> None:
    """For random shapes, dtypes and chunkings, src[t], iter and to_dask equal the array (colour kept)."""
    arr = _frames(t, h, w, c, dtype)
    path = tmp_path_factory.mktemp("prop") / "p.zarr"
    chunks = (ct, cy, cx) + (() if c is None else (c,))
    zarr.create_array(str(path), data=arr, chunks=chunks, config={"write_empty_chunks": True})  # no chunk left out
    want = arr[..., 0] if c == 1 else arr
    for src in (ZarrFrameSource(path, color="keep"), ArrayFrameSource(arr, color="keep")):
        assert src.shape == want.shape and src.dtype == np.dtype(dtype)
        k = data.draw(st.integers(0, t - 1))
        np.testing.assert_array_equal(src[k], want[k])
        np.testing.assert_array_equal(np.stack(list(src.iter())), want)
        np.testing.assert_array_equal(src.to_dask().compute(), want)
        np.testing.assert_array_equal(src.to_dask(2).compute(), want)


def test_frames_of_a_chunk_are_decompressed_once(tmp_path: Path) -> None:
    """Reading frames in order reads each chunk along t once, wherever the t axis lies; random
    access still returns the right frames."""
    data = _frames(t=11, h=9, w=8)
    moved = np.ascontiguousarray(np.moveaxis(data, 0, 1))  # (y, t, x)
    path = tmp_path / "ytx.zarr"
    zarr.create_array(str(path), data=moved, chunks=(9, 4, 8), dimension_names=["y", "t", "x"])
    with ZarrFrameSource(path) as src:
        assert src.shape == data.shape

        class Counting:
            def __init__(self, array: object) -> None:
                self.array, self.reads = array, 0
                self.chunks, self.shape = array.chunks, array.shape

            def __getitem__(self, sel: object) -> np.ndarray:
                self.reads += 1
                return self.array[sel]

        counting = src._run.array = Counting(src._run.array)
        np.testing.assert_array_equal(np.stack(list(src.iter())), data)
        assert counting.reads == 3  # chunks of 4, 4 and 3 frames
        for t in (10, 0, 7, 3, 3):
            np.testing.assert_array_equal(src[t], data[t])
