"""The check that ends a fine-tuning: real networks judged on a generated recording whose truth is
known, and what `vidfilter train --init` writes after each verdict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vidfilter.config import Config
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.models import build_model, load_model, save_bundle
from vidfilter.train.guard import FineTuneCheck, check_fine_tuning
from vidfilter.train.pretrain import SETUPS, pretrained_path, resolve_init

shipped = pytest.mark.skipif(not pretrained_path("worm-plate").is_file(), reason="worm-plate bundle not built")


def _recording(n_frames: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """A worm-plate recording (a seed its corpus never used) where 3 of 5 worms never move: frames
    and the truth's still-animal mask of each frame."""
    from vidfilter.synth import SyntheticRecording

    params = dataclasses.replace(SETUPS["worm-plate"].draw(np.random.default_rng(4321)), n_animals=5, tracks=False,
                                 illumination_drift=0.0)
    rec = SyntheticRecording(n_frames, 256, 256, params, n_still=3, polarity="dark", seed=654)
    return np.stack([rec[t] for t in range(n_frames)]), np.stack([rec.frame(t).mask for t in range(n_frames)])


def _identity_bundle(path, start) -> object:
    """A network of the starting bundle's architecture whose output is its input (the residual
    layer at zero): every animal stays in its background, as a fine-tuning that unlearned them."""
    torch.manual_seed(0)
    save_bundle(path, build_model(start.config.model), start.config, normalisation=start.normalisation)
    return load_model(path)


@shipped
def test_the_check_accepts_the_bundle_and_rejects_a_network_that_keeps_still_animals(tmp_path):
    frames, still = _recording()
    assert still.any()
    start = load_model(resolve_init("worm-plate"))
    src = ArrayFrameSource(frames)
    same = check_fine_tuning(start, start, [src], Config())
    assert same.accepted and same.kept == 0.0 and same.extra == 0.0
    assert same.moving_start == same.moving_tuned is not None
    worse = check_fine_tuning(start, _identity_bundle(tmp_path / "id.vfm", start), [src], Config())
    # the still worms stay in its background; the moving ones leave it through the run's refinement
    # (the background is bounded by the projections of the recording), so most, not all, comes back
    assert not worse.accepted and worse.kept > 0.5 and "gives back" in worse.reason


@shipped
def test_the_tuned_network_shares_the_bundles_setup(tmp_path, monkeypatch):
    """Both networks of a check have the same temporal channel: the setup frames are read once per
    recording, and the verdict is the one of two separate setups."""
    from vidfilter.infer.pipeline import ModelBackground

    frames, _ = _recording(16)
    start = load_model(resolve_init("worm-plate"))
    tuned = _identity_bundle(tmp_path / "id.vfm", start)
    src = ArrayFrameSource(frames)
    calls = []
    prepare = ModelBackground.prepare
    monkeypatch.setattr(ModelBackground, "prepare", lambda self, s: (calls.append(1), prepare(self, s))[1])
    shared = check_fine_tuning(start, tuned, [src], Config())
    assert len(calls) == 1
    monkeypatch.setattr(ModelBackground, "setup_state", lambda self: None)  # no sharing: each prepares
    separate = check_fine_tuning(start, tuned, [src], Config())
    assert len(calls) == 3
    assert shared == separate


@shipped
@pytest.mark.parametrize("guard", [True, False])
def test_a_rejected_fine_tuning_writes_the_starting_network_unless_told_not_to(tmp_path, monkeypatch, guard):
    """What `vidfilter train --init` writes after each verdict: with train.guard (the default) a
    verdict against the tuned network writes the starting bundle's weights, records the check in
    the bundle and names it in the report's summary; with train.guard false the tuned network."""
    from vidfilter.train import guard as guard_module
    from vidfilter.train.loop import train
    from vidfilter.train.checkpoint import report_dir
    from vidfilter.train.report import summary_line

    verdict = FineTuneCheck(frames=3, kept=0.5, extra=0.0, moving_start=0.9, moving_tuned=0.9, accepted=False,
                            reason="it gives back 50% of what the bundle removes (most 10%)")
    monkeypatch.setattr(guard_module, "check_fine_tuning", lambda *a, **k: verdict)
    frames, _ = _recording(12)
    cfg = Config().override({"train.steps": 3, "train.batch_size": 2, "train.val_every": 10**6,
                             "train.checkpoint_every": 10**6, "train.lr": 1e-2, "train.guard": guard})
    out = train([ArrayFrameSource(frames)], tmp_path / "ft.vfm", cfg, progress=False, init_bundle="worm-plate")
    written, start = load_model(out), load_model(resolve_init("worm-plate"))
    same = all(torch.equal(a, b) for a, b in zip(written.model.state_dict().values(), start.model.state_dict().values()))
    check = written.provenance["fine_tuning_check"]
    assert check["reason"] == verdict.reason and check["kept_start"] is guard
    assert same is guard  # three steps at a high rate move the weights: only the guard gives the bundle's back
    assert ("not kept" in summary_line(report_dir(out))) is guard
    assert not any(p.name.endswith(".tuned") for p in tmp_path.iterdir())
