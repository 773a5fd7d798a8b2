"""Fixtures of the reader tests (media helpers live in ``io_media.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from io_media import write_video


@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep frame-index caches of the tests out of the user's home."""
    d = tmp_path_factory.getbasetemp() / "index-cache"
    monkeypatch.setenv("VIDFILTER_CACHE_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def h264_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 coded frames, H.264 with B-frames and a GOP of 12."""
    d = tmp_path_factory.mktemp("h264")
    return write_video(d / "bframes.mp4", 120, options={"bf": "3", "g": "12", "keyint_min": "12", "sc_threshold": "0"})
