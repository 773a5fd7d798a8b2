"""``--model auto``: each shipped setup's own kind of recording picks its bundle, bright animals pick
the bright bundle (without it, a dark one on inverted frames), still recordings pick none, the real recordings pick what a person would,
and the command line falls back to training (once) and says why in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.models.auto import choose, measure
from vidfilter.synth import SyntheticRecording, write_video
from vidfilter.train.pretrain import SETUPS

DARK = ["open-arena", "worm-plate"]  # the bundles of dark animals
SHIPPED = [*DARK, "bright-arena"]


def _sampled(setup: str, seed: int, polarity: str = "dark", n: int = 300) -> ArrayFrameSource:
    """16 frames spread over ``n`` of a recording drawn like ``setup``'s corpus (a seed its bundle never
    saw), every animal moving (the measure sizes what moves; a recording where nothing does picks none)."""
    s = SETUPS[setup]
    h, w = (s.size, s.size) if isinstance(s.size, int) else s.size
    rec = SyntheticRecording(n, h, w, s.draw(np.random.default_rng(1000 + seed)), polarity=polarity, n_still=0, seed=seed)
    return ArrayFrameSource(np.stack([rec.frame(int(t)).frame for t in np.linspace(0, n - 1, 16).round()]))


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_each_setup_picks_its_own_bundle(setup):
    polarity = SETUPS[setup].polarity
    for seed in range(3):
        choice = choose(measure(_sampled(setup, seed, polarity=polarity)), SHIPPED)
        assert choice.name == setup and not choice.invert, choice.reason
        assert choice.reason.startswith(f"{setup}: {polarity}") and "px thick" in choice.reason


@pytest.mark.parametrize("setup", sorted(DARK))
def test_bright_animals_take_the_bright_bundle_else_a_dark_one_on_inverted_frames(setup):
    sampled = measure(_sampled(setup, 0, polarity="bright"))
    choice = choose(sampled, DARK)
    assert choice.name == setup and choice.invert, choice.reason
    assert choice.reason.startswith(f"{setup} on inverted frames: bright")
    bright = choose(sampled, SHIPPED)
    assert bright.name == "bright-arena" and not bright.invert, bright.reason


def test_still_recordings_and_unfit_sizes_pick_none():
    rng = np.random.default_rng(0)
    still = np.clip(150 + rng.normal(0, 2, (16, 128, 128)), 0, 255).astype(np.uint8)
    none = choose(measure(ArrayFrameSource(still)), SHIPPED)
    assert none.name is None and "no clear polarity" in none.reason
    only_worms = choose(measure(_sampled("open-arena", 0)), ["worm-plate"])
    assert only_worms.name is None and "no shipped bundle fits the dark animals" in only_worms.reason


def test_real_recordings(shared_data):
    import vidfilter

    want = {
        shared_data / "worms_yolo_640" / "frames": "worm-plate",
        shared_data / "zebrafish_larva": "worm-plate",  # a thin dark larva in a dish
        shared_data / "mouse_tracktor" / "mouse_video.mp4": "open-arena",
        shared_data / "flies_sleap" / "clip.mp4": "bright-arena",  # light flies on a dark floor
    }
    for path, name in want.items():
        with vidfilter.open(str(path)) as src:
            choice = choose(measure(src), SHIPPED)
        assert choice.name == name and not choice.invert, (path, choice.reason)
    with vidfilter.open(str(shared_data / "flies_sleap" / "clip.mp4")) as src:
        choice = choose(measure(src), DARK)  # without the bright bundle: one of dark animals, inverted
    assert choice.name == "worm-plate" and choice.invert, choice.reason


def test_the_command_line_trains_when_nothing_fits_and_reuses_that_model(tmp_path):
    rng = np.random.default_rng(3)  # nothing moves: no polarity, so no bundle fits
    still = SyntheticRecording(1, 64, 64, n_animals=0, seed=2).frame(0).frame
    clip = tmp_path / "still.mkv"
    from vidfilter.io.export import write_frames

    write_frames((np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(40)), clip,
                 frame_shape=still.shape, dtype=np.uint8, n_frames=40)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {preset: fast, width: 4}\nsampling: {crop: 32}\n"
                   "train: {steps: 3, batch_size: 2, device: cpu, threads: 1, val_every: 100, checkpoint_every: 100}\n")

    def run(out: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vidfilter", "run", str(clip), "--model", "auto", "--config", str(cfg),
                               "--out", str(tmp_path / out)], capture_output=True, text=True)

    first = run("a.zarr")
    assert first.returncode == 0, first.stderr
    line = [x for x in first.stderr.splitlines() if "--model auto" in x]
    assert len(line) == 1 and "no clear polarity" in line[0] and "training one on the input (3 steps)" in line[0]
    assert (tmp_path / "a.model.vfm").is_file() and (tmp_path / "a.zarr").is_dir()
    (tmp_path / "a.model.vfm").rename(tmp_path / "b.model.vfm")
    second = run("b.zarr")
    assert second.returncode == 0, second.stderr
    assert "using the model trained for it before" in second.stderr and (tmp_path / "b.zarr").is_dir()
