"""Memory of ``vidfilter run`` is flat in the length of the recording.

Each run happens in a fresh child process that reports its own peak RSS, so the runs do not share
allocator state. The child imports the heavy modules first and then resets its high-water mark
(``/proc/self/clear_refs``, Linux; else ``ru_maxrss`` of the whole process), so the peak measured
is the run's and not the import's (importing torch alone peaks above a small run). A 96x96 recording of 150 frames and one of 1500 frames go
through ``--method median`` and through a tiny model in keyframe mode (``--every 25``). (The
pipeline costs ~10 ms per small frame here, mostly the two Zarr chunk files written per frame, so
1500 frames keep the test under a minute.)

Bound: the peak of the long run may exceed the short run's by at most 8 MB. The baseline of such a
process (Python, torch, PyAV, zarr) is ~280 MB and repeated runs of the same command gave the same
peak to within 0.1 MB here; the slack covers allocator arenas and lazily created buffers. A leak
of anything per frame is caught: the extra 1350 frames hold 12.4 MB as uint8 frames and 50 MB as the
float32 backgrounds the pipeline computes, so keeping even one uint8 frame per frame fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfilter._peak_rss import peak_rss_run
from vidfilter.synth import SyntheticRecording, write_video

BOUND_MB = 8.0
SHORT, LONG = 150, 1500

def _peak_mb(args: list[str]) -> float:
    d = peak_rss_run(args, timeout=120)
    assert d["rc"] == 0, d
    return d["kb"] / 1024


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[int, Path]:
    d = tmp_path_factory.mktemp("mem")
    return {n: write_video(d / f"rec{n}.mkv", SyntheticRecording(n, 96, 96, n_animals=2, seed=4), codec="ffv1") for n in (SHORT, LONG)}


@pytest.mark.parametrize("mode", ["median", "model-keyframes"])
def test_peak_memory_flat_in_recording_length(videos, tiny_bundle, tmp_path, mode):
    extra = ["--method", "median"] if mode == "median" else ["--model", str(tiny_bundle), "--every", "25", "--device", "cpu"]
    peaks = {}
    for n, path in videos.items():
        peaks[n] = _peak_mb(["-q", "run", str(path), "--out", str(tmp_path / f"o{n}.zarr"), "--threads", "1", *extra])
    growth = peaks[LONG] - peaks[SHORT]
    assert growth < BOUND_MB, f"{mode}: peak RSS {peaks[SHORT]:.1f} MB for {SHORT} frames, {peaks[LONG]:.1f} MB for {LONG} (+{growth:.1f} MB)"
    print(f"{mode}: peak RSS {peaks[SHORT]:.1f} MB ({SHORT} frames) -> {peaks[LONG]:.1f} MB ({LONG} frames)")
