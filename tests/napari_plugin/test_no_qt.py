"""The core package never imports napari or Qt, and the plugin's logic runs without Qt."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    return sorted({n.split(".")[0] for n in names} & set(GUI))


def test_core_imports_no_gui():
    assert _loaded_after("import vidfilter, vidfilter.api, vidfilter.cli") == []


def test_plugin_logic_imports_no_gui():
    """The reader, its layers and the jobs are plain Python: only the widgets need Qt."""
    assert _loaded_after("import vidfilter.napari_plugin.reader, vidfilter.napari_plugin.layers, "
                         "vidfilter.napari_plugin.jobs") == []


def test_probe_sees_gui_modules():
    """The probe itself works: importing the widgets loads magicgui."""
    pytest.importorskip("napari")
    assert "magicgui" in _loaded_after("import os; os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
                                   "import vidfilter.napari_plugin.widgets")


def test_job_progress_cancel_and_failure():
    from vidfilter.napari_plugin.jobs import Cancelled, Job

    def count(report, n=1000):
        for i in range(1, n + 1):
            report(i, n)
            time.sleep(0.001)
        return "finished"

    job = Job(lambda r: count(r, 5)).start()
    assert job.wait(10) and job.status == "done" and job.result == "finished" and job.fraction == 1.0
    job = Job(count).start()
    while job.done < 3:
        time.sleep(0.001)
    job.cancel()
    assert job.wait(10) and job.status == "cancelled" and job.done < 1000 and job.result is None
    job = Job(lambda r: 1 / 0).start()
    assert job.wait(10) and job.status == "failed" and isinstance(job.error, ZeroDivisionError)
    assert issubclass(Cancelled, Exception) and not issubclass(Cancelled, __import__("vidfilter").errors.VidfilterError)


def test_method_choices_and_outputs(tmp_path):
    from vidfilter.baselines import BASELINES
    from vidfilter.errors import ConfigError
    from vidfilter.models.shipped import shipped_names
    from vidfilter.napari_plugin import jobs

    choices = jobs.method_choices()
    assert choices == [f"bundle: {n}" for n in shipped_names()] + [jobs.BUNDLE_FILE, *BASELINES]
    assert jobs.parse_method("median") == ("median", None)
    assert jobs.parse_method(f"bundle: {shipped_names()[0]}") == ("model", shipped_names()[0])
    assert jobs.parse_method(jobs.BUNDLE_FILE, tmp_path / "m.vfm") == ("model", str(tmp_path / "m.vfm"))
    with pytest.raises(ConfigError, match="bundle file"):
        jobs.parse_method(jobs.BUNDLE_FILE, None)
    assert jobs.default_output(tmp_path / "a b.mp4") == tmp_path / "a b.zarr"
    assert jobs.default_output(tmp_path / "frames/", ".vfm") == tmp_path / "frames.vfm"


def test_run_store_progress_and_cancel_without_qt(clip, store, store_settings, tmp_path):
    """run_store with a progress callback: every frame reported once, in order; raising stops the run."""
    import numpy as np

    import vidfilter
    from vidfilter.config import Config
    from vidfilter.napari_plugin import jobs

    cfg = Config().override(store_settings)
    seen: list[tuple[int, int]] = []
    res = jobs.run_store(clip, tmp_path / "a.zarr", "median", config=cfg, progress=lambda d, n: seen.append((d, n)))
    assert res.status == "done" and seen == [(t, 40) for t in range(1, 41)]
    for g in ("background", "foreground", "mask"):
        np.testing.assert_array_equal(vidfilter.open(str(tmp_path / "a.zarr" / g)).to_dask().compute(),
                                      vidfilter.open(str(store / g)).to_dask().compute())

    def stop(d, n):
        if d == 30:
            raise jobs.Cancelled

    with pytest.raises(jobs.Cancelled):
        jobs.run_store(clip, tmp_path / "b.zarr", "median", config=cfg, progress=stop)
    assert (tmp_path / "b.zarr.partial").is_dir() and not (tmp_path / "b.zarr").exists()
    assert jobs.run_store(clip, tmp_path / "b.zarr", "median", config=cfg).frames_this_run < 40
