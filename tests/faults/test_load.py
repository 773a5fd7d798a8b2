"""Load (slow tier, ``make test-slow``): a 20,000-frame recording with flat memory, and 200 small
inputs in one batch. Peak-RSS figures at 1k/5k/20k frames are also measured by ``make soak``
(``benchmarks/soak.py`` -> ``benchmarks/results/soak.json``).

The default-tier memory test is ``tests/infer/test_memory.py`` (150 vs 1500 frames).
"""

from __future__ import annotations

import pytest
from faults_helpers import damaged_copy, vf

from vidfilter._peak_rss import peak_rss_run
from vidfilter.io.integrity import verify
from vidfilter.synth import write_long_video

pytestmark = pytest.mark.slow

#: Peak RSS of the 20k-frame run may exceed the 1k-frame run's by at most this (MB). The only state
#: that grows with the length is the frame index of the video reader (pts and keyframe flags,
#: ~120 bytes per frame per open handle; the keyframe look-ahead holds a second handle): measured
#: +7.8 MB from 1k to 20k frames (benchmarks/results/soak.json). A leak of one 64x64 uint8 frame
#: per frame would add 78 MB.
BOUND_MB = 16.0




def peak_mb(args: list[str]) -> float:
    d = peak_rss_run(args, timeout=1800)
    assert d["rc"] == 0, d
    return d["kb"] / 1024


def test_20k_frames_with_flat_memory(tmp_path):
    """1k, 5k and 20k 64x64 frames through ``vidfilter run --method median``: the peak RSS of the
    20k run stays within BOUND_MB of the 1k run's, and the 20k output verifies complete."""
    peaks = {}
    for n in (1000, 5000, 20000):
        video = write_long_video(tmp_path / f"rec{n}.mkv", n)
        out = tmp_path / f"o{n}.zarr"
        peaks[n] = peak_mb(["-q", "run", str(video), "--method", "median", "--out", str(out), "--threads", "1"])
    print("peak RSS (MB): " + ", ".join(f"{n} frames {mb:.1f}" for n, mb in peaks.items()))
    assert peaks[20000] - peaks[1000] < BOUND_MB, peaks
    report = verify(tmp_path / "o20000.zarr", quick=True)
    assert report.complete and report.facts["images"]["foreground"]["frames"] == 20000, report.problems


def test_200_small_inputs_in_one_batch(tmp_path):
    """200 recordings in one ``vidfilter run`` (one of them truncated): 199 complete outputs, the bad
    one reported on its line of stderr with the reason, exit code 2, and no output for it."""
    d = tmp_path / "inputs"
    d.mkdir()
    base = write_long_video(tmp_path / "base.mkv", 12, size=16)
    inputs = []
    for i in range(200):
        p = d / f"rec{i:03d}.mkv"
        if i == 137:
            damaged_copy(base, p, cut=0.5)
        else:
            p.write_bytes(base.read_bytes())
        inputs.append(str(p))
    out_dir = tmp_path / "outs"
    proc = vf("run", *inputs, "--method", "median", "--out-dir", str(out_dir), timeout=1800)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 199  # the done ones; failures go to stderr
    failed = [ln for ln in proc.stderr.strip().splitlines() if ln.lstrip().startswith("failed")]
    assert len(failed) == 1 and "rec137.mkv" in failed[0] and "cut short" in failed[0]
    assert not (out_dir / "rec137.zarr").exists() and not (out_dir / "rec137.zarr.partial").exists()
    done = sorted(out_dir.glob("*.zarr"))
    assert len(done) == 199
    for store in done:
        assert verify(store, quick=True).complete, store
