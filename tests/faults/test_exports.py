"""Writers and exports on hostile storage: a disk full before the run starts, a disk that fills
half-way, a per-file size limit (``ulimit -f``; FAT32 stops every file at 4 GiB) and a read-only
target.

Each writer (OME-Zarr, FFV1, PNG and TIFF folders, HDF5, preview MP4 and PNG) meets each attack
through ``vidfilter convert`` and through the exports of ``vidfilter run --format``. What a user
must meet every time: exit code 2 and exactly one line on stderr that names the file and says
what to do (no traceback, no "internal error", no crash), the input untouched (SHA-256 and
mtime), no output that looks complete (no final path; a run store says complete only when it
is), and once the cause is gone the same command, or :func:`~vidfilter.io.export.export_outputs`
again, finishes with only what was missing.

A per-file size limit needs no privileges (``RLIMIT_FSIZE`` set in the child process; CPython
ignores ``SIGXFSZ``, so writes fail with ``EFBIG``). Full and read-only disks are small tmpfs
mounts (skipped where mounting is not permitted; root ignores file permissions, so a read-only
mount stands for both).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import assert_one_line_error, root_attrs, tmpfs, vf

from vidfilter.io.export import EXPORT_FORMATS, export_outputs, export_paths, pending_exports, write_frames
from vidfilter.errors import DiskFullError, FileTooLargeError, OutputNotWritableError, VidfilterError
from vidfilter.io.ownership import MARKER_NAME, written_by_vidfilter
from vidfilter.io.registry import open as vf_open
from vidfilter.io.sink import partial_path

#: Frames of the test input: random, so no writer compresses them away.
T, H, W = 80, 48, 64
#: A per-file size limit above every file of the formats that split into small files (one frame
#: is ~3 KiB, a Zarr chunk of 16 frames ~48 KiB) and below every single-file output (~100 KiB and more).
FSIZE_LIMIT = 64 * 1024
MEDIAN = ("--method", "median")

#: ``vidfilter convert`` target of each writer.
CONVERT_TARGETS = {
    "zarr": "out.zarr",
    "ffv1": "out.mkv",
    "png": "out_frames",
    "tiff": "out.tif",
    "hdf5": "out.h5",
    "preview": "out.mp4",
}
#: Formats written as many small files: a per-file size limit does not stop them.
SPLIT_FORMATS = {"zarr", "png", "tiff"}
EXPORTS = [f for f in EXPORT_FORMATS if f != "zarr"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random recording as ``.npy`` (never on the attacked file system)."""
    path = tmp_path_factory.mktemp("input") / "clip.npy"
    np.save(path, np.random.default_rng(7).integers(0, 256, (T, H, W), dtype=np.uint8))
    return path


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


def usage(path: Path) -> int:
    """Bytes that ``path`` (a file or folder) occupies on disk, counted in 4 KiB pages."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in files)


def largest_file(path: Path) -> int:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return max(p.stat().st_size for p in files)


def vf_limited(*args: str, fsize: int) -> subprocess.CompletedProcess:
    """``vidfilter -q ARGS`` in a child process whose files may not grow past ``fsize`` bytes."""
    def limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, hard))

    return subprocess.run([sys.executable, "-m", "vidfilter", "-q", *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=240)


def remount(disk: Path, options: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount the test tmpfs with {options} ({r.stderr.strip()})")


def fill(disk: Path, leave: int = 4096) -> Path:
    """Fill ``disk`` with one file until it is full, then give back ``leave`` bytes."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(block)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


@contextlib.contextmanager
def disk_of(tmp_path: Path, size: int) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", f"{max(size, 16 * 1024) // 1024}k") as disk:
        yield disk


def assert_not_complete(out: Path) -> None:
    """No final path; a leftover partial is only a partial (a run store's says incomplete)."""
    assert not out.exists(), f"{out} exists after a failed write"
    part = partial_path(out)
    if part.is_dir() and (part / "zarr.json").exists():
        assert not root_attrs(part).get("vidfilter", {}).get("complete"), f"{part} says complete"


def frames_of(path: Path, fmt: str):
    """The frames of a convert output, read back through vidfilter's readers."""
    spec = f"{path}/image" if fmt == "zarr" else f"{path}/frames" if fmt == "hdf5" else str(path)
    with vf_open(spec, color="keep") as src:
        return np.stack(list(src.iter()))


def assert_converted(out: Path, fmt: str, clip: Path) -> None:
    """``out`` is the complete conversion of ``clip`` (bit-exact but for the lossy preview)."""
    assert out.exists() and not partial_path(out).exists()
    got = frames_of(out, fmt)
    if fmt == "preview":
        assert len(got) == T
    else:
        np.testing.assert_array_equal(got, np.load(clip))
    assert written_by_vidfilter(out)


NEEDLES = {
    "disk": ("the disk is full", "free space"),
    "fsize": ("ulimit -f", "splits into small files"),
    "ro": ("read-only",),
}


# ---------------------------------------------------------------------------------------------
# vidfilter convert: every writer x every attack
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def convert_sizes(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """(disk usage, largest file) of each convert output of ``clip``."""
    from vidfilter.io.export import convert

    d = tmp_path_factory.mktemp("convert-ref")
    sizes = {}
    for fmt, name in CONVERT_TARGETS.items():
        out = convert(clip, d / name)
        sizes[fmt] = (usage(out), largest_file(out))
    return sizes


def convert_fails_on_full_disk(clip: Path, out: Path) -> None:
    """``vidfilter convert`` to ``out`` stops with one line that names it and leaves nothing that looks complete."""
    proc = vf("convert", str(clip), str(out))
    line = assert_one_line_error(proc, *NEEDLES["disk"])
    assert out.name in line
    assert_not_complete(out)


def convert_finishes(clip: Path, out: Path, fmt: str) -> None:
    """``vidfilter convert`` to ``out`` succeeds and writes every frame of ``clip``."""
    proc = vf("convert", str(clip), str(out))
    assert proc.returncode == 0, proc.stderr
    assert_converted(out, fmt, clip)


@pytest.mark.parametrize("fmt", list(CONVERT_TARGETS))
def test_convert_disk_full_at_start(fmt, clip, tmp_path):
    before = fingerprint(clip)
    with disk_of(tmp_path, 1 << 20) as disk:
        filler = fill(disk)
        out = disk / CONVERT_TARGETS[fmt]
        convert_fails_on_full_disk(clip, out)
        filler.unlink()
        convert_finishes(clip, out, fmt)
    assert fingerprint(clip) == before


@pytest.mark.parametrize("fmt", list(CONVERT_TARGETS))
def test_convert_disk_full_midway(fmt, clip, tmp_path, convert_sizes):
    before = fingerprint(clip)
    need, _ = convert_sizes[fmt]
    with disk_of(tmp_path, need // 2) as disk:
        out = disk / CONVERT_TARGETS[fmt]
        convert_fails_on_full_disk(clip, out)
        remount(disk, f"size={(2 * need + (1 << 20)) // 1024}k")
        convert_finishes(clip, out, fmt)
    assert fingerprint(clip) == before


@pytest.mark.parametrize("fmt", list(CONVERT_TARGETS))
def test_convert_file_size_limit(fmt, clip, tmp_path, convert_sizes):
    """Single-file outputs stop with a one-line error (never a crash, not even inside h5py);
    formats that split into small files, the advice of that error, finish under the same limit."""
    before = fingerprint(clip)
    usage_, largest = convert_sizes[fmt]
    out = tmp_path / CONVERT_TARGETS[fmt]
    proc = vf_limited("convert", str(clip), str(out), fsize=FSIZE_LIMIT)
    if fmt in SPLIT_FORMATS:
        assert largest < FSIZE_LIMIT < usage_
        assert proc.returncode == 0, proc.stderr
        assert_converted(out, fmt, clip)
    else:
        assert largest > FSIZE_LIMIT
        line = assert_one_line_error(proc, *NEEDLES["fsize"])
        assert out.name in line and "64 KiB" in line
        assert_not_complete(out)
        assert not partial_path(out).exists()
        convert_finishes(clip, out, fmt)
    assert fingerprint(clip) == before


@pytest.mark.parametrize("fmt", list(CONVERT_TARGETS))
def test_convert_read_only_target(fmt, clip, tmp_path):
    """Refused before any work by the command, and by the writer itself when called directly."""
    before = fingerprint(clip)
    with disk_of(tmp_path, 1 << 20) as disk:
        remount(disk, "ro")
        out = disk / CONVERT_TARGETS[fmt]
        proc = vf("convert", str(clip), str(out))
        assert_one_line_error(proc, *NEEDLES["ro"])
        with pytest.raises(OutputNotWritableError) as e:
            write_frames(iter(np.load(clip)), out, frame_shape=(H, W), dtype=np.uint8, n_frames=T)
        assert "\n" not in str(e.value) and out.name in str(e.value) and e.value.errno == errno.EROFS
        assert_not_complete(out)
        assert not partial_path(out).exists()
        remount(disk, "rw")
        convert_finishes(clip, out, fmt)
    assert fingerprint(clip) == before


# ---------------------------------------------------------------------------------------------
# vidfilter run --format zarr X: the exports of a finished run store
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_ref(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Disk usage of the run store of ``clip`` (``zarr``) and of each of its exports."""
    from vidfilter.config import Config
    from vidfilter.infer.pipeline import run

    store = tmp_path_factory.mktemp("run-ref") / "o.zarr"
    run(clip, store, method="median", config=Config().override({"output.formats": list(EXPORT_FORMATS)}))
    groups = {"background": np.uint8, "foreground": np.uint8}
    return {fmt: sum(usage(p) for p in export_paths(store, fmt, groups)) for fmt in EXPORT_FORMATS}


def assert_store_complete(store: Path) -> None:
    assert root_attrs(store)["vidfilter"]["complete"] is True
    assert not partial_path(store).exists()


def assert_exported(store: Path, fmt: str) -> None:
    """Every output of export ``fmt`` is there, complete, marked as vidfilter's, and holds the
    store's frames (bit-exact where the format is lossless)."""
    assert pending_exports(store, [fmt]) == []
    bg = vf_open(f"{store}/background", color="keep")
    ref = np.stack(list(bg.iter()))
    bg.close()
    for p in export_paths(store, fmt, {"background": np.uint8, "foreground": np.uint8}):
        assert p.exists() and not partial_path(p).exists() and written_by_vidfilter(p), p
    base = store.with_suffix("")
    spec = {"ffv1": f"{base}.background.mkv", "png": f"{base}.background", "tiff": f"{base}.background.tif",
            "hdf5": f"{base}.h5/background", "preview": f"{base}.preview.mp4"}[fmt]
    with vf_open(spec, color="keep") as src:
        got = np.stack(list(src.iter()))
    if fmt == "preview":
        assert len(got) == T
    else:
        np.testing.assert_array_equal(got, ref)


def assert_export_failed(store: Path, fmt: str) -> None:
    """The store is complete; the failed export left nothing complete-looking."""
    assert_store_complete(store)
    assert pending_exports(store, ["zarr", fmt]) == [fmt]
    for p in export_paths(store, fmt, {"background": np.uint8, "foreground": np.uint8}):
        if not p.exists():
            assert not (partial_path(p).is_file()), f"{partial_path(p)} left behind"


@pytest.mark.parametrize("fmt", EXPORTS)
def test_export_disk_full_midway(fmt, clip, tmp_path, run_ref):
    """The store fits, the export does not: one line, the store stays complete, and calling the
    exports again after space is freed writes only what is missing."""
    before = fingerprint(clip)
    with disk_of(tmp_path, run_ref["zarr"] + 16 * 1024 + run_ref[fmt] // 2) as disk:
        store = disk / "o.zarr"
        proc = vf("run", str(clip), *MEDIAN, "--out", str(store), "--format", "zarr", fmt)
        assert_one_line_error(proc, *NEEDLES["disk"])
        assert_export_failed(store, fmt)
        remount(disk, f"size={(run_ref['zarr'] + 2 * run_ref[fmt] + (1 << 20)) // 1024}k")
        stamp = (store / "zarr.json").stat().st_mtime_ns
        export_outputs(store, src_path=str(clip), formats=["zarr", fmt])
        assert_exported(store, fmt)
        assert (store / "zarr.json").stat().st_mtime_ns == stamp
    assert fingerprint(clip) == before


@pytest.mark.parametrize("fmt", EXPORTS)
def test_export_file_size_limit(fmt, clip, tmp_path):
    """``vidfilter run IN --format zarr hdf5`` under ``ulimit -f`` ended in a segfault: now one
    line that names the file; formats that split into small files finish under the limit."""
    before = fingerprint(clip)
    store = tmp_path / "o.zarr"
    proc = vf_limited("run", str(clip), *MEDIAN, "--out", str(store), "--format", "zarr", fmt, fsize=FSIZE_LIMIT)
    if fmt in SPLIT_FORMATS:
        assert proc.returncode == 0, proc.stderr
        assert_exported(store, fmt)
    else:
        line = assert_one_line_error(proc, *NEEDLES["fsize"])
        assert "64 KiB" in line
        assert_export_failed(store, fmt)
        export_outputs(store, src_path=str(clip), formats=[fmt])
        assert_exported(store, fmt)
    assert_store_complete(store)
    assert fingerprint(clip) == before


@pytest.mark.parametrize("fmt", EXPORTS)
def test_export_to_a_file_system_turned_read_only(fmt, clip, tmp_path):
    """The store is written, then the file system turns read-only (as ext4 does after an I/O
    error): each exporter refuses in one line, and finishes once it is writable again."""
    before = fingerprint(clip)
    with disk_of(tmp_path, 8 << 20) as disk:
        store = disk / "o.zarr"
        assert vf("run", str(clip), *MEDIAN, "--out", str(store)).returncode == 0
        remount(disk, "ro")
        with pytest.raises(OutputNotWritableError) as e:
            export_outputs(store, src_path=str(clip), formats=["zarr", fmt])
        assert "\n" not in str(e.value) and "read-only" in str(e.value) and e.value.errno == errno.EROFS
        assert_export_failed(store, fmt)
        remount(disk, "rw")
        assert export_outputs(store, src_path=str(clip), formats=[fmt])
        assert_exported(store, fmt)
    assert fingerprint(clip) == before


@pytest.mark.parametrize(("fmt", "attack"), [("hdf5", "fsize"), ("preview", "fsize"), ("tiff", "disk"), ("ffv1", "ro")])
def test_rerun_does_only_the_missing_exports(fmt, attack, clip, tmp_path, run_ref):
    """Rerunning the same command after the failure (cause removed) writes the missing export
    and leaves the finished store as it was."""
    args = ("run", str(clip), *MEDIAN, "--format", "zarr", fmt)
    with contextlib.ExitStack() as stack:
        if attack == "fsize":
            disk = tmp_path
            store = disk / "o.zarr"
            proc = vf_limited(*args, "--out", str(store), fsize=FSIZE_LIMIT)
        elif attack == "disk":
            disk = stack.enter_context(disk_of(tmp_path, run_ref["zarr"] + 16 * 1024 + run_ref[fmt] // 2))
            store = disk / "o.zarr"
            proc = vf(*args, "--out", str(store))
        else:
            disk = stack.enter_context(disk_of(tmp_path, 8 << 20))
            store = disk / "o.zarr"
            assert vf("run", str(clip), *MEDIAN, "--out", str(store)).returncode == 0
            remount(disk, "ro")
            proc = vf(*args, "--out", str(store))
        assert_one_line_error(proc, *NEEDLES[attack])
        assert_export_failed(store, fmt)
        if attack == "disk":
            remount(disk, f"size={(run_ref['zarr'] + 2 * run_ref[fmt] + (1 << 20)) // 1024}k")
        elif attack == "ro":
            remount(disk, "rw")
        stamp = (store / "zarr.json").stat().st_mtime_ns
        proc = vf(*args, "--out", str(store))
        assert proc.returncode == 0, proc.stderr
        assert_exported(store, fmt)
        assert (store / "zarr.json").stat().st_mtime_ns == stamp


# ---------------------------------------------------------------------------------------------
# pending exports, ownership marks, the guarded file
# ---------------------------------------------------------------------------------------------
def test_pending_exports_and_export_outputs_skip_what_is_complete(clip, tmp_path):
    from vidfilter.infer.pipeline import run

    store = tmp_path / "o.zarr"
    assert pending_exports(store, ["zarr", "hdf5"]) == ["zarr", "hdf5"]  # nothing finished yet
    run(clip, store, method="median")
    fmts = ["zarr", "ffv1", "png", "hdf5", "preview", "png"]
    assert pending_exports(store, fmts) == ["ffv1", "png", "hdf5", "preview"]
    written = export_outputs(store, src_path=str(clip), formats=fmts)
    assert len(written) == 2 + 2 + 1 + 2 and pending_exports(store, fmts) == []
    mkv = store.with_suffix("").with_name("o.foreground.mkv")
    stamps = {p: p.stat().st_mtime_ns for p in written}
    mkv.unlink()
    assert pending_exports(store, fmts) == ["ffv1"]
    assert export_outputs(store, src_path=str(clip), formats=fmts) == [mkv]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != mkv)
    again = export_outputs(store, src_path=str(clip), formats=["hdf5"], overwrite=True)
    assert again == [store.with_suffix(".h5")]
    with pytest.raises(VidfilterError, match="unknown output format"):
        pending_exports(store, ["gif"])


def test_every_output_carries_vidfilters_mark(clip, tmp_path):
    """HDF5: root attribute ``vidfilter`` (JSON); FFV1 and preview MP4: container ``comment``;
    image folders: ``.vidfilter.json`` (skipped by the image reader); preview PNG: ``Software``."""
    import av
    import h5py
    from PIL import Image

    from vidfilter import __version__
    from vidfilter.infer.pipeline import run

    store = tmp_path / "o.zarr"
    run(clip, store, method="median")
    export_outputs(store, src_path=str(clip), formats=EXPORTS)
    with h5py.File(tmp_path / "o.h5", "r") as f:
        assert json.loads(f.attrs["vidfilter"])["format_version"] == 1
    for video in ("o.background.mkv", "o.foreground.mkv", "o.preview.mp4"):
        with av.open(str(tmp_path / video)) as c:
            meta = {k.lower(): v for k, v in c.metadata.items()}
        assert meta["comment"] == f"vidfilter {__version__}", video
    for folder in ("o.background", "o.foreground.tif"):
        marker = json.loads((tmp_path / folder / MARKER_NAME).read_text())
        assert marker["written_by"] == "vidfilter"
        with vf_open(tmp_path / folder) as src:
            assert len(src) == T  # the marker is not a frame
    with Image.open(tmp_path / "o.preview.png") as im:
        assert im.info["Software"] == f"vidfilter {__version__}"
        im.load()
    for fmt in EXPORTS:
        for p in export_paths(store, fmt, {"background": np.uint8, "foreground": np.uint8}):
            assert written_by_vidfilter(p), p


_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from vidfilter.io.export import _open_sink
from pathlib import Path
out = Path(sys.argv[1])
sink, writer = _open_sink(out, (48, 64), np.dtype(np.uint8), 400, 25.0, False)
rng = np.random.default_rng(0)
for t in range(300):
    sink.append(rng.integers(0, 256, (48, 64), dtype=np.uint8))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("name", ["k.h5", "k.mkv", "k.mp4", "k_frames", "k.tif"])
def test_a_killed_writer_leaves_a_marked_partial(name, tmp_path):
    """A writer killed half-way leaves only ``PATH.partial``, already marked as vidfilter's (so a
    rerun may clear it), and a rerun of the conversion replaces it."""
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() and partial_path(out).exists()
    assert written_by_vidfilter(partial_path(out))
    if partial_path(out).is_file():
        assert partial_path(out).stat().st_size > 0
    src = tmp_path / "in.npy"
    np.save(src, np.random.default_rng(1).integers(0, 256, (6, 48, 64), dtype=np.uint8))
    proc = vf("convert", str(src), str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and not partial_path(out).exists()


_GUARDED_WRITE = """
import resource, sys
import numpy as np
from vidfilter.io.video_sink import GuardedFile
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
g = GuardedFile(sys.argv[1], name="final.bin")
g.write(b"a" * 6000)
assert g.error is None
g.write(b"b" * 6000)        # crosses the limit: held in memory, reads see it
assert g.error is not None and g.tell() == 12000
g.seek(5990)
got = g.read(20)
assert got == b"a" * 10 + b"b" * 10, got
g.seek(0, 2)
assert g.tell() == 12000
g.close()
try:
    g.check()
except Exception as e:
    print(type(e).__name__, e.errno, e)
"""


def test_guarded_file_holds_writes_after_a_failure(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _GUARDED_WRITE, str(tmp_path / "x.bin")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"FileTooLargeError {errno.EFBIG} final.bin: ")
    assert "ulimit -f is 8 KiB" in proc.stdout


@pytest.mark.parametrize(("code", "cls", "needle"), [
    (errno.ENOSPC, DiskFullError, "the disk is full"),
    (errno.EDQUOT, DiskFullError, "the disk is full"),
    (errno.EFBIG, FileTooLargeError, "splits into small files"),
    (errno.EROFS, OutputNotWritableError, "cannot be written"),
    (errno.EACCES, OutputNotWritableError, "cannot be written"),
])
def test_write_errors_become_one_line_errors(code, cls, needle):
    from vidfilter.io.video_sink import output_error

    err = output_error(OSError(code, os.strerror(code)), "/x/out.h5")
    assert isinstance(err, cls) and err.errno == code and err.exit_code == 2
    assert str(err).startswith("/x/out.h5: ") and needle in str(err) and "\n" not in str(err)
    other = OSError(errno.EIO, "I/O error")
    assert output_error(other, "/x/out.h5") is other
