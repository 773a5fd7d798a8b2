"""VideoFrameSource: frame-accurate random access, iteration, pixel formats, index cache, damage."""

from __future__ import annotations

import json
import os
import random
import stat
import tracemalloc
from pathlib import Path

import av
import numpy as np
import psutil
import pytest

from io_media import coded_frame, decode_index, write_video
from vidfilter.errors import UnreadableInputError
from vidfilter.io.video_source import VideoFrameSource


def _all(src: VideoFrameSource) -> list[np.ndarray]:
    return list(src.iter())


@pytest.mark.parametrize(
    "codec, suffix, options",
    [
        ("libx264", ".mp4", {"bf": "3", "g": "12", "keyint_min": "12", "sc_threshold": "0"}),
        ("libx264", ".mkv", {"bf": "2", "g": "7", "keyint_min": "7", "sc_threshold": "0"}),
        ("mpeg4", ".mp4", {"g": "10", "bf": "2"}),
        ("mpeg4", ".avi", {"g": "10"}),
        ("mpeg2video", ".ts", {"g": "10", "bf": "2"}),
        ("mpeg2video", ".mpg", {"g": "10", "bf": "2"}),
        ("libx264", ".h264", {"bf": "2", "g": "10"}),  # raw stream: no timestamps, no seeking
    ],
)
def test_random_access_equals_sequential(tmp_path: Path, codec: str, suffix: str, options: dict[str, str]) -> None:
    """src[t] in shuffled order is bit-identical to sequential decoding, and is frame t."""
    path = write_video(tmp_path / f"v{suffix}", 60, codec=codec, options=options)
    with VideoFrameSource(path) as src:
        seq = _all(src)
        assert len(seq) == len(src) == 60
        assert [decode_index(f) for f in seq] == list(range(60))
        order = list(range(60))
        random.Random(1).shuffle(order)
        for t in order:
            np.testing.assert_array_equal(src[t], seq[t], err_msg=f"frame {t}")
        # consecutive reads continue decoding
        for t in range(20, 30):
            np.testing.assert_array_equal(src[t], seq[t])


def test_shape_dtype_fps_describe(h264_video: Path) -> None:
    with VideoFrameSource(h264_video) as src:
        assert src.shape == (120, 64, 128)
        assert src.dtype == np.uint8
        assert src.fps == pytest.approx(25.0)
        d = src.describe()
        assert d["codec"] == "h264" and d["pixel_format"] == "yuv420p"
        assert d["keyframes"] >= 120 // 12
        assert d["size_bytes"] == h264_video.stat().st_size
        assert d["frames"] == 120


@pytest.mark.parametrize("start, stop, step", [(0, None, 1), (3, 100, 7), (0, 120, 25), (110, None, 1), (5, 6, 1)])
def test_iter_with_step(h264_video: Path, start: int, stop: int | None, step: int) -> None:
    with VideoFrameSource(h264_video) as src:
        got = [decode_index(f) for f in src.iter(start, stop, step)]
        assert got == list(range(120))[start:stop:step]
        # iter after a random read, and reads after iter
        src[77]
        assert [decode_index(f) for f in src.iter(start, stop, step)] == list(range(120))[start:stop:step]
        assert decode_index(src[2]) == 2


def test_variable_frame_rate(tmp_path: Path) -> None:
    """Frames are found by pts, not t * fps: irregular timestamps still give every frame once, in order."""
    gaps = [40, 10, 100, 33, 5, 250, 40, 40, 17, 60] * 4
    pts = np.cumsum([0] + gaps[:-1]).tolist()
    path = write_video(tmp_path / "vfr.mp4", [coded_frame(t) for t in range(len(pts))], pts_ms=pts,
                       options={"bf": "2", "g": "8"})
    with VideoFrameSource(path) as src:
        assert len(src) == len(pts)
        seq = _all(src)
        assert [decode_index(f) for f in seq] == list(range(len(pts)))
        for t in random.Random(0).sample(range(len(pts)), 15):
            np.testing.assert_array_equal(src[t], seq[t])
        np.testing.assert_allclose(src.timestamps(), np.asarray(pts) / 1000.0, atol=1e-3)


def test_colour_keep_and_gray(tmp_path: Path) -> None:
    """An RGB video: keep gives (T, H, W, 3) uint8 RGB; gray gives the luma."""
    frames = []
    for t in range(12):
        g = coded_frame(t)
        frames.append(np.stack([g, np.full_like(g, 30), 255 - g], axis=-1))
    path = write_video(tmp_path / "rgb.mkv", frames, codec="libx264rgb", pix_fmt="rgb24", in_format="rgb24",
                       options={"qp": "0"})
    with VideoFrameSource(path, color="keep") as src:
        assert src.shape == (12, 64, 128, 3)
        for t in (5, 0, 11):
            np.testing.assert_array_equal(src[t], frames[t])
    with VideoFrameSource(path, color="gray") as src:
        assert src.shape == (12, 64, 128)
        f = src[3]
        want = np.rint(frames[3].astype(float) @ [0.299, 0.587, 0.114])
        assert np.abs(f.astype(float) - want).max() <= 1
    # a YUV source kept in colour is converted to RGB
    with VideoFrameSource(write_video(tmp_path / "yuv.mp4", 5), color="keep") as src:
        assert src.shape == (5, 64, 128, 3)
        assert decode_index(src[4]) == 4


def test_16bit_ffv1_is_exact(tmp_path: Path) -> None:
    """FFV1 gray16le round-trips exactly as uint16."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65536, (32, 48), dtype=np.uint16) for _ in range(10)]
    path = write_video(tmp_path / "deep.mkv", frames, codec="ffv1", pix_fmt="gray16le", in_format="gray16le")
    with VideoFrameSource(path) as src:
        assert src.dtype == np.uint16 and src.shape == (10, 32, 48)
        for t in (9, 2, 3, 0):
            np.testing.assert_array_equal(src[t], frames[t])
        assert src.describe()["pixel_format"] == "gray16le"


def test_10bit_yuv_gives_uint16(tmp_path: Path) -> None:
    path = write_video(tmp_path / "ten.mkv", 6, codec="ffv1", pix_fmt="yuv420p10le")
    with VideoFrameSource(path) as src:
        assert src.dtype == np.uint16
        f = src[5]
        assert decode_index((f >> 8).astype(np.uint8)) == 5


def test_index_cache_outside_input_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index goes to the cache dir, not the (read-only) input folder, and is reused."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_video(folder / "clip.mp4", 30, options={"bf": "2", "g": "10"})
    cache = tmp_path / "cache"
    monkeypatch.setenv("VIDFILTER_CACHE_DIR", str(cache))
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with VideoFrameSource(path) as a:
            first = a[17]
            assert not a.index_cached
        files = list(cache.glob("*.json"))
        assert len(files) == 1
        assert json.loads(files[0].read_text())["path"] == str(path.resolve())
        with VideoFrameSource(path) as b:
            assert b.index_cached
            np.testing.assert_array_equal(b[17], first)
        assert sorted(os.listdir(folder)) == ["clip.mp4"]
    finally:
        folder.chmod(stat.S_IRWXU)


def test_unwritable_cache_dir_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, h264_video: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("VIDFILTER_CACHE_DIR", str(blocker / "sub"))
    with VideoFrameSource(h264_video) as src:
        assert decode_index(src[50]) == 50


@pytest.mark.parametrize("content", [b"", b"hello, this is not a video\n" * 50])
def test_not_a_video(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(content)
    with pytest.raises(UnreadableInputError) as err:
        VideoFrameSource(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mka"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(UnreadableInputError, match="no video stream"):
        VideoFrameSource(path)


def test_truncated_mkv_keeps_frames_before_the_cut(tmp_path: Path) -> None:
    """A stream cut in half: frames before the cut decode; the index holds only what is present."""
    full = write_video(tmp_path / "full.mkv", _noisy(80), options={"bf": "2", "g": "10"})
    cut = tmp_path / "cut.mkv"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with VideoFrameSource(full) as ref, VideoFrameSource(cut) as src:
        assert 0 < len(src) < 80
        n = len(src)
        for t in [0, n // 2, max(0, n - 5)]:
            np.testing.assert_array_equal(src[t], ref[t])
        # reading to the end either works or fails with a one-line error naming the frame
        try:
            for _ in src.iter():
                pass
        except UnreadableInputError as exc:
            assert "frame" in str(exc) and "\n" not in str(exc)


def test_truncated_mp4_gives_clean_error(tmp_path: Path, h264_video: Path) -> None:
    """An MP4 cut before its index (moov) cannot be opened: a one-line UnreadableInputError."""
    cut = tmp_path / "cut.mp4"
    data = h264_video.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        src = VideoFrameSource(cut)
    except UnreadableInputError as exc:
        assert str(cut) in str(exc) and "\n" not in str(exc)
    else:  # some muxers put moov first: then the frames present must read
        with src:
            assert decode_index(src[0]) == 0


def _noisy(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.clip(coded_frame(t).astype(int) + rng.integers(-20, 20, (64, 128)), 0, 255).astype(np.uint8)
            for t in range(n)]


def test_truncated_faststart_mp4_reads_frames_present(tmp_path: Path) -> None:
    """An MP4 with its index first, cut in half: early frames read; later ones fail with a one-line error."""
    plain = write_video(tmp_path / "plain.mp4", _noisy(120), options={"bf": "3", "g": "12"})
    fast = tmp_path / "fast.mp4"
    with av.open(str(plain)) as i, av.open(str(fast), "w", options={"movflags": "+faststart"}) as o:
        s = o.add_stream_from_template(i.streams.video[0])
        for p in i.demux(i.streams.video[0]):
            if p.dts is not None:
                p.stream = s
                o.mux(p)
    cut = tmp_path / "cut.mp4"
    data = fast.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with VideoFrameSource(cut) as src:
        assert 0 < len(src) < 120
        assert src.describe()["truncated"]
        assert [decode_index(src[t]) for t in (10, 0, 20)] == [10, 0, 20]
        try:
            for _ in src.iter():
                pass
        except UnreadableInputError as exc:
            assert "frame" in str(exc) and "truncated" in str(exc) and "\n" not in str(exc)


def test_memory_flat_over_long_iteration(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Iterating 3000 frames does not hold on to frames: peak after 3000 ~ peak after 300."""
    d = tmp_path_factory.mktemp("long")
    small = [np.full((64, 64), (t * 7) % 256, np.uint8) for t in range(256)]
    path = write_video(d / "long.mp4", [small[t % 256] for t in range(3000)],
                       options={"preset": "ultrafast", "g": "50"})
    with VideoFrameSource(path) as src:
        assert len(src) == 3000
        proc = psutil.Process()
        tracemalloc.start()
        try:
            it = src.iter()
            for _ in range(300):
                next(it)
            peak300 = tracemalloc.get_traced_memory()[1]
            rss300 = proc.memory_info().rss
            for _ in it:
                pass
            peak3000 = tracemalloc.get_traced_memory()[1]
            rss3000 = proc.memory_info().rss
        finally:
            tracemalloc.stop()
    assert peak3000 - peak300 < 2_000_000, (peak300, peak3000)
    assert rss3000 - rss300 < 20_000_000, (rss300, rss3000)


def test_pickle_reopens(h264_video: Path) -> None:
    import pickle

    with VideoFrameSource(h264_video) as src:
        clone = pickle.loads(pickle.dumps(src))
        with clone:
            np.testing.assert_array_equal(clone[33], src[33])


# -- the real shared recordings ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, n_frames, shape, window",
    [("flies_sleap/clip.mp4", 1500, (1024, 1024), 300), ("mouse_tracktor/mouse_video.mp4", 10000, (480, 640), 200)],
)
def test_shared_random_equals_sequential(shared_data: Path, name: str, n_frames: int, shape: tuple[int, int],
                                         window: int) -> None:
    """Random access is bit-identical to sequential decoding on real H.264 files."""
    with VideoFrameSource(shared_data / name) as src:
        assert src.shape == (n_frames, *shape) and src.dtype == np.uint8
        starts = [0, n_frames - window] if n_frames > 2000 else [0]
        for s0 in starts:
            seq = list(src.iter(s0, s0 + window))
            picks = random.Random(s0).sample(range(window), 40 if s0 == 0 else 15)
            for i in picks:
                np.testing.assert_array_equal(src[s0 + i], seq[i], err_msg=f"{name} frame {s0 + i}")
        with pytest.raises(IndexError):
            src[n_frames]


def test_to_dask_threaded(h264_video: Path) -> None:
    """Dask's threaded scheduler reads chunks concurrently from one source: frames stay right."""
    import dask

    with VideoFrameSource(h264_video) as src:
        with dask.config.set(scheduler="threads", num_workers=4):
            arr = src.to_dask(7).compute()
        assert arr.shape == (120, 64, 128)
        assert [decode_index(f) for f in arr] == list(range(120))
        np.testing.assert_array_equal(arr, np.stack(list(src.iter())))


def _pyav_gray(path: Path, n: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="gray"))
            if len(out) == n:
                break
    return out


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv444p"])
def test_fast_luma_matches_swscale(tmp_path: Path, pix_fmt: str) -> None:
    """The luma-table fast path gives exactly PyAV's to_ndarray(format='gray'), limited or full range."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (32, 48), dtype=np.uint8) for _ in range(5)]
    path = write_video(tmp_path / "v.mkv", frames, pix_fmt=pix_fmt, options={"qp": "0"})
    with VideoFrameSource(path) as src:
        assert src._luma_fast
        for a, b in zip(src.iter(), _pyav_gray(path, 5)):
            np.testing.assert_array_equal(a, b)


def test_shared_fast_luma_matches_swscale(shared_data: Path) -> None:
    path = shared_data / "mouse_tracktor" / "mouse_video.mp4"
    with VideoFrameSource(path) as src:
        for a, b in zip(src.iter(0, 30), _pyav_gray(path, 30)):
            np.testing.assert_array_equal(a, b)
