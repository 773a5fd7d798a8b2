"""Tests of vidfilter.io.video_sink: FFV1 bit-exactness, preview MP4 and PNG panels."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vidfilter.errors import OutputExistsError, UnsupportedInputError
from vidfilter.io.sink import partial_path
from vidfilter.io.video_sink import (
    FFV1Sink,
    PreviewComposer,
    compose_panels,
    panel_contrast,
    write_preview_png,
)


def random_frames(n: int, shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, (n,) + shape, dtype=dtype, endpoint=True)


def decode(path: Path, fmt: str) -> list[np.ndarray]:
    """Decode every frame with PyAV directly (independent of vidfilter's readers)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


@pytest.mark.parametrize(
    ("shape", "dtype", "fmt"),
    [
        ((31, 21), np.uint8, "gray"),
        ((31, 21), np.uint16, "gray16le"),
        ((30, 22, 3), np.uint8, "rgb24"),
        ((30, 22, 3), np.uint16, "rgb48le"),
    ],
)
def test_ffv1_bit_exact(tmp_path: Path, shape: tuple[int, ...], dtype: type, fmt: str) -> None:
    """FFV1 round trip is lossless for grey/RGB in 8 and 16 bits, odd sizes included."""
    frames = random_frames(7, shape, dtype)
    path = tmp_path / "out.mkv"
    with FFV1Sink(path, shape, dtype, fps=29.97) as sink:
        for fr in frames:
            sink.append(fr)
        assert not path.exists() and partial_path(path).exists()
    assert not partial_path(path).exists()
    got = decode(path, fmt)
    assert len(got) == len(frames)
    for g, f in zip(got, frames):
        assert g.dtype == f.dtype
        np.testing.assert_array_equal(g, f)
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        assert st.codec_context.name == "ffv1"
        assert float(st.average_rate) == pytest.approx(29.97, rel=1e-4)


def test_ffv1_abort_and_exists(tmp_path: Path) -> None:
    """An exception aborts without leaving any file; an existing output is refused."""
    path = tmp_path / "a.mkv"
    with pytest.raises(RuntimeError):
        with FFV1Sink(path, (8, 8), np.uint8) as sink:
            sink.append(np.zeros((8, 8), np.uint8))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    with FFV1Sink(path, (8, 8), np.uint8) as sink:
        sink.append(np.full((8, 8), 1, np.uint8))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        FFV1Sink(path, (8, 8), np.uint8)
    with FFV1Sink(path, (8, 8), np.uint8, overwrite=True) as sink:
        sink.append(np.full((8, 8), 9, np.uint8))
    np.testing.assert_array_equal(decode(path, "gray")[0], np.full((8, 8), 9, np.uint8))


@pytest.mark.parametrize(("shape", "dtype"), [((8, 8), np.float32), ((8, 8, 2), np.uint8), ((8, 8), np.int16)])
def test_ffv1_rejects_unsupported(tmp_path: Path, shape: tuple[int, ...], dtype: type) -> None:
    """Float, two-channel or signed frames are refused with a hint to use OME-Zarr."""
    with pytest.raises(UnsupportedInputError, match="zarr"):
        FFV1Sink(tmp_path / "x.mkv", shape, dtype)


def test_preview_mp4_frames_and_size(tmp_path: Path) -> None:
    """The preview decodes to the number of appended frames, even size, at most max_width wide."""
    rng = np.random.default_rng(3)
    path = tmp_path / "preview.mp4"
    h, w, n = 101, 333, 13
    with PreviewComposer(path, ["input", "background", "foreground"], (h, w), fps=25, max_width=640) as p:
        for _ in range(n):
            p.append(
                rng.integers(0, 255, (h, w), dtype=np.uint8),
                rng.random((h, w)).astype(np.float32),
                rng.normal(size=(h, w)).astype(np.float32),
            )
    assert not partial_path(path).exists()
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        assert c.streams.video[0].codec_context.name in ("h264", "mpeg4")
    assert len(frames) == n
    assert frames[0].width <= 640 and frames[0].width % 2 == 0 and frames[0].height % 2 == 0
    assert frames[0].width == p.width and frames[0].height == p.height


def test_preview_short_video_and_abort(tmp_path: Path) -> None:
    """Fewer frames than the calibration window still encode; abort leaves nothing."""
    path = tmp_path / "short.mp4"
    with PreviewComposer(path, ["a"], (16, 16, 3), fps=10) as p:
        for i in range(3):
            p.append(np.full((16, 16, 3), i * 40, np.uint8))
    with av.open(str(path)) as c:
        assert len(list(c.decode(video=0))) == 3
    other = tmp_path / "aborted.mp4"
    with pytest.raises(ValueError):
        with PreviewComposer(other, ["a", "b"], (16, 16), fps=10) as p:
            p.append(np.zeros((16, 16)))  # one panel missing
    assert not other.exists() and not partial_path(other).exists()


def test_panel_contrast_symmetric_and_fixed() -> None:
    """Symmetric ranges centre zero at mid-grey; a fixed range maps values consistently."""
    x = np.linspace(-2, 1, 1000, dtype=np.float32)
    lo, hi = panel_contrast([x], symmetric=True)
    assert lo == -hi and hi > 1.9
    img = compose_panels([np.zeros((20, 30), np.float32)], ["fg"], [(lo, hi)], max_width=0)
    assert abs(int(img[15, 20, 0]) - 128) <= 1
    lo2, hi2 = panel_contrast([np.full((4, 4), 7.0)])
    assert hi2 > lo2  # constant frames do not divide by zero


def test_write_preview_png(tmp_path: Path) -> None:
    """The PNG has the panels side by side with labels drawn, even-sized."""
    rng = np.random.default_rng(0)
    path = tmp_path / "look.png"
    panels = {
        "input": rng.integers(0, 65535, (60, 80), dtype=np.uint16),
        "background": np.zeros((60, 80), np.float32),
        "foreground": rng.normal(size=(60, 80)).astype(np.float32),
    }
    write_preview_png(path, panels)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape[0] == 60 and img.shape[1] == 3 * 80 + 2 * 4 and img.shape[2] == 3
    # a constant panel is uniform except where its label was drawn
    bg_panel = img[:, 84:164]
    assert (bg_panel != bg_panel[-1, -1]).any()
    assert (bg_panel[40:] == bg_panel[-1, -1]).all()
