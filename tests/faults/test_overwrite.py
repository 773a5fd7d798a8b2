"""``--out`` and ``--overwrite`` pointed at every kind of foreign path: vidfilter replaces or clears
only what it wrote itself, refuses anything else in one line (exit 2), and leaves it byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from faults_helpers import assert_one_line_error, root_attrs, vf

from vidfilter.io.ownership import check_replaceable, written_by_vidfilter

MEDIAN = ("--method", "median")


def _snapshot(path: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``path`` (or of ``path`` itself), and link targets."""
    if path.is_symlink():
        return {str(path): (os.readlink(path), 0)}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
    out = {}
    for f in files:
        if f.is_symlink():
            out[str(f)] = (os.readlink(f), 0)
        else:
            out[str(f)] = (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
    return out


@pytest.fixture
def good_npy(tmp_path: Path) -> Path:
    p = tmp_path / "in" / "good.npy"
    p.parent.mkdir()
    np.save(p, np.random.default_rng(0).integers(0, 255, (12, 24, 32), dtype=np.uint8))
    return p


def _user_folder(p: Path) -> Path:
    (p / "sub").mkdir(parents=True)
    (p / "sub" / "data.txt").write_text("precious")
    return p


def _raw_zarr(p: Path) -> Path:
    z = zarr.create_array(str(p), shape=(4, 8, 8), chunks=(1, 8, 8), dtype="uint8")
    z[:] = 7
    return p


def _user_file(p: Path) -> Path:
    p.write_bytes(b"a user's bytes, not vidfilter's")
    return p


def _link_to_folder(p: Path) -> Path:
    target = _user_folder(p.parent / "elsewhere")
    p.symlink_to(target, target_is_directory=True)
    return p


FOREIGN_STORES = {
    "user folder named X.zarr": _user_folder,
    "raw Zarr store of another recording": _raw_zarr,
    "file named X.zarr": _user_file,
    "link named X.zarr to a user folder": _link_to_folder,
}


@pytest.mark.parametrize("case", list(FOREIGN_STORES))
def test_overwrite_refuses_a_foreign_store(case, good_npy, tmp_path):
    out = FOREIGN_STORES[case](_parent(tmp_path) / "victim.zarr")
    before = _snapshot(out.parent)
    proc = vf("run", str(good_npy), *MEDIAN, "--out", str(out), "--overwrite")
    assert_one_line_error(proc, "vidfilter did not write", "choose another --out")
    assert _snapshot(out.parent) == before
    assert not Path(str(out) + ".partial").exists()


def _parent(tmp_path: Path) -> Path:
    d = tmp_path / "o"
    d.mkdir(exist_ok=True)
    return d


@pytest.mark.parametrize("flag", [(), ("--overwrite",)])
def test_a_foreign_partial_folder_is_never_emptied(flag, good_npy, tmp_path):
    part = _user_folder(_parent(tmp_path) / "x.zarr.partial")
    before = _snapshot(part)
    proc = vf("run", str(good_npy), *MEDIAN, "--out", str(part.parent / "x.zarr"), *flag)
    assert_one_line_error(proc, "x.zarr.partial", "vidfilter did not write")
    assert _snapshot(part) == before
    assert not (part.parent / "x.zarr").exists()


def test_overwrite_replaces_vidfilters_own_output_and_an_empty_folder(good_npy, tmp_path):
    out = _parent(tmp_path) / "ok.zarr"
    assert vf("run", str(good_npy), *MEDIAN, "--out", str(out)).returncode == 0
    assert written_by_vidfilter(out)
    proc = vf("run", str(good_npy), *MEDIAN, "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert root_attrs(out)["vidfilter"]["complete"] is True
    empty = _parent(tmp_path) / "empty.zarr"
    empty.mkdir()
    assert vf("run", str(good_npy), *MEDIAN, "--out", str(empty), "--overwrite").returncode == 0
    assert root_attrs(empty)["vidfilter"]["complete"] is True


def _foreign_video(p: Path) -> Path:
    import av

    with av.open(str(p), "w") as c:
        s = c.add_stream("ffv1" if p.suffix == ".mkv" else "libx264", rate=10)
        s.width, s.height, s.pix_fmt = 32, 24, "yuv420p" if p.suffix != ".mkv" else "gray"
        for _ in range(3):
            f = av.VideoFrame.from_ndarray(np.full((24, 32), 90, np.uint8), format="gray").reformat(format=s.pix_fmt)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return p


def _foreign_h5(p: Path) -> Path:
    h5py = pytest.importorskip("h5py")
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(10)
    return p


def _foreign_png_folder(p: Path) -> Path:
    import cv2

    p.mkdir()
    for i in range(2):
        cv2.imwrite(str(p / f"{i:03d}.png"), np.full((8, 8), i, np.uint8))
    return p


FOREIGN_CONVERT_TARGETS = {
    "another recording (.mkv)": ("victim.mkv", _foreign_video),
    "another recording (.mp4)": ("victim.mp4", _foreign_video),
    "a user's HDF5 file": ("victim.h5", _foreign_h5),
    "a user's PNG folder": ("victim_frames", _foreign_png_folder),
    "a user's TIFF folder (.tif)": ("victim.tif", _foreign_png_folder),
    "a user's Zarr store": ("victim.zarr", _raw_zarr),
}


@pytest.mark.parametrize("case", list(FOREIGN_CONVERT_TARGETS))
def test_convert_overwrite_refuses_foreign_targets(case, good_npy, tmp_path):
    name, make = FOREIGN_CONVERT_TARGETS[case]
    out = make(_parent(tmp_path) / name)
    before = _snapshot(out)
    proc = vf("convert", str(good_npy), str(out), "--overwrite")
    assert_one_line_error(proc, "vidfilter did not write")
    assert _snapshot(out) == before


def test_convert_refuses_a_foreign_partial_file(good_npy, tmp_path):
    part = _user_file(_parent(tmp_path) / "x.h5.partial")
    before = _snapshot(part)
    proc = vf("convert", str(good_npy), str(part.parent / "x.h5"))
    assert_one_line_error(proc, "x.h5.partial", "vidfilter did not write")
    assert _snapshot(part) == before


@pytest.mark.parametrize("what", ["bundle", "checkpoint", "report"])
def test_train_never_replaces_a_foreign_file(what, good_npy, tmp_path):
    d = _parent(tmp_path)
    bundle = d / "model.vfm"
    victim = {"bundle": bundle, "checkpoint": d / "model.ckpt", "report": d / "model.report"}[what]
    _user_folder(victim) if what == "report" else _user_file(victim)
    before = _snapshot(victim)
    proc = vf("train", str(good_npy), "--out", str(bundle), "--steps", "2", "--crop", "16", "--width", "4")
    assert_one_line_error(proc, "vidfilter did not write")
    assert _snapshot(victim) == before


def test_synth_preview_overwrite_refuses_a_foreign_png(tmp_path):
    import cv2

    png = _parent(tmp_path) / "photo.png"
    cv2.imwrite(str(png), np.full((8, 8), 5, np.uint8))
    bank = tmp_path / "no-bank"
    bank.mkdir()
    before = _snapshot(png)
    proc = vf("synth", str(bank), "--preview", str(png), "--overwrite")
    assert_one_line_error(proc, "vidfilter did not write")
    assert _snapshot(png) == before


def test_batch_output_folder_with_a_foreign_store_of_the_same_name(good_npy, tmp_path):
    out_dir = _parent(tmp_path)
    victim = _user_folder(out_dir / "good.zarr")
    before = _snapshot(victim)
    proc = vf("run", str(good_npy), *MEDIAN, "--out-dir", str(out_dir), "--overwrite")
    assert proc.returncode == 2
    assert "vidfilter did not write" in proc.stderr and "Traceback" not in proc.stderr
    assert _snapshot(victim) == before


def test_ownership_unit_cases(tmp_path):
    assert not written_by_vidfilter(tmp_path / "absent")
    check_replaceable(tmp_path / "absent")  # nothing there: fine
    (tmp_path / "empty").mkdir()
    assert written_by_vidfilter(tmp_path / "empty")
    (tmp_path / "zero.h5").write_bytes(b"")
    assert written_by_vidfilter(tmp_path / "zero.h5")
    lock_only = tmp_path / "killed.zarr.partial"
    lock_only.mkdir()
    (lock_only / ".lock").write_text('{"pid": 1, "host": "h", "time": 0}')
    assert written_by_vidfilter(lock_only)  # a run killed right after taking its lock
    (lock_only / ".lock").write_text("garbage")
    assert not written_by_vidfilter(lock_only)
    png = tmp_path / "preview.png"
    from vidfilter.io.ownership import signed_png

    png.write_bytes(signed_png(np.zeros((4, 6, 3), np.uint8)))
    assert written_by_vidfilter(png)
    import cv2

    assert cv2.imread(str(png)).shape == (4, 6, 3)
