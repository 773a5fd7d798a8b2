"""The setup cache: a second run on the same file takes the detected polarity and the estimator's
prepared state from the cache (no polarity detection, no ``prepare``, no setup frames read) and
writes the same outputs, bit for bit, as a run without the cache; a changed file, another
estimator setting or a damaged entry is set up afresh."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from stores import read_group

import vidfilter.polarity
from vidfilter.baselines.projections import MedianProjection
from vidfilter.config import Config
from vidfilter.infer import setup_cache
from vidfilter.infer.pipeline import ModelBackground, run
from vidfilter.models import build_model, save_bundle
from vidfilter.synth import SyntheticRecording, write_video

N = 60


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "setup-cache"
    monkeypatch.setenv("VIDFILTER_SETUP_CACHE_DIR", str(d))
    return d


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the polarity is detected and each estimator is prepared."""
    counts = {"polarity": 0, "median": 0, "model": 0}
    detect = vidfilter.polarity.polarity_evidence

    def counted_detect(*a, **k):
        counts["polarity"] += 1
        return detect(*a, **k)

    def counting(cls, name):
        prepare = cls.prepare

        def counted(self, src):
            counts[name] += 1
            return prepare(self, src)
        monkeypatch.setattr(cls, "prepare", counted)

    monkeypatch.setattr(vidfilter.polarity, "polarity_evidence", counted_detect)
    counting(MedianProjection, "median")
    counting(ModelBackground, "model")
    return counts


def _video(path: Path, seed: int) -> Path:
    rec = SyntheticRecording(N, 64, 80, n_animals=2, noise_sigma=1.0, speed=3.0, seed=seed)
    write_video(path, rec, codec="ffv1")
    return path


@pytest.fixture(scope="module")
def temporal_bundle(tmp_path_factory) -> Path:
    """A tiny untrained bundle with a max temporal channel over 16 frames, polarity left auto (detected)."""
    torch.manual_seed(0)
    cfg = Config().override({"model.width": 4, "model.depth": 3, "model.residual": False, "model.temporal_channel": "max"})
    return save_bundle(tmp_path_factory.mktemp("m") / "temporal.vfm", build_model(cfg.model), cfg,
                       normalisation={"temporal_frames": 16})


def _groups(out: Path) -> dict[str, np.ndarray]:
    return {g: read_group(out, g) for g in ("background", "foreground")}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for g in a:
        np.testing.assert_array_equal(a[g], b[g], err_msg=g)


NO_CACHE = Config().override({"infer.setup_cache": False})


@pytest.mark.parametrize("method", ["median", "model"])
def test_second_run_takes_the_setup_from_the_cache_and_writes_the_same(tmp_path, cache_dir, calls, temporal_bundle, method):
    video = _video(tmp_path / "in.mkv", seed=1)
    model = temporal_bundle if method == "model" else None
    reference = run(video, tmp_path / "plain.zarr", method=method, model=model, config=NO_CACHE)
    assert not cache_dir.exists()  # the cache off writes nothing
    assert calls == {"polarity": 1, "median": int(method == "median"), "model": int(method == "model")}

    run(video, tmp_path / "first.zarr", method=method, model=model)
    assert calls[method] == 2 and calls["polarity"] == 2
    entries = sorted(p.name.rsplit(".", 1)[1] for p in cache_dir.iterdir())
    assert entries == ["json", "npz"]

    second = run(video, tmp_path / "second.zarr", method=method, model=model)
    assert calls[method] == 2 and calls["polarity"] == 2  # nothing detected, nothing prepared
    assert second.status == "done"
    ref = _groups(reference.output)
    _same(ref, _groups(tmp_path / "first.zarr"))
    _same(ref, _groups(second.output))


def test_a_changed_file_or_other_settings_are_set_up_afresh(tmp_path, cache_dir, calls):
    video = _video(tmp_path / "in.mkv", seed=1)
    run(video, tmp_path / "a.zarr", method="median")
    run(video, tmp_path / "b.zarr", method="median")
    assert calls["median"] == 1

    # settings the median does not depend on share its entry; another estimator has its own
    run(video, tmp_path / "c.zarr", method="median", config=Config().override({"infer.every": 1}))
    assert calls["median"] == 1
    run(video, tmp_path / "c2.zarr", method="max")
    assert len(list(cache_dir.glob("*.npz"))) == 2 and calls["polarity"] == 1

    # the same path, other bytes: nothing of the old file is used
    _video(video, seed=2)
    changed = run(video, tmp_path / "d.zarr", method="median")
    assert calls == {"polarity": 2, "median": 2, "model": 0}
    fresh = run(video, tmp_path / "e.zarr", method="median", config=NO_CACHE)
    _same(_groups(fresh.output), _groups(changed.output))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other shape"])
def test_a_damaged_entry_is_a_miss_never_an_error(tmp_path, cache_dir, calls, damage):
    video = _video(tmp_path / "in.mkv", seed=3)
    first = run(video, tmp_path / "a.zarr", method="median")
    (entry,) = cache_dir.glob("*.npz")
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "garbage":
        entry.write_bytes(os.urandom(4096))
    else:  # a well-formed entry with the right key but an image of another size
        with np.load(entry) as npz:
            key = str(npz["__key__"])
        with open(entry, "wb") as fh:
            np.savez_compressed(fh, __key__=np.array(key), background=np.zeros((8, 8), np.float32))
    again = run(video, tmp_path / "b.zarr", method="median")
    assert calls["median"] == 2  # set up afresh
    _same(_groups(first.output), _groups(again.output))
    run(video, tmp_path / "c.zarr", method="median")
    assert calls["median"] == 2  # and the rewritten entry is used


def test_an_unwritable_cache_does_not_stop_the_run(tmp_path, monkeypatch, calls):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VIDFILTER_SETUP_CACHE_DIR", str(blocker / "setup"))
    video = _video(tmp_path / "in.mkv", seed=4)
    assert run(video, tmp_path / "a.zarr", method="median").status == "done"
    assert run(video, tmp_path / "b.zarr", method="median").status == "done"
    assert calls["median"] == 2


def test_the_folder_is_pruned_to_its_limit_least_recently_used_first(tmp_path, cache_dir, monkeypatch):
    cache = setup_cache.SetupCache(cache_dir, {"sha256": "x"}, (256, 256))
    rng = np.random.default_rng(0)
    for i in range(4):  # ~256 KiB each: noise does not compress
        cache.save_state({"n": i}, {"background": rng.random((256, 256), dtype=np.float32)})
        os.utime(cache._state_file({"n": i}), (1000 + i, 1000 + i))
    assert cache.state({"n": 0}) is not None  # used now: the most recent
    monkeypatch.setenv("VIDFILTER_SETUP_CACHE_MB", "0.6")
    cache.save_state({"n": 4}, {"background": rng.random((256, 256), dtype=np.float32)})
    kept = {i for i in range(5) if cache._state_file({"n": i}).exists()}
    assert kept == {0, 4}
    assert sum(p.stat().st_size for p in cache_dir.iterdir()) <= 0.6 * 2**20


def test_inputs_without_a_file_hash_are_not_cached(tmp_path, cache_dir):
    assert setup_cache.SetupCache.for_input({"path": str(tmp_path / "frames")}, (5, 8, 8), np.uint8, "gray") is None
    assert setup_cache.SetupCache.for_input({"sha256": "ab"}, (5, 8, 8), np.uint8, "gray", enabled=False) is None


def test_the_command_line_switch(tmp_path, cache_dir):
    import subprocess
    import sys

    video = _video(tmp_path / "in.mkv", seed=5)

    def cli(*extra: str) -> None:
        r = subprocess.run([sys.executable, "-m", "vidfilter", "-q", "run", str(video), "--method", "median",
                            "--out", str(tmp_path / f"o{len(extra)}.zarr"), *extra], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    cli("--no-setup-cache")
    assert not cache_dir.exists()
    cli()
    assert len(list(cache_dir.glob("*.npz"))) == 1
