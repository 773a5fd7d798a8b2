"""`vidfilter track` end to end on a store written by `vidfilter run --method median --mask`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vidfilter
from vidfilter.synth import SyntheticRecording, write_video
from vidfilter.track.objects import COLUMNS
from vidfilter.track.tables import read_store_table


def vf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidfilter", "-q", *args], capture_output=True, text=True)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def run_store(tmp_path_factory) -> tuple[Path, SyntheticRecording]:
    folder = tmp_path_factory.mktemp("track")
    rec = SyntheticRecording(40, 64, 96, n_animals=1, seed=1)  # with two, this seed has them cross
    clip = write_video(folder / "clip.mp4", rec)
    store = folder / "out.zarr"
    proc = vf("run", str(clip), "--method", "median", "--mask", "--out", str(store))
    assert proc.returncode == 0, proc.stderr
    return store, rec


def test_track_to_csv_follows_the_animal(run_store, tmp_path):
    store, rec = run_store
    out = tmp_path / "tracks.csv"
    proc = vf("track", str(store), "--out", str(out), "--min-area", "10")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert "objects" in line and "tracks" in line and "median track length" in line and str(out) in line
    df = pd.read_csv(out)
    assert tuple(df.columns) == COLUMNS
    assert df["mean_intensity"].notna().all()
    ids = []  # the track of the object nearest the animal's true centroid, frame by frame
    for t in range(len(rec)):
        ys, xs = np.nonzero(rec.labels(t) == 1)
        rows = df[df["frame"] == t]
        d = np.hypot(rows["y"] - ys.mean(), rows["x"] - xs.mean()).to_numpy()
        if len(rows) and d.min() < 5:
            ids.append(int(rows["track_id"].iloc[int(np.argmin(d))]))
    assert len(ids) >= 0.9 * len(rec)
    assert np.bincount(ids).max() >= 0.9 * len(rec), ids


def test_into_store_keeps_verify_passing_and_is_replaced(run_store, tmp_path):
    store, _ = run_store
    proc = vf("track", str(store), "--into-store", "--min-area", "10")
    assert proc.returncode == 0, proc.stderr
    first = read_store_table(store)
    check = vf("verify", str(store))
    assert check.returncode == 0 and check.stdout.startswith("complete"), check.stdout + check.stderr
    proc = vf("track", str(store), "--into-store", "--source", "foreground", "--threshold", "200", "--min-area", "1")
    assert proc.returncode == 0, proc.stderr
    second = read_store_table(store)
    assert len(second) < len(first)  # a threshold that high keeps few pixels: another table
    attrs = json.loads((store / "tracks" / "zarr.json").read_text())["attributes"]["vidfilter"]
    assert attrs["rows"] == len(second) and attrs["settings"]["source"] == "foreground"
    assert not [p.name for p in store.iterdir() if p.name.startswith(".tracks.")]  # no staging left
    assert vf("verify", str(store)).returncode == 0


def test_python_api_matches_the_cli_and_is_callable_twice(run_store, tmp_path):
    store, _ = run_store
    vf("track", str(store), "--out", str(tmp_path / "t.csv"), "--min-area", "10")
    a = vidfilter.track(store, min_area=10)
    b = vidfilter.track(store, min_area=10)  # the name now holds the package: still callable
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), a, check_dtype=False)


def test_errors_are_one_line(run_store, tmp_path):
    store, _ = run_store
    assert_one_line_error(vf("track", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "t.csv")), "no such output store")
    plain = tmp_path / "plain.zarr"
    plain.mkdir()
    assert_one_line_error(vf("track", str(plain), "--out", str(tmp_path / "t.csv")), "not an output store")
    (tmp_path / "file").write_text("x")
    assert_one_line_error(vf("track", str(store), "--out", str(tmp_path / "file" / "t.csv")), "not a writable folder")
    assert_one_line_error(vf("track", str(store), "--out", str(tmp_path / "t.txt")), ".csv or .parquet")
    assert_one_line_error(vf("track", str(store)), "nothing to write")
    (tmp_path / "old.csv").write_text("x")
    assert_one_line_error(vf("track", str(store), "--out", str(tmp_path / "old.csv")), "--overwrite")


def test_store_without_mask_or_foreground(run_store, tmp_path):
    store, _ = run_store
    bare = tmp_path / "bare.zarr"
    proc = vf("run", str(store / "background"), "--method", "median", "--out", str(bare))
    assert proc.returncode == 0, proc.stderr
    # a store without a mask group: --source mask says how to get one, auto falls back to the foreground
    assert_one_line_error(vf("track", str(bare), "--source", "mask", "--out", str(tmp_path / "t.csv")), "--mask")
    assert vf("track", str(bare), "--out", str(tmp_path / "t.csv")).returncode == 0
    import shutil

    shutil.rmtree(bare / "foreground")
    assert_one_line_error(vf("track", str(bare), "--out", str(tmp_path / "u.csv")), "neither a mask nor a foreground")
