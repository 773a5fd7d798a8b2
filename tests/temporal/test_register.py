"""Camera-shift registration: shifts against the generator's ground truth, aligned training pairs
and temporal statistic, a run whose temporal channel follows the camera, and H.264 clips whose
codec noise must not read as a camera shift."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import zarr
from scipy import ndimage

from vidfilter.config import Config
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.sampling.pairs import make_samplers
from vidfilter.temporal.register import correlation_peak, hann_taper
from vidfilter.temporal import Registration, statistic_and_registration, statistic_frames, survey, temporal_statistic, translate
from vidfilter.synth import SyntheticRecording, write_video

SHIFT_AT = 20


def _frames(shift=(3.0, 2.0), n_animals=6, noise=2.0, n=40, size=(160, 192), seed=16, texture=12.0) -> tuple[np.ndarray, SyntheticRecording]:
    rec = SyntheticRecording(n, *size, n_animals=n_animals, shift_px=shift, shift_at=SHIFT_AT, noise_sigma=noise, seed=seed,
                             texture=texture)
    return np.stack([rec[t] for t in range(n)]), rec


@pytest.mark.parametrize("shape", [(512, 512), (160, 192), (97, 64)])
def test_taper_matches_scikit_image_window(shape):
    from skimage.filters import window

    np.testing.assert_allclose(hann_taper(shape), window("hann", shape), atol=1e-6)


@pytest.mark.parametrize("shape,move", [((128, 128), (5, -9)), ((96, 160), (-30, 41)), ((64, 80), (32, -40)), ((64, 64), (0, 0))])
def test_correlation_peak_matches_scikit_image(shape, move):
    """The peak against scikit-image's phase_cross_correlation (unnormalised, whole pixels) on a
    smoothed random texture moved circularly by a known shift plus noise, and on pure noise."""
    from skimage.registration import phase_cross_correlation

    rng = np.random.default_rng(sum(shape) + move[0])
    ref = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    mov = np.roll(ref, move, axis=(0, 1)) + 0.05 * rng.normal(size=shape)
    theirs = phase_cross_correlation(ref, mov, upsample_factor=1, normalization=None)[0]
    assert correlation_peak(ref, mov) == tuple(int(v) for v in theirs)
    undo = tuple((-m) % s for m, s in zip(move, shape))  # the circular move back, wrapped past half a side
    assert correlation_peak(ref, mov) == tuple(u - s if u > s // 2 else u for u, s in zip(undo, shape))
    noise = rng.normal(size=shape)
    theirs = phase_cross_correlation(ref, noise, upsample_factor=1, normalization=None)[0]
    assert correlation_peak(ref, noise) == tuple(int(v) for v in theirs)


@pytest.mark.parametrize("dy,dx", [(3, 2), (-4, 1), (0, -5), (7, -7)])
def test_translate_matches_scipy_shift(dy, dx):
    img = np.random.default_rng(0).integers(0, 256, (30, 41), dtype=np.uint8)
    expected = ndimage.shift(img, (dy, dx), order=0, mode="nearest")
    assert np.array_equal(translate(img, dy, dx), expected)
    assert translate(img, 0, 0) is img


@pytest.mark.parametrize("shift", [(3.0, 2.0), (-2.0, 4.0), (2.6, -3.3)])
def test_shifts_match_the_generators_camera(shift):
    """Every frame's estimate is the generator's camera offset (exact for whole-pixel shifts, the
    correlation peak within a pixel for fractional ones), with animals crossing the window and
    sensor noise."""
    frames, rec = _frames(shift)
    reg = Registration(frames[0])
    found = np.array([reg.shift(frames[t], t) for t in range(len(frames))])
    truth = np.array([rec.offset(t) for t in range(len(frames))])
    if float(shift[0]).is_integer() and float(shift[1]).is_integer():
        assert np.array_equal(found, truth)
    else:
        assert np.abs(found - truth).max() < 1 and np.array_equal(found[:SHIFT_AT], truth[:SHIFT_AT])
    assert reg.moved and reg.largest == np.abs(found).max() >= 2
    assert reg.summary() == {"frames_seen": 40, "frames_moved": 20, "largest_shift_px": reg.largest}


def test_still_camera_and_flat_frames_are_unshifted(caplog):
    frames, _ = _frames((0.0, 0.0))
    reg = survey(ArrayFrameSource(frames, fps=5.0), np.arange(0, 40, 3))
    assert not reg.moved and reg.largest == 0
    assert reg.shift(np.full_like(frames[0], 200)) == (0, 0)  # nothing to correlate
    bumped, _ = _frames((3.0, 2.0))
    tiny = Registration(bumped[0], max_shift=1)  # a 3 px bump is beyond this bound: rejected, said once
    with caplog.at_level(logging.WARNING):
        assert tiny.shift(bumped[30], 30) == (0, 0)
    assert "beyond 1 px" in caplog.text


def test_statistic_is_accumulated_in_frame0_coordinates():
    """Without animals, the max over registered frames is frame 0's plate; unregistered, it
    holds two copies of the texture (the error the max channel suffered before)."""
    frames, rec = _frames(n_animals=0)
    src = ArrayFrameSource(frames, fps=5.0)
    plate0 = rec.frame(0).background / 255  # ground truth: frame 0's plate, noise-free
    reg = Registration(frames[0])
    aligned = temporal_statistic(src, "median", 40, registration=reg)
    plain = temporal_statistic(src, "median", 40)
    inner = (slice(8, -8), slice(8, -8))  # the border repeats edge pixels where the camera uncovered it
    err_aligned = np.abs(aligned - plate0)[inner].mean() * 255
    err_plain = np.abs(plain - plate0)[inner].mean() * 255
    assert err_aligned < 1.0 and 2 * err_aligned < err_plain
    assert len(reg.cache) == 40 and reg.moved


def _straddling_errors(config: Config, frames: np.ndarray) -> tuple[float, float, dict]:
    ss = make_samplers([frames], config, validation=False)
    pair_err, stat_err = [], []
    for _ in range(300):
        inp, tgt, info = ss.train.sample_pair()
        if (info["t_input"] < SHIFT_AT) != (info["t_target"] < SHIFT_AT):
            pair_err.append(np.abs(inp[0] - tgt[0]).mean() * 255)
            stat_err.append(np.abs(inp[0] - inp[1]).mean() * 255)
    return float(np.mean(pair_err)), float(np.mean(stat_err)), ss.registrations


def test_training_pairs_and_statistic_follow_the_camera():
    """Pairs that straddle the bump show the same plate at the same pixel (the difference is
    sensor noise alone), and so does the statistic channel; with registration off they do not."""
    frames, _ = _frames(n_animals=0, texture=30.0)
    cfg = Config().override({
        "sampling.crop": 64, "output.polarity": "dark", "model.temporal_channel": "median", "sampling.mine_fraction": 0.0, "sampling.swap": 0.0,
        "sampling.flips": False, "sampling.rot90": False, "sampling.stat_dropout": 0.0,
    })
    noise_only = np.abs(np.diff(frames[:SHIFT_AT].astype(np.float32), axis=0)).mean()  # two frames' noise, same plate
    pair_on, stat_on, regs = _straddling_errors(cfg, frames)
    pair_off, stat_off, none = _straddling_errors(cfg.override({"sampling.registration": "off"}), frames)
    assert list(regs) == [0] and none == {}
    assert pair_on < 1.2 * noise_only < pair_off / 2
    assert stat_on < noise_only < stat_off / 2  # one frame's noise against the plate (the median has almost none)


def test_still_camera_turns_registration_off():
    frames, _ = _frames((0.0, 0.0))
    ss = make_samplers([frames], Config().override({"sampling.crop": 64, "output.polarity": "dark"}), validation=False)
    assert ss.registrations == {}


def test_run_moves_the_statistic_with_each_frame(tmp_path):
    """A gate model whose gate is shut outputs its statistic channel: on a plate-only recording the
    background then matches every frame after the bump only when the channel follows the camera."""
    from vidfilter.infer.pipeline import run
    from vidfilter.models import build_model, save_bundle

    frames, _ = _frames(n_animals=0, texture=30.0)
    cfg = Config().override({"model.width": 4, "model.depth": 2, "model.temporal_channel": "median",
                             "model.gate": True, "output.polarity": "dark"})
    model = build_model(cfg.model)
    with torch.no_grad():
        model.out.bias[1] = -30.0  # sigmoid(-30) ~ 1e-13: output = statistic + correction (zero)
    errors = {}
    for mode in ("auto", "off"):
        bundle = save_bundle(tmp_path / f"{mode}.vfm", model, cfg.override({"sampling.registration": mode}))
        summary = run(ArrayFrameSource(frames, fps=5.0), tmp_path / f"{mode}.zarr", model=bundle,
                      config=Config().override({"infer.every": 1, "output.match_exposure": "off"}))
        bg = zarr.open_array(str(tmp_path / f"{mode}.zarr" / "background" / "0"), mode="r")[:].astype(np.float32)
        errors[mode] = np.abs(bg[SHIFT_AT:, 8:-8, 8:-8] - frames[SHIFT_AT:, 8:-8, 8:-8]).mean()
        assert (summary.registration is not None) == (mode == "auto")
    assert summary.registration is None
    noise_only = np.abs(np.diff(frames[:SHIFT_AT].astype(np.float32), axis=0)).mean()
    assert errors["auto"] < noise_only / 2 and 2 * errors["auto"] < errors["off"]


def test_training_records_the_registration(tmp_path):
    """The bundle's provenance says which recording was registered and by how much."""
    from vidfilter.models import load_model
    from vidfilter.train.loop import train

    frames, _ = _frames()
    cfg = Config().override({"sampling.crop": 64, "model.width": 4, "model.depth": 2, "train.steps": 4,
                             "train.batch_size": 2, "train.val_pairs": 2})
    bundle = load_model(train([frames], tmp_path / "m.vfm", cfg, progress=False))
    (entry,) = [i for i in bundle.provenance["inputs"] if i["role"] == "train"]
    assert entry["registration"]["largest_shift_px"] == 3 and entry["registration"]["frames_moved"] > 0


def _h264(path, rec, crf: int) -> ArrayFrameSource:
    """``rec`` written as H.264 (libx264, yuv420p) at ``crf`` and read back with vidfilter's reader."""
    from vidfilter.io.registry import open as open_source

    src = open_source(write_video(path, rec, codec="libx264", crf=crf, pix_fmt="yuv420p"), color="gray")
    return ArrayFrameSource(np.stack([np.asarray(src[t]) for t in range(len(src))]), fps=25.0)


#: still cameras, with animals or the plate alone, on a faint plate (texture 3) under a 10 % light
#: drift: once compressed the plate is nearly flat, and correlation peaks come from codec noise,
#: exposure or the animals
STILL = {
    "animals": {"n_animals": 4, "seed": 0},
    "plate": {"n_animals": 0, "seed": 2},
}


@pytest.fixture(scope="module")
def still_frames() -> dict[str, np.ndarray]:
    out = {}
    for name, kw in STILL.items():
        rec = SyntheticRecording(120, 128, 160, texture=3.0, noise_sigma=0.5, illumination_drift=0.1, **kw)
        out[name] = np.stack([rec[t] for t in range(len(rec))])
    return out


@pytest.mark.parametrize("crf", [18, 28, 38, 45])
@pytest.mark.parametrize("content", list(STILL))
def test_still_h264_clip_shows_no_shift(tmp_path, still_frames, content, crf):
    """No frame of a still camera gets a shift, whatever the compression (so ``auto`` leaves the
    recording unregistered)."""
    src = _h264(tmp_path / "still.mp4", ArrayFrameSource(still_frames[content], fps=25.0), crf)
    reg = survey(src, np.arange(len(src)))
    assert reg.summary() == {"frames_seen": 120, "frames_moved": 0, "largest_shift_px": 0}


@pytest.mark.parametrize("shift", [(3, 0), (-2, 2)])
def test_h264_camera_shift_is_found(tmp_path, shift):
    """A camera bump at frame 50 of a compressed clip (CRF 32) is found in every surveyed frame
    after it, within a pixel, and none before it; ``auto`` registers the recording."""
    rec = SyntheticRecording(100, 128, 160, n_animals=4, texture=8.0, noise_sigma=1.5, illumination_drift=0.03,
                             shift_px=shift, shift_at=50, seed=0)
    src = _h264(tmp_path / "bump.mp4", rec, 32)
    _, reg = statistic_and_registration(src, "max", 32, "auto", 32)
    assert reg is not None
    for t in statistic_frames(len(src), 32):
        found = np.array(reg.shift(np.asarray(src[int(t)]), int(t)))
        if t < 50:
            assert tuple(found) == (0, 0), t
        else:
            assert tuple(found) != (0, 0) and np.abs(found - shift).max() <= 1, (t, tuple(found))


def test_a_single_shifted_frame_does_not_register_the_recording(caplog):
    """Frame 21 alone really moved, by (3, 2) px. Its shift is measured, but a shift seen in a single
    surveyed frame is no camera bump: ``auto`` keeps the recording unregistered, with the statistic
    taken unregistered; ``on`` registers it."""
    frames, _ = _frames((0.0, 0.0), n_animals=0, texture=30.0)
    frames[21] = translate(frames[21], 3, 2)
    src = ArrayFrameSource(frames, fps=5.0)
    assert Registration(frames[0]).shift(frames[21]) == (3, 2)
    with caplog.at_level(logging.INFO, logger="vidfilter.temporal.statistic"):
        stat, reg = statistic_and_registration(src, "median", 40, "auto", 32)
    assert reg is None and "camera treated as still" in caplog.text
    np.testing.assert_array_equal(stat, temporal_statistic(src, "median", 40))
    assert statistic_and_registration(src, "median", 40, "on", 32)[1].summary()["frames_moved"] == 1


def test_still_h264_mouse_arena_shows_no_shift(tmp_path, shared_data):
    """Real content: the mouse_tracktor arena (a still camera) re-encoded at CRF 28. The floor is
    smooth and frame 122 is ten grey levels darker than frame 0 (exposure): a correlation peak
    there is decided by illumination, not by the floor."""
    import av

    video = shared_data / "mouse_tracktor" / "mouse_video.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found")
    with av.open(str(video)) as f:
        grey = [fr.to_ndarray(format="gray") for _, fr in zip(range(131), f.decode(video=0))]
    clip = np.stack([grey[0], *grey[110:131]])  # frame 0 and frames 110-130
    src = _h264(tmp_path / "mouse.mp4", ArrayFrameSource(clip, fps=25.0), 28)
    assert survey(src, np.arange(len(src))).summary()["frames_moved"] == 0
