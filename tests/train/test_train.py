"""Tests of the trainer: loss, identity check, checkpoints, exact resume, report, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vidfilter.config import Config
from vidfilter.errors import BundleError, ConfigError, TrainingInputError
from vidfilter.io.array_source import ArrayFrameSource
from vidfilter.io.registry import open as vf_open
from vidfilter.models import load_model
from vidfilter.train import (
    TrainResult,
    checkpoint_path,
    identity_score,
    load_checkpoint,
    pair_loss,
    report_dir,
    save_checkpoint,
    train,
    verdict,
)


def blob_frames(n: int = 24, size: int = 32, seed: int = 0) -> np.ndarray:
    """Light textured plate with a dark square moving across it (uint8)."""
    rng = np.random.default_rng(seed)
    plate = (170 + 20 * rng.random((size, size))).astype(np.float32)
    frames = np.repeat(plate[None], n, axis=0)
    for t in range(n):
        y, x = (3 * t) % (size - 6), (5 * t) % (size - 6)
        frames[t, y : y + 6, x : x + 6] -= 80
    return frames.astype(np.uint8)


def tiny_config(**over: object) -> Config:
    base = {
        "model.preset": "fast", "model.width": 4, "model.depth": 2,
        "sampling.crop": 16, "sampling.lag": [1, 3], "sampling.lag_unit": "frames", "sampling.pool_frames": 12, "sampling.pool_refresh": 5,
        "train.batch_size": 2, "train.steps": 6, "train.val_every": 2, "train.val_pairs": 4,
        "train.checkpoint_every": 2, "train.val_fraction": 0.2, "train.lr": 1e-3, "train.change_weight": 3.0,
    }
    base.update(over)
    return Config().override(base)


def test_polarity_target_replaces_animals_in_the_target_only() -> None:
    """Dark: a target pixel darker than the input by more than the threshold (an animal in the
    target) becomes the input; an animal in the input (target lighter) and noise stay as they are."""
    from vidfilter.train.loop import polarity_target

    frame = torch.tensor([0.80, 0.40, 0.80, 0.80])  # plate, animal, plate, plate
    target = torch.tensor([0.40, 0.80, 0.79, 0.82])  # animal, plate, noise -, noise +
    assert polarity_target(target, frame, "dark", 0.04).tolist() == pytest.approx([0.80, 0.80, 0.79, 0.82])
    assert polarity_target(1 - target, 1 - frame, "bright", 0.04).tolist() == pytest.approx([0.20, 0.20, 0.21, 0.18])
    assert polarity_target(target, frame, "absolute", 0.04).tolist() == pytest.approx(target.tolist())
    # in the loss: the animal in the target costs nothing once the output is the plate
    cfg = tiny_config(**{"train.change_weight": 6.0}).train
    plate = torch.full((1, 1, 1, 4), 0.8)
    out = plate.clone()
    out[..., 2:] = target[2:]
    assert float(pair_loss(out, target.view(1, 1, 1, 4), frame.view(1, 1, 1, 4), cfg, "dark")) == pytest.approx(0.0, abs=1e-7)
    assert float(pair_loss(out, target.view(1, 1, 1, 4), frame.view(1, 1, 1, 4), cfg, "absolute")) > 0.01


def test_pair_loss_weights_changed_pixels() -> None:
    """Oracle: weighted SmoothL1 mean computed by hand."""
    frame = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[0.0, 0.5], [0.0, 0.0]]]])
    output = torch.tensor([[[[0.1, 0.1], [0.0, 0.2]]]])
    cfg = tiny_config(**{"train.change_weight": 5.0, "train.change_threshold": 0.04}).train
    per_px = np.array([0.1**2 / 2, 0.4**2 / 2, 0.0, 0.2**2 / 2])
    w = np.array([1, 5, 1, 1])
    assert float(pair_loss(output, target, frame, cfg)) == pytest.approx(float((per_px * w).sum() / w.sum()), rel=1e-5)
    plain = tiny_config(**{"train.change_weight": 1.0}).train
    assert float(pair_loss(output, target, frame, plain)) == pytest.approx(per_px.mean(), rel=1e-5)


def test_identity_score_extremes() -> None:
    frame = torch.zeros(1, 1, 4, 4)
    target = frame.clone()
    target[..., 1, 1] = 0.5
    assert identity_score(frame, frame, target, 0.04) == 0.0
    assert identity_score(target, frame, target, 0.04) == pytest.approx(1.0)
    assert identity_score(frame, frame, frame, 0.04) is None


def test_verdict_flags_identity() -> None:
    state = TrainResult(val=[{"step": 1, "loss": 0.1, "identity_score": 0.02, "identity_suspected": True}])
    assert verdict(state).startswith("identity: the model removes nothing")
    state.val[-1].update(identity_score=0.18)  # flagged, but it removes part of what changes
    assert verdict(state).startswith("weak: the model removes little (its output moves 18 %") and "samples.png" in verdict(state)
    state.val[-1].update(identity_score=0.45, identity_suspected=False)
    assert verdict(state).startswith("ok")


def test_verdict_explains_a_high_identity_score() -> None:
    """A background at the wrong level (the plate brightened by 0.8) moves more where frame and
    target differ than the ideal background does: above twice the ideal the verdict says what to
    look for; near the ideal it does not."""
    g = torch.Generator().manual_seed(0)
    plate = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 70, 70, generator=g), 3, 1)[..., :64, :64]
    frame, target = plate.clone(), plate.clone()
    frame[..., 10:16, 10:16] += 0.5
    target[..., 40:46, 40:46] += 0.5
    ideal = identity_score(plate, frame, target, 0.04)
    assert ideal == pytest.approx(0.5, abs=0.05)
    state = TrainResult(val=[{"step": 1, "loss": 0.1, "identity_score": ideal, "identity_suspected": False}])
    assert verdict(state).startswith("ok") and "samples.png" not in verdict(state)
    high = identity_score(plate + 0.8, frame, target, 0.04)
    state.val[-1].update(identity_score=high)
    assert high > 1.0 and verdict(state).startswith("ok") and "samples.png" in verdict(state)
    state.val[-1].update(identity_score=1.5)
    assert "samples.png" not in verdict(state, supervised=True)


def test_checkpoint_is_atomic_and_round_trips(tmp_path) -> None:
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, {"step": 3, "x": torch.arange(4)})
    save_checkpoint(path, {"step": 4, "x": torch.arange(5)})
    assert os.listdir(tmp_path) == ["m.ckpt"]  # no temporary file left behind
    state = load_checkpoint(path)
    assert state["step"] == 4 and torch.equal(state["x"], torch.arange(5))
    path.write_bytes(b"truncated")
    with pytest.raises(BundleError, match="m.ckpt"):
        load_checkpoint(path)
    assert checkpoint_path(tmp_path / "model.vfm").name == "model.ckpt"
    assert report_dir(tmp_path / "model.vfm").name == "model.report"


def test_resume_is_bit_for_bit(tmp_path) -> None:
    """Training 2N steps equals N steps + resume + N steps exactly (CPU, num_workers=0)."""
    arr = blob_frames()
    full = train([ArrayFrameSource(arr)], tmp_path / "full.vfm", tiny_config(**{"train.steps": 8}), progress=False)
    half = tiny_config(**{"train.steps": 4})
    train([ArrayFrameSource(arr)], tmp_path / "split.vfm", half, progress=False)
    split = train([ArrayFrameSource(arr)], tmp_path / "split.vfm", tiny_config(**{"train.steps": 8}), resume=True, progress=False)
    a, b = load_model(full), load_model(split)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    la = load_checkpoint(checkpoint_path(full))["result"]["train_loss"]
    lb = load_checkpoint(checkpoint_path(split))["result"]["train_loss"]
    assert la == lb and len(la) == 8
    assert b.provenance["steps"] == 8


def test_bundle_provenance_and_report(tmp_path) -> None:
    out = train([ArrayFrameSource(arr := blob_frames())], tmp_path / "m.vfm", tiny_config(), progress=False)
    b = load_model(out)
    p = b.provenance
    assert p["steps"] == 6 and p["inputs"][0]["frames"] == len(arr)
    assert p["final_train_loss"] is not None and p["final_val_loss"] is not None
    assert "identity_suspected" in p and p["seed"] == 0 and p["device"] == "cpu"
    assert b.normalisation["scale"] == 255.0 and b.normalisation["polarity"] == "dark"  # detected: a dark square on a light plate
    rep = report_dir(out)
    assert (rep / "loss.png").stat().st_size > 0 and (rep / "samples.png").stat().st_size > 0
    log = json.loads((rep / "log.json").read_text())
    assert len(log["train_loss"]) == 6 and len(log["pairs_per_s"]) == 6
    assert [v["step"] for v in log["val"]] == [2, 4, 6]
    assert isinstance(log["verdict"], str) and "identity_suspected" in log


def test_temporal_channel_and_cosine_schedule_train(tmp_path) -> None:
    cfg = tiny_config(**{"model.temporal_channel": "max", "model.residual": True, "train.lr_schedule": "cosine",
                         "sampling.mine_fraction": 0.5})
    out = train([ArrayFrameSource(blob_frames())], tmp_path / "m.vfm", cfg, progress=False)
    assert load_model(out).model.in_channels == 2


def test_init_bundle_fine_tunes_and_checks_the_model(tmp_path) -> None:
    arr = blob_frames()
    first = train([ArrayFrameSource(arr)], tmp_path / "a.vfm", tiny_config(**{"train.steps": 2}), progress=False)
    cfg = tiny_config(**{"train.steps": 1, "train.lr": 1e-12})
    tuned = train([ArrayFrameSource(arr)], tmp_path / "b.vfm", cfg, progress=False, init_bundle=first)
    a, b = load_model(first).model.state_dict(), load_model(tuned).model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(ConfigError, match="a.vfm"):
        train([ArrayFrameSource(arr)], tmp_path / "c.vfm", tiny_config(**{"model.width": 8}), progress=False, init_bundle=first)


def test_input_errors_come_before_training(tmp_path) -> None:
    with pytest.raises(TrainingInputError, match="crop 64 > frame 32×32"):
        train([ArrayFrameSource(blob_frames())], tmp_path / "m.vfm", tiny_config(**{"sampling.crop": 64}), progress=False)
    with pytest.raises(TrainingInputError, match="shorter than lag"):
        train([ArrayFrameSource(blob_frames(3))], tmp_path / "m.vfm", tiny_config(**{"sampling.lag": 4}), progress=False)
    assert not list(tmp_path.iterdir())


def test_dataloader_workers_train(tmp_path) -> None:
    arr = blob_frames()
    out = train([arr], tmp_path / "m.vfm", tiny_config(**{"train.num_workers": 2, "train.steps": 3}), progress=False)
    assert load_model(out).provenance["steps"] == 3


def test_default_polarity_is_detected_and_used_by_run(tmp_path) -> None:
    """With output.polarity auto (the default) training finds the dark square, so the bundle has
    the gated max channel and records 'dark'; a run with auto polarity takes the bundle's and
    writes a one-sided foreground (background - frame >= 0 everywhere)."""
    import zarr

    from vidfilter.infer.pipeline import run

    arr = blob_frames()
    out = train([ArrayFrameSource(arr)], tmp_path / "m.vfm", tiny_config(), progress=False)
    bundle = load_model(out)
    assert bundle.config.output.polarity.value == "dark"
    assert bundle.config.model.temporal_channel == "max" and bundle.model.in_channels == 2
    assert bundle.normalisation["polarity"] == "dark"
    # an inverted recording (bright square on a dark plate) is detected as bright
    bright = train([ArrayFrameSource(255 - arr)], tmp_path / "b.vfm", tiny_config(), progress=False)
    assert load_model(bright).config.output.polarity.value == "bright"

    res = run(ArrayFrameSource(arr), tmp_path / "o.zarr", model=out, config=Config().override({"infer.every": 1}))
    store = zarr.open_group(str(res.output), mode="r")
    assert store.attrs["config"]["output"]["polarity"] == "dark"
    fg = np.asarray(store["foreground/0"][:])
    bg = np.stack(list(vf_open(f"{res.output}/background").iter())).astype(np.int16)
    assert np.array_equal(fg.astype(np.int16), bg - arr.astype(np.int16))  # background - frame, never negative


def test_ema_bundle_is_the_moving_average_of_the_weights(tmp_path) -> None:
    """With train.ema = d the bundle holds d*w1 + (1-d)*w2 after two steps (w_k: the plain run's
    weights after k steps, computed by separate runs), and resuming keeps the average exact."""
    arr = blob_frames()
    d = 0.75
    w = [load_model(train([ArrayFrameSource(arr)], tmp_path / f"plain{k}.vfm", tiny_config(**{"train.steps": k}),
                          progress=False)).model.state_dict() for k in (1, 2)]
    ema = load_model(train([ArrayFrameSource(arr)], tmp_path / "ema.vfm", tiny_config(**{"train.steps": 2, "train.ema": d}),
                           progress=False)).model.state_dict()
    for k, v in ema.items():
        assert torch.allclose(v, d * w[0][k] + (1 - d) * w[1][k], atol=1e-7), k
    assert not torch.equal(ema["out.weight"], w[1]["out.weight"])
    # N steps + resume + N steps equals 2N steps, the average included
    full = load_model(train([ArrayFrameSource(arr)], tmp_path / "full.vfm", tiny_config(**{"train.steps": 6, "train.ema": d}),
                            progress=False)).model.state_dict()
    train([ArrayFrameSource(arr)], tmp_path / "split.vfm", tiny_config(**{"train.steps": 4, "train.ema": d}), progress=False)
    split = load_model(train([ArrayFrameSource(arr)], tmp_path / "split.vfm", tiny_config(**{"train.steps": 6, "train.ema": d}),
                             resume=True, progress=False)).model.state_dict()
    for k, v in full.items():
        assert torch.equal(v, split[k]), k


@pytest.mark.parametrize("polarity", ["dark", "bright", "absolute"])
def test_anchored_target_takes_the_reference_where_it_sees_an_animal(polarity) -> None:
    """A still animal in frame and target (a time-lag pair teaches to keep it): where the starting
    bundle's background differs from the frame in the polarity's direction, the target becomes that
    background; elsewhere (plate, and the other sign) it stays the time-lag target. A detection
    that spans the crop (touching two of its sides, as a wall does) is taken only inside the crop's
    edge band; one cut by a single side (an animal entering the crop) is taken everywhere."""
    from vidfilter.train.loop import anchored_target

    sign = -1.0 if polarity in ("dark", "absolute") else 1.0
    plate = torch.full((1, 1, 16, 16), 0.5)
    frame = plate.clone()
    frame[..., 4:8, 4:8] += sign * 0.3  # the still animal, in the frame ...
    target = frame.clone()  # ... and in the later frame
    target[..., 12, 12] += 0.01  # plate noise
    reference = plate.clone()  # the bundle removes what it sees
    reference[..., 15, 0] += sign * 0.2  # and errs once in the other direction, in a corner
    out = anchored_target(target, frame, reference, polarity, 0.04)
    assert torch.equal(out[..., 4:8, 4:8], plate[..., 4:8, 4:8])
    assert out[..., 12, 12] == target[..., 12, 12]
    assert out[..., 15, 0] == target[..., 15, 0]  # seen in absolute only, and touching two sides there
    frame[..., 0:3, 12:14] += sign * 0.3  # an animal entering from the top: taken, band included
    frame[..., 0:16, 10] += sign * 0.3  # a wall across the crop, top to bottom
    out = anchored_target(target, frame, reference, polarity, 0.04)
    assert torch.equal(out[..., 0:3, 12:14], plate[..., 0:3, 12:14])
    assert torch.equal(out[..., 4:12, 10], plate[..., 4:12, 10])  # the wall inside the band: taken
    assert torch.equal(out[..., 0:4, 10], target[..., 0:4, 10]) and torch.equal(out[..., 12:16, 10], target[..., 12:16, 10])
    no_band = anchored_target(target, frame, reference, polarity, 0.04, edge=0.0)
    assert torch.equal(no_band[..., :, 10], plate[..., :, 10])


def test_sides_touched_matches_connected_components() -> None:
    """How many crop sides each pixel's 8-connected component touches, against scikit-image's
    labelling of random masks and each component's bounding box."""
    from skimage.measure import label, regionprops

    from vidfilter.train.loop import _sides_touched

    seen = torch.from_numpy(np.random.default_rng(3).random((3, 1, 40, 33)) > 0.55)
    got = _sides_touched(seen).numpy()
    for i in range(3):
        labels = label(seen[i, 0].numpy(), connectivity=2)
        want = np.zeros(labels.shape)
        for r in regionprops(labels):
            y0, x0, y1, x1 = r.bbox
            want[labels == r.label] = (y0 == 0) + (x0 == 0) + (y1 == 40) + (x1 == 33)
        assert np.array_equal(got[i, 0], want)
