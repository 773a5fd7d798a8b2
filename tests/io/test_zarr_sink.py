"""Tests of vidfilter.io.zarr_sink: OME-Zarr round trips, NGFF metadata, atomicity, resume, locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from vidfilter.errors import OutputExistsError, OutputLockedError
from vidfilter.io.sink import partial_path
from vidfilter.io.zarr_info import read_ome_zarr_info
from vidfilter.io.zarr_sink import LOCK_NAME, PROGRESS_NAME, OmeZarrWriter


def make_frames(n: int, frame_shape: tuple[int, ...], dtype: np.dtype | type, seed: int = 0) -> np.ndarray:
    """Deterministic random frames covering the dtype's range."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = (n,) + tuple(frame_shape)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    return rng.normal(size=shape).astype(dtype)


def frame_at(t: int, frame_shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """Frame ``t`` of a deterministic recording (used across processes)."""
    return make_frames(1, frame_shape, dtype, seed=1000 + t)[0]


def read_with_ome_zarr(group_path: Path) -> tuple[np.ndarray, dict]:
    """Open one image group with the ome-zarr reader; return level 0 and the node metadata."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    loc = parse_url(str(group_path))
    assert loc is not None, f"ome-zarr cannot open {group_path}"
    nodes = list(Reader(loc)())
    assert nodes, f"ome-zarr found no image in {group_path}"
    return np.asarray(nodes[0].data[0]), nodes[0].metadata


def write_all(path: Path, name: str, frames: np.ndarray, **image_kw) -> None:
    with OmeZarrWriter(path) as w:
        s = w.image(name, frames.shape[1:], frames.dtype, n_frames=len(frames), **image_kw)
        for fr in frames:
            s.append(fr)


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
@pytest.mark.parametrize("frame_shape", [(13, 17), (13, 17, 3)])
def test_round_trip_zarr_and_ome_zarr(tmp_path: Path, dtype: type, frame_shape: tuple[int, ...]) -> None:
    """Frames read back bit-exactly through zarr and through the ome-zarr reader (t,c,y,x layout)."""
    frames = make_frames(6, frame_shape, dtype)
    path = tmp_path / "out.zarr"
    write_all(path, "background", frames, fps=20.0)

    arr = zarr.open_group(str(path), mode="r")["background/0"]
    stored = arr[:]
    expected = np.moveaxis(frames, -1, 1) if len(frame_shape) == 3 else frames
    assert stored.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(stored, expected)
    assert arr.chunks == (len(frames),) + expected.shape[1:]  # fewer frames than a chunk holds

    data, meta = read_with_ome_zarr(path / "background")
    np.testing.assert_array_equal(data, expected)
    names = [a["name"] for a in meta["axes"]]
    assert names == (["t", "c", "y", "x"] if len(frame_shape) == 3 else ["t", "y", "x"])


def test_ngff_metadata_axes_and_scale(tmp_path: Path) -> None:
    """NGFF 0.5 block: axes types/units, t scale 1/fps, level path 0; no unit without fps."""
    frames = make_frames(3, (8, 9), np.uint8)
    path = tmp_path / "m.zarr"
    with OmeZarrWriter(path, attrs={"model": "tiny.vfm", "params": {"lag": 5}}) as w:
        a = w.image("background", (8, 9), np.uint8, fps=25, n_frames=3)
        b = w.image("foreground", (8, 9), np.uint8, n_frames=3, channel_axis=True)
        for fr in frames:
            a.append(fr)
            b.append(fr)
    root = zarr.open_group(str(path), mode="r")
    ome = root["background"].attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert ms["axes"] == [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    assert ms["datasets"][0]["path"] == "0"
    assert ms["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [0.04, 1.0, 1.0]}]
    ms_fg = root["foreground"].attrs["ome"]["multiscales"][0]
    assert ms_fg["axes"][0] == {"name": "t", "type": "time"}
    assert [a["type"] for a in ms_fg["axes"]] == ["time", "channel", "space", "space"]
    assert root["foreground/0"].shape == (3, 1, 8, 9)
    np.testing.assert_array_equal(root["foreground/0"][:, 0], frames)

    info = read_ome_zarr_info(path)
    assert info["complete"] is True and info["partial"] is False
    assert info["attrs"] == {"model": "tiny.vfm", "params": {"lag": 5}}
    assert info["groups"]["background"]["shape"] == [3, 8, 9]
    assert info["groups"]["background"]["fps"] == pytest.approx(25.0)
    assert info["groups"]["background"]["axes"] == ["t", "y", "x"]
    assert info["groups"]["foreground"]["complete"] is True
    assert root.attrs["vidfilter"]["images"]["background"]["frames"] == 3
    # no bookkeeping files left in a finished store
    assert not (path / LOCK_NAME).exists() and not (path / PROGRESS_NAME).exists()


def test_block_store_writes_the_same_ngff_block(tmp_path: Path) -> None:
    """The block store's image groups carry the NGFF block of ``ngff_multiscales``, byte for byte
    (key order included), as the OME-Zarr writer's do."""
    from vidfilter.infer.blocks import BlockLayout, BlockStore
    from vidfilter.io.zarr_sink import ngff_multiscales

    axis = {"t": {"name": "t", "type": "time"}, "y": {"name": "y", "type": "space"}, "x": {"name": "x", "type": "space"}}
    store = BlockStore(tmp_path / "b.zarr", BlockLayout(8, 9, 2, 8, 0, 1), np.float32)
    store.abort()
    attrs = json.loads((store.partial / "background" / "zarr.json").read_text())["attributes"]
    expected = {
        "ome": {"version": "0.5", "multiscales": [{"name": "background", "axes": [axis[a] for a in "tyx"], "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}]},
        "vidfilter": {"complete": False},
    }
    assert json.dumps(attrs) == json.dumps(expected)
    assert json.dumps(attrs["ome"]) == json.dumps(ngff_multiscales("background", "tyx"))

    write_all(tmp_path / "w.zarr", "background", make_frames(1, (8, 9), np.uint8), fps=4)
    ome = json.loads((tmp_path / "w.zarr" / "background" / "zarr.json").read_text())["attributes"]["ome"]
    assert json.dumps(ome) == json.dumps(ngff_multiscales("background", "tyx", fps=4))
    assert ome["multiscales"][0]["axes"][0] == {"name": "t", "type": "time", "unit": "second"}


def test_large_frames_split_into_spatial_blocks(tmp_path: Path) -> None:
    """Frames over 2048 px on a side are chunked in 1024 px blocks."""
    frames = make_frames(2, (2100, 40), np.uint8)
    path = tmp_path / "big.zarr"
    write_all(path, "bg", frames)
    arr = zarr.open_group(str(path), mode="r")["bg/0"]
    assert arr.chunks == (2, 1024, 40)
    np.testing.assert_array_equal(arr[:], frames)


def test_write_out_of_order(tmp_path: Path) -> None:
    """write(t, frame) in any order; frames_written counts the written prefix."""
    frames = make_frames(5, (4, 4), np.uint16)
    path = tmp_path / "o.zarr"
    with OmeZarrWriter(path) as w:
        s = w.image("bg", (4, 4), np.uint16, n_frames=5)
        for t in (4, 2, 3, 1):
            s.write(t, frames[t])
        assert s.frames_written == 0
        s.write(0, frames[0])
        assert s.frames_written == 5
        np.testing.assert_array_equal(s.read(3), frames[3])
        with pytest.raises(IndexError):
            s.write(5, frames[0])
        with pytest.raises(ValueError, match="n_frames"):
            s.append(frames[0])
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["bg/0"][:], frames)


def test_short_write_cannot_finalise(tmp_path: Path) -> None:
    """A store missing frames never becomes PATH, unless allow_short trims the arrays."""
    path = tmp_path / "s.zarr"
    w = OmeZarrWriter(path)
    s = w.image("bg", (4, 4), np.uint8, n_frames=5)
    s.append(np.ones((4, 4), np.uint8))
    with pytest.raises(RuntimeError, match="1/5"):
        w.finalise()
    assert not path.exists() and partial_path(path).exists()

    w = OmeZarrWriter(path, resume=True)
    s = w.image("bg", (4, 4), np.uint8, n_frames=5)
    assert s.frames_written == 1
    s.append(np.full((4, 4), 2, np.uint8))
    w.finalise(allow_short=True)
    assert zarr.open_group(str(path), mode="r")["bg/0"].shape == (2, 4, 4)


# -- atomicity and resume -----------------------------------------------------------------------
def test_exception_leaves_only_partial_and_resume_matches(tmp_path: Path) -> None:
    """An exception mid-write leaves PATH.partial only; resume finishes identically to one pass."""
    shape, n, k = (10, 12), 40, 21
    frames = make_frames(n, shape, np.uint16)
    fg = make_frames(n, shape, np.float32, seed=5)
    path = tmp_path / "r.zarr"
    with pytest.raises(RuntimeError, match="killed"):
        with OmeZarrWriter(path, attrs={"run": 1}, checkpoint_every=4) as w:
            a = w.image("background", shape, np.uint16, fps=10, n_frames=n)
            b = w.image("foreground", shape, np.float32, fps=10, n_frames=n)
            for t in range(k):
                a.append(frames[t])
                b.append(fg[t])
            raise RuntimeError("killed")
    assert not path.exists()
    assert partial_path(path).is_dir()
    assert not (partial_path(path) / LOCK_NAME).exists()
    info = read_ome_zarr_info(path)
    assert info["complete"] is False and info["partial"] is True

    with OmeZarrWriter(path, resume=True, attrs={"run": 2}) as w:
        assert w.resumed
        a = w.image("background", shape, np.uint16, fps=10, n_frames=n)
        b = w.image("foreground", shape, np.float32, fps=10, n_frames=n)
        assert 0 < a.frames_written <= k and b.frames_written == a.frames_written
        for t in range(a.frames_written, n):
            a.append(frames[t])
            b.append(fg[t])
    assert not partial_path(path).exists()

    ref = tmp_path / "ref.zarr"
    with OmeZarrWriter(ref, attrs={"run": 2}) as w:
        a = w.image("background", shape, np.uint16, fps=10, n_frames=n)
        b = w.image("foreground", shape, np.float32, fps=10, n_frames=n)
        for t in range(n):
            a.append(frames[t])
            b.append(fg[t])
    got, want = zarr.open_group(str(path), mode="r"), zarr.open_group(str(ref), mode="r")
    for name in ("background", "foreground"):
        np.testing.assert_array_equal(got[f"{name}/0"][:], want[f"{name}/0"][:])
        assert got[name].attrs["ome"] == want[name].attrs["ome"]
    assert got.attrs["run"] == 2 and read_ome_zarr_info(path)["complete"] is True


def test_resume_removes_temporaries_of_a_killed_chunk_write(tmp_path: Path) -> None:
    """A chunk temporary left by a kill between zarr's write and rename is gone from the finished
    store; a user's file with a look-alike name is kept."""
    path = tmp_path / "t.zarr"
    frames = make_frames(6, (4, 4), np.uint8)
    w = OmeZarrWriter(path, checkpoint_every=1)
    s = w.image("bg", (4, 4), np.uint8, n_frames=6)
    for t in range(3):
        s.append(frames[t])
    w.abort()
    chunk_dir = partial_path(path) / "bg" / "0" / "c" / "3" / "0"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    stray = chunk_dir / f"0.{'ab12' * 8}.partial"
    stray.write_bytes(b"half a chunk")
    keep = partial_path(path) / "bg" / "notes.partial"
    keep.write_text("not a zarr temporary")

    with OmeZarrWriter(path, resume=True) as w:
        s = w.image("bg", (4, 4), np.uint8, n_frames=6)
        for t in range(s.frames_written, 6):
            s.append(frames[t])
    leftovers = [p.name for p in path.rglob("*.partial")]
    assert leftovers == ["notes.partial"]
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["bg/0"][:], frames)


def test_resume_mismatch_refused(tmp_path: Path) -> None:
    """Resuming with another shape or dtype is refused with a clear message."""
    path = tmp_path / "m.zarr"
    w = OmeZarrWriter(path)
    w.image("bg", (4, 4), np.uint8, n_frames=3).append(np.zeros((4, 4), np.uint8))
    w.abort()
    w = OmeZarrWriter(path, resume=True)
    with pytest.raises(OutputExistsError, match="without --resume"):
        w.image("bg", (4, 5), np.uint8, n_frames=3)
    w.abort()
    # without resume a fresh store replaces the partial
    w = OmeZarrWriter(path)
    assert w.image("bg", (4, 4), np.uint8, n_frames=3).frames_written == 0
    w.abort()


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_zarr_sink import frame_at
    from vidfilter.io.zarr_sink import OmeZarrWriter

    w = OmeZarrWriter({path!r}, checkpoint_every=4)
    s = w.image("background", (16, 16), np.uint16, fps=30, n_frames=200)
    for t in range(200):
        s.append(frame_at(t, (16, 16), np.uint16))
        print(s.frames_written, flush=True)
        time.sleep(0.01)
    w.finalise()
    """
)


def test_sigkill_mid_write_then_resume(tmp_path: Path) -> None:
    """A writer process SIGKILLed mid-write leaves only PATH.partial with a stale lock; resume
    takes the lock over and the result equals an uninterrupted write."""
    path = tmp_path / "k.zarr"
    code = _CHILD.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while True:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"child exited early: {proc.stderr.read() if proc.stderr else ''}")
            if int(line) >= 30 or time.monotonic() > deadline:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not path.exists()
    lock = partial_path(path) / LOCK_NAME
    assert json.loads(lock.read_text())["pid"] == proc.pid  # stale lock left behind

    with OmeZarrWriter(path, resume=True) as w:
        s = w.image("background", (16, 16), np.uint16, fps=30, n_frames=200)
        assert 28 <= s.frames_written < 200
        for t in range(s.frames_written, 200):
            s.append(frame_at(t, (16, 16), np.uint16))
    got = zarr.open_group(str(path), mode="r")["background/0"][:]
    want = np.stack([frame_at(t, (16, 16), np.uint16) for t in range(200)])
    np.testing.assert_array_equal(got, want)
    assert read_ome_zarr_info(path)["complete"] is True


# -- overwrite and locks ------------------------------------------------------------------------
def test_overwrite_semantics(tmp_path: Path) -> None:
    """Existing output: refused without overwrite; an aborted overwrite keeps the old output;
    a finished overwrite replaces it."""
    path = tmp_path / "ow.zarr"
    old = make_frames(3, (5, 5), np.uint8, seed=1)
    new = make_frames(4, (5, 5), np.uint8, seed=2)
    write_all(path, "bg", old)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        OmeZarrWriter(path)

    with pytest.raises(KeyboardInterrupt):
        with OmeZarrWriter(path, overwrite=True) as w:
            s = w.image("bg", (5, 5), np.uint8, n_frames=4)
            s.append(new[0])
            raise KeyboardInterrupt
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["bg/0"][:], old)

    with OmeZarrWriter(path, overwrite=True) as w:
        s = w.image("bg", (5, 5), np.uint8, n_frames=4)
        for fr in new:
            s.append(fr)
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["bg/0"][:], new)
    assert not partial_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ow.zarr"]


def test_lock_refuses_second_writer(tmp_path: Path) -> None:
    """While one writer holds the output, a second one (any process) is refused."""
    path = tmp_path / "l.zarr"
    first = OmeZarrWriter(path)
    try:
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            OmeZarrWriter(path, resume=True)
    finally:
        first.abort()
    second = OmeZarrWriter(path, resume=True)  # released by abort
    second.abort()


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    """A lock whose process no longer exists does not block a new writer."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "st.zarr"
    part = partial_path(path)
    part.mkdir()
    import socket

    (part / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "time": 0}))
    with OmeZarrWriter(path) as w:
        s = w.image("bg", (2, 2), np.uint8, n_frames=1)
        s.append(np.ones((2, 2), np.uint8))
        assert json.loads((part / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert path.exists() and not part.exists()


# -- runs of frames per chunk -------------------------------------------------------------------
def test_frames_per_chunk_follows_frame_size() -> None:
    """Up to 16 frames a chunk and at most 32 MiB of frames held: 8 at 2048² uint8, 1 at 4096² uint16."""
    from vidfilter.io.zarr_sink import frames_per_chunk

    assert frames_per_chunk(480 * 640, 10_000) == 16
    assert frames_per_chunk(2048 * 2048, 10_000) == 8
    assert frames_per_chunk(4096 * 4096 * 2, 10_000) == 1
    assert frames_per_chunk(64, 5) == 5
    assert frames_per_chunk(64, 0) == 1


def test_frames_count_as_written_when_their_chunk_is(tmp_path: Path) -> None:
    """Frames written in any order land once their chunk is whole; an abort keeps only whole chunks
    (the frames of a chunk being filled are lost, as in a kill); the resumed store is bit-exact."""
    frames = make_frames(40, (6, 5), np.uint8, seed=3)
    path = tmp_path / "runs.zarr"
    w = OmeZarrWriter(path, checkpoint_every=1)
    s = w.image("fg", (6, 5), np.uint8, n_frames=40)
    assert s.array.chunks[0] == 16
    order = list(range(16))[::-1] + [16, 17, 18]
    for i, t in enumerate(order):
        s.write(t, frames[t])
        assert s.frames_written == (16 if i >= 15 else 0)
        np.testing.assert_array_equal(s.read(t), frames[t])  # held or written, it reads back
    w.abort()

    with OmeZarrWriter(path, resume=True) as w:
        s = w.image("fg", (6, 5), np.uint8, n_frames=40)
        assert s.frames_written == 16
        for t in range(16, 40):
            s.append(frames[t])
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["fg/0"][:], frames)


def test_a_short_store_keeps_the_frames_of_its_last_chunk(tmp_path: Path) -> None:
    """finalise(allow_short=True) writes the frames held for a chunk that never filled."""
    frames = make_frames(21, (4, 4), np.uint16, seed=5)
    path = tmp_path / "short.zarr"
    with OmeZarrWriter(path) as w:
        s = w.image("bg", (4, 4), np.uint16, n_frames=40)
        for fr in frames:
            s.append(fr)
        assert s.frames_written == 16
        w.finalise(allow_short=True)
    arr = zarr.open_group(str(path), mode="r")["bg/0"]
    assert arr.shape == (21, 4, 4)
    np.testing.assert_array_equal(arr[:], frames)


def test_runs_of_frames_store_what_repeats_once(tmp_path: Path) -> None:
    """A recording whose frames share a static part costs a fraction of one chunk per frame."""
    rng = np.random.default_rng(0)
    static = rng.integers(0, 255, (96, 128), dtype=np.uint8)
    frames = np.repeat(static[None], 64, axis=0)
    for t, fr in enumerate(frames):  # a small moving object over the static part
        fr[40:50, t : t + 10] = 255
    write_all(tmp_path / "runs.zarr", "fg", frames)
    one = zarr.create_array(str(tmp_path / "one.zarr"), shape=frames.shape, chunks=(1, 96, 128), dtype=np.uint8,
                            compressors=zarr.codecs.BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"))
    one[:] = frames

    def size(p: Path) -> int:
        return sum(f.stat().st_size for f in (p / "c").rglob("*") if f.is_file())

    runs, per_frame = size(tmp_path / "runs.zarr" / "fg" / "0"), size(tmp_path / "one.zarr")
    assert runs * 8 < per_frame, (runs, per_frame)
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "runs.zarr"), mode="r")["fg/0"][:], frames)
