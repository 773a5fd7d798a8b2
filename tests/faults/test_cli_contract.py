"""The command line's contract under misuse: one line per mistake, distinct outputs in a batch,
failures on stderr, contradictory flags refused, and a closed pipe ends quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import assert_one_line_error, read_group, vf

MEDIAN = ("--method", "median")


def _npy(path: Path, seed: int, n: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.random.default_rng(seed).integers(0, 255, (n, 16, 24), dtype=np.uint8))
    return path


def test_batch_inputs_with_the_same_name_get_distinct_outputs(tmp_path):
    a, b = _npy(tmp_path / "day1" / "clip.npy", 1), _npy(tmp_path / "day2" / "clip.npy", 2)
    out_dir = tmp_path / "out"
    proc = vf("run", str(a), str(b), *MEDIAN, "--out-dir", str(out_dir))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["day1_clip.zarr", "day2_clip.zarr"]
    for src, name in ((a, "day1_clip.zarr"), (b, "day2_clip.zarr")):  # each holds its own input's median
        want = np.median(np.load(src), axis=0)
        got = read_group(out_dir / name, "background")
        assert np.abs(got[0].astype(float) - want).max() <= 1


def test_a_failed_input_of_a_batch_is_reported_on_stderr(tmp_path):
    good = _npy(tmp_path / "good.npy", 1)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    proc = vf("run", str(good), str(bad), *MEDIAN, "--out-dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "bad.npy" in proc.stderr and "failed" in proc.stderr and "bad.npy" not in proc.stdout
    assert "done" in proc.stdout and "Traceback" not in proc.stderr


def test_a_baseline_with_a_model_is_refused(tmp_path, tiny_bundle):
    good = _npy(tmp_path / "good.npy", 1)
    out = tmp_path / "o.zarr"
    assert_one_line_error(vf("run", str(good), *MEDIAN, "--model", str(tiny_bundle), "--out", str(out)), "--model", "median")
    assert not out.exists() and not Path(str(out) + ".partial").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (("run", "x.npy", "--every", "abc", "--out", "o.zarr"), "--every"),
        (("run",), "INPUT"),
        (("frobnicate",), "invalid choice"),
        (("run", "x.npy", "--precision", "fp64", "--out", "o.zarr"), "--precision"),
        (("verify",), "output"),
    ],
)
def test_usage_mistakes_are_one_line(args, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vidfilter", *args], capture_output=True, text=True, cwd=tmp_path)
    assert_one_line_error(proc, needle, "--help")


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`vidfilter run ... | head -1`: the reader goes away; no traceback, no 'internal error'."""
    inputs = [str(_npy(tmp_path / f"in{i}.npy", i)) for i in range(3)]
    p = subprocess.Popen(
        [sys.executable, "-m", "vidfilter", "-q", "run", *inputs, *MEDIAN, "--out-dir", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    p.stdout.close()  # nobody reads what it prints
    err = p.stderr.read().decode()
    rc = p.wait(timeout=240)
    assert rc in (0, 141), (rc, err)
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err, err
    assert len(list((tmp_path / "out").glob("*.zarr"))) == 3  # the work itself was done
