"""A full disk: a clear one-line error that says so, no corrupt or complete-looking output, and the
same command resumes after space is freed, to an output identical to an uninterrupted run.

Two variants: a real full file system (a small tmpfs mounted in the test; skipped where mounting
is not permitted) and a simulated ``ENOSPC`` from the chunk writer, which always runs. Also here:
a checkpoint write that hits a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from faults_helpers import assert_one_line_error, assert_same_output, tmpfs, vf

from vidfilter.config import Config
from vidfilter.errors import DiskFullError
from vidfilter.infer.pipeline import run
from vidfilter.io import zarr_sink
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.integrity import verify
from vidfilter.train.checkpoint import load_checkpoint, save_checkpoint


def test_full_tmpfs_clear_error_then_resume_after_freeing_space(tmp_path):
    src = tmp_path / "noise.npy"  # random frames, which no codec shrinks: the store needs ~800 kB
    np.save(src, np.random.default_rng(2).integers(0, 256, (120, 48, 64), dtype=np.uint8))
    ref = tmp_path / "ref.zarr"
    run(src, ref, method="median")
    with tmpfs(tmp_path / "small disk", "400k") as disk:
        out = disk / "out.zarr"
        proc = vf("run", str(src), "--method", "median", "--out", str(out))
        assert_one_line_error(proc, "disk is full", "out.zarr", "rerun the same command")
        assert not out.exists() and Path(str(out) + ".partial").exists()
        assert subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], capture_output=True).returncode == 0
        proc = vf("run", str(src), "--method", "median", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert_same_output(out, ref)
        report = verify(out, input=src)
        assert report.complete, report.problems


def _run_with_timeout(fn, timeout: float = 60.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "the run hung after the write failure"
    return box


@pytest.mark.parametrize("fail_at", [0, 37])
def test_simulated_enospc_says_disk_full_and_resumes_identically(tmp_path, monkeypatch, fail_at):
    """The chunk writer raises ENOSPC at frame ``fail_at``: DiskFullError (no hang: the stages stop),
    only ``OUT.partial`` remains, and the rerun equals an uninterrupted run."""
    frames = np.random.default_rng(0).integers(0, 255, (80, 24, 32), dtype=np.uint8)
    cfg = Config().override({"infer.queue_size": 1})
    ref = tmp_path / "ref.zarr"
    run(ArrayFrameSource(frames), ref, method="median", config=cfg)
    real = zarr_sink.ZarrImageSink._append_at

    def full_disk(self, t, frame):
        if t >= fail_at:
            # a write that blocks a while, then fails, as on a real full disk: meanwhile the
            # estimate stage fills the queue to the dead writer, which must not hang the run
            time.sleep(0.3)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, t, frame)

    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", full_disk)
    out = tmp_path / "out.zarr"
    box = _run_with_timeout(lambda: run(ArrayFrameSource(frames), out, method="median", config=cfg))
    err = box.get("error")
    assert isinstance(err, DiskFullError) and err.errno == errno.ENOSPC, box
    assert "disk is full" in str(err) and "\n" not in str(err)
    assert not out.exists() and Path(str(out) + ".partial").exists()
    monkeypatch.setattr(zarr_sink.ZarrImageSink, "_append_at", real)
    summary = run(ArrayFrameSource(frames), out, method="median", config=cfg)
    assert summary.frames_this_run <= 80
    assert_same_output(out, ref)
    assert verify(out).complete


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    """A checkpoint write that runs out of space half-way never replaces the last good checkpoint."""
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, {"step": 4, "x": torch.arange(5)})
    real_save = torch.save

    def half_then_full(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:
            fh.truncate(10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"step": 6, "x": torch.arange(7)})
    monkeypatch.setattr(torch, "save", real_save)
    state = load_checkpoint(path)
    assert state["step"] == 4 and torch.equal(state["x"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    """A SIGKILL during an atomic write (checkpoint, bundle, progress record) leaves its temporary
    file; the next write of the same file removes those of dead processes, never a live one's."""
    import os
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    path = tmp_path / "m.ckpt"
    stale = tmp_path / f".m.{dead.pid}.0badc0de.tmp.ckpt"
    live = tmp_path / f".m.{os.getpid()}.0123abcd.tmp.ckpt"
    other = tmp_path / ".other.1.00000000.tmp.ckpt"
    for f in (stale, live, other):
        f.write_bytes(b"half a checkpoint")
    save_checkpoint(path, {"step": 1})
    assert not stale.exists() and live.exists() and other.exists()
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("command", ["run", "convert"])
def test_disk_full_before_the_first_byte(media, tmp_path, command):
    """No space at all when the run starts: the disk-full line, exit 2, and no partial left
    (one made by this run would look like an interrupted run's); freeing space, the same command runs."""
    src = media["mkv"]
    with tmpfs(tmp_path / "full disk", "256k") as disk:
        filler = disk / "filler.bin"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        out = disk / "out.zarr"
        args = ("run", str(src), "--method", "median", "--out", str(out)) if command == "run" else ("convert", str(src), str(out))
        assert_one_line_error(vf(*args), "disk is full")
        assert not out.exists() and not Path(str(out) + ".partial").exists()
        filler.unlink()
        assert subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], capture_output=True).returncode == 0
        proc = vf(*args)
        assert proc.returncode == 0, proc.stderr
        assert verify(out).complete
