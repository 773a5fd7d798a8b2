"""vidfilter.open: dispatch to every reader, agreement between readers, and errors users see."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tifffile
import zarr
from ome_zarr.writer import write_image

import vidfilter
from io_media import decode_index, write_video
from vidfilter.errors import InputNotFoundError, UnreadableInputError, UnsupportedInputError, VidfilterError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.hdf5_source import Hdf5FrameSource
from vidfilter.io.images_source import ImageSequenceFrameSource, TiffFrameSource
from vidfilter.io.registry import open as vopen
from vidfilter.io.video_source import VideoFrameSource
from vidfilter.io.zarr_source import ZarrFrameSource

DATA = np.random.default_rng(3).integers(0, 65535, (7, 18, 22), dtype=np.uint16, endpoint=True)


def _write_all(root: Path) -> dict[str, tuple[str, type]]:
    """The same frames in every supported still format; returns name -> (path, expected reader)."""
    (root / "png").mkdir()
    (root / "tifs").mkdir()
    for i, f in enumerate(DATA):
        cv2.imwrite(str(root / "png" / f"f{i}.png"), f)
        tifffile.imwrite(root / "tifs" / f"f{i}.tif", f)
    tifffile.imwrite(root / "stack.tif", DATA)
    zarr.create_array(str(root / "v3.zarr"), data=DATA, chunks=(3, 9, 11), zarr_format=3)
    zarr.create_array(str(root / "v2.zarr"), data=DATA, chunks=(2, 18, 22), zarr_format=2)
    write_image(DATA, zarr.open_group(str(root / "ome.zarr"), mode="w"), axes="tyx", scale_factors=(2,))
    with h5py.File(root / "data.h5", "w") as f:
        f.create_dataset("grp/frames", data=DATA, chunks=(1, 18, 22))
    np.save(root / "arr.npy", DATA)
    return {
        "png": (str(root / "png"), ImageSequenceFrameSource),
        "tif-folder": (str(root / "tifs"), ImageSequenceFrameSource),
        "multipage-tif": (str(root / "stack.tif"), TiffFrameSource),
        "zarr3": (str(root / "v3.zarr"), ZarrFrameSource),
        "zarr2": (str(root / "v2.zarr"), ZarrFrameSource),
        "ome-zarr": (str(root / "ome.zarr"), ZarrFrameSource),
        "hdf5": (str(root / "data.h5" / "grp" / "frames"), Hdf5FrameSource),
        "hdf5-single": (str(root / "data.h5"), Hdf5FrameSource),
        "npy": (str(root / "arr.npy"), ArrayFrameSource),
    }


def test_every_reader_agrees(tmp_path: Path) -> None:
    """Each format opens with the right reader and returns the same frames, via [], iter and to_dask."""
    for name, (path, cls) in _write_all(tmp_path).items():
        with vopen(path) as src:
            assert isinstance(src, cls), name
            assert src.shape == DATA.shape and src.dtype == np.uint16, name
            np.testing.assert_array_equal(src[5], DATA[5], err_msg=name)
            np.testing.assert_array_equal(np.stack(list(src.iter(0, None, 3))), DATA[::3], err_msg=name)
            np.testing.assert_array_equal(src.to_dask(2).compute(), DATA, err_msg=name)
            assert src.describe()["frames"] == 7
    src = vopen(DATA, fps=12.5)
    assert isinstance(src, ArrayFrameSource) and src.fps == 12.5
    np.testing.assert_array_equal(src[6], DATA[6])


def test_vidfilter_open_is_registry_open(tmp_path: Path) -> None:
    with vidfilter.open(DATA) as src:
        assert len(src) == 7


def test_video_and_odd_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths with spaces and unicode, and ~ expansion."""
    folder = tmp_path / "my vidéos ✓"
    folder.mkdir()
    video = write_video(folder / "clip 1.mp4", 10)
    with vopen(str(video)) as src:
        assert isinstance(src, VideoFrameSource) and decode_index(src[7]) == 7
    monkeypatch.setenv("HOME", str(tmp_path))
    with vopen("~/my vidéos ✓/clip 1.mp4") as src:
        assert len(src) == 10


def test_color_policy_passes_through(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (3, 8, 9, 3), dtype=np.uint8)
    assert vopen(rgb).shape == (3, 8, 9)
    assert vopen(rgb, color="keep").shape == (3, 8, 9, 3)
    with pytest.raises(UnsupportedInputError, match="colour policy"):
        vopen(rgb, color="rgb")


def _one_line(exc: BaseException) -> None:
    assert isinstance(exc, VidfilterError)
    assert "\n" not in str(exc) and len(str(exc)) < 400


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no such file or folder; check the path") as err:
        vopen(tmp_path / "nope.mp4")
    _one_line(err.value)
    with pytest.raises(FileNotFoundError):  # builtin base class still catches it
        vopen(str(tmp_path / "nope" / "x.zarr"))


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnreadableInputError) as err:
        vopen(tmp_path / "empty")
    _one_line(err.value)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("these are my notes, not a video\n" * 100)
    with pytest.raises(UnreadableInputError) as err:
        vopen(bad)
    _one_line(err.value)
    assert str(bad) in str(err.value)


def test_truncated_video(tmp_path: Path) -> None:
    full = write_video(tmp_path / "full.mp4", 60, options={"bf": "2", "g": "10"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    try:
        src = vopen(cut)
    except UnreadableInputError as exc:
        _one_line(exc)
    else:
        with src:
            assert decode_index(src[0]) == 0


def test_unsupported_dtype_and_unknown_suffix(tmp_path: Path) -> None:
    zarr.create_array(str(tmp_path / "i.zarr"), data=np.zeros((2, 4, 4), np.int32))
    with pytest.raises(UnsupportedInputError, match="int32") as err:
        vopen(tmp_path / "i.zarr")
    _one_line(err.value)
    with pytest.raises(UnsupportedInputError, match="int64"):
        vopen(np.zeros((2, 4, 4), np.int64))
    with pytest.raises(UnsupportedInputError, match=r"\(T, H, W\)"):
        vopen(np.zeros((4, 4), np.uint8))
    odd = tmp_path / "data.xyz"
    odd.write_text("?")
    with pytest.raises(UnsupportedInputError, match=r"\.mp4.*\.zarr|\.zarr.*\.mp4") as err:
        vopen(odd)
    _one_line(err.value)


def test_float16_array_becomes_float32() -> None:
    src = vopen(np.full((2, 3, 3), 0.5, np.float16))
    assert src.dtype == np.float32 and src[0].dtype == np.float32


def test_hdf5_needs_dataset_name_when_ambiguous(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = DATA
        f["b"] = DATA
    with pytest.raises(UnsupportedInputError, match="name one") as err:
        vopen(tmp_path / "two.h5")
    _one_line(err.value)
    with pytest.raises(InputNotFoundError, match="no dataset"):
        vopen(tmp_path / "two.h5" / "c")
    with vopen(tmp_path / "two.h5" / "b") as src:
        np.testing.assert_array_equal(src[2], DATA[2])


def test_hdf5_without_h5py_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = DATA
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(UnsupportedInputError, match=r"vidfilter\[hdf5\]"):
        vopen(tmp_path / "x.h5")


def test_pickled_sources_reopen(tmp_path: Path) -> None:
    import pickle

    paths = _write_all(tmp_path)
    for name in ("multipage-tif", "hdf5", "zarr3", "png"):
        with vopen(paths[name][0]) as src:
            clone = pickle.loads(pickle.dumps(src))
            np.testing.assert_array_equal(clone[4], DATA[4], err_msg=name)
            clone.close()
