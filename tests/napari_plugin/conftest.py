"""Fixtures of the napari plugin tests: a small video and its output store; Qt without a screen.

``QT_QPA_PLATFORM=offscreen`` is set before napari or Qt is imported. The tests drive the plugin
through ``napari.components.ViewerModel`` (a viewer without a canvas) and the magicgui widgets; a
full ``napari.Viewer`` needs OpenGL, which a machine without a screen does not have.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402



@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep frame-index caches of the tests out of the user's home."""
    monkeypatch.setenv("VIDFILTER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "index-cache"))


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames of 64 x 96 px, two animals moving on a plate (H.264)."""
    from vidfilter.synth import SyntheticRecording, write_video

    rec = SyntheticRecording(40, 64, 96, n_animals=2, seed=1)
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", rec)


@pytest.fixture(scope="session")
def store_settings() -> dict:
    """The settings of the store the tests compare against: a mask, keyframes every 8 frames."""
    return {"output.mask": True, "infer.every": 8}


@pytest.fixture(scope="session")
def store(clip: Path, store_settings: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vidfilter.run(clip, method="median")`` with a mask, keyframes every 8 frames (background stored at keyframes)."""
    import vidfilter
    from vidfilter.config import Config

    out = tmp_path_factory.mktemp("store") / "clip.zarr"
    result = vidfilter.run(str(clip), out, method="median", config=Config().override(store_settings))
    assert result.status == "done"
    return out


@pytest.fixture
def viewer():
    """A napari viewer model (layers, no canvas)."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    return ViewerModel()
