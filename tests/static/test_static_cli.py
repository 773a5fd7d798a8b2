"""Static mode through the command line: ``info`` on a 2-D Zarr image, ``train BANK`` without a
config (recognised as a crop bank, trained in static mode), and the static wording of the
training verdict and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from vidfilter.cli import main
from vidfilter.models import load_model
from vidfilter.static.bank import write_bank
from vidfilter.static.config import PreprocessConfig
from vidfilter.train.report import summary_line, verdict
from vidfilter.train.result import TrainResult

VIDEO_WORDS = ("frame", "lag", "recording", "polarity")


def _disc(r: int, value: float) -> np.ndarray:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    d = np.sqrt(yy * yy + xx * xx) / r
    return np.where(d <= 1, value * (1 - 0.4 * d), 0.0).astype(np.float32)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Targets: bright discs; unwanted: dim bars; two flat backgrounds of 96²."""
    root = tmp_path_factory.mktemp("bank") / "bank"
    bgs = [np.full((96, 96), 0.2 + 0.05 * k, np.float32) for k in range(2)]
    write_bank(root, [_disc(5, 0.6) for _ in range(3)], [np.full((4, 14), 0.3, np.float32) for _ in range(3)], bgs,
               PreprocessConfig(), 255.0)
    return root


def test_info_describes_a_2d_zarr_as_a_static_image(tmp_path, capsys):
    """A plain (512, 512) uint8 Zarr array: `info` exits 0 with shape, dtype and chunks."""
    zarr.open_array(str(tmp_path / "img.zarr"), mode="w", shape=(512, 512), dtype=np.uint8, chunks=(128, 256))[:] = 7
    assert main(["info", str(tmp_path / "img.zarr")]) == 0
    out = capsys.readouterr().out
    assert "static image" in out and "[512, 512]" in out and "uint8" in out and "[128, 256]" in out
    assert main(["info", "--json", str(tmp_path / "img.zarr")]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert (facts["shape"], facts["dtype"], facts["chunks"], facts["axes"]) == ([512, 512], "uint8", [128, 256], "yx")


def test_info_still_refuses_an_array_of_no_known_layout(tmp_path, capsys):
    zarr.save_array(str(tmp_path / "odd.zarr"), np.zeros((5, 6, 7, 8), np.uint8))
    assert main(["info", str(tmp_path / "odd.zarr")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(5, 6, 7, 8)" in err


def test_train_on_a_bank_without_config_trains_in_static_mode(tmp_path, bank, capsys):
    """`train BANK` with neither --config nor --mode: one line says static mode, the bundle is a
    static-mode model, and the summary speaks of synthetic pairs, not frames or lags."""
    out = tmp_path / "m.vfm"
    assert main(["train", str(bank), "--out", str(out), "--steps", "2", "--preset", "fast", "--width", "4",
                 "--crop", "64", "--batch-size", "2", "--device", "cpu", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "is a crop bank: training in static mode" in err
    assert load_model(out).config.sampling.mode == "static"
    summary = err.strip().splitlines()[-1]
    assert "static mode" in summary and "synthetic pairs" in summary
    assert not any(word in summary for word in VIDEO_WORDS), summary


def test_the_python_api_trains_a_bank_in_static_mode_too(tmp_path, bank):
    """vidfilter.train(BANK, OUT, Config()) with the default (video) config: static mode, as the CLI."""
    import vidfilter
    from vidfilter.config import Config

    cfg = Config().override({"model.preset": "fast", "model.width": 4, "sampling.crop": 64, "train.steps": 2,
                             "train.batch_size": 2, "train.device": "cpu", "train.threads": 1})
    out = vidfilter.train(bank, tmp_path / "m.vfm", cfg, progress=False)
    assert load_model(out).config.sampling.mode == "static"


def test_a_bank_in_a_video_run_is_a_one_line_error(tmp_path, bank, capsys):
    assert main(["train", str(bank), "--mode", "video", "--out", str(tmp_path / "m.vfm"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "crop bank" in err and "--mode static" in err and "lag" not in err.replace("no lags", "")


def _state(score: float | None, suspected: bool = False) -> TrainResult:
    state = TrainResult()
    state.val = [{"step": 2, "loss": 0.1, "identity_score": score, "identity_suspected": suspected}]
    return state


def test_static_verdicts_speak_of_synthetic_pairs():
    texts = [verdict(_state(0.05, True), static=True), verdict(_state(0.48), static=True), verdict(_state(None), static=True),
             verdict(TrainResult(), static=True)]
    assert texts[0].startswith("identity:") and texts[1].startswith("ok:") and texts[2].startswith("not checked")
    assert "synthetic pairs" in texts[0] and "synthetic pairs" in texts[1] and "unwanted" in texts[2]
    for text in texts:
        assert "held-out frames" not in text and "lag" not in text, text
    assert "held-out frames" in verdict(_state(0.48)) and "longer lags" in verdict(_state(0.05, True))


def test_static_summary_line(tmp_path):
    log = {"steps": 2, "elapsed_s": 6.0, "verdict": verdict(_state(0.48), static=True),
           "config": {"output": {"polarity": "absolute"}, "model": {"preset": "fast"}, "sampling": {"crop": 64, "mode": "static"}}}
    (tmp_path / "log.json").write_text(json.dumps(log))
    line = summary_line(tmp_path)
    assert line.startswith("2 steps in 0.1 min; static mode, fast network on 64 px synthetic pairs")
    assert "polarity" not in line and "frames" not in line
