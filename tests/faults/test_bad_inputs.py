"""Bad inputs: each gives one line naming the file and the problem, exit 2, no traceback, and no
output that looks complete; odd but valid inputs are processed correctly; ``--salvage`` processes
exactly the frames before the damage.

Attacks already covered elsewhere (not repeated here): a text file renamed .mp4 and an empty
folder (``tests/e2e/test_cli.py::test_not_a_video_and_empty_folder``), an output inside an
image-sequence input (``tests/e2e/test_cli.py::test_output_inside_input_refused``), bundle bytes
flipped inside the weights (``tests/models/test_bundle.py::test_corrupted_bytes``), PNG pages of
different sizes (``tests/io/test_images_source.py::test_mismatched_frame_is_reported_on_read``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
import zarr
from faults_helpers import assert_no_output, assert_one_line_error, damaged_copy, read_group, root_attrs, tmpfs, vf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidfilter.config import Config
from vidfilter.errors import DamagedInputError, UnsupportedInputError
from vidfilter.infer.pipeline import run
from vidfilter.io.guard import CheckedSource
from vidfilter.io.integrity import content_hash, verify
from vidfilter.io.registry import open as vf_open
from vidfilter.io.zarr_source import ZarrFrameSource

MEDIAN = ("--method", "median")


# ---------------------------------------------------------------------------------------------
# the CLI contract, one damaged input at a time


def _zarr_missing_chunk(d: Path) -> Path:
    z = zarr.create_array(str(d / "stack.zarr"), shape=(6, 16, 20), chunks=(1, 16, 20), dtype="uint8")
    z[:] = np.random.default_rng(0).integers(1, 255, (6, 16, 20), dtype=np.uint8)
    (d / "stack.zarr" / "c" / "3" / "0" / "0").unlink()
    return d / "stack.zarr"


def _nan_tiff(d: Path) -> Path:
    f = np.random.default_rng(0).random((4, 16, 20)).astype(np.float32)
    f[2, 3, 3] = np.nan
    tifffile.imwrite(d / "nan.tif", f, photometric="minisblack")
    return d / "nan.tif"


def _inf_npy(d: Path) -> Path:
    f = np.random.default_rng(0).random((4, 16, 20)).astype(np.float32)
    f[1, 0, 0] = np.inf
    np.save(d / "inf.npy", f)
    return d / "inf.npy"


def _zero_length(d: Path) -> Path:
    (d / "empty.mp4").write_bytes(b"")
    return d / "empty.mp4"


#: name -> (make input from (media, dir), expected words in the error line)
INPUT_CASES = {
    "mkv cut at 10%": (lambda m, d: damaged_copy(m["mkv"], d / "cut 10.mkv", cut=0.10), "cut short"),
    "mkv cut at 50%": (lambda m, d: damaged_copy(m["mkv"], d / "cut 50.mkv", cut=0.50), "cut short"),
    "mkv cut at 97%": (lambda m, d: damaged_copy(m["mkv"], d / "cut 97.mkv", cut=0.97), "cut short"),
    "mp4 cut at 60%": (lambda m, d: damaged_copy(m["mp4"], d / "cut 60.mp4", cut=0.60), "not a readable video"),
    "mkv bytes flipped mid-stream": (lambda m, d: damaged_copy(m["mkv"], d / "flip.mkv", flip_at=0.5), "CRC mismatch"),
    "mp4 bytes flipped mid-stream": (lambda m, d: damaged_copy(m["mp4"], d / "flip.mp4", flip_at=0.3), "damaged"),
    "zero-length file": (lambda m, d: _zero_length(d), "not a readable video"),
    "zarr missing a chunk": (lambda m, d: _zarr_missing_chunk(d), "frame 3 is missing"),
    "float tiff with NaN": (lambda m, d: _nan_tiff(d), "frame 2 holds NaN"),
    "float npy with Inf": (lambda m, d: _inf_npy(d), "frame 1 holds NaN or Inf"),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_damaged_input_one_line_error_and_no_output(case, media, tmp_path):
    make, words = INPUT_CASES[case]
    bad = make(media, tmp_path)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(bad), *MEDIAN, "--out", str(out))
    assert_one_line_error(proc, bad.name, words)
    assert_no_output(out)


def _bundle_payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _newer_bundle(src: Path, dst: Path) -> Path:
    payload = _bundle_payload(src)
    payload["bundle_version"] = 99
    payload["vidfilter_version"] = "9.0.0"
    torch.save(payload, dst)
    return dst


def _older_bundle_missing_model(src: Path, dst: Path) -> Path:
    """A bundle of a format this vidfilter does not know (no model section)."""
    payload = _bundle_payload(src)
    del payload["model"]
    torch.save(payload, dst)
    return dst


BUNDLE_CASES = {
    "bundle from a newer version": (_newer_bundle, "upgrade vidfilter"),
    "bundle of another format": (_older_bundle_missing_model, "corrupt"),
    "truncated bundle": (lambda s, d: damaged_copy(s, d, cut=0.5), "truncated or corrupt"),
}


@pytest.mark.parametrize("case", list(BUNDLE_CASES))
def test_bad_bundle_one_line_error(case, media, tiny_bundle, tmp_path):
    make, words = BUNDLE_CASES[case]
    bad = make(tiny_bundle, tmp_path / "bad model.vfm")
    out = tmp_path / "out.zarr"
    assert_one_line_error(vf("run", str(media["mkv"]), "--model", str(bad), "--out", str(out)), "bad model.vfm", words)
    assert_no_output(out)


def test_bad_config_lists_every_bad_key(media, tmp_path):
    """Unknown keys (with a suggestion) and wrong types are all named in the one line."""
    cfg = tmp_path / "my config.yaml"
    cfg.write_text("infer:\n  tiel: 64\n  every: lots\noutput:\n  polarity: sideways\n")
    out = tmp_path / "out.zarr"
    line = assert_one_line_error(vf("run", str(media["mkv"]), *MEDIAN, "--config", str(cfg), "--out", str(out)),
                                 "my config.yaml", "infer.tiel", "'tile'", "infer.every", "output.polarity")
    assert "lots" in line and "sideways" in line
    assert_no_output(out)


def test_output_that_would_overwrite_the_input_is_refused(tmp_path):
    """``--out`` naming the input store itself, even with --overwrite: refused, input untouched."""
    store = _zarr_missing_chunk(tmp_path)
    zarr.open_array(str(store), mode="a")[3] = 7  # repair: a valid input
    before = sorted((p.relative_to(store), p.read_bytes()) for p in store.rglob("*") if p.is_file())
    proc = vf("run", str(store), *MEDIAN, "--out", str(store), "--overwrite")
    assert_one_line_error(proc, "is the input")
    proc = vf("run", str(store), *MEDIAN, "--out", str(store / "inside.zarr"), "--overwrite")
    assert_one_line_error(proc, "inside the input")
    after = sorted((p.relative_to(store), p.read_bytes()) for p in store.rglob("*") if p.is_file())
    assert after == before


def test_read_only_output_folder(media, tmp_path):
    """A read-only file system (root ignores permission bits, so a read-only tmpfs is mounted)."""
    with tmpfs(tmp_path / "ro", "1m") as ro:
        import subprocess

        if subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only")
        out = ro / "out.zarr"
        assert_one_line_error(vf("run", str(media["mkv"]), *MEDIAN, "--out", str(out)), "cannot write", str(ro))
        assert_no_output(out)


# ---------------------------------------------------------------------------------------------
# --salvage: the frames before the damage, exactly, and the damage recorded


SALVAGE_CASES = {
    "mkv cut at 30%": ("mkv", {"cut": 0.3}),
    "mkv cut at 80%": ("mkv", {"cut": 0.8}),
    "mkv bytes flipped": ("mkv", {"flip_at": 0.5}),
    "mp4 bytes flipped": ("mp4", {"flip_at": 0.3}),
    "mp4 bytes flipped late": ("mp4", {"flip_at": 0.8}),
}


@pytest.mark.parametrize("case", list(SALVAGE_CASES))
def test_salvage_processes_exactly_the_frames_before_the_damage(case, media, tmp_path):
    """Oracle: the intact file. The salvaged output's frames hash like the intact file's first k
    frames (so no damaged frame got in), k > 0, and the damage is recorded in the metadata."""
    kind, how = SALVAGE_CASES[case]
    bad = damaged_copy(media[kind], tmp_path / f"bad.{kind}", **how)
    out = tmp_path / "out.zarr"
    cfg = Config().override({"infer.salvage": True})
    summary = run(bad, out, method="median", config=cfg)
    assert summary.status == "salvaged" and summary.error
    k = summary.frames
    assert 0 < k < 60
    rec = root_attrs(out)["input"]
    assert rec["frames_read"] == k and rec["frames_declared"] >= k and rec["damage"]
    with vf_open(media[kind]) as intact:
        want, _ = content_hash(intact, k)
    assert rec["frames_xxh3"] == want
    report = verify(out, input=media[kind])
    assert report.complete and report.facts["input_check"] == "match", report.problems


def test_salvage_from_the_cli_reports_the_damage(media, tmp_path):
    bad = damaged_copy(media["mkv"], tmp_path / "cut.mkv", cut=0.5)
    out = tmp_path / "out.zarr"
    proc = vf("run", str(bad), *MEDIAN, "--out", str(out), "--salvage")
    assert proc.returncode == 0, proc.stderr
    assert "salvaged" in proc.stdout and "cut short" in proc.stdout
    assert "cut short" in proc.stderr and "Traceback" not in proc.stderr
    assert read_group(out, "background").shape[0] == root_attrs(out)["input"]["frames_read"]


def test_salvage_with_nothing_before_the_damage(media, tmp_path):
    bad = damaged_copy(media["mp4"], tmp_path / "early.mp4", flip_at=0.05)
    with pytest.raises(DamagedInputError, match="nothing to salvage"):
        run(bad, tmp_path / "o.zarr", method="median", config=Config().override({"infer.salvage": True}))
    assert_no_output(tmp_path / "o.zarr")


# ---------------------------------------------------------------------------------------------
# odd but valid inputs: processed, and correctly


def _png_folder(d: Path, frames: np.ndarray) -> Path:
    d.mkdir(parents=True)
    for i, f in enumerate(frames):
        bgr = f if f.ndim == 2 else f[..., [2, 1, 0, 3]] if f.shape[-1] == 4 else f[..., ::-1]
        cv2.imwrite(str(d / f"f{i:03d}.png"), bgr)
    return d


def _median_oracle(frames: np.ndarray) -> np.ndarray:
    return np.median(frames, axis=0).astype(frames.dtype)


VALID_CASES = {
    "1x1 px": lambda rng: rng.integers(0, 255, (5, 1, 1), dtype=np.uint8),
    "7x13 px": lambda rng: rng.integers(0, 255, (5, 7, 13), dtype=np.uint8),
    "16-bit": lambda rng: rng.integers(0, 65535, (5, 12, 10), dtype=np.uint16),
    "one frame": lambda rng: rng.integers(0, 255, (1, 12, 10), dtype=np.uint8),
}


@pytest.mark.parametrize("case", list(VALID_CASES))
def test_odd_valid_png_inputs_are_processed(case, tmp_path):
    """Tiny frames, 16-bit PNGs and a 1-frame recording (odd frame counts: the median is exact)."""
    frames = VALID_CASES[case](np.random.default_rng(0))
    folder = _png_folder(tmp_path / "in frames ü", frames)
    out = tmp_path / "out é.zarr"
    summary = run(folder, out, method="median")
    assert summary.frames == len(frames)
    bg = read_group(out, "background")
    assert bg.dtype == frames.dtype
    assert np.array_equal(bg, np.broadcast_to(_median_oracle(frames), frames.shape))
    assert verify(out, input=folder).complete


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_and_rgba_inputs(tmp_path, channels):
    """Colour PNGs (alpha dropped) become BT.601 grey by default and keep their channels with color=keep."""
    frames = np.random.default_rng(channels).integers(0, 255, (3, 8, 9, channels), dtype=np.uint8)
    folder = _png_folder(tmp_path / "rgb", frames)
    run(folder, tmp_path / "grey.zarr", method="median")
    grey = np.rint(frames[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    assert np.array_equal(read_group(tmp_path / "grey.zarr", "background")[0], _median_oracle(grey))
    run(folder, tmp_path / "keep.zarr", method="median", config=Config().override({"output.color": "keep"}))
    kept = read_group(tmp_path / "keep.zarr", "background")  # stored channel-first
    assert np.array_equal(np.moveaxis(kept[0], 0, -1), _median_oracle(frames))


def test_huge_frames(tmp_path):
    """4097x3001 frames (stored in 1024-px chunks): background equals the median, every chunk there."""
    frames = np.random.default_rng(1).integers(0, 255, (3, 3001, 4097), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", frames, photometric="minisblack")
    out = tmp_path / "big.zarr"
    run(tmp_path / "big.tif", out, method="median")
    assert np.array_equal(read_group(out, "background")[1], _median_oracle(frames))
    report = verify(out, quick=True)
    images = report.facts["images"]
    # 12 MB frames: runs of 2 frames a chunk (32 MiB at most), 2 runs x 3 x 5 spatial blocks
    assert report.complete and images["foreground"]["chunks"] == 2 * 3 * 5
    # the background at its one keyframe (frame 0: the median is steady, the adaptive check adds none)
    # and one chunk of table rows
    assert images["background"]["keyframes"] == 1 and images["background"]["chunks"] == 3 * 5 + 1


def test_variable_frame_rate_video(tmp_path):
    """Irregular timestamps: every frame is processed once, in order (frames encode their index)."""
    from fractions import Fraction

    import av

    pts = [0, 40, 80, 200, 240, 300, 700, 740, 780, 800]
    frames = [np.full((16, 32), 20 * i, np.uint8) for i in range(10)]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 32, 16, "gray"
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        for p, img in zip(pts, frames):
            f = av.VideoFrame.from_ndarray(img, format="gray")
            f.pts, f.time_base = p, Fraction(1, 1000)
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    out = tmp_path / "vfr.zarr"
    run(path, out, method="min", config=Config().override({"output.polarity": "bright"}))
    fg = read_group(out, "foreground")
    assert fg.shape[0] == 10
    assert [int(fg[i].max()) for i in range(10)] == [20 * i for i in range(10)]


# ---------------------------------------------------------------------------------------------
# property tests: generated shapes, dtypes and chunkings


_dtypes = st.sampled_from([np.uint8, np.uint16, np.float32])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=st.integers(1, 6), h=st.integers(1, 12), w=st.integers(1, 12), dtype=_dtypes,
    ct=st.integers(1, 3), cy=st.integers(1, 12), cx=st.integers(1, 12), data=st.data(),
)
def test_property_missing_chunk_is_reported_for_exactly_its_frames(tmp_path_factory, t, h, w, dtype, ct, cy, cx, data):
    """Any chunking: reading frame k fails (naming k) iff one of its chunk files is missing;
    with missing_chunks="fill" every frame reads, the lost ones as the fill value."""
    rng = np.random.default_rng(t * 1000 + h * 10 + w)
    arr = (rng.random((t, h, w)) * 200 + 1).astype(dtype)
    path = tmp_path_factory.mktemp("miss") / "a.zarr"
    z = zarr.create_array(str(path), data=arr, chunks=(ct, cy, cx), config={"write_empty_chunks": True})
    chunk_files = sorted(p for p in (path / "c").rglob("*") if p.is_file())
    lost = data.draw(st.sampled_from(chunk_files))
    ti = int(lost.relative_to(path / "c").parts[0])
    lost.unlink()
    bad_frames = set(range(ti * ct, min(t, (ti + 1) * ct)))
    with ZarrFrameSource(path) as src:
        for k in range(t):
            if k in bad_frames:
                with pytest.raises(DamagedInputError, match=f"frame {k} is missing") as e:
                    src[k]
                assert e.value.frame == k
            else:
                np.testing.assert_array_equal(src[k], arr[k])
    with ZarrFrameSource(path, missing_chunks="fill") as src:
        got = np.stack(list(src.iter()))
    assert np.array_equal(got[sorted(set(range(t)) - bad_frames)], arr[sorted(set(range(t)) - bad_frames)])
    assert z.fill_value == 0 and all((got[k] == 0).any() for k in bad_frames)


@settings(max_examples=20, deadline=None)
@given(
    t=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9), dtype=_dtypes,
    bad=st.tuples(st.integers(0, 4), st.integers(0, 8), st.integers(0, 8)), value=st.sampled_from([np.nan, np.inf, -np.inf]),
)
def test_property_non_finite_frames_are_named(t, h, w, dtype, bad, value):
    """NaN/Inf anywhere in a float frame is refused naming that frame; integer data never is."""
    from vidfilter.io.array_source import ArrayFrameSource

    arr = np.random.default_rng(0).random((t, h, w)).astype(dtype)
    k = bad[0] % t
    if np.issubdtype(dtype, np.floating):
        arr[k, bad[1] % h, bad[2] % w] = value
    src = CheckedSource(ArrayFrameSource(arr, path="stack.npy"))
    if np.issubdtype(dtype, np.floating):
        with pytest.raises(UnsupportedInputError, match=f"stack.npy: frame {k} holds NaN"):
            list(src.iter())
    else:
        assert len(list(src.iter())) == t


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    t=st.integers(1, 4), h=st.integers(1, 10), w=st.integers(1, 10), c=st.sampled_from([None, 3]),
    dtype=st.sampled_from([np.uint8, np.uint16]), fmt=st.sampled_from(["png", "tif"]),
)
def test_property_image_sequences_round_trip_through_run(tmp_path_factory, t, h, w, c, dtype, fmt):
    """Image folders of any small shape, 8/16 bit, grey or colour, go through ``run`` and the
    recorded content hash equals the hash of the frames written to disk."""
    d = tmp_path_factory.mktemp("seq")
    shape = (t, h, w) if c is None else (t, h, w, c)
    frames = np.random.default_rng(h * w).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    folder = d / "frames"
    if fmt == "png":
        _png_folder(folder, frames)
    else:
        folder.mkdir()
        for i, f in enumerate(frames):
            tifffile.imwrite(folder / f"f{i}.tif", f, photometric="rgb" if c else None)
    cfg = Config().override({"output.color": "keep"})
    run(folder, d / "o.zarr", method="median", config=cfg)
    from vidfilter.io.integrity import _combine, frame_digest

    assert root_attrs(d / "o.zarr")["input"]["frames_xxh3"] == _combine(b"".join(frame_digest(f) for f in frames))
    bg = read_group(d / "o.zarr", "background")
    assert bg.shape[0] == t and bg.dtype == dtype
