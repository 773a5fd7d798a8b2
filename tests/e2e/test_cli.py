"""The command line as a user meets it: one-line errors with exit code 2, info, convert round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidfilter.synth import SyntheticRecording, write_video


def vf(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidfilter", "-q", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    rec = SyntheticRecording(20, 64, 96, n_animals=2, seed=1)
    return write_video(tmp_path_factory.mktemp("clip") / "clip with space é.mp4", rec)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_info_json(clip):
    proc = vf("info", "--json", str(clip))
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["frames"] == 20 and facts["shape"][1:3] == [64, 96]


def test_missing_input(tmp_path):
    assert_one_line_error(vf("info", str(tmp_path / "nope.mp4")), "nope.mp4")


def test_truncated_video(tmp_path, clip):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    proc = vf("run", str(cut), "--method", "median", "--out", str(tmp_path / "o.zarr"))
    assert_one_line_error(proc, "cut.mp4")
    assert not (tmp_path / "o.zarr").exists()


def test_not_a_video_and_empty_folder(tmp_path):
    txt = tmp_path / "notes.mp4"
    txt.write_text("hello")
    assert_one_line_error(vf("info", str(txt)), "notes.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(vf("info", str(empty)), "empty")


def test_bad_config_key(tmp_path, clip):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  stpes: 3\n")
    assert_one_line_error(vf("train", str(clip), "--out", str(tmp_path / "m.vfm"), "--config", str(cfg)), "train.stpes", "steps")


def test_unknown_init_bundle_names_the_setups(tmp_path, clip):
    proc = vf("train", str(clip), "--out", str(tmp_path / "m.vfm"), "--init", "worm-plat")
    assert_one_line_error(proc, "worm-plat", "worm-plate")
    assert not (tmp_path / "m.vfm").exists()


def test_run_with_the_shipped_bundle_by_name(tmp_path, clip):
    proc = vf("run", str(clip), "--model", "worm-plate", "--out", str(tmp_path / "o.zarr"))
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(vf("info", "--json", str(tmp_path / "o.zarr")).stdout)
    assert meta["complete"] and meta["model"].endswith("worm_plate.vfm") and "written=20/20" in meta["background"]


def test_unknown_method_suggests(tmp_path, clip):
    assert_one_line_error(vf("run", str(clip), "--method", "medain", "--out", str(tmp_path / "o.zarr")), "median")


def test_model_needed_for_model_method(tmp_path, clip):
    assert_one_line_error(vf("run", str(clip), "--out", str(tmp_path / "o.zarr")), "--model")


def test_output_inside_input_refused(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((16, 16), i * 50, np.uint8))
    proc = vf("run", str(frames), "--method", "median", "--out", str(frames / "o.zarr"))
    assert_one_line_error(proc)
    assert sorted(p.name for p in frames.iterdir()) == ["0.png", "1.png", "2.png"]


def test_16bit_and_rgb_inputs_are_handled(tmp_path):
    """16-bit and colour inputs are read (colour by luma by default), not rejected with a traceback."""
    import tifffile

    stack16 = (np.arange(5 * 16 * 16, dtype=np.uint16).reshape(5, 16, 16) * 50)
    tifffile.imwrite(tmp_path / "s16.tif", stack16)
    proc = vf("run", str(tmp_path / "s16.tif"), "--method", "median", "--out", str(tmp_path / "a.zarr"))
    assert proc.returncode == 0, proc.stderr
    rgb = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    proc = vf("run", str(tmp_path / "rgb.tif"), "--method", "median", "--out", str(tmp_path / "b.zarr"))
    assert proc.returncode == 0, proc.stderr


def test_convert_round_trip_ffv1(tmp_path, clip):
    out = tmp_path / "copy.mkv"
    assert vf("convert", str(clip), str(out)).returncode == 0
    back = tmp_path / "back.zarr"
    proc = vf("convert", str(out), str(back))
    assert proc.returncode == 0, proc.stderr
    import vidfilter

    with vidfilter.open(out) as a, vidfilter.open(back) as b:
        assert len(a) == len(b) == 20
        for t in (0, 7, 19):
            assert np.array_equal(a[t], b[t])


def test_existing_output_needs_overwrite(tmp_path, clip):
    """A finished output is kept: the same run asked again has nothing to do (a batch rerun after
    a crash finishes only the rest); another method on it needs --overwrite."""
    out = tmp_path / "o.zarr"
    assert vf("run", str(clip), "--method", "median", "--out", str(out)).returncode == 0
    stamp = (out / "zarr.json").stat().st_mtime_ns
    again = vf("run", str(clip), "--method", "median", "--out", str(out))
    assert again.returncode == 0 and again.stdout.split()[0] == "skipped", (again.stdout, again.stderr)
    assert (out / "zarr.json").stat().st_mtime_ns == stamp
    assert_one_line_error(vf("run", str(clip), "--method", "max", "--out", str(out)), "--overwrite")


def test_train_with_defaults_says_what_it_chose(clip, tmp_path):
    """`vidfilter train` with no config: the polarity is detected (dark worms of the generated clip),
    the CPU gets the fast network, and one line on stderr says so with the report's verdict."""
    out = tmp_path / "m.vfm"
    proc = subprocess.run([sys.executable, "-m", "vidfilter", "train", str(clip), "--out", str(out), "--steps", "3",
                           "--crop", "32", "--width", "4"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("3 steps in ") and "polarity dark, fast network on 32 px crops;" in line, line


def test_a_camera_bump_is_reported_by_train_and_run(tmp_path):
    """A recording whose camera moves by (3, 2) px half-way: `vidfilter train` says the pairs were
    registered, `vidfilter run` that the temporal channel (or the median-registered baseline) followed
    the camera; --registration off
    says nothing of the kind."""
    video = write_video(tmp_path / "bump.mkv", SyntheticRecording(40, 96, 96, n_animals=3, shift_px=(3, 2), shift_at=20, seed=5),
                        codec="ffv1")
    common = ["--steps", "3", "--crop", "32", "--width", "4"]

    def loud(*args: str) -> subprocess.CompletedProcess:  # without -q: the one-line summaries
        return subprocess.run([sys.executable, "-m", "vidfilter", *args], capture_output=True, text=True)

    proc = loud("train", str(video), "--out", str(tmp_path / "m.vfm"), *common)
    assert proc.returncode == 0, proc.stderr
    assert "camera moved (up to 3 px): pairs registered" in proc.stderr.strip().splitlines()[-1]
    proc = vf("run", str(video), "--model", str(tmp_path / "m.vfm"), "--out", str(tmp_path / "o.zarr"))
    assert proc.returncode == 0, proc.stderr
    assert "camera moved up to 3 px: background registered" in proc.stdout
    proc = vf("run", str(video), "--method", "median-registered", "--out", str(tmp_path / "med.zarr"))
    assert proc.returncode == 0 and "camera moved up to 3 px: background registered" in proc.stdout, proc.stderr
    proc = vf("run", str(video), "--method", "median", "--out", str(tmp_path / "plain.zarr"))
    assert proc.returncode == 0 and "camera moved" not in proc.stdout
    proc = loud("train", str(video), "--out", str(tmp_path / "off.vfm"), "--registration", "off", *common)
    assert proc.returncode == 0 and "camera moved" not in proc.stderr
    proc = vf("run", str(video), "--model", str(tmp_path / "off.vfm"), "--out", str(tmp_path / "off.zarr"))
    assert proc.returncode == 0 and "camera moved" not in proc.stdout
