"""Two ``vidfilter run`` processes on the same output: the second refuses with a clear one-line
message, and the first finishes undisturbed.

In-process lock semantics (a live holder refuses, a dead holder's lock is taken over) are covered
by ``tests/io/test_zarr_sink.py::test_lock_refuses_second_writer`` and
``::test_stale_lock_is_taken_over``; here the real entry point runs twice at the same time.
"""

from __future__ import annotations

from pathlib import Path

from faults_helpers import assert_one_line_error, assert_same_output, vf
from kill_points import hold_point, vf_at_popen, wait_for_hold

from vidfilter.infer.pipeline import run
from vidfilter.io.integrity import verify


def test_second_process_on_the_same_output_refuses(media, tmp_path):
    """The first run is held before its first frame write (its lock taken) while the second runs,
    then released to finish."""
    src = media["long_mkv"]
    out = tmp_path / "shared.zarr"
    args = ["run", str(src), "--method", "median", "--out", str(out)]
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    hold = hold_point("vidfilter.io.zarr_sink", "ZarrImageSink._mark", 0, ctl / "held", ctl / "release")
    first = vf_at_popen(hold, *args)
    assert wait_for_hold(ctl / "held", first) == first.pid
    lock = Path(str(out) + ".partial") / ".lock"
    assert lock.exists(), "the first run did not take the lock"
    second = vf(*args)
    assert_one_line_error(second, "another vidfilter process", f"pid {first.pid}", "shared.zarr")
    (ctl / "release").touch()
    assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    ref = tmp_path / "ref.zarr"
    run(src, ref, method="median")
    assert_same_output(out, ref)
    assert verify(out, input=src).complete
    assert not lock.exists() and not (out / ".lock").exists()
