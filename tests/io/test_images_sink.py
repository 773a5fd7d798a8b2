"""Tests of vidfilter.io.images_sink: PNG/TIFF sequences, atomic folder, resume."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

import json

from vidfilter.errors import ForeignOutputError, OutputExistsError, UnsupportedInputError
from vidfilter.io.images_sink import ImageSequenceSink
from vidfilter.io.sink import partial_path


def random_frames(n: int, shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, (n,) + shape, dtype=dtype, endpoint=True)
    return rng.normal(size=(n,) + shape).astype(dtype)


def frame_names(folder: Path) -> list[str]:
    """Names in ``folder`` other than the ``.vidfilter.json`` marker (which must be there)."""
    marker = json.loads((folder / ".vidfilter.json").read_text())
    assert marker["written_by"] == "vidfilter"
    return sorted(p.name for p in folder.iterdir() if p.name != ".vidfilter.json")


def read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img[..., ::-1] if img.ndim == 3 else img


@pytest.mark.parametrize(
    ("fmt", "shape", "dtype"),
    [
        ("png", (9, 11), np.uint8),
        ("png", (9, 11), np.uint16),
        ("png", (9, 11, 3), np.uint8),
        ("tiff", (9, 11), np.uint16),
        ("tiff", (9, 11), np.float32),
        ("tiff", (9, 11, 3), np.uint8),
    ],
)
def test_round_trip(tmp_path: Path, fmt: str, shape: tuple[int, ...], dtype: type) -> None:
    """Frames are written as 000000.ext ... and read back bit-exactly by cv2 / tifffile."""
    frames = random_frames(4, shape, dtype)
    folder = tmp_path / "seq"
    with ImageSequenceSink(folder, fmt=fmt) as sink:
        for fr in frames:
            sink.append(fr)
        assert not folder.exists() and partial_path(folder).is_dir()
    assert not partial_path(folder).exists()
    ext = ".png" if fmt == "png" else ".tif"
    names = frame_names(folder)
    assert names == [f"{i:06d}{ext}" for i in range(4)]
    for i, fr in enumerate(frames):
        got = read_png(folder / names[i]) if fmt == "png" else tifffile.imread(folder / names[i])
        assert got.dtype == fr.dtype
        np.testing.assert_array_equal(got, fr)


def test_abort_keeps_partial_and_resume_continues(tmp_path: Path) -> None:
    """An exception leaves folder.partial only; resume continues after the last complete file."""
    frames = random_frames(6, (5, 5), np.uint8)
    folder = tmp_path / "seq"
    with pytest.raises(RuntimeError):
        with ImageSequenceSink(folder, digits=4) as sink:
            for fr in frames[:3]:
                sink.append(fr)
            raise RuntimeError("killed")
    assert not folder.exists()
    assert frame_names(partial_path(folder)) == ["0000.png", "0001.png", "0002.png"]

    with ImageSequenceSink(folder, digits=4, resume=True) as sink:
        assert sink.frames_written == 3
        for fr in frames[3:]:
            sink.append(fr)
    got = np.stack([read_png(folder / f"{i:04d}.png") for i in range(6)])
    np.testing.assert_array_equal(got, frames)


def test_exists_overwrite_and_bad_input(tmp_path: Path) -> None:
    """Existing folder refused without overwrite, replaced with it only when vidfilter wrote it;
    PNG refuses float; shape changes are refused."""
    folder = tmp_path / "seq"
    with ImageSequenceSink(folder) as sink:
        for _ in range(2):
            sink.append(np.ones((3, 3), np.uint8))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        ImageSequenceSink(folder)
    with ImageSequenceSink(folder, overwrite=True) as sink:
        sink.append(np.zeros((3, 3), np.uint8))
        with pytest.raises(UnsupportedInputError):
            sink.append(np.zeros((4, 3), np.uint8))
    assert frame_names(folder) == ["000000.png"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "old.txt").write_text("x")
    with pytest.raises(ForeignOutputError), ImageSequenceSink(foreign, overwrite=True) as sink:
        sink.append(np.zeros((3, 3), np.uint8))
    assert (foreign / "old.txt").read_text() == "x"
    with pytest.raises(UnsupportedInputError, match="tiff"):
        ImageSequenceSink(tmp_path / "f", dtype=np.float32)
    with pytest.raises(UnsupportedInputError):
        ImageSequenceSink(tmp_path / "g", fmt="bmp")
