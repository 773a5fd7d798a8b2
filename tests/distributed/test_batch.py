"""run_batch on a real LocalCluster: outputs identical to single-process runs, a corrupt input
reported without stopping the batch, finished inputs skipped on re-run, a worker killed mid-batch
survived, the model loaded once per worker."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from kill_points import hold_point, install, wait_for_hold

from vidfilter.config import Config
from vidfilter.distributed.batch import cache_info, format_table, get_client, run_batch
from vidfilter.errors import ConfigError
from vidfilter.infer.pipeline import run
from vidfilter.synth import SyntheticRecording, write_video

pytestmark = pytest.mark.cluster

GROUPS = ("background", "foreground")


def _cfg() -> Config:
    return Config().override({"infer.device": "cpu", "infer.every": 1})  # per-frame: a task long enough to kill


def _read(store: Path, group: str) -> np.ndarray:
    return zarr.open_array(str(store / group / "0"), mode="r")[:]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Two good 30-frame 64 x 96 recordings and one corrupt file."""
    d = tmp_path_factory.mktemp("videos")
    a = write_video(d / "rec_a.mkv", SyntheticRecording(30, 64, 96, n_animals=2, seed=1), codec="ffv1")
    b = write_video(d / "rec_b.mkv", SyntheticRecording(30, 64, 96, n_animals=2, seed=2), codec="ffv1")
    bad = d / "rec_bad.mkv"
    bad.write_bytes(a.read_bytes()[:300] + b"\0" * 4096)
    return [a, b, bad]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, videos, tiny_bundle) -> dict[str, Path]:
    """Single-process outputs of the two good recordings."""
    d = tmp_path_factory.mktemp("ref")
    return {v.name: Path(run(v, d / f"{v.stem}.zarr", model=tiny_bundle, config=_cfg()).output) for v in videos[:2]}


def _assert_same(out: Path, ref: Path) -> None:
    for g in GROUPS:
        np.testing.assert_array_equal(_read(out, g), _read(ref, g))


def test_batch_matches_single_process_reports_failure_and_skips_on_rerun(tmp_path, client, videos, reference, tiny_bundle):
    """Two complete outputs identical to single-process `run`, one clear failure; a re-run skips the finished two."""
    results = run_batch([str(v) for v in videos], model=tiny_bundle, out_dir=tmp_path, config=_cfg(), client=client)

    assert [r.status for r in results] == ["done", "done", "failed"]
    for r, v in zip(results[:2], videos[:2]):
        assert r.frames == 30 and r.fps > 0 and r.error is None
        _assert_same(Path(r.output), reference[v.name])
    assert "rec_bad.mkv" in results[2].input and "not a readable video" in results[2].error
    summary = json.loads((tmp_path / "batch_summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    assert [r["status"] for r in summary["results"]] == ["done", "done", "failed"]
    table = format_table(results)
    assert table.splitlines()[0].split() == ["input", "status", "frames", "fps", "error"] and "rec_bad.mkv" in table
    loads = client.run(cache_info)
    assert all(info["loads"] <= 1 for info in loads.values())  # once per worker, not per task

    again = run_batch([str(v) for v in videos], model=tiny_bundle, out_dir=tmp_path, config=_cfg(), client=client)

    assert [r.status for r in again] == ["skipped", "skipped", "failed"]
    assert again[0].frames == 30
    _assert_same(tmp_path / "rec_a.zarr", reference["rec_a.mkv"])


def test_killed_worker_mid_batch_is_survived(tmp_path, client, videos, reference, tiny_bundle):
    """SIGKILL the worker writing a recording mid-run: the task reruns elsewhere, resumes the partial
    store (taking over the dead writer's lock) and the output is identical.

    The worker is held before it writes frame 20 (after the first durable checkpoint at 16) until
    it is killed; the worker that reruns the task finds the hold taken and goes on."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    client.run(install, hold_point("vidfilter.io.zarr_sink", "ZarrImageSink._mark", 2 * 20, ctl / "held", ctl / "release"))
    results: list = []
    err: list = []

    def go() -> None:
        try:
            results.extend(run_batch([str(videos[0])], model=tiny_bundle, out_dir=tmp_path, config=_cfg(), client=client))
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            err.append(e)

    th = threading.Thread(target=go)
    th.start()
    held = wait_for_hold(ctl / "held", timeout=60)
    progress = tmp_path / "rec_a.zarr.partial" / ".vidfilter_progress.json"
    written = min(g["frames_written"] for g in json.loads(progress.read_text())["images"].values())
    assert written >= 16, "the task never reached its first checkpoint"
    busy = [addr for addr, keys in client.processing().items() if keys]
    assert len(busy) == 1
    pid = client.run(os.getpid, workers=busy)[busy[0]]
    assert pid == held
    os.kill(pid, signal.SIGKILL)
    th.join(timeout=60)
    assert not th.is_alive() and not err, err
    assert results[0].status == "done", results
    assert results[0].worker_pid != pid
    # resumed the partial store from its durable frames, not restarted
    assert results[0].frames_this_run < 30
    _assert_same(tmp_path / "rec_a.zarr", reference["rec_a.mkv"])
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_baseline_method_without_model(tmp_path, client, videos):
    """method='median' needs no bundle; it runs on the workers too."""
    res = run_batch([str(videos[1])], method="median", out_dir=tmp_path, config=_cfg(), client=client)
    assert res[0].status == "done"
    expected = run(videos[1], tmp_path / "ref.zarr", method="median", config=_cfg())
    np.testing.assert_array_equal(_read(tmp_path / "rec_b.zarr", "background"), _read(Path(expected.output), "background"))


def test_bad_arguments_fail_before_submitting(tmp_path, client, videos):
    """No model for method 'model' and a malformed scheduler string are one-line ConfigErrors."""
    with pytest.raises(ConfigError, match="--model"):
        run_batch([str(videos[0])], out_dir=tmp_path, client=client)
    with pytest.raises(ConfigError, match="integer"):
        get_client("local:two")
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        get_client("nonsense")
