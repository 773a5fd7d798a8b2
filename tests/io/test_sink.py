"""Tests of vidfilter.io.sink (FrameSink contract, atomic helpers, output checks) and the HDF5 sink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from vidfilter.errors import (
    ForeignOutputError,
    OutputExistsError,
    OutputNotWritableError,
    UnsupportedInputError,
    VidfilterError,
)
from vidfilter.io.sink import mark_folder
from vidfilter.io.sink import (
    FrameSink,
    atomic_path,
    atomic_write_bytes,
    check_output_path,
    commit_path,
    partial_path,
)


class RecordingSink(FrameSink):
    """Minimal sink that records which of finalise/abort ran."""

    def __init__(self) -> None:
        self.frame_shape = (2, 3)
        self.dtype = np.dtype(np.uint8)
        self.frames: list[np.ndarray] = []
        self.calls: list[str] = []

    def _append(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def _finalise(self) -> None:
        self.calls.append("finalise")

    def _abort(self) -> None:
        self.calls.append("abort")


# -- FrameSink contract -----------------------------------------------------------------------
def test_sink_context_finalises_on_success() -> None:
    """Leaving ``with`` normally finalises exactly once."""
    sink = RecordingSink()
    with sink:
        sink.append(np.zeros((2, 3), np.uint8))
    sink.close()
    assert sink.calls == ["finalise"]
    assert sink.frames_written == 1


def test_sink_context_aborts_on_exception() -> None:
    """An exception inside ``with`` aborts and never finalises."""
    sink = RecordingSink()
    with pytest.raises(KeyError):
        with sink:
            sink.append(np.zeros((2, 3), np.uint8))
            raise KeyError("boom")
    assert sink.calls == ["abort"]
    with pytest.raises(ValueError, match="closed"):
        sink.append(np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize(
    "frame",
    [np.zeros((3, 2), np.uint8), np.zeros((2, 3), np.uint16), np.zeros((2, 3), np.float32)],
)
def test_sink_rejects_wrong_shape_or_dtype(frame: np.ndarray) -> None:
    """Frames of another shape or dtype raise a typed error, nothing is written."""
    sink = RecordingSink()
    with pytest.raises(UnsupportedInputError):
        sink.append(frame)
    assert sink.frames_written == 0


# -- atomic helpers ---------------------------------------------------------------------------
def test_atomic_write_bytes_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    """The file gets the new content, no temporary file remains, the mode honours the umask."""
    target = tmp_path / "a.json"
    target.write_text("old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_path_failure_keeps_old_file(tmp_path: Path) -> None:
    """If the writer raises, the old file is untouched and the temporary is removed."""
    target = tmp_path / "b.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin"]


@pytest.mark.parametrize("as_dir", [False, True])
def test_commit_path_overwrite(tmp_path: Path, as_dir: bool) -> None:
    """commit_path refuses to replace without overwrite, and swaps in the new output with it."""
    final = tmp_path / "out"
    part = partial_path(final)
    for p, text in ((final, "old"), (part, "new")):
        if as_dir:
            p.mkdir()
            (p / "x").write_text(text)
        else:
            p.write_text(text)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        commit_path(part, final)
    # an old output vidfilter did not write is never replaced ...
    with pytest.raises(ForeignOutputError, match="did not write"):
        commit_path(part, final, overwrite=True)
    assert ((final / "x") if as_dir else final).read_text() == "old"
    # ... one it wrote is (a marked folder; a file emptied here stands for one holding no data)
    if as_dir:
        mark_folder(final, "test")
    else:
        final.write_text("")
    commit_path(part, final, overwrite=True)
    assert ((final / "x") if as_dir else final).read_text() == "new"
    assert not part.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- check_output_path ------------------------------------------------------------------------
def test_check_output_existing(tmp_path: Path) -> None:
    """An existing output is refused with a one-line fix-it message unless overwrite."""
    out = tmp_path / "out.zarr"
    out.mkdir()
    with pytest.raises(OutputExistsError) as ei:
        check_output_path(out)
    msg = str(ei.value)
    assert "--overwrite" in msg and "--out" in msg and "\n" not in msg
    assert isinstance(ei.value, FileExistsError) and isinstance(ei.value, VidfilterError)
    assert check_output_path(out, overwrite=True) == out.resolve()
    assert check_output_path(tmp_path / "new" / "deeper.mkv") == (tmp_path / "new" / "deeper.mkv").resolve()


def test_check_output_is_input(tmp_path: Path) -> None:
    """Writing onto the input itself is refused, even with overwrite."""
    inp = tmp_path / "movie.mp4"
    inp.write_bytes(b"x")
    with pytest.raises(OutputNotWritableError, match="input"):
        check_output_path(inp, inputs=[inp], overwrite=True)
    with pytest.raises(OutputNotWritableError):
        check_output_path(str(tmp_path / "." / "movie.mp4"), inputs=[str(inp)], overwrite=True)


def test_check_output_inside_input_store(tmp_path: Path) -> None:
    """Outputs inside an image-sequence folder or a Zarr store given as input are refused."""
    seq = tmp_path / "frames"
    seq.mkdir()
    (seq / "000000.png").write_bytes(b"x")
    with pytest.raises(OutputNotWritableError, match="inside"):
        check_output_path(seq / "bg.zarr", inputs=[seq])
    store = tmp_path / "in.zarr"
    (store / "raw").mkdir(parents=True)
    with pytest.raises(OutputNotWritableError, match="inside"):
        check_output_path(store / "out", inputs=[f"{store}/raw"])
    # a sibling is fine; non-path inputs are ignored
    check_output_path(tmp_path / "out.zarr", inputs=[seq, f"{store}/raw", np.zeros(3), "https://x/y.mp4"])


def test_check_output_containing_input(tmp_path: Path) -> None:
    """Overwriting a folder that holds an input would delete the input: refused."""
    out = tmp_path / "results"
    out.mkdir()
    inp = out / "movie.mkv"
    inp.write_bytes(b"x")
    with pytest.raises(OutputNotWritableError, match="destroy"):
        check_output_path(out, inputs=[inp], overwrite=True)


def test_check_output_parent_is_file(tmp_path: Path) -> None:
    """A 'folder' that is a file cannot hold the output."""
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputNotWritableError):
        check_output_path(f / "out.zarr")


def test_check_output_unwritable_folder(tmp_path: Path) -> None:
    """A read-only folder is refused (skipped where chmod does not block writes, e.g. as root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            blocked = False
        except OSError:
            blocked = True
        if not blocked:
            pytest.skip("chmod 0o555 does not block writes here (running as root?)")
        with pytest.raises(OutputNotWritableError, match="cannot write"):
            check_output_path(ro / "out.zarr")
    finally:
        ro.chmod(0o755)


def test_check_output_unwritable_folder_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal path runs even as root: os.access reporting no write permission is honoured."""
    import vidfilter.io.sink as sink_mod

    monkeypatch.setattr(sink_mod.os, "access", lambda *a, **k: False)
    with pytest.raises(OutputNotWritableError, match="cannot write") as ei:
        check_output_path(tmp_path / "out.zarr")
    assert isinstance(ei.value, PermissionError)


# -- HDF5 -------------------------------------------------------------------------------------
h5py = pytest.importorskip("h5py")


def test_hdf5_writer_two_datasets_round_trip(tmp_path: Path) -> None:
    """Two datasets in one file round-trip bit-exactly; the file appears only at finalise."""
    from vidfilter.io.hdf5_sink import Hdf5Writer

    rng = np.random.default_rng(1)
    bg = rng.integers(0, 65535, (5, 7, 9), dtype=np.uint16)
    fg = rng.normal(size=(5, 7, 9)).astype(np.float32)
    path = tmp_path / "out.h5"
    with Hdf5Writer(path, attrs={"model": "m.vfm", "run": {"seed": 1}}) as w:
        sb = w.dataset("/background", (7, 9), np.uint16, n_frames=5, fps=10)
        sf = w.dataset("foreground", (7, 9), np.float32, n_frames=5)
        for t in range(5):
            sb.append(bg[t])
            sf.append(fg[t])
        assert not path.exists() and partial_path(path).exists()
    assert not partial_path(path).exists()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["background"][:], bg)
        np.testing.assert_array_equal(f["foreground"][:], fg)
        assert f["background"].chunks == (1, 7, 9)
        assert f["background"].attrs["fps"] == 10
        assert bool(f.attrs["vidfilter_complete"])
        assert f.attrs["model"] == "m.vfm"


def test_hdf5_sink_standalone_and_abort(tmp_path: Path) -> None:
    """Hdf5Sink writes a one-dataset file; an exception aborts and leaves no file at all."""
    from vidfilter.io.hdf5_sink import Hdf5Sink

    frames = np.arange(3 * 4 * 5 * 3, dtype=np.uint8).reshape(3, 4, 5, 3)
    path = tmp_path / "a.h5"
    with Hdf5Sink(path, "frames", (4, 5, 3), np.uint8, n_frames=3) as s:
        for fr in frames:
            s.append(fr)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["frames"][:], frames)
    with pytest.raises(OutputExistsError):
        Hdf5Sink(path, "frames", (4, 5, 3), np.uint8, n_frames=3)
    other = tmp_path / "b.h5"
    with pytest.raises(ZeroDivisionError):
        with Hdf5Sink(other, "frames", (4, 5, 3), np.uint8, n_frames=3) as s:
            s.append(frames[0])
            1 / 0
    assert not other.exists() and not partial_path(other).exists()


def test_hdf5_short_write_refuses_to_finalise(tmp_path: Path) -> None:
    """Fewer frames than declared cannot finalise (unless allow_short), leaving no output."""
    from vidfilter.io.hdf5_sink import Hdf5Writer

    path = tmp_path / "short.h5"
    w = Hdf5Writer(path)
    s = w.dataset("bg", (2, 2), np.uint8, n_frames=4)
    s.append(np.ones((2, 2), np.uint8))
    with pytest.raises(RuntimeError, match="1 of 4"):
        w.finalise()
    assert not path.exists() and not partial_path(path).exists()

    w = Hdf5Writer(path)
    s = w.dataset("bg", (2, 2), np.uint8, n_frames=4)
    s.append(np.ones((2, 2), np.uint8))
    w.finalise(allow_short=True)
    with h5py.File(path, "r") as f:
        assert f["bg"].shape == (1, 2, 2)
