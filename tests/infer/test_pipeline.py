"""Streaming pipeline: outputs against independent computations, keyframe interpolation, resume
after SIGKILL identical to an uninterrupted run, overwrite refusal, inputs untouched, batches."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from kill_points import call_point, vf_at
from stores import read_group

from vidfilter.config import Config
from vidfilter.errors import OutputExistsError
from vidfilter.infer.pipeline import run, run_many
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.registry import open as vf_open
from vidfilter.models import build_model, save_bundle
from vidfilter.synth import SyntheticRecording, write_video


_read = read_group


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    rec = SyntheticRecording(40, 96, 128, n_animals=3, seed=3)
    return write_video(tmp_path_factory.mktemp("vid") / "rec.mkv", rec, codec="ffv1")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = Config().override({"model.width": 4, "model.depth": 3, "model.residual": False, "output.polarity": "absolute"})
    model = build_model(cfg.model)
    return save_bundle(tmp_path_factory.mktemp("m") / "tiny.vfm", model, cfg)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_median_baseline_matches_numpy(tmp_path):
    """--method median writes the per-pixel median, and foreground = |frame - background|."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(9, 20, 30), dtype=np.uint8)
    summary = run(ArrayFrameSource(frames, fps=5.0), tmp_path / "out.zarr", method="median")
    assert summary.status == "done" and summary.frames == 9
    bg = _read(tmp_path / "out.zarr", "background")
    expected = np.median(frames, axis=0).astype(np.uint8)
    assert np.array_equal(bg, np.broadcast_to(expected, frames.shape))
    fg = _read(tmp_path / "out.zarr", "foreground")
    exact = np.abs(frames.astype(int) - expected).astype(np.uint8)
    floor = Config().output.foreground_floor  # values below it are stored as 0 (sensor noise)
    assert floor > 0 and np.array_equal(fg, np.where(exact >= floor, exact, 0))
    run(ArrayFrameSource(frames, fps=5.0), tmp_path / "exact.zarr", method="median",
        config=Config().override({"output.foreground_floor": 0}))
    assert np.array_equal(_read(tmp_path / "exact.zarr", "foreground"), exact)


def test_model_output_equals_direct_inference(tmp_path, video, bundle):
    """The pipeline's background equals the network applied to each decoded frame, reflect-padded
    by the engine's border (the model's alignment) and cropped back (the exposure match off: it
    shifts the network's output, tested on its own below)."""
    from vidfilter.models import load_model

    run(video, tmp_path / "o.zarr", model=bundle, config=Config().override({"infer.every": 1, "output.match_exposure": "off"}))
    b = load_model(bundle)
    with vf_open(video) as src:
        for t in (0, 17, 39):
            x = torch.from_numpy(src[t].astype(np.float32) / 255)[None, None]
            m = b.model.multiple
            with torch.no_grad():
                y = b.model(torch.nn.functional.pad(x, (m, m, m, m), mode="reflect"))[0, 0, m:-m, m:-m].numpy()
            want = np.rint(np.clip(y, 0, 1) * 255).astype(np.uint8)
            got = _read(tmp_path / "o.zarr", "background")[t]
            assert np.abs(got.astype(int) - want).max() <= 1


def test_keyframe_mode_interpolates_between_keyframes(tmp_path, video, bundle):
    """--every K: keyframes equal per-frame inference, frames between are the linear blend."""
    full = tmp_path / "full.zarr"
    key = tmp_path / "key.zarr"
    run(video, full, model=bundle, config=Config().override({"infer.every": 1}))
    run(video, key, model=bundle, config=Config().override({"infer.every": 10, "infer.adaptive": False}))
    a = _read(full, "background").astype(np.float32)
    b = _read(key, "background").astype(np.float32)
    for t in (0, 10, 20, 30, 39):
        assert np.abs(a[t] - b[t]).max() <= 1
    blend = 0.7 * a[10] + 0.3 * a[20]
    assert np.abs(b[13] - blend).max() <= 1.5


def test_existing_output_refused_and_input_untouched(tmp_path, video):
    before = _sha(video)
    run(video, tmp_path / "o.zarr", method="median")
    # the same run asked again has nothing to do; another method over it needs --overwrite
    assert run(video, tmp_path / "o.zarr", method="median").status == "skipped"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run(video, tmp_path / "o.zarr", method="max")
    run(video, tmp_path / "o.zarr", method="max", config=Config().override({"output.overwrite": True}))
    assert _sha(video) == before


def test_batch_continues_after_a_bad_input(tmp_path, video):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    results = run_many([str(video), str(bad), str(video)], method="median", out_dir=tmp_path / "outs",
                       config=Config().override({"output.overwrite": True}))
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert "broken.mp4" in results[1].error and "\n" not in results[1].error


def test_mask_and_float16_foreground(tmp_path, video):
    cfg = Config().override({"output.mask": True, "output.foreground_dtype": "float16", "output.polarity": "dark"})
    run(video, tmp_path / "o.zarr", method="max", config=cfg)
    fg = _read(tmp_path / "o.zarr", "foreground")
    mask = _read(tmp_path / "o.zarr", "mask")
    assert fg.dtype == np.float16 and mask.dtype == np.uint8
    levels = np.abs(fg.astype(np.float32)) * 255
    clear = np.abs(levels - 10) > 0.05  # float16 rounding can only matter right at the threshold
    assert np.array_equal(mask.astype(bool)[clear], (levels > 10)[clear])
    assert mask.any()


@pytest.mark.parametrize("every", [1, 4])
def test_resume_after_sigkill_is_identical(tmp_path, video, bundle, every):
    """Kill `vidfilter run` mid-way (after frame 24 of 40, past the first progress record at 16);
    the same command resumes and the output equals an uninterrupted run."""
    ref = tmp_path / "ref.zarr"
    run(video, ref, model=bundle, config=Config().override({"infer.every": every}))
    out = tmp_path / "out.zarr"
    args = ["run", str(video), "--model", str(bundle), "--out", str(out), "--every", str(every), "--threads", "1"]
    vf_at(call_point("vidfilter.io.zarr_sink", "ZarrImageSink._mark", 2 * 24), *args)  # background and foreground
    assert not out.exists() and Path(str(out) + ".partial").exists()
    done = subprocess.run([sys.executable, "-m", "vidfilter", "-q", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for group in ("background", "foreground"):
        assert np.array_equal(_read(out, group), _read(ref, group))


def test_dark_polarity_clamps_background_and_mask_follows_polarity(tmp_path):
    """Dark animals only darken: the per-frame background >= frame, the mask holds only
    darker-than-background pixels. Stored at keyframes the background is the unclamped one; the
    foreground (saturating) is the same either way."""
    frames = np.full((6, 16, 16), 200, np.uint8)
    frames[:, 4:8, 4:8] = 120  # a dark animal that never moves (stays in the median)
    frames[2, 10:14, 10:14] = 250  # a bright flash: not an animal for dark polarity
    cfg = Config().override({"output.polarity": "dark", "output.mask": True, "output.background": "full"})
    run(ArrayFrameSource(frames), tmp_path / "o.zarr", method="median", config=cfg)
    bg = _read(tmp_path / "o.zarr", "background")
    mask = _read(tmp_path / "o.zarr", "mask")
    assert (bg >= frames).all()
    assert mask[2, 10:14, 10:14].sum() == 0
    run(ArrayFrameSource(frames), tmp_path / "k.zarr", method="median", config=cfg.override({"output.background": "keyframes"}))
    keyed = _read(tmp_path / "k.zarr", "background")
    assert (keyed[2, 10:14, 10:14] == 200).all() and np.array_equal(np.maximum(keyed, frames), bg)
    for group in ("foreground", "mask"):
        assert np.array_equal(_read(tmp_path / "k.zarr", group), _read(tmp_path / "o.zarr", group))
    cfg = cfg.override({"output.polarity": "absolute"})
    run(ArrayFrameSource(frames), tmp_path / "a.zarr", method="median", config=cfg)
    assert _read(tmp_path / "a.zarr", "mask")[2, 10:14, 10:14].all()  # absolute keeps the flash


def test_object_mask_keeps_a_faint_animal_whole(tmp_path):
    """--mask-method object: a dark animal with a faint middle (6 grey levels, far above the
    noise) is one object in the stored mask; the fixed rule stores two pieces."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    plate = np.full((13, 48, 144), 160.0)
    frames = plate + rng.normal(0, 1.0, plate.shape)
    for t in range(13):  # the animal crawls 8 px per frame: it covers a pixel in <= 5 of 13 frames
        x = 8 * t
        frames[t, 20:24, x + 4 : x + 14] -= 30
        frames[t, 20:24, x + 14 : x + 30] -= 6
        frames[t, 20:24, x + 30 : x + 40] -= 30
    frames = np.clip(frames, 0, 255).round().astype(np.uint8)
    cfg = Config().override({"output.polarity": "dark", "output.mask": True})
    n_objects = {}
    for method in ("fixed", "object"):
        run(ArrayFrameSource(frames), tmp_path / f"{method}.zarr", method="median",
            config=cfg.override({"output.mask_method": method}))
        m = _read(tmp_path / f"{method}.zarr", "mask")[6] > 0
        n_objects[method] = ndimage.label(m, structure=np.ones((3, 3)))[1]
        if method == "object":
            assert m[20:24, 52:88].all()  # head to tail (x = 48: 52..88), faint middle included
    assert n_objects == {"fixed": 2, "object": 1}


def test_match_exposure_removes_a_global_offset_exactly():
    """A background 7 levels too dark for the frame (exposure change, model bias) is shifted by the
    frame's median offset: the plate's foreground is 0 and the animal's is its true contrast."""
    from vidfilter.infer.outputs import match_exposure

    rng = np.random.default_rng(0)
    plate = rng.integers(100, 200, (64, 64)).astype(np.uint8)
    frame = plate.copy()
    frame[10:20, 10:30] -= 40  # a dark animal (5 % of the frame)
    bg = (plate - 7).astype(np.uint8)
    fixed = match_exposure(frame, bg)
    assert fixed.dtype == np.uint8 and np.array_equal(fixed, plate)
    as_float = match_exposure(frame.astype(np.float32) / 255, bg.astype(np.float32) / 255) * 255
    np.testing.assert_allclose(as_float, plate.astype(np.float32), atol=1e-3)
    assert match_exposure(np.full((8, 8), 250, np.uint8), np.full((8, 8), 10, np.uint8)).max() == 250  # saturating
