"""SIGKILL at random points: ``vidfilter run`` and ``vidfilter train`` resume to exactly the result of
an uninterrupted run, and nothing they leave behind is ever corrupt or looks complete.

Already covered elsewhere: one kill of ``run`` after the first progress record, per-frame and
keyframe mode (``tests/infer/test_pipeline.py::test_resume_after_sigkill_is_identical``); a kill
inside the Zarr writer (``tests/io/test_zarr_sink.py::test_sigkill_mid_write_then_resume``);
in-process resume of training bit for bit (``tests/train/test_train.py::test_resume_is_bit_for_bit``).
New here: several kills of ``run`` in a row, each before a seeded random frame write (the partial
store is resumed by a run that is itself killed; the child kills itself at that call, see
``tests/kill_points.py``), the content hash of the input surviving the kills, and *training*
processes killed at random moments.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from faults_helpers import assert_same_output, root_attrs, vf, vf_popen
from kill_points import call_point, vf_at

from vidfilter.config import Config
from vidfilter.infer.pipeline import run
from vidfilter.io.integrity import verify
from vidfilter.models import load_model
from vidfilter.train.checkpoint import checkpoint_path, load_checkpoint
from vidfilter.train.loop import train

#: The images ``run`` writes (one ``ZarrImageSink._mark`` call each per frame, whatever the storage).
GROUPS = 2


def _progress(out: Path) -> int:
    try:
        images = json.loads((Path(str(out) + ".partial") / ".vidfilter_progress.json").read_text())["images"]
        return min(v["frames_written"] for v in images.values()) if images else 0
    except (OSError, ValueError, KeyError):
        return -1


def _kill_run_at_random(args: list[str], out: Path, rng: random.Random, n_frames: int) -> int:
    """Run ``vidfilter run`` in a child that SIGKILLs itself before a seeded random write of its
    frames, in the first half of the work that remains; returns the frames durably recorded after
    the kill."""
    remaining = n_frames - max(_progress(out), 0)  # a resumed run restarts at or before this frame
    vf_at(call_point("vidfilter.io.zarr_sink", "ZarrImageSink._mark", rng.randint(0, GROUPS * remaining // 2)), *args)
    assert not out.exists(), "a killed run left an output that looks complete"
    done = _progress(out)
    assert done >= 0, "the progress record of the partial output is unreadable"
    return done


def _run_kills(media, tiny_bundle, tmp_path, seed: int, kills: int, every: int) -> None:
    src = media["long_mkv"]
    extra = ["--model", str(tiny_bundle), "--every", str(every), "--no-adaptive", "--threads", "1", "--device", "cpu"]
    ref = tmp_path / "ref.zarr"
    cfg = Config().override({"infer.every": every, "infer.adaptive": False, "infer.threads": 1, "infer.device": "cpu"})
    run(src, ref, model=tiny_bundle, config=cfg)
    out = tmp_path / "killed.zarr"
    args = ["run", str(src), "--out", str(out), *extra]
    rng = random.Random(seed)
    for _ in range(kills):
        _kill_run_at_random(args, out, rng, n_frames=120)
    done = vf(*args)
    assert done.returncode == 0, done.stderr
    assert_same_output(out, ref)
    a, b = root_attrs(out)["input"], root_attrs(ref)["input"]
    assert a["frames_xxh3"] == b["frames_xxh3"] and a["frames_read"] == 120
    report = verify(out, input=src)
    assert report.complete, report.problems


def test_sigkill_run_twice_at_random_points_resumes_identically(media, tiny_bundle, tmp_path):
    """Two kills in a row (the second one kills the resumed run), then the same command finishes:
    output and recorded content hash equal an uninterrupted run's, verify finds it complete."""
    _run_kills(media, tiny_bundle, tmp_path, seed=1, kills=2, every=8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("every", [1, 8])
def test_sigkill_run_soak(media, tiny_bundle, tmp_path, seed, every):
    """Soak: five kills in a row at seeded random frames, per-frame and keyframe mode."""
    _run_kills(media, tiny_bundle, tmp_path, seed=100 + seed, kills=5, every=every)


# ---------------------------------------------------------------------------------------------
# training


TRAIN_YAML = """\
model: {{preset: fast, width: 4, depth: 2}}
sampling: {{crop: 32, lag: [1, 3], lag_unit: frames, pool_frames: 12, pool_refresh: 5}}
train: {{batch_size: 2, steps: {steps}, val_every: 20, val_pairs: 4, checkpoint_every: 2, val_fraction: 0.2,
        lr: 0.001, device: cpu, threads: 1, seed: 3}}
"""


def _state_equal(a: Path, b: Path) -> None:
    sa, sb = load_model(a).model.state_dict(), load_model(b).model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _ckpt_step(ckpt: Path) -> int:
    return load_checkpoint(ckpt)["step"] if ckpt.exists() else 0


def _train_kills(media, tmp_path, seed: int, kills: int, steps: int) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text(TRAIN_YAML.format(steps=steps))
    src = str(media["long_mkv"])
    ref = tmp_path / "ref.vfm"
    train([src], ref, Config.from_yaml(cfg), progress=False)  # uninterrupted, in this process
    out = tmp_path / "killed.vfm"
    ckpt = checkpoint_path(out)
    rng = random.Random(seed)
    for i in range(kills):
        args = ["train", src, "--out", str(out), "--config", str(cfg)] + (["--resume"] if i else [])
        before = _ckpt_step(ckpt)
        # a random step in this run's share of the remaining steps (the last quarter is left alone,
        # so the kill always lands before the bundle is written)
        share = max(2, (3 * steps // 4 - before) // (kills - i))
        target = before + rng.randint(1, share)
        p = vf_popen(*args)
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and _ckpt_step(ckpt) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))  # between two checkpoints
        assert p.poll() is None, f"training ended before the kill: {p.stderr.read().decode()}"
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert not out.exists(), "a killed training run left a bundle"
        state = load_checkpoint(ckpt)  # never corrupt: written to a temp file, fsynced, renamed
        assert before < state["step"] < steps
    proc = vf("train", src, "--out", str(out), "--config", str(cfg), "--resume")
    assert proc.returncode == 0, proc.stderr
    # a kill during a checkpoint write leaves its temporary file; the next write removes it
    assert not [f for f in tmp_path.iterdir() if ".tmp" in f.name], "temporary files left behind"
    _state_equal(out, ref)
    assert load_model(out).provenance["steps"] == steps


def test_sigkill_training_resumes_bit_for_bit(media, tmp_path):
    """Kill ``vidfilter train`` at a random moment after a checkpoint: the checkpoint loads, no
    bundle appears, and ``--resume`` ends with weights identical to an uninterrupted run."""
    _train_kills(media, tmp_path, seed=7, kills=1, steps=40)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_sigkill_training_soak(media, tmp_path, seed):
    """Soak: three kills in a row at random moments, then resume to the end."""
    _train_kills(media, tmp_path, seed=50 + seed, kills=3, steps=160)
