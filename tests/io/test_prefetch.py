"""The setup frames of a run (:class:`PrefetchedSource`): on a video with predicted frames, the wanted
frames are snapped to the start of their GOP and decoded in one run per GOP; elsewhere they are
read as they are."""

from __future__ import annotations

import bisect
from pathlib import Path

import av
import numpy as np
import pytest

from io_media import decode_index, write_video
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.guard import guard_input
from vidfilter.io import prefetch
from vidfilter.io.prefetch import PrefetchedSource, cheap_substitutes
from vidfilter.io.video_source import VideoFrameSource
from vidfilter.temporal import statistic_frames

# -- the plan ------------------------------------------------------------------------------------


def test_gop_holding_several_wanted_frames_is_served_by_its_first_frames() -> None:
    subs = cheap_substitutes([3, 5, 7, 14, 17, 22, 24], [0, 10, 20], 25)
    assert subs == {3: 0, 5: 1, 7: 2, 14: 10, 17: 11, 22: 20, 24: 21}


def test_wanted_keyframes_and_gop_prefixes_are_served_by_themselves() -> None:
    assert cheap_substitutes([0, 10, 20], [0, 10, 20], 25) == {0: 0, 10: 10, 20: 20}
    assert cheap_substitutes([10, 11, 12], [0, 10, 20], 25) == {10: 10, 11: 11, 12: 12}
    assert cheap_substitutes([10, 12, 19], [0, 10, 20], 25) == {10: 10, 12: 11, 19: 12}


def test_last_gop_shorter_than_the_others() -> None:
    """A short last GOP (3 frames) all wanted stays whole; keyframes past the end (a recording cut
    short) end no GOP."""
    assert cheap_substitutes([20, 21, 22], [0, 10, 20], 23) == {20: 20, 21: 21, 22: 22}
    assert cheap_substitutes([5, 21, 22], [0, 10, 20, 30], 23) == {5: 0, 21: 20, 22: 21}
    assert cheap_substitutes([18, 22, 24], [0, 10, 20, 30], 25) == {18: 10, 22: 20, 24: 21}


def test_all_intra_and_frames_before_the_first_keyframe_are_identity() -> None:
    wanted = [0, 3, 7, 11, 19]
    assert cheap_substitutes(wanted, range(20), 20) == {t: t for t in wanted}
    assert cheap_substitutes([1, 4, 8, 9], [5], 10) == {1: 1, 4: 4, 8: 5, 9: 6}


def test_substitutes_keep_order_stay_in_their_gop_and_are_distinct() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 400))
        keys = sorted({0, *rng.integers(0, n, int(rng.integers(1, 12))).tolist()})
        wanted = sorted(set(rng.integers(0, n, int(rng.integers(1, 60))).tolist()))
        subs = cheap_substitutes(wanted, keys, n)
        served = [subs[t] for t in wanted]
        assert all(a < b for a, b in zip(served, served[1:]))  # ascending, hence distinct
        for t, s in subs.items():
            k = keys[bisect.bisect_right(keys, t) - 1]
            assert k <= s <= t  # at most one GOP before t, never after it
            assert s - k < sum(k <= u <= t for u in wanted)  # within the GOP's first m frames


# -- a real H.264 file ---------------------------------------------------------------------------


def _gray_frames(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` decoded with PyAV alone, in presentation order, as grey."""
    with av.open(str(path)) as c:
        frames = sorted(((f.pts, f.to_ndarray(format="gray")) for f in c.decode(c.streams.video[0])), key=lambda x: x[0])
    return [img for _, img in frames]


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The frames ``VideoFrameSource`` decodes (its decode generator yields), in order."""
    seen: list[int] = []
    real = VideoFrameSource._decode

    def counted(self: VideoFrameSource):
        for idx, frame in real(self):
            seen.append(idx)
            yield idx, frame

    monkeypatch.setattr(VideoFrameSource, "_decode", counted)
    return seen


@pytest.fixture(scope="module")
def long_gop_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 coded frames, H.264 with B-frames and a GOP of 50 (8 GOPs)."""
    d = tmp_path_factory.mktemp("gop50")
    return write_video(d / "gop50.mp4", 400, options={"bf": "3", "g": "50", "keyint_min": "50", "sc_threshold": "0"})


@pytest.mark.parametrize("two_decoders", [False, True], ids=["one-decoder", "two-decoders"])
@pytest.mark.parametrize("n_wanted", [8, 16, 51])
def test_h264_setup_decodes_about_the_wanted_frames(long_gop_video: Path, decodes: list[int], n_wanted: int,
                                                    two_decoders: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large frames are read by two decoders in threads (every other GOP each), small ones by one:
    the same pixels and the same decode count either way."""
    monkeypatch.setattr(prefetch, "TWO_DECODERS_FROM_PX", 0 if two_decoders else 10**12)
    opened = []
    real_reopen = VideoFrameSource.reopen
    monkeypatch.setattr(VideoFrameSource, "reopen", lambda self: opened.append(1) or real_reopen(self))
    wanted = statistic_frames(400, n_wanted)
    with VideoFrameSource(long_gop_video) as src:
        keys = src.keyframe_indices()
        assert keys is not None and 1 < len(keys) < len(src)
        gops = {bisect.bisect_right(keys, int(t)) for t in wanted}
        decodes.clear()  # opening decoded frame 0
        setup = PrefetchedSource(src, wanted)
        subs = setup.substitutes
        assert subs == cheap_substitutes(wanted, keys, len(src)) and subs != {int(t): int(t) for t in wanted}
        served = {int(t): setup[int(t)] for t in wanted}
        assert len(decodes) <= len(wanted) + len(gops)
        assert len(setup._held) == len(wanted)  # only the wanted frames are held
        assert len(opened) == (1 if two_decoders and len(gops) > 1 else 0)
        truth = _gray_frames(long_gop_video)
        for t, img in served.items():
            assert decode_index(img) == subs[t]
            assert np.array_equal(img, truth[subs[t]]), t


def test_h264_setup_without_snapping_decodes_most_of_the_recording(long_gop_video: Path, decodes: list[int]) -> None:
    """What the snapping spares: the same frames read as they are, in one ascending pass."""
    wanted = statistic_frames(400, 16)
    with VideoFrameSource(long_gop_video) as src:
        decodes.clear()
        for t in wanted:
            src[int(t)]
        assert len(decodes) > 5 * len(wanted)


def test_h264_reads_outside_the_setup_and_iter_read_the_real_frames(h264_video: Path) -> None:
    wanted = [5, 30, 31, 70]
    with VideoFrameSource(h264_video) as src:
        with PrefetchedSource(src, wanted) as setup:
            assert setup.substitutes == {5: 0, 30: 24, 31: 25, 70: 60}
            assert decode_index(setup[31]) == 25
            assert [decode_index(setup[t]) for t in (6, 24, 25, 119)] == [6, 24, 25, 119]
            assert [decode_index(f) for f in setup.iter(29, 33)] == [29, 30, 31, 32]
            assert [decode_index(f) for f in setup.iter(30, 32)] == [30, 31]  # wanted, not served by themselves
        assert decode_index(setup[31]) == 31  # released: the real frame


def test_h264_through_the_run_guard_is_snapped(h264_video: Path) -> None:
    """``vidfilter run`` wraps its input in a CheckedSource: the keyframes are found through it."""
    with VideoFrameSource(h264_video) as video:
        src = guard_input(video)
        setup = PrefetchedSource(src, [13, 20, 40])
        assert setup.substitutes == {13: 12, 20: 13, 40: 36}
        assert [decode_index(setup[t]) for t in (13, 20, 40)] == [12, 13, 36]


def test_unseekable_video_has_no_keyframes_to_start_at(h264_video: Path) -> None:
    with VideoFrameSource(h264_video) as src:
        src._seekable = False
        assert src.keyframe_indices() is None
        setup = PrefetchedSource(src, [13, 40])
        assert setup.substitutes == {13: 13, 40: 40} and decode_index(setup[40]) == 40


# -- sources read as they are --------------------------------------------------------------------


def test_all_intra_video_serves_the_wanted_frames(tmp_path: Path) -> None:
    path = write_video(tmp_path / "intra.mp4", 30, options={"g": "1"})
    with VideoFrameSource(path) as src:
        assert src.keyframe_indices() == list(range(30))
        wanted = [2, 9, 17, 29]
        setup = PrefetchedSource(src, wanted)
        assert setup.substitutes == {t: t for t in wanted}
        assert [decode_index(setup[t]) for t in wanted] == wanted


class CountingSource(ArrayFrameSource):
    """An array source recording its random reads; ``iter`` is not recorded."""

    def __init__(self, frames: np.ndarray) -> None:
        super().__init__(frames)
        self.reads: list[int] = []

    def _read(self, t: int) -> np.ndarray:
        self.reads.append(t)
        return ArrayFrameSource._read(self, t)


def test_array_source_reads_the_wanted_frames_once_in_order() -> None:
    frames = np.arange(40, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 5), np.uint8)
    src = CountingSource(frames)
    setup = PrefetchedSource(src, [30, 3, 17, 9])
    assert setup.substitutes == {3: 3, 9: 9, 17: 17, 30: 30}
    assert [int(setup[t][0, 0]) for t in (17, 3, 30, 9)] == [17, 3, 30, 9]
    assert src.reads == [3, 9, 17, 30]
    assert [int(f[0, 0]) for f in setup.iter(3, 10, 6)] == [3, 9] and src.reads == [3, 9, 17, 30]
