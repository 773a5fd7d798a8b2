"""The Run and Train widgets, driven headless through a ``ViewerModel``: the run widget's store equals
``vidfilter.run`` with the same settings, Cancel leaves a partial that the next Run resumes, and the
train widget shows the report's verdict and loss plot."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("magicgui")

import vidfilter  # noqa: E402
from vidfilter.config import Config  # noqa: E402
from vidfilter.napari_plugin import jobs  # noqa: E402
from vidfilter.napari_plugin.layers import IMAGE_GROUPS, recording_layer  # noqa: E402
from vidfilter.napari_plugin.widgets import RunWidget, TrainWidget, add_layers  # noqa: E402


def _groups(store: Path) -> dict[str, np.ndarray]:
    return {g: vidfilter.open(str(store / g), color="keep").to_dask().compute() for g in IMAGE_GROUPS
            if (store / g).exists()}


def _record(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]


def _assert_same_store(got: Path, want: Path) -> None:
    a, b = _groups(got), _groups(want)
    assert sorted(a) == sorted(b)
    for g in a:
        assert a[g].dtype == b[g].dtype, g
        np.testing.assert_array_equal(a[g], b[g], err_msg=g)
    ra, rb = _record(got), _record(want)
    assert ra["method"] == rb["method"] and ra["config"] == rb["config"] and ra["input"]["path"] == rb["input"]["path"]


def _config_file(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "run.yaml"
    Config().override(settings).to_yaml(path)
    return path


def test_run_widget_equals_vidfilter_run(clip, store, tmp_path, viewer):
    w = RunWidget(viewer)
    assert "median" in w.method.choices and jobs.BUNDLE_FILE in w.method.choices
    assert [c for c in w.method.choices if c.startswith("bundle: ")]  # the shipped bundles
    w.files.value = str(clip)
    w.method.value = "median"
    w.config.value = str(_config_file(tmp_path, {"infer.every": 8}))
    w.mask.value = True
    w.out.value = str(tmp_path / "widget.zarr")
    assert w.start() is not None
    assert w.wait() == "done", w.status.value
    assert w.bar.value == w.bar.max and w.status.value.startswith("done: 40 frames")
    _assert_same_store(tmp_path / "widget.zarr", store)
    assert [x.name for x in viewer.layers] == ["widget input", "widget background", "widget foreground", "widget mask"]
    assert [type(x).__name__ for x in viewer.layers] == ["Image", "Image", "Image", "Labels"]
    np.testing.assert_array_equal(np.asarray(viewer.layers["widget foreground"].data[20]),
                                  vidfilter.open(str(store / "foreground"))[20])


def test_run_widget_tracks_from_napari_alone(clip, tmp_path, viewer):
    """The tracks box: run, then link the mask's objects; the tracks layer holds exactly the rows
    ``vidfilter.track`` gives for the same store, and the store still verifies."""
    from vidfilter.io.integrity import verify

    w = RunWidget(viewer)
    w.files.value = str(clip)
    w.method.value = "median"
    w.tracks.value = True  # the mask is asked for with it
    w.out.value = str(tmp_path / "tracked.zarr")
    w.start()
    assert w.wait() == "done", w.status.value
    assert [type(x).__name__ for x in viewer.layers][-2:] == ["Labels", "Tracks"]
    ref = vidfilter.track(tmp_path / "tracked.zarr")
    assert len(ref) and ref["track_id"].nunique() >= 1
    want = ref[["track_id", "frame", "y", "x"]].to_numpy(np.float64)
    got = viewer.layers[-1].data
    np.testing.assert_allclose(got[np.lexsort((got[:, 1], got[:, 0]))], want[np.lexsort((want[:, 1], want[:, 0]))])
    assert verify(tmp_path / "tracked.zarr").complete


def test_run_widget_bundle_file_on_the_current_layer(clip, tmp_path, viewer, tiny_bundle):
    """A bundle file, run on the selected image layer's recording, into the default output beside it."""
    src = tmp_path / "rec.mp4"
    src.write_bytes(clip.read_bytes())
    add_layers(viewer, [recording_layer(src)])
    w = RunWidget(viewer)
    assert w.layer.value == "rec"
    w.method.value = jobs.BUNDLE_FILE
    assert w.start() is None and "bundle file" in w.status.value  # no file chosen yet: not started
    w.bundle.value = str(tiny_bundle)
    w.start()
    assert w.wait() == "done", w.status.value
    ref = vidfilter.run(str(src), tmp_path / "ref.zarr", model=str(tiny_bundle))
    assert ref.status == "done"
    _assert_same_store(tmp_path / "rec.zarr", tmp_path / "ref.zarr")
    assert _record(tmp_path / "rec.zarr")["model"]["sha256"] == _record(tmp_path / "ref.zarr")["model"]["sha256"]
    assert "rec foreground" in viewer.layers


def test_cancel_leaves_a_partial_that_run_resumes(clip, store, store_settings, tmp_path, viewer, monkeypatch):
    """Cancel pressed at frame 20 of 40: the run stops, OUT.zarr.partial stays; Run again resumes
    from the durable keyframe (not frame 0) and the store equals an uninterrupted run."""
    reached, go_on = threading.Event(), threading.Event()
    report = jobs.Job.report

    def at_frame_20(self, done, total):
        if done == 20 and not reached.is_set():
            reached.set()
            assert go_on.wait(30)
        report(self, done, total)

    monkeypatch.setattr(jobs.Job, "report", at_frame_20)
    w = RunWidget(viewer)
    w.files.value = str(clip)
    w.method.value = "median"
    w.config.value = str(_config_file(tmp_path, store_settings))
    out = tmp_path / "cancelled.zarr"
    w.out.value = str(out)
    w.start()
    assert reached.wait(30)
    assert w.poll() and w.cancel_button.enabled and not w.start_button.enabled
    w.cancel_button.native.click()  # the user's click, in the GUI thread
    go_on.set()
    assert w.wait() == "cancelled"
    assert w.status.value.startswith("cancelled at frame 20 of 40") and "cancelled.zarr.partial" in w.status.value
    assert not out.exists() and Path(str(out) + ".partial").is_dir()
    assert len(viewer.layers) == 0 and w.start_button.enabled
    w.start()
    assert w.wait() == "done", w.status.value
    assert 0 < w.job.result.frames_this_run < 40  # resumed, not restarted
    _assert_same_store(out, store)


def test_run_widget_reports_a_failed_run(tmp_path, viewer):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    w = RunWidget(viewer)
    assert w.start() is None and w.status.value.startswith("not started: choose an image layer")
    w.files.value = str(bad)
    w.method.value = "median"
    w.start()
    assert w.wait() in ("done", "failed")
    assert w.status.value.startswith("failed:") and "broken.mp4" in w.status.value
    assert not (tmp_path / "broken.zarr").exists() and len(viewer.layers) == 0


def test_train_widget_shows_verdict_and_loss_plot(clip, tmp_path, viewer):
    cfg = tmp_path / "tiny.yaml"
    Config().override({
        "model.preset": "fast", "model.width": 4, "model.depth": 2, "sampling.crop": 16, "sampling.lag": [1, 3],
        "sampling.lag_unit": "frames", "sampling.pool_frames": 12, "train.batch_size": 2, "train.val_every": 2,
        "train.val_pairs": 4, "train.checkpoint_every": 2, "train.val_fraction": 0.2, "train.device": "cpu",
    }).to_yaml(cfg)
    w = TrainWidget(viewer)
    w.files.value = [str(clip)]
    w.minutes.value = 1.0
    w.steps.value = 4
    w.config.value = str(cfg)
    w.out.value = str(tmp_path / "m.vfm")
    assert w.start() is not None
    assert w.wait(120) == "done", w.status.value
    log = json.loads((tmp_path / "m.report" / "log.json").read_text())
    assert (tmp_path / "m.vfm").is_file() and log["steps"] == 4
    assert w.verdict.value == log["verdict"].split(":")[0] and w.verdict.value in ("ok", "identity", "not checked")
    assert w.outcome.verdict == log["verdict"] and log["verdict"] in w.status.value
    layer = viewer.layers["m loss"]
    import cv2

    want = cv2.cvtColor(cv2.imread(str(tmp_path / "m.report" / "loss.png")), cv2.COLOR_BGR2RGB)
    assert layer.rgb and layer.data.shape == want.shape and np.array_equal(layer.data, want)
    assert w.bar.value == w.bar.max
    assert w.layer.choices == (None,)  # the plot is not offered as a recording to train on


def test_train_bundle_reports_steps_and_stops_on_cancel(clip, tmp_path):
    """Without any widget: progress per step (steps budget), and a cancel raised from it stops the training."""
    over = {"model.preset": "fast", "model.width": 4, "model.depth": 2, "sampling.crop": 16, "sampling.lag": [1, 3],
            "sampling.lag_unit": "frames", "sampling.pool_frames": 12, "train.batch_size": 2, "train.val_every": 2,
            "train.val_pairs": 4, "train.checkpoint_every": 2, "train.device": "cpu"}
    calls: list[tuple[float, float]] = []

    def stop_at_3(done, total):
        calls.append((done, total))
        if done >= 3:
            raise jobs.Cancelled

    with pytest.raises(jobs.Cancelled):
        jobs.train_bundle(str(clip), tmp_path / "c.vfm", steps=6, config=Config().override(over), progress=stop_at_3)
    assert calls == [(1, 6), (2, 6), (3, 6)]
    assert not (tmp_path / "c.vfm").exists() and (tmp_path / "c.ckpt").exists()  # resumable from step 2


def test_qt_timer_polls_the_job(clip, tmp_path, viewer):
    """In napari the widget's timer, not the caller, moves the progress and shows the result."""
    import time

    from qtpy.QtWidgets import QApplication

    w = RunWidget(viewer)
    w.files.value = str(clip)
    w.method.value = "max"
    w.out.value = str(tmp_path / "timer.zarr")
    w.start()
    app, deadline = QApplication.instance(), time.monotonic() + 60
    while w._timer.isActive() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert not w._timer.isActive() and w.job.status == "done" and w.status.value.startswith("done: 40 frames")
    assert [x.name for x in viewer.layers] == ["timer input", "timer background", "timer foreground"]
