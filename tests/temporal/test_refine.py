"""The refinement of a network's background by the recording's own median and extreme projection,
checked against a generated plate with exact truth: a textured plate, an animal that rests for most
of the sample and then leaves, an animal that never moves, sensor noise, and a stand-in for the
network's background that smooths the texture and keeps part of the resting animal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from vidfilter.config import Config
from vidfilter.infer.pipeline import ModelBackground, run
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.models.shipped import shipped_path
from vidfilter.models.bundle import load_model
from vidfilter.temporal import temporal_statistics
from vidfilter.temporal.refine import Refinement

H, W, T = 96, 128, 32
NOISE = 1.5 / 255


def _disc(cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r


@pytest.fixture(scope="module")
def scene() -> dict:
    rng = np.random.default_rng(3)
    plate = (0.2 + 0.1 * np.linspace(0, 1, W)[None, :] + rng.normal(0, 3 / 255, (H, W))).astype(np.float32)
    resting, still = _disc(30, 40, 7), _disc(60, 95, 6)
    yy, xx = np.mgrid[:H, :W]
    faint = (8 / 255 * np.exp(-((yy - 70) ** 2 + (xx - 25) ** 2) / (2 * 4.0**2))).astype(np.float32)
    frames = []
    for t in range(T):
        f = plate + rng.normal(0, NOISE, (H, W)).astype(np.float32)
        if t < 22:  # rests for 22 of the 32 sampled frames (in the median), then walks off
            f = f + 0.35 * resting
        f = f + 0.3 * still + faint  # two animals that never move: a sharp one and a faint, blurred one
        frames.append(np.clip(f, 0, 1).astype(np.float32))
    stats = temporal_statistics(ArrayFrameSource(np.stack(frames)), ("median", "min", "max"), T)
    # the network: plate texture smoothed away, 60 % of the resting animal kept, the still one removed
    net = (ndimage.gaussian_filter(plate, 2.0) + 0.6 * 0.35 * resting).astype(np.float32)
    return {"plate": plate, "resting": resting, "still": still, "faint": faint, "frames": frames, "stats": stats, "net": net,
            "refinement": Refinement(stats["median"], stats["min"], stats["max"])}


def _plate_error(bg: np.ndarray, sc: dict) -> float:
    far = ~ndimage.binary_dilation(sc["resting"] | sc["still"] | (sc["faint"] > 0.5 / 255), iterations=3)
    return float(np.abs(bg - sc["plate"])[far].mean() * 255)


def _kept(bg: np.ndarray, sc: dict, where: str, contrast: float) -> float:
    m = sc[where]
    return float(np.clip(bg - sc["plate"], 0, None)[m].mean() / contrast)


def test_refinement_restores_the_plate_and_removes_what_left_its_place(scene: dict) -> None:
    sc, ref = scene, scene["refinement"]
    out = ref(sc["net"], "bright", sc["frames"][-1])
    # the plate: the network's smoothing error (~2.3 levels) down by half (the plate side fully, the other within the noise)
    assert _plate_error(sc["net"], sc) > 2.0
    assert _plate_error(out, sc) < 0.6 * _plate_error(sc["net"], sc)
    # the resting animal: the min projection shows the plate there, so its 60 % goes
    assert _kept(sc["net"], sc, "resting", 0.35) > 0.55
    assert _kept(out, sc, "resting", 0.35) < 0.05
    # the still animal, removed by the network, stays removed (in every projection, so nothing bounds it)
    assert _kept(out, sc, "still", 0.3) < 0.05


def test_the_snap_gives_back_no_more_than_the_noise_of_a_removed_animal(scene: dict) -> None:
    """The faint still animal (8 levels at its centre, in the median) that the network removed: the
    snap's animal side is only the frame's noise wide, so at most that much of it comes back (measured:
    -0.006 of its contrast); the plate side's band (the network's smoothing error, ~2.3 levels) on
    both sides would have given back its rim (0.245)."""
    sc, ref = scene, scene["refinement"]
    frame = sc["frames"][-1]
    blob = sc["faint"] > 1 / 255
    back = lambda bg: float((bg - sc["plate"])[blob].sum() / sc["faint"][blob].sum())  # signed: smoothing errors cancel
    assert abs(back(sc["net"])) < 0.1
    print("faint animal given back: network %.3f, refined %.3f, one band on both sides %.3f" % (
        back(sc["net"]), back(ref(sc["net"], "bright", frame)),
        back(ref.snap(sc["net"], "absolute", ref._offset_sigma(sc["net"], ref.median)[1]))))
    assert abs(back(ref(sc["net"], "bright", frame))) < 0.1
    wide = ref._offset_sigma(sc["net"], ref.median)[1]
    assert back(ref.snap(sc["net"], "absolute", wide)) > 0.15  # the wide band on both sides gives back its rim


def test_absolute_polarity_snaps_without_bounding(scene: dict) -> None:
    sc, ref = scene, scene["refinement"]
    frame = sc["frames"][-1]
    out = ref(sc["net"], "absolute", frame)
    noise = ref._noise_sigma(frame)
    np.testing.assert_array_equal(out, ref.snap(sc["net"], "absolute", noise))
    assert _kept(out, sc, "resting", 0.35) > 0.55  # nothing tells an absolute run which way an animal goes
    assert _plate_error(out, sc) < 0.8 * _plate_error(sc["net"], sc)  # the narrow band on both sides


def test_an_exposure_change_does_not_undo_the_refinement(scene: dict) -> None:
    """A background 12 levels lighter than the sampled frames (the lamp brightened since) is snapped to
    the median shifted by the same offset, and bounded relative to the projection plus that offset."""
    sc, ref = scene, scene["refinement"]
    lift = np.float32(12 / 255)
    frame = sc["frames"][-1]
    out = ref(sc["net"] + lift, "bright", frame + lift)
    np.testing.assert_allclose(out - lift, ref(sc["net"], "bright", frame), atol=2e-6)


def test_dark_polarity_mirrors_bright(scene: dict) -> None:
    sc, ref = scene, scene["refinement"]
    mirrored = Refinement(1 - ref.median, 1 - ref.high, 1 - ref.low)
    frame = sc["frames"][-1]
    np.testing.assert_allclose(1 - mirrored(1 - sc["net"], "dark", 1 - frame), ref(sc["net"], "bright", frame), atol=2e-6)


def test_colour_and_single_channel_backgrounds(scene: dict) -> None:
    sc, ref = scene, scene["refinement"]
    colour = np.repeat(sc["net"][..., None], 3, axis=-1)
    assert ref(colour, "bright") is colour  # grey projections say nothing about each channel
    frame = sc["frames"][-1]
    np.testing.assert_array_equal(ref(sc["net"][..., None], "bright", frame[..., None])[..., 0], ref(sc["net"], "bright", frame))


def _worm_recording(tmp_path: Path) -> tuple[Path, dict]:
    """A generated worm-plate recording (exact plate and masks) written as a lossless video."""
    from vidfilter.synth import SyntheticRecording, write_video
    from vidfilter.train.corpus import SETUPS

    rec = SyntheticRecording(48, 256, 256, SETUPS["worm-plate"].draw(np.random.default_rng(11)), polarity="dark", seed=11)
    path = write_video(tmp_path / "worms.mkv", rec, codec="ffv1")
    return path, rec


def test_a_run_with_a_shipped_bundle_is_closer_to_the_true_plate(tmp_path: Path) -> None:
    """The worm-plate bundle on a recording it never saw: the refined background (the default) is
    nearer the generated plate than the network's own, and keeps no more of the worms."""
    import vidfilter

    path, rec = _worm_recording(tmp_path)
    errs, kept = {}, {}
    for refine in (True, False):
        out = tmp_path / f"r{refine}.zarr"
        res = run(str(path), out, model=shipped_path("worm-plate"), config=Config().override({"infer.refine": "full" if refine else "off"}))
        assert res.ok, res.error
        bg = vidfilter.open(str(out / "background"))
        e = k = 0.0
        for t in range(0, 48, 6):
            truth = rec.frame(t)
            truth_bg, worms = truth.background, truth.mask
            far = ~ndimage.binary_dilation(worms, iterations=3)
            b = np.asarray(bg[t], np.float32).squeeze()
            e += float(np.abs(b - truth_bg)[far].mean())
            k += float(np.clip(truth_bg - b, 0, None)[worms].mean())
        errs[refine], kept[refine] = e, k
    print("plate error / worm contrast kept, refined vs not:", errs, kept)
    assert errs[True] < 0.8 * errs[False], errs
    assert kept[True] <= kept[False] + 0.5, kept


def test_the_refinement_is_kept_by_the_setup_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second run restores the projections (no ``prepare``) and writes the same background."""
    import vidfilter

    monkeypatch.setenv("VIDFILTER_SETUP_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = _worm_recording(tmp_path)
    prepared = []
    prepare = ModelBackground.prepare
    monkeypatch.setattr(ModelBackground, "prepare", lambda self, src: (prepared.append(1), prepare(self, src))[1])
    outs = []
    for k in range(2):
        out = tmp_path / f"c{k}.zarr"
        assert run(str(path), out, model=shipped_path("worm-plate")).ok
        bg = vidfilter.open(str(out / "background"))
        outs.append(np.stack(list(bg.iter(0, len(bg)))))
    assert len(prepared) == 1
    np.testing.assert_array_equal(outs[0], outs[1])


def test_the_bundle_polarity_decides_before_a_run_settles(scene: dict) -> None:
    """Used on its own (as the benchmarks do), the estimator takes the bundle's polarity, or the
    opposite on inverted frames; a run's resolved polarity replaces it."""
    bundle = load_model(shipped_path("worm-plate"))
    assert ModelBackground(bundle, Config()).polarity == "dark"
    assert ModelBackground(bundle, Config().override({"infer.invert": True})).polarity == "bright"
    est = ModelBackground(bundle, Config().override({"output.polarity": "absolute"}))
    assert est.polarity == "absolute"
    est.settle(Config().override({"output.polarity": "bright"}))
    assert est.polarity == "bright"


def test_snap_mode_and_the_command_line(tmp_path: Path) -> None:
    """``--refine snap`` keeps the network's removal of resting animals as it is (no bound) and still
    snaps the plate; ``--refine off`` writes the network's background; each is recorded in the output."""
    import json

    import vidfilter
    from vidfilter.cli import main

    path, rec = _worm_recording(tmp_path)
    backgrounds = {}
    for mode in ("full", "snap", "off"):
        out = tmp_path / f"{mode}.zarr"
        assert main(["-q", "run", str(path), "--model", "worm-plate", "--refine", mode, "--out", str(out)]) == 0
        assert json.loads((out / "zarr.json").read_text())["attributes"]["config"]["infer"]["refine"] == mode
        bg = vidfilter.open(str(out / "background"))
        backgrounds[mode] = np.stack([np.asarray(bg[t], np.float32).squeeze() for t in (0, 24, 47)])
    truth = np.stack([rec.frame(t).background for t in (0, 24, 47)])
    worms = np.stack([rec.frame(t).mask for t in (0, 24, 47)])
    far = ~ndimage.binary_dilation(worms, iterations=3, structure=np.ones((1, 3, 3), bool))
    err = {m: float(np.abs(b - truth)[far].mean()) for m, b in backgrounds.items()}
    assert err["snap"] < 0.8 * err["off"] and err["full"] < 0.8 * err["off"], err
    # the bound only raises a dark-animal background: full >= snap everywhere, up to rounding
    assert (backgrounds["full"] >= backgrounds["snap"] - 1).all()
    assert not np.array_equal(backgrounds["full"], backgrounds["snap"])


@pytest.mark.parametrize("temporal", ["none", "max"])
def test_prepare_takes_the_projections_of_the_statistic_frames(scene: dict, temporal: str) -> None:
    """``ModelBackground.prepare`` keeps the median, min and max of the frames the statistic samples
    (numpy's, on 8-bit frames; the network's own channel among them), and the statistic itself."""
    from types import SimpleNamespace

    from vidfilter.models import build_model
    from vidfilter.temporal import statistic_frames

    frames = (np.stack(scene["frames"] * 2) * 255).round().astype(np.uint8)  # 64 frames: 32 of them sampled
    cfg = Config().override({"model.preset": "fast", "model.temporal_channel": temporal, "infer.device": "cpu"})
    bundle = SimpleNamespace(model=build_model(cfg.model), config=cfg, normalisation={"temporal_frames": 32}, path=None, sha256=None)
    est = ModelBackground(bundle, cfg)
    est.prepare(ArrayFrameSource(frames))
    sample = frames[statistic_frames(len(frames), 32)].astype(np.float64) / 255
    r = est._refinement
    assert r is not None and est.registration is None
    np.testing.assert_allclose(r.median, np.median(sample, axis=0), atol=1e-6)
    np.testing.assert_allclose(r.low, sample.min(axis=0), atol=1e-6)
    np.testing.assert_allclose(r.high, sample.max(axis=0), atol=1e-6)
    if temporal == "max":
        np.testing.assert_allclose(est._stat, sample.max(axis=0), atol=1e-6)
    else:
        assert est._stat is None


def test_a_moving_camera_is_not_refined(caplog: pytest.LogCaptureFixture) -> None:
    """A camera that moves (a 3 px shift from frame 20 on) leaves the background unrefined: projections
    of a moving plate would blur it."""
    import logging

    from vidfilter.models.bundle import load_model as _load
    from vidfilter.synth import SyntheticRecording

    rec = SyntheticRecording(40, 128, 160, n_animals=0, shift_px=(3.0, 0.0), shift_at=20, noise_sigma=2.0, seed=16, texture=12.0)
    frames = np.stack([rec[t] for t in range(40)])
    est = ModelBackground(_load(shipped_path("worm-plate")), Config().override({"infer.device": "cpu"}))
    with caplog.at_level(logging.INFO):
        est.prepare(ArrayFrameSource(frames))
    assert est.registration is not None and est.registration.moved
    assert est._refinement is None
    assert "not refined" in caplog.text
