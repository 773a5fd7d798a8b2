"""Static-mode training through ``vidfilter.train.loop.train``: pairs from the synthesiser, exact
resume, DataLoader workers giving the in-process stream, and what the bundle records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidfilter.config import Config
from vidfilter.static.config import PreprocessConfig
from vidfilter.errors import TrainingInputError
from vidfilter.models import load_model
from vidfilter.static.bank import write_bank
from vidfilter.train.loop import train


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank")
    yy, xx = np.mgrid[-5:6, -5:6]
    d = np.sqrt(yy**2 + xx**2) / 5
    target = np.where(d <= 1, 0.6 - 0.2 * d, 0).astype(np.float32)
    unwanted = np.tile(np.linspace(0.1, 0.3, 15, dtype=np.float32), (3, 1))
    bg = 0.1 + 0.05 * np.random.default_rng(0).random((48, 48)).astype(np.float32)
    write_bank(root / "b", [target], [unwanted], [bg], PreprocessConfig(log=True), 255.0)
    return root / "b"


def cfg(**over: object) -> Config:
    return Config().override({
        "sampling.mode": "static", "sampling.crop": 32, "model.width": 4, "model.depth": 2, "model.gate": False,
        "train.steps": 4, "train.batch_size": 2, "train.val_every": 2, "train.val_pairs": 2, "train.checkpoint_every": 2,
        "train.device": "cpu", "train.threads": 1, "static.synth.targets": [1, 2], "static.synth.unwanted": [1, 2], **over,
    })


def weights(path) -> list[torch.Tensor]:
    return [t.clone() for t in load_model(path).model.state_dict().values()]


def test_resume_and_workers_reproduce_the_same_model(tmp_path, bank):
    """4 steps == 2 steps + resume + 2 steps, and == 4 steps with 2 DataLoader workers (same pair stream)."""
    full = train([bank], tmp_path / "full.vfm", cfg(), progress=False)
    train([bank], tmp_path / "half.vfm", cfg(**{"train.steps": 2}), progress=False)
    (tmp_path / "half.ckpt").rename(tmp_path / "resumed.ckpt")
    resumed = train([bank], tmp_path / "resumed.vfm", cfg(), resume=True, progress=False)
    workers = train([bank], tmp_path / "workers.vfm", cfg(**{"train.num_workers": 2}), progress=False)
    for a, b, c in zip(weights(full), weights(resumed), weights(workers)):
        assert torch.equal(a, b) and torch.equal(a, c)
    bundle = load_model(full)
    assert bundle.config.sampling.mode == "static" and bundle.config.model.temporal_channel == "none"
    assert bundle.normalisation["mode"] == "static" and bundle.normalisation["log_gain"] == 255.0
    assert bundle.normalisation["preprocess"]["log"] is True
    assert bundle.provenance["inputs"][0]["banks"] == [str(bank)] and bundle.provenance["steps"] == 4


def test_patch_larger_than_the_backgrounds_fails_before_training(tmp_path, bank):
    with pytest.raises(TrainingInputError, match="lower sampling.crop"):
        train([bank], tmp_path / "m.vfm", cfg(**{"sampling.crop": 64}), progress=False)
    assert not (tmp_path / "m.vfm").exists()
