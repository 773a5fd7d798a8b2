"""A background stored at keyframes: rebuilt frames equal the per-frame store, the foreground floor
keeps the foreground exact where it matters, and verify, info and Dask read the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vidfilter.config import Config
from vidfilter.infer.pipeline import run
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.integrity import verify
from vidfilter.io.keyframe_store import KEYFRAMES, TABLE, KeyframeBackgroundSource, blend, shift
from vidfilter.io.registry import open as vf_open
from vidfilter.io.zarr_info import read_ome_zarr_info
from vidfilter.polarity import clamp_background
from vidfilter.synth import SyntheticRecording

EVERY = 10


def _frames(out: Path, group: str) -> np.ndarray:
    return np.stack(list(vf_open(out / group, color="keep").iter()))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    """A drifting plate (so keyframes differ and frames between them are true blends) with dark animals."""
    rec = SyntheticRecording(45, 64, 80, n_animals=2, seed=11, polarity="dark")
    frames = np.stack(list(rec.frames())).astype(np.float32)
    frames += np.linspace(0, 20, 45, dtype=np.float32)[:, None, None]  # slow illumination drift
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def outputs(recording, tmp_path_factory) -> dict[str, Path]:
    """The same median run stored three ways: at keyframes (default), per frame without the clamp
    and floor, and per frame with the defaults otherwise."""
    d = tmp_path_factory.mktemp("kf")
    base = {"infer.every": EVERY, "infer.adaptive": False, "output.match_exposure": "on", "output.mask": True}
    runs = {
        "keyed": base,
        "full_raw": {**base, "output.background": "full", "output.clamp": False, "output.foreground_floor": 0},
        "full": {**base, "output.background": "full", "output.foreground_floor": 0},
    }
    out = {}
    for name, over in runs.items():
        out[name] = d / f"{name}.zarr"
        run(ArrayFrameSource(recording, fps=10.0), out[name], method="median", config=Config().override(over))
    return out


def test_rebuilt_background_equals_the_stored_per_frame_background(outputs, recording):
    keyed = _frames(outputs["keyed"], "background")
    assert isinstance(vf_open(outputs["keyed"] / "background"), KeyframeBackgroundSource)
    # the blend rule is shared: bit-identical to the per-frame store of the unclamped background
    np.testing.assert_array_equal(keyed, _frames(outputs["full_raw"], "background"))
    # the clamp is the only per-frame edit: re-applied to the rebuilt background it gives the full store
    clamped = np.stack([clamp_background(f, b, "dark") for f, b in zip(recording, keyed)])
    np.testing.assert_array_equal(clamped, _frames(outputs["full"], "background"))


def test_keyframes_hold_only_the_keyframes_and_cost_a_fraction(outputs):
    group = outputs["keyed"] / "background"
    stored = sorted(int(p.name) for p in (group / KEYFRAMES / "c").iterdir())
    assert stored == [0, 10, 20, 30, 40, 44]
    assert _size(group) < _size(outputs["full"] / "background") / 3
    src = KeyframeBackgroundSource(group)
    assert src.keyframes().tolist() == stored
    # the median is one background at every keyframe: a frame names the keyframe before it, weight 0
    assert src.row(13)[:3] == (10, 10, 0.0)


def test_foreground_is_exact_where_it_reaches_the_floor_and_zero_below(outputs):
    exact = _frames(outputs["full"], "foreground")
    stored = _frames(outputs["keyed"], "foreground")
    floor = Config().output.foreground_floor
    np.testing.assert_array_equal(stored, np.where(exact >= floor, exact, 0))
    mask = _frames(outputs["keyed"], "mask").astype(bool)
    assert mask.any() and np.array_equal(stored[mask], exact[mask])  # exact wherever the mask is on
    np.testing.assert_array_equal(mask, _frames(outputs["full"], "mask").astype(bool))


def test_dask_info_and_verify_read_a_keyframe_store(outputs):
    src = vf_open(outputs["keyed"] / "background")
    np.testing.assert_array_equal(src.to_dask(chunks=7).compute(), _frames(outputs["keyed"], "background"))
    info = read_ome_zarr_info(outputs["keyed"])
    assert info["complete"] and info["groups"]["background"]["storage"] == "keyframes"
    assert info["groups"]["background"]["shape"][0] == 45 and info["groups"]["foreground"]["storage"] == "full"
    report = verify(outputs["keyed"])
    assert report.complete, report.problems
    assert report.facts["images"]["background"]["keyframes"] == 6


def test_verify_finds_a_missing_keyframe_and_a_damaged_table(outputs, tmp_path):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(outputs["keyed"], broken)
    (broken / "background" / KEYFRAMES / "c" / "20" / "0" / "0").unlink()
    report = verify(broken)
    assert not report.complete and any("keyframes/c/20" in p for p in report.problems)
    with pytest.raises(Exception, match="keyframe 20 is missing"):
        vf_open(broken / "background")[25]
    shutil.rmtree(broken)
    shutil.copytree(outputs["keyed"], broken)
    chunk = broken / "background" / TABLE / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    report = verify(broken, quick=True)
    assert not report.complete and any("checksum" in p for p in report.problems)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_blend_and_shift_saturate_like_integer_arithmetic(dtype):
    rng = np.random.default_rng(2)
    top = np.iinfo(dtype).max
    b0, b1 = rng.integers(0, top + 1, (2, 17, 23)).astype(dtype)
    for w in (0.0, 0.25, 0.5, 0.9, 1.0):
        want = np.rint((1 - w) * b0.astype(np.float64) + w * b1.astype(np.float64))
        got = blend(b0, b1, w)
        assert got.dtype == dtype and np.abs(got - want).max() <= 1 and np.mean(got == want) > 0.95  # ties at w = 0.5
    for off in (-top, -7, 0, 5, top):
        np.testing.assert_array_equal(shift(b0, off), np.clip(b0.astype(np.int64) + off, 0, top).astype(dtype))
    colour = rng.integers(0, top + 1, (9, 11, 3)).astype(dtype)
    np.testing.assert_array_equal(shift(colour, 9), np.clip(colour.astype(np.int64) + 9, 0, top).astype(dtype))


def test_rows_name_the_two_keyframes_a_model_background_blends(tmp_path):
    """A background that differs at each keyframe (an estimator returning the keyframe itself):
    frames between keyframes name both, with the weight of the later one, and read back exactly
    as the blend of the two stored keyframes."""
    from vidfilter.baselines.base import BackgroundEstimator
    from vidfilter.infer import pipeline

    class Itself(BackgroundEstimator):
        name = "itself"

        def background(self, t, frame):
            return frame

    rng = np.random.default_rng(8)
    frames = np.clip(np.linspace(60, 200, 21)[:, None, None] + rng.normal(0, 2, (21, 12, 16)), 0, 255).astype(np.uint8)
    cfg = Config().override({"infer.every": 10, "infer.adaptive": False, "output.foreground_floor": 0})
    original = pipeline.make_estimator
    pipeline.make_estimator = lambda method, model, config: Itself()
    try:
        run(ArrayFrameSource(frames), tmp_path / "o.zarr", method="median", config=cfg)
    finally:
        pipeline.make_estimator = original
    src = KeyframeBackgroundSource(tmp_path / "o.zarr" / "background")
    k0, k1, w, off = src.row(13)
    assert (k0, k1, off) == (10, 20, 0) and w == pytest.approx(0.3)
    np.testing.assert_array_equal(src[13], blend(frames[10], frames[20], 0.3))
    np.testing.assert_array_equal(src[20], frames[20])
